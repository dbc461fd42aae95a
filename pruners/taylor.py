"""Activation / Taylor width baseline: heads and channels scored on calibration data, one share
across layers.

``method`` (recorded in ``Plan.settings`` with the scorer it ran):

* ``"taylor"`` (default): the first-order Taylor group score of Molchanov et al. 2019,
  ``(sum_{w in unit} w * dL/dw)^2`` with the gradient summed over the calibration set, L the
  flow-matching loss over the teacher's trajectory (:func:`pruners.importance.taylor_importance`,
  ``score="squared_sum"``);
* ``"taylor-abs"``: the variant ``sum_calls sum_{w in unit} |w * dL/dw|`` (``score="abs_sum"``),
  this pruner's default before it followed the paper;
* ``"activation"``: mean activation norm per head/channel
  (:func:`pruners.importance.activation_importance`).

Needs calibration.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from pruners.allocate import Allocation, fill_uniform
from pruners.base import Pruner, order_groups
from pruners.importance import activation_importance, taylor_importance
from tmpbench.errors import TmpbenchError
from tmpbench.pruning.tree import UnitTree

# method -> the scorer it runs, as recorded in the Plan (Taylor methods: taylor_importance's score)
METHODS = {"taylor": "taylor_squared_sum", "taylor-abs": "taylor_abs_sum", "activation": "activation"}


class TaylorPruner(Pruner):
    """Data-driven width pruning (Taylor or activation scores), uniform ratio across layers."""

    name: ClassVar[str] = "taylor"
    needs_calibration: ClassVar[bool] = True
    data_free_fallback: ClassVar[bool] = False
    description: ClassVar[str] = "(sum w*grad)^2 per unit (flow-matching loss; or taylor-abs, activation) heads/channels, uniform share"
    SETTINGS: ClassVar[dict[str, Any]] = {"method": "taylor", "round_to": None}

    def _validate_settings(self) -> None:
        super()._validate_settings()
        if self._settings["method"] not in METHODS:
            raise TmpbenchError(f"pruner 'taylor': method {self._settings['method']!r} is unknown; use one of {list(METHODS)}")

    def _allocate(self, model: nn.Module, tree: UnitTree, alloc: Allocation, calibration: Any) -> dict:
        method = self._settings["method"]
        if method == "activation":
            scores = activation_importance(model, tree, calibration)
        else:
            score = "squared_sum" if method == "taylor" else "abs_sum"
            scores = taylor_importance(model, tree, calibration, seed=self.seed, score=score)
        order_groups(alloc, scores)
        fill_uniform(alloc, alloc.group_list(("heads", "channels")), what="taylor (heads/channels only)")
        return {"scorer": METHODS[method]}
