"""Expert routing-frequency baseline (MoE only): the least-routed experts of each layer go.

Frequency is the share of routed (token, slot) pairs an expert receives over the calibration
inputs (every timestep). One share of experts is removed per MoE layer (never below top-k); if
experts alone cannot reach the target, a uniform heads/channels magnitude trim closes the gap.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from pruners.allocate import Allocation
from pruners.base import Pruner, fill_experts_then_trim
from pruners.importance import expert_frequency
from tmpbench.pruning.tree import UnitTree


class ExpertFrequencyPruner(Pruner):
    """Drop the least-routed experts per layer."""

    name: ClassVar[str] = "expert-frequency"
    families: ClassVar[frozenset[str]] = frozenset({"moe"})
    needs_calibration: ClassVar[bool] = True
    data_free_fallback: ClassVar[bool] = False
    description: ClassVar[str] = "MoE: drop least-routed experts per layer (width trim if needed)"
    SETTINGS: ClassVar[dict[str, Any]] = {"round_to": None}

    def _allocate(self, model: nn.Module, tree: UnitTree, alloc: Allocation, calibration: Any) -> dict:
        freq = expert_frequency(model, tree, calibration)
        info = fill_experts_then_trim(alloc, freq, "expert-frequency")
        return {**info, "scorer": "routing_frequency"}
