"""Positional late-block drop (HierarchicalPrune-style): the latest main blocks go first.

HierarchicalPrune observes that a DiT's early blocks lay out the image and its late blocks refine
texture, so late blocks are the cheaper ones to lose. Blocks are dropped from the last one
backwards while a drop keeps the size at or above the target; the gap left (less than one block)
is closed by a uniform magnitude trim of heads/channels (and experts on MoE models). Data-free, so it plans on meta models too.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from pruners.allocate import Allocation
from pruners.base import Pruner, drop_in_order, magnitude_orders, width_trim
from tmpbench.pruning.tree import UnitTree


class LateDropPruner(Pruner):
    """Drop the latest blocks first, finish with a width trim."""

    name: ClassVar[str] = "late-drop"
    description: ClassVar[str] = "drop the latest blocks first, finish with a width trim"
    SETTINGS: ClassVar[dict[str, Any]] = {"round_to": None}

    def _allocate(self, model: nn.Module, tree: UnitTree, alloc: Allocation, calibration: Any) -> dict:
        order = [b.path for b in reversed(alloc.main_blocks) if "drop_block" in b.policies]
        dropped = drop_in_order(alloc, order)
        scorer = magnitude_orders(model, tree, alloc)
        width_trim(alloc, "late-drop")
        return {"dropped": dropped, "trim_scorer": scorer}
