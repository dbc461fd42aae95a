"""REAP expert-saliency baseline (MoE only): experts with the smallest router-weighted activation go.

REAP saliency of expert j is the mean, over the tokens routed to j, of the gate value times the
norm of j's output: an expert that is rarely chosen, or chosen with small weight, or whose output
is small, matters little. One share of experts is removed per MoE layer (never below top-k); a
uniform heads/channels magnitude trim closes any gap experts cannot.
"""

from __future__ import annotations

from typing import ClassVar

from pruners.base import ExpertScorePruner
from pruners.importance import reap_saliency


class ReapPruner(ExpertScorePruner):
    """Drop the experts with the lowest REAP saliency per layer."""

    name: ClassVar[str] = "reap"
    description: ClassVar[str] = "MoE: drop lowest gate x ||expert output|| experts per layer (width trim if needed)"
    scorer: ClassVar[str] = "reap_saliency"
    score_experts = staticmethod(reap_saliency)
