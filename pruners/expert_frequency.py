"""Expert routing-frequency baseline (MoE only): the least-routed experts of each layer go.

Frequency is the share of routed (token, slot) pairs an expert receives over the calibration
inputs (every timestep). One share of experts is removed per MoE layer (never below top-k); if
experts alone cannot reach the target, a uniform heads/channels magnitude trim closes the gap.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from pruners.base import ExpertScorePruner
from pruners.importance import expert_frequency
from tmpbench.pruning.tree import UnitTree


class ExpertFrequencyPruner(ExpertScorePruner):
    """Drop the least-routed experts per layer."""

    name: ClassVar[str] = "expert-frequency"
    description: ClassVar[str] = "MoE: drop least-routed experts per layer (width trim if needed)"
    scorer: ClassVar[str] = "routing_frequency"

    def score_experts(self, model: nn.Module, tree: UnitTree, calibration: Any) -> dict[str, Any]:
        return expert_frequency(model, tree, calibration)
