"""The Pruner interface: ``plan(model, tree, budget, calibration) -> Plan``.

A pruner is a strategy only: it reads scores (:mod:`pruners.importance`), records its choices in
an :class:`pruners.allocate.Allocation` (which does the accounting and the shared landing on the
budget) and returns a Plan. It never cuts: :func:`tmpbench.pruning.surgery.apply_plan` does.

Subclasses set ``name``, ``families`` ({"dit"}, {"moe"} or both), ``needs_calibration`` and
``SETTINGS`` (knob name -> default) and implement :meth:`Pruner._allocate`.

Example::

    >>> pruner = MagnitudePruner(seed=0)                                  # doctest: +SKIP
    >>> plan = pruner.plan(model, build_unit_tree(model), Budget.parse("33%"), None)  # doctest: +SKIP
    >>> pruned = apply_plan(model, plan)                                  # doctest: +SKIP
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from torch import nn

from pruners.allocate import Allocation
from tmpbench.errors import TmpbenchError, did_you_mean
from tmpbench.pruning.budget import Budget
from tmpbench.pruning.plan import Plan
from tmpbench.pruning.tree import UnitTree


def model_family(tree: UnitTree) -> str:
    """``"moe"`` when any component of the tree is a mixture of experts, else ``"dit"``."""
    return "moe" if any(n.kind == "moe" for n in tree.walk()) else "dit"


class Pruner(abc.ABC):
    """Base class of every pruning strategy (see the module docstring)."""

    name: ClassVar[str] = "pruner"
    families: ClassVar[frozenset[str]] = frozenset({"dit", "moe"})
    needs_calibration: ClassVar[bool] = False
    # True: without calibration (meta-size planning) the pruner falls back to data-free proxies
    data_free_fallback: ClassVar[bool] = True
    SETTINGS: ClassVar[dict[str, Any]] = {}
    # the defaults that cached plans and sweep runs are keyed against (tmpbench.pruning.factory.default_drift):
    # a snapshot, so that changing a default in SETTINGS changes the key of every plan made under it, and a
    # cached plan made under the old default is not taken for the new one. None: no snapshot (keys hold
    # explicit settings only). A setting added later is left out: its default is the behaviour before it
    KEYED_DEFAULTS: ClassVar[dict[str, Any] | None] = None
    description: ClassVar[str] = ""
    # whether a long search may show a progress bar on stderr (TMP's measured search does); the runner sets it
    # per plan. Never a setting: it is not recorded in the Plan and must not change it
    progress: bool = False

    def __init__(self, seed: int = 0, **settings: Any) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TmpbenchError(f"pruner {self.name!r}: seed must be an integer, got {seed!r}")
        unknown = sorted(set(settings) - set(self.SETTINGS))
        if unknown:
            hint = did_you_mean(unknown[0], self.SETTINGS, n=1, cutoff=0.6)
            known = ", ".join(sorted(self.SETTINGS)) or "none"
            raise TmpbenchError(f"pruner {self.name!r} has no setting {unknown[0]!r}{hint} (known: {known})")
        self.seed = seed
        self._settings = {**self.SETTINGS, **settings}
        self._validate_settings()

    def _validate_settings(self) -> None:
        r = self._settings.get("round_to")
        if r is not None and (isinstance(r, bool) or not isinstance(r, int) or r < 1):
            raise TmpbenchError(f"pruner {self.name!r}: round_to={r!r} must be a positive integer or None")

    def settings(self) -> dict[str, Any]:
        """Every knob with its value (defaults included) plus the seed, as recorded in the Plan."""
        return {"seed": self.seed, **self._settings}

    def check_model(self, tree: UnitTree) -> str:
        family = model_family(tree)
        if family not in self.families:
            need = "MoE models" if self.families == {"moe"} else "dense DiTs"
            raise TmpbenchError(
                f"pruner {self.name!r} works on {need} only, but {tree.model_class} is a "
                f"{'dense DiT (no experts)' if family == 'dit' else 'MoE model'}; pick a pruner that supports it (e.g. tmp or magnitude)"
            )
        return family

    def plan(self, model: nn.Module, tree: UnitTree, budget: Budget, calibration: Any | None) -> Plan:
        """Decide what to remove from ``model`` (its unit ``tree``) to meet ``budget``.

        ``calibration`` is a :class:`tmpbench.pruning.calibration.Calibration` or ``None`` (meta
        size). Raises a one-line TmpbenchError for an unsupported model, an impossible budget or a
        missing calibration the pruner cannot do without.
        """
        self.check_model(tree)
        if self.needs_calibration and calibration is None and not self.data_free_fallback:
            raise TmpbenchError(
                f"pruner {self.name!r} scores with calibration data and none was given (meta-size planning has "
                "none); run it on a loaded model, or use a data-free pruner (tmp, magnitude, random, late-drop)"
            )
        alloc = Allocation(tree, budget, round_to=self._settings.get("round_to"))
        info = self._allocate(model, tree, alloc, calibration) or {}
        return alloc.to_plan(model, self.name, {**self.settings(), **info}, calibration)

    @abc.abstractmethod
    def _allocate(self, model: nn.Module, tree: UnitTree, alloc: Allocation, calibration: Any | None) -> dict | None:
        """Fill ``alloc`` to the budget; may return extra info recorded in ``Plan.settings``."""


def order_groups(alloc: Allocation, scores: dict[str, Any]) -> None:
    """Give each scored group its removal order (least important first)."""
    for path, s in scores.items():
        if path in alloc.groups:
            alloc.set_order(path, s)


def magnitude_orders(model: nn.Module, tree: UnitTree, alloc: Allocation,
                     kinds: tuple[str, ...] = ("heads", "channels", "experts")) -> str:
    """Order every group of ``kinds`` by weight norm (data-free; routed-expert channels get one order
    per expert); on a meta model keep index order. Returns the scorer used, for the Plan."""
    from pruners.importance import weight_magnitude

    scores = weight_magnitude(model, tree, kinds)
    order_groups(alloc, scores)
    return "weight_magnitude" if scores else "index_order (meta: no weights)"


def width_trim(alloc: Allocation, what: str, kinds: tuple[str, ...] = ("heads", "channels", "experts")) -> None:
    """The shared finish for depth and expert pruners: trim the remaining gap with one uniform share
    of units across the surviving blocks, then settle. Each group goes in the order already set on
    it: the callers set heads/channels by weight norm (:func:`magnitude_orders`); experts follow an
    expert pruner's own score, or weight norm for the depth pruners. Experts are included: on an
    MoE model they hold most parameters, so heads/channels alone may not cover one block."""
    from pruners.allocate import fill_uniform

    if alloc.landed(0.5):
        return
    if alloc.gap() > 0:
        fill_uniform(alloc, alloc.group_list(kinds), what=what)
    else:
        alloc.settle(what=what)


def drop_in_order(alloc: Allocation, order: list[str]) -> list[str]:
    """Drop blocks in ``order`` while each drop keeps the size at or above the target (minus half
    the tolerance); stop at the first that would overshoot. Returns the dropped paths."""
    dropped = []
    for path in order:
        slot = alloc.blocks[path]
        if "drop_block" not in slot.policies:
            continue
        saving = alloc.block_saving(slot, mode="drop_block") - alloc.block_saving(slot)
        if alloc.size() - saving < alloc.target - 0.5 * alloc.tolerance:
            break
        slot.mode = "drop_block"
        dropped.append(path)
    return dropped


def fill_experts_then_trim(alloc: Allocation, scores: dict[str, Any], what: str) -> dict:
    """Expert pruners: one share of experts removed per MoE layer (least important first, down to
    top-k at most); if experts alone cannot reach the target, the gap is closed by :func:`width_trim`.
    The heads/channels orders the trim follows are the caller's: :class:`ExpertScorePruner` sets
    them by weight norm (:func:`magnitude_orders`) first. Returns what was done, for the Plan."""
    from pruners.allocate import fill_uniform

    order_groups(alloc, scores)
    experts = alloc.group_list(("experts",))
    landed = fill_uniform(alloc, experts, what=what, require=False)
    trimmed = False
    if not landed and alloc.gap() < 0:
        # overshot: one expert can weigh more than the tolerance (tiny-moe: 1.5% of the model), so
        # give back the most important removed experts until above the target, then trim widths
        restore_until_above(alloc, experts)
    if not alloc.landed() and alloc.gap() > 0:
        width_trim(alloc, what)
        trimmed = True
    elif not alloc.landed():
        alloc.settle(what=what)
    return {"width_trim": trimmed}


def restore_until_above(alloc: Allocation, groups: list) -> None:
    """Give back single valid steps of ``groups`` (most important removed units first) until the
    size is at or above the target."""
    while alloc.size() < alloc.target:
        cands = [(g.norm_score(g.removed - n, n), g, n) for g in groups if g.removed
                 for n in [g.step_up()] if n is not None]
        if not cands:
            return
        _, g, n = max(cands, key=lambda c: c[0])
        g.removed -= n


class ExpertScorePruner(Pruner):
    """An MoE baseline that ranks each layer's experts by one calibration score and drops the
    lowest (:func:`fill_experts_then_trim`). Subclasses set ``name``, ``description``, ``scorer``
    (the score's name recorded in the Plan) and :meth:`score_experts`, usually a scorer of
    :mod:`pruners.importance` as it stands: ``score_experts = staticmethod(reap_saliency)``."""

    families: ClassVar[frozenset[str]] = frozenset({"moe"})
    needs_calibration: ClassVar[bool] = True
    data_free_fallback: ClassVar[bool] = False
    SETTINGS: ClassVar[dict[str, Any]] = {"round_to": None}
    scorer: ClassVar[str] = "expert_score"

    @abc.abstractmethod
    def score_experts(self, model: nn.Module, tree: UnitTree, calibration: Any) -> dict[str, Any]:
        """Importance of every expert, per expert-group path (higher is kept longer)."""

    def _allocate(self, model: nn.Module, tree: UnitTree, alloc: Allocation, calibration: Any) -> dict:
        # the width trim's order: weight norms, as the magnitude pruner ranks heads and channels
        trim_scorer = magnitude_orders(model, tree, alloc, kinds=("heads", "channels"))
        info = fill_experts_then_trim(alloc, self.score_experts(model, tree, calibration), self.name)
        return {**info, "scorer": self.scorer, "trim_scorer": trim_scorer}
