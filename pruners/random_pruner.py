"""Random baseline: heads and channels removed in a seeded random order, one share per group.

The same unit kinds (heads, FFN/shared-expert/routed-expert channels) and the same uniform share
across layers as the magnitude baseline, with a seeded random order in place of the weight norms,
so random-vs-magnitude isolates what scoring buys. ``kinds`` (default ``["heads", "channels"]``)
widens the pool: ``kinds=["heads", "channels", "experts"]`` also removes whole routed experts at
random. Data-free; works on meta models.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from pruners.allocate import Allocation, fill_uniform
from pruners.base import Pruner
from tmpbench.errors import TmpbenchError
from tmpbench.pruning.tree import UnitTree

KINDS = ("heads", "channels", "experts")
DEFAULT_KINDS = ("heads", "channels")  # the magnitude baseline's kinds: only the order differs


class RandomPruner(Pruner):
    """Seeded random unit removal, uniform share across layers."""

    name: ClassVar[str] = "random"
    description: ClassVar[str] = "seeded random heads/channels (kinds= adds experts), uniform share per layer"
    SETTINGS: ClassVar[dict[str, Any]] = {"kinds": list(DEFAULT_KINDS), "round_to": None}

    def _validate_settings(self) -> None:
        super()._validate_settings()
        bad = [k for k in self._settings["kinds"] if k not in KINDS]
        if bad or not self._settings["kinds"]:
            raise TmpbenchError(f"pruner 'random': kinds {self._settings['kinds']!r} must be a non-empty subset of {list(KINDS)}")

    def _allocate(self, model: nn.Module, tree: UnitTree, alloc: Allocation, calibration: Any) -> dict:
        gen = torch.Generator().manual_seed(self.seed)
        # every group draws, chosen or not, so a group's order does not depend on ``kinds``
        for g in alloc.groups.values():
            shape = (g.experts, g.count) if g.experts else (g.count,)  # expert channels: each expert its own draw
            alloc.set_order(g.path, torch.rand(shape, generator=gen))
        fill_uniform(alloc, alloc.group_list(tuple(self._settings["kinds"])), what="random (width only)")
        return {"scorer": "random"}
