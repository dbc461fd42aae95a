"""From per-sample values to a reported number: the stratified bootstrap and the MetricResult dict.

:func:`bootstrap_ci` is the one estimator ``tmpbench run``, ``tmpbench score``, the reports and
the gates use: the mean (or the unweighted mean of per-category means) with a stratified
percentile bootstrap (samples resampled within each category, :data:`N_BOOTSTRAP` draws, seed
:data:`BOOTSTRAP_SEED`), so an interval is deterministic and identical however a run was sharded.
:func:`aggregate` builds a ``results.json`` metric entry and records which estimator made it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tmpbench.scoring.base import AGGREGATIONS

N_BOOTSTRAP = 1000
BOOTSTRAP_SEED = 0


def bootstrap_ci(
    values: Sequence[float],
    categories: Sequence[str] | None = None,
    category_mean: bool = False,
    n_boot: int = N_BOOTSTRAP,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, list[float] | None]:
    """``(statistic, [low, high])`` with a stratified percentile bootstrap.

    The statistic is the mean of ``values`` (NaNs dropped), or with ``category_mean`` the
    unweighted mean of per-category means. Samples are resampled within their category. Returns a
    ``None`` interval for fewer than two finite values.

    >>> bootstrap_ci([1.0, 1.0, 1.0])[0]
    1.0
    """
    v = np.asarray(values, dtype=np.float64)
    cats = np.asarray(categories if categories is not None else ["all"] * len(v), dtype=object)
    keep = np.isfinite(v)
    v, cats = v[keep], cats[keep]
    if v.size == 0:
        return float("nan"), None
    names = list(dict.fromkeys(cats.tolist()))
    groups = [v[cats == c] for c in names]
    weights = np.array([len(g) for g in groups], dtype=np.float64)
    weights = np.full(len(groups), 1.0 / len(groups)) if category_mean else weights / weights.sum()
    point = float(sum(w * g.mean() for w, g in zip(weights, groups)))
    if v.size < 2:
        return point, None
    rng = np.random.default_rng(seed)
    boot = np.zeros(n_boot)
    for w, g in zip(weights, groups):
        idx = rng.integers(0, len(g), size=(n_boot, len(g)))
        boot += w * g[idx].mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return point, [float(low), float(high)]


def aggregate(
    name: str,
    rows: list[dict],
    higher_is_better: bool,
    aggregation: str = "mean",
    details: dict | None = None,
) -> dict:
    """A :class:`tmpbench.run.results.MetricResult` from per-sample rows holding ``metrics[name]``.

    ``aggregation`` (see :data:`tmpbench.scoring.base.AGGREGATIONS`) picks the estimator of
    ``value`` and ``ci95`` -- the mean of per-category means for ``category_mean``, else the mean
    over samples -- and is recorded in the result, so reports recompute with the same estimator.
    """
    if aggregation not in AGGREGATIONS or aggregation == "set":
        raise ValueError(f"aggregation {aggregation!r} is not a per-sample estimator; use one of mean, category_mean, benchmark_formula")
    vals = [r["metrics"].get(name) for r in rows]
    vals = [np.nan if v is None else float(v) for v in vals]
    cats = [r["category"] for r in rows]
    value, ci = bootstrap_ci(vals, cats, aggregation == "category_mean")
    by_cat: dict[str, float | None] = {}
    for c in dict.fromkeys(cats):
        cv = np.array([v for v, cc in zip(vals, cats) if cc == c], dtype=np.float64)
        cv = cv[np.isfinite(cv)]
        by_cat[c] = float(cv.mean()) if cv.size else None
    n = int(np.isfinite(np.asarray(vals, dtype=np.float64)).sum())
    return {
        "value": value if math.isfinite(value) else None,
        "ci95": ci,
        "n": n,
        "higher_is_better": higher_is_better,
        "by_category": by_cat,
        "details": details or {},
        "aggregation": aggregation,
    }
