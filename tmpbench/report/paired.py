"""Paired comparisons of run folders scored on the same items and seeds: one run's per-sample metric
minus another's, with a 95% CI, a two-sided p-value and Holm's correction across a table.

* :func:`score` -- a run's metric and CI over (a subset of) its samples, with the estimator it recorded;
* :func:`paired` -- run minus reference: mean difference, paired-bootstrap CI, McNemar's exact p for 0/1
  outcomes (GenEval correctness) or the paired bootstrap's p for continuous ones (PSNR to the teacher);
* :func:`versus_table` -- every pruned run against the run of one reference pruner at the same model,
  budget, calibration and recovery: what ``tmpbench compare --versus tmp`` prints. A difference whose
  Holm-adjusted p is 0.05 or more is a tie.

Used by ``tmpbench compare`` and ``tmpbench ablate``; reads only loaded run folders.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from tmpbench.errors import TmpbenchError
from tmpbench.report.stats import (
    bootstrap_ci,
    format_p,
    holm,
    is_binary,
    mcnemar_exact,
    min_detectable_effect,
    paired_bootstrap,
)
from tmpbench.report.tables import RunRecord, distinct_labels, format_cost, order_runs, recover_steps

ALPHA = 0.05


def values(run: RunRecord, metric: str, keys: set[str] | None = None) -> tuple[list[str], list[float], list[str]]:
    """``(sample keys, values, categories)`` of a per-sample metric, sorted by key."""
    vals = run.metric_values(metric)
    cats = {f"{r['id']}#{r['seed']}": str(r.get("category")) for r in run.samples}
    ks = sorted(k for k in vals if keys is None or k in keys)
    return ks, [vals[k] for k in ks], [cats[k] for k in ks]


def score(run: RunRecord, metric: str, keys: set[str] | None = None) -> tuple[float, list[float] | None, int]:
    """Metric and CI over ``keys`` with the estimator the run recorded (mean, or mean of category means)."""
    from tmpbench.run.results import metric_aggregation

    ks, v, c = values(run, metric, keys)
    if not v:
        raise TmpbenchError(f"run {run.path} has no per-sample values of {metric!r}; paired comparisons need a per-sample metric")
    recorded = run.results["metrics"].get(metric)
    aggregation = metric_aggregation(metric, recorded if isinstance(recorded, dict) else {})
    point, ci = bootstrap_ci(v, c, aggregation == "category_mean")
    return point, ci, len(v)


def paired(ref: RunRecord, run: RunRecord, metric: str, keys: set[str] | None = None) -> dict[str, Any]:
    """Run minus reference on the same items and seeds: the mean difference with its paired-bootstrap
    95% CI, the two-sided p-value (McNemar for 0/1 values, else the paired bootstrap), n and the
    differences themselves (for a table's minimum detectable effect)."""
    rk, rv, _ = values(ref, metric, keys)
    have = run.metric_values(metric)
    missing = [k for k in rk if k not in have]
    if missing:
        raise TmpbenchError(f"{run.path} has no {metric!r} for sample {missing[0]} that {ref.path} has; "
                            "paired comparisons need the same items and seeds")
    cv = [have[k] for k in rk]
    higher = bool(run.results["metrics"][metric]["higher_is_better"])
    worse, better = paired_bootstrap(rv, cv, higher), paired_bootstrap(rv, cv, not higher)
    if is_binary(rv) and is_binary(cv):
        p, test = mcnemar_exact(rv, cv).p_value, "McNemar"
    else:
        p, test = min(1.0, 2 * min(worse.p_worse, better.p_worse)), "paired bootstrap"
    diffs = [c - r for r, c in zip(rv, cv)]
    return {"diff": worse.mean_diff, "ci": worse.ci95, "p": p, "test": test, "n": worse.n, "diffs": diffs,
            "higher_is_better": higher}


def fmt(point: float, ci: list[float] | None) -> str:
    return f"{point:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def verdict(test: dict, reference: str, other: str, adjusted_p: float) -> str:
    """``tie`` inside the noise (Holm-adjusted p >= 0.05), else which side is better."""
    if adjusted_p >= ALPHA:
        return "tie"
    better = (test["diff"] > 0) == test["higher_is_better"]
    return f"{other} better" if better else f"{reference} better"


def versus_table(runs: list[RunRecord], reference: str, metric: str) -> pd.DataFrame:
    """Every pruned run against the ``reference`` pruner's run with the same model, budget, recovery
    steps and calibration, on per-sample ``metric``; Holm across all rows. ``attrs``: ``mde``, ``tests``."""
    pruned = [r for r in order_runs(runs) if not r.is_teacher and r.metric_values(metric)]
    labels = distinct_labels(runs)

    def group(r: RunRecord) -> tuple:
        calib = r.results["model"].get("calibration")
        return (r.model, r.budget, recover_steps(r), calib.get("hash") if isinstance(calib, dict) else None)

    refs: dict[tuple, list[RunRecord]] = {}
    for r in pruned:
        if r.pruner == reference and not r.settings:
            refs.setdefault(group(r), []).append(r)
    if not refs:
        have = sorted({r.pruner for r in pruned})
        raise TmpbenchError(f"--versus {reference!r}: no run of that pruner (default settings) among the runs with "
                            f"{metric!r}; they are by {', '.join(have) or 'no pruner'}")
    for g, members in refs.items():
        if len(members) > 1:
            raise TmpbenchError(f"--versus {reference!r}: {len(members)} runs of it at {g[1]} ({', '.join(str(m.path) for m in members)}); "
                                "compare one of them")
    pairs = [(refs[group(r)][0], r) for r in pruned if group(r) in refs and r is not refs[group(r)][0]]
    tests = [paired(ref, r, metric) for ref, r in pairs]
    adjusted = holm([t["p"] for t in tests])
    rows = []
    for (ref, r), t, q in zip(pairs, tests, adjusted):
        rp, rci, _ = score(ref, metric)
        op, oci, _ = score(r, metric)
        name = labels[str(r.path)].replace(f" @ {r.budget}", "", 1)  # the pruner, with its settings when not the defaults
        rows.append({"model": r.model, "budget": r.budget, "recovery": recover_steps(r),
                     "pruner": name, "achieved": f"{r.achieved_ratio:.2%} removed",
                     "vs target": "-" if r.budget_error is None else f"{r.budget_error:+.2%}", "n": t["n"],
                     f"{reference} {metric}": fmt(rp, rci), f"pruner {metric}": fmt(op, oci),
                     f"Δ pruner − {reference} [95% CI]": fmt(t["diff"], t["ci"]), "test": t["test"],
                     "p": format_p(t['p']), "p (Holm)": format_p(q), "verdict": verdict(t, reference, name, q),
                     f"{reference} prune fwd / bwd": format_cost(ref.pruning_cost), "pruner prune fwd / bwd": format_cost(r.pruning_cost)})
    table = pd.DataFrame(rows)
    diffs = [d for t in tests for d in t["diffs"]]
    table.attrs["mde"] = min_detectable_effect(diffs) if diffs else float("nan")
    table.attrs["tests"] = sorted({t["test"] for t in tests})
    table.attrs["comparisons"] = len(tests)
    return table


def versus_caption(table: pd.DataFrame, reference: str, metric: str) -> str:
    return (f"Paired comparisons with {reference} on {metric}: each pruner's run minus {reference}'s run at the same model, "
            f"budget, recovery steps and calibration, on the same items and seeds ({', '.join(table.attrs['tests'])}); "
            f"p Holm-adjusted across the table's {table.attrs['comparisons']} comparisons; 'tie' when the adjusted p is "
            f"{ALPHA} or more. Minimum detectable effect at this n (80% power, 5% level): {table.attrs['mde']:.3f}. "
            "Prune fwd / bwd: denoiser forward-equivalents / backward passes spent pruning (seconds).")


__all__ = ["fmt", "paired", "score", "values", "verdict", "versus_caption", "versus_table"]
