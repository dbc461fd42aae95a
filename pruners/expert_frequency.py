"""Expert routing-frequency baseline (MoE only): the least-routed experts of each layer go.

Frequency is the share of routed (token, slot) pairs an expert receives over the calibration
inputs (every timestep). One share of experts is removed per MoE layer (never below top-k); if
experts alone cannot reach the target, a uniform heads/channels magnitude trim closes the gap.
"""

from __future__ import annotations

from typing import ClassVar

from pruners.base import ExpertScorePruner
from pruners.importance import expert_frequency


class ExpertFrequencyPruner(ExpertScorePruner):
    """Drop the least-routed experts per layer."""

    name: ClassVar[str] = "expert-frequency"
    description: ClassVar[str] = "MoE: drop least-routed experts per layer (width trim if needed)"
    scorer: ClassVar[str] = "routing_frequency"
    score_experts = staticmethod(expert_frequency)
