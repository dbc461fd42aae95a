"""Budgets: what "prune to X" means, parsed once from user text and given to every pruner alike.

Grammar::

    BUDGET := [KIND ":"] AMOUNT
    KIND   := "params" (default) | "flops@" SIZE | "latency"
    AMOUNT := SIZE                                4b, 500m, 2e10, or 33% (share REMOVED: keeps 67%)
            | NUMBER ("ms"|"s")                   absolute latency (latency budgets only)

``SIZE`` and ``NUMBER`` are the one size grammar of :mod:`tmpbench.sizes` (model specs such as
``zimage-4b`` read it too).

Examples: ``4b``, ``33%``, ``params:500m``, ``flops@1024:50%``, ``flops@512:2e13``,
``latency:25%``, ``latency:120ms``. A FLOPs budget names the resolution its FLOPs are counted at
(see :mod:`tmpbench.pruning.tree` for the counting convention); a latency budget is measured by
the runner on the device at hand, so its ``original`` is a measured time in seconds.

The result is checked with :func:`check_achieved`: within 0.5% of the target, or, when unit
counts are rounded to hardware-friendly multiples, within one rounding step of it, with the
rounding reported.

Example::

    >>> b = Budget.parse("33%")
    >>> round(b.target(6_000_000_000))
    4020000000
    >>> check_achieved(6e9, 4.03e9, b).ok
    True
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from tmpbench.errors import TmpbenchError
from tmpbench.sizes import NUMBER, parse_size

TOLERANCE = 0.005  # achieved must be within 0.5% of the target
KINDS = ("params", "flops", "latency")
_TIME = {"ms": 1e-3, "s": 1.0}
_TIME_RE = re.compile(rf"^(?P<num>{NUMBER})\s*(?P<unit>ms|s)$", re.IGNORECASE)
GRAMMAR = "expected [params:|flops@SIZE:|latency:]AMOUNT with AMOUNT like 4b, 500m, 2e10 or 33% (share removed)"


@dataclass(frozen=True)
class Budget:
    """One parsed budget. ``value`` is the absolute size, or the removed share in (0, 1) when ``is_ratio``."""

    kind: str  # "params" | "flops" | "latency"
    value: float  # absolute amount (params, FLOPs, seconds) or removed fraction
    is_ratio: bool
    resolution: int | None = None  # FLOPs budgets: image side in pixels the FLOPs are counted at
    text: str = ""  # what the user typed, for messages and the Plan

    @classmethod
    def parse(cls, text: str, kind: str | None = None) -> Budget:
        """Parse ``text`` (see the module grammar); ``kind`` ("params", "flops@512", "latency") may
        be given separately, as a CLI ``--budget-kind`` would, but must not contradict the text."""
        raw = str(text).strip()
        if not raw:
            raise TmpbenchError(f"budget {text!r} is not understood; {GRAMMAR}")
        text_kind, _, amount = raw.rpartition(":")
        text_kind = text_kind.strip().lower() or None
        if kind is not None and text_kind is not None and kind.lower() != text_kind:
            raise TmpbenchError(f"budget {text!r} says kind {text_kind!r} but kind {kind!r} was also given; give one")
        kind_text = (text_kind or kind or "params").lower()
        res: int | None = None
        if kind_text.startswith("flops"):
            km = re.fullmatch(r"flops@(\d+)", kind_text)
            if km is None:
                raise TmpbenchError(f"FLOPs budget kind {kind_text!r} must name a resolution, e.g. flops@1024")
            res = int(km.group(1))
            if res <= 0:
                raise TmpbenchError(f"FLOPs budget resolution must be positive, got {res}")
            kind_name = "flops"
        elif kind_text in ("params", "latency"):
            kind_name = kind_text
        else:
            raise TmpbenchError(f"budget kind {kind_text!r} is unknown; expected params, flops@SIZE or latency")
        amount = amount.strip()
        timed = _TIME_RE.match(amount)
        size = None if timed else parse_size(amount)
        if timed is None and size is None:
            raise TmpbenchError(f"budget {text!r}: amount {amount!r} is not understood; {GRAMMAR}")
        if size is not None and size.is_ratio:
            if not 0.0 < size.number < 100.0:
                raise TmpbenchError(
                    f"budget {text!r}: a ratio is the share removed and must lie strictly between 0% and 100%, e.g. 33%"
                )
            return cls(kind_name, size.removed_share, True, res, raw)
        if timed is not None:
            if kind_name != "latency":
                raise TmpbenchError(f"budget {text!r}: a time amount needs a latency budget, e.g. latency:{amount}")
            value = float(timed["num"]) * _TIME[timed["unit"].lower()]
        else:
            if kind_name == "latency":
                raise TmpbenchError(f"latency budget {text!r} needs a unit (ms or s) or a ratio like 25%")
            value = size.amount
        if value <= 0:
            raise TmpbenchError(f"budget {text!r} must be positive")
        return cls(kind_name, value, False, res, raw)

    @property
    def label(self) -> str:
        """``params``, ``flops@1024`` or ``latency``."""
        return f"flops@{self.resolution}" if self.kind == "flops" else self.kind

    def target(self, original: float, minimum: float | None = None) -> float:
        """Size to reach, given the unpruned model's ``original`` size in this budget's kind.

        ``minimum`` (the unit tree's smallest feasible size) turns an unreachable budget into an error.
        """
        if original <= 0:
            raise TmpbenchError(f"original {self.kind} must be positive to apply budget {self.text!r}, got {original}")
        target = original * (1.0 - self.value) if self.is_ratio else self.value
        if not self.is_ratio and target >= original:
            raise TmpbenchError(
                f"budget {self.text!r} asks for {_fmt(target, self.kind)}, not below the model's "
                f"{_fmt(original, self.kind)}; give a smaller size or a ratio like 33%"
            )
        if minimum is not None and target < minimum:
            raise TmpbenchError(
                f"budget {self.text!r} asks for {_fmt(target, self.kind)} but the smallest feasible model keeps "
                f"{_fmt(minimum, self.kind)}; give at least that much"
            )
        return float(target)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Budget:
        return cls(**data)


def original_for_tree(budget: Budget, tree: Any) -> tuple[float, float]:
    """(original, minimum) of a unit tree in ``budget``'s kind; latency has no tree-side size."""
    if budget.kind == "params":
        return float(tree.params), float(tree.min_params)
    if budget.kind == "flops":
        if tree.size != budget.resolution:
            raise TmpbenchError(
                f"budget {budget.text!r} counts FLOPs at {budget.resolution}px but the unit tree was built at "
                f"{tree.size}px; build it with size={budget.resolution}"
            )
        return float(tree.flops), float(tree.min_flops)
    raise TmpbenchError(f"budget {budget.text!r} is a latency budget; measure the model's latency for its original")


@dataclass(frozen=True)
class BudgetReport:
    """Outcome of a budget check; ``ok`` says whether it passed, ``message`` says why in one line."""

    budget: str
    kind: str
    original: float
    target: float
    achieved: float
    relative_error: float  # (achieved - target) / target
    tolerance: float  # relative tolerance that applied (0.005, or wider through rounding)
    ok: bool
    rounding_multiple: int | None
    rounded: bool  # passed only thanks to the rounding allowance
    message: str

    def require(self) -> BudgetReport:
        """Raise TmpbenchError with ``message`` when the check failed; return self otherwise."""
        if not self.ok:
            raise TmpbenchError(self.message)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_achieved(
    original: float,
    achieved: float,
    budget: Budget,
    rounding_multiple: int | None = None,
    step: float | None = None,
) -> BudgetReport:
    """Check that ``achieved`` meets ``budget`` for a model of size ``original``.

    Passes when within 0.5% of the target. When unit counts were rounded to ``rounding_multiple``
    (e.g. 64 channels), sizes come in steps of ``step`` (see ``UnitTree.width_step``) and the nearest
    feasible size may lie up to one step away; that passes too and the report says so.
    """
    target = budget.target(original)
    err = (achieved - target) / target
    tol = TOLERANCE
    rounded = False
    note = ""
    if rounding_multiple is not None:
        if rounding_multiple < 1:
            raise TmpbenchError(f"rounding_multiple must be >= 1, got {rounding_multiple}")
        if step is None or step < 0:
            raise TmpbenchError("check_achieved: rounding_multiple needs step, the size of one rounding step (tree.width_step)")
        tol = max(TOLERANCE, step / target)
        rounded = abs(err) > TOLERANCE and abs(err) <= tol
        note = f"; widths rounded to multiples of {rounding_multiple} (step {_fmt(step, budget.kind)})"
    ok = abs(err) <= tol
    verdict = "meets" if ok else "misses"
    message = (
        f"budget {budget.text!r} ({budget.label}): achieved {_fmt(achieved, budget.kind)} vs target "
        f"{_fmt(target, budget.kind)} ({err:+.2%}, tolerance {tol:.2%}) {verdict} the budget{note}"
    )
    return BudgetReport(budget.text, budget.label, float(original), target, float(achieved), err, tol, ok,
                        rounding_multiple, rounded, message)


def _fmt(x: float, kind: str) -> str:
    if kind == "latency":
        return f"{x * 1e3:.4g} ms"
    unit = " FLOPs" if kind == "flops" else " params"
    return f"{x:,.0f}{unit}" if abs(x) < 1e15 else f"{x:.4g}{unit}"
