"""Magnitude width baseline: heads and FFN/shared-expert channels with the smallest weight norms go,
one share across all layers (the classic L2 structured-pruning baseline).

A unit's norm covers every weight it owns (see :func:`pruners.importance.unit_reduce`). Data-free;
on a meta model there are no weights, so index order stands in (recorded in the Plan).
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from pruners.allocate import Allocation, fill_uniform
from pruners.base import Pruner, magnitude_orders
from tmpbench.pruning.tree import UnitTree


class MagnitudePruner(Pruner):
    """Weight-norm width pruning, uniform ratio across layers."""

    name: ClassVar[str] = "magnitude"
    description: ClassVar[str] = "smallest-L2 heads/channels, uniform share across layers"
    SETTINGS: ClassVar[dict[str, Any]] = {"round_to": None}

    def _allocate(self, model: nn.Module, tree: UnitTree, alloc: Allocation, calibration: Any) -> dict:
        scorer = magnitude_orders(model, tree, alloc)
        fill_uniform(alloc, alloc.group_list(("heads", "channels")), what="magnitude (heads/channels only)")
        return {"scorer": scorer}
