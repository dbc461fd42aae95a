"""Block-influence depth baseline (ShortGPT): drop the blocks that change their input least.

Block influence is ``1 - cos(x_in, x_out)`` averaged over tokens and calibration inputs (every
timestep). Blocks are dropped from the least influential up while a drop keeps the size at or
above the target; the remaining gap (always less than one block) is closed by a uniform
magnitude trim of heads/channels (and experts on MoE models) over the surviving blocks, so the result lands on the same target
as every other pruner (the trim share is recorded in the Plan).
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from pruners.allocate import Allocation
from pruners.base import Pruner, drop_in_order, magnitude_orders, width_trim
from pruners.importance import block_influence
from tmpbench.pruning.tree import UnitTree


class BlockInfluencePruner(Pruner):
    """ShortGPT-style depth pruning with a width-trim finish."""

    name: ClassVar[str] = "block-influence"
    needs_calibration: ClassVar[bool] = True
    data_free_fallback: ClassVar[bool] = False
    description: ClassVar[str] = "drop lowest 1-cos(in,out) blocks, finish with a width trim"
    SETTINGS: ClassVar[dict[str, Any]] = {"round_to": None}

    def _allocate(self, model: nn.Module, tree: UnitTree, alloc: Allocation, calibration: Any) -> dict:
        influence = block_influence(model, tree, calibration)
        droppable = [b.path for b in alloc.main_blocks if "drop_block" in b.policies]
        order = sorted(droppable, key=lambda p: (influence[p], p))
        dropped = drop_in_order(alloc, order)
        scorer = magnitude_orders(model, tree, alloc)
        width_trim(alloc, "block-influence")
        return {"block_influence": {p: round(influence[p], 6) for p in droppable}, "dropped": dropped,
                "trim_scorer": scorer}
