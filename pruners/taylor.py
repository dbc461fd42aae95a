"""Activation / Taylor width baseline: heads and channels scored on calibration data, one share
across layers.

``method="taylor"`` (default): first-order Taylor ``sum |w * dL/dw|`` on the flow-matching loss
over the teacher's trajectory (:func:`pruners.importance.taylor_importance`);
``method="activation"``: mean activation norm per head/channel
(:func:`pruners.importance.activation_importance`). Needs calibration.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from pruners.allocate import Allocation, fill_uniform
from pruners.base import Pruner, order_groups
from pruners.importance import activation_importance, taylor_importance
from tmpbench.errors import TmpbenchError
from tmpbench.pruning.tree import UnitTree

METHODS = ("taylor", "activation")


class TaylorPruner(Pruner):
    """Data-driven width pruning (Taylor or activation scores), uniform ratio across layers."""

    name: ClassVar[str] = "taylor"
    needs_calibration: ClassVar[bool] = True
    data_free_fallback: ClassVar[bool] = False
    description: ClassVar[str] = "|w*grad| (flow-matching loss) or activation-norm heads/channels, uniform share"
    SETTINGS: ClassVar[dict[str, Any]] = {"method": "taylor", "round_to": None}

    def _validate_settings(self) -> None:
        super()._validate_settings()
        if self._settings["method"] not in METHODS:
            raise TmpbenchError(f"pruner 'taylor': method {self._settings['method']!r} is unknown; use one of {list(METHODS)}")

    def _allocate(self, model: nn.Module, tree: UnitTree, alloc: Allocation, calibration: Any) -> dict:
        if self._settings["method"] == "taylor":
            scores = taylor_importance(model, tree, calibration, seed=self.seed)
        else:
            scores = activation_importance(model, tree, calibration)
        order_groups(alloc, scores)
        fill_uniform(alloc, alloc.group_list(("heads", "channels")), what="taylor (heads/channels only)")
        return {"scorer": self._settings["method"]}
