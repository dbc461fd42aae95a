"""The pruner factory: a registered pruner name -> a strategy object, and the family check made
before it plans.

tmpbench never imports the strategies (``pruners/``; a lint-imports contract forbids it), so the
``PRUNERS`` registry is the one way from a name to a pruner. This module is that way. It sits
beside the runner rather than inside it because several callers need a pruner, or the list of
pruners, without running a prune: ``tmpbench pruners list``, ``tmpbench plan``'s calibration
check, the sweep's pruner selection and the latency benchmark. They import this small module; the
runner keeps one job, the arrows from a generator to a pruned generator.

Example::

    >>> make_pruner("random", seed=1).settings()["seed"]      # doctest: +SKIP
    1
    >>> [row["name"] for row in pruner_list()][:2]               # doctest: +SKIP
    ['block-influence', 'expert-frequency']
"""

from __future__ import annotations

from typing import Any

from tmpbench.catalog import PRUNERS
from tmpbench.errors import TmpbenchError
from tmpbench.pruning.families import model_family


def make_pruner(name: str, seed: int = 0, settings: dict | None = None) -> Any:
    """Instantiate registered pruner ``name`` (unknown names answer "did you mean")."""
    cls = PRUNERS.get(name)
    pruner = cls(seed=seed, **dict(settings or {})) if isinstance(cls, type) else cls
    if not hasattr(pruner, "plan"):
        raise TmpbenchError(f"pruner {name!r} is registered as {type(pruner).__name__}, which has no plan() method")
    return pruner


def default_drift(name: str, settings: dict | None = None) -> dict[str, Any]:
    """The defaults of pruner ``name`` that ``settings`` leaves unset and that differ from the snapshot its
    cached plans are keyed against (``Pruner.KEYED_DEFAULTS``). Empty while no default has changed since
    the snapshot. The prune cache and the sweep add these to a run's explicit settings, so a plan made
    under an old default is never reused for a new one, and a default made explicit keys as before."""
    cls = PRUNERS.get(name)
    keyed = getattr(cls, "KEYED_DEFAULTS", None)
    if not keyed:
        return {}
    given = settings or {}
    return {k: v for k, v in getattr(cls, "SETTINGS", {}).items() if k not in given and k in keyed and keyed[k] != v}


def check_family(pruner: Any, name: str, model: Any) -> str:
    """The model's family (``"dit"`` or ``"moe"``); a one-line TmpbenchError when ``pruner`` does not take it."""
    family = model_family(model)
    families = getattr(pruner, "families", None)
    if families and family not in families:
        kinds = " or ".join(sorted(families))
        raise TmpbenchError(
            f"pruner {name!r} works on {kinds} models, but {type(model).__name__} is a {family} model; "
            f"pick a pruner for {family} (`tmpbench pruners list`)"
        )
    return family


def pruner_list() -> list[dict[str, Any]]:
    """Every registered pruner with its families and whether it needs calibration data."""
    rows = []
    for name in PRUNERS.names():
        try:
            obj = PRUNERS.get(name)
            families = sorted(getattr(obj, "families", ()) or ())
            rows.append({"name": name, "families": families, "needs_calibration": bool(getattr(obj, "needs_calibration", False)),
                         "description": ((obj.__doc__ or "").strip().splitlines() or [""])[0]})
        except Exception as exc:  # a broken third-party entry should not hide the others
            rows.append({"name": name, "families": [], "needs_calibration": False, "description": f"(cannot load: {exc})"})
    return rows
