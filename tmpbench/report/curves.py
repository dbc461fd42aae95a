"""Recovery curves: quality against recovery steps for each (model, pruner, budget) of a set of runs that
differ only in their recovery length (``tmpbench sweep --recover-steps 0,20,100,400``).

One row per (model, pruner, budget): the metric with its 95% CI at every recovery length, the
distillation loss on the held-out ``dev`` batch after recovery (before it, at 0 steps), and the paired
difference between the longest recovery and none (McNemar or paired bootstrap; Holm across the table's
rows). Reads only loaded run folders.
"""

from __future__ import annotations

import pandas as pd

from tmpbench.report.paired import fmt, paired, score
from tmpbench.report.stats import format_p, holm
from tmpbench.report.tables import RunRecord, order_runs, recover_steps


def recovery_steps(runs: list[RunRecord]) -> list[int]:
    return sorted({recover_steps(r) for r in runs if not r.is_teacher})


def held_out_loss(run: RunRecord, before: bool = False) -> float | None:
    """Distillation loss on the held-out dev batch after the run's recovery (``before``: before it)."""
    rec = run.results["model"].get("recovery")
    if not isinstance(rec, dict):
        return None
    value = rec.get("held_out_after") if recover_steps(run) > 0 and not before else rec.get("held_out_before")
    return None if value is None else float(value)


def recovery_table(runs: list[RunRecord], metric: str) -> pd.DataFrame:
    """The recovery-curve table (see the module docstring); ``attrs``: ``steps``, ``tests``, ``comparisons``."""
    steps = recovery_steps(runs)
    groups: dict[tuple, dict[int, RunRecord]] = {}
    for r in order_runs(runs):
        if r.is_teacher or not r.metric_values(metric):
            continue
        groups.setdefault((r.model, r.pruner, r.budget), {})[recover_steps(r)] = r
    rows, tests = [], []
    for (model, pruner, budget), by_steps in groups.items():
        row = {"model": model, "pruner": pruner, "budget": budget}
        for n in steps:
            r = by_steps.get(n)
            if r is None:
                row[f"{metric} @ {n}"], row[f"dev loss @ {n}"] = "-", "-"
                continue
            point, ci, _ = score(r, metric)
            loss = held_out_loss(r)
            if loss is None and n == 0:  # the unrecovered model's dev loss is what any longer run measured first
                before = [held_out_loss(o, before=True) for o in by_steps.values()]
                loss = next((v for v in before if v is not None), None)
            row[f"{metric} @ {n}"] = fmt(point, ci)
            row[f"dev loss @ {n}"] = "n/a" if loss is None else f"{loss:.4f}"
        first, last = min(by_steps), max(by_steps)
        t = paired(by_steps[first], by_steps[last], metric) if last != first else None
        row[f"Δ {last} − {first} steps [95% CI]"] = "" if t is None else fmt(t["diff"], t["ci"])
        row["p"] = "" if t is None else format_p(t['p'])
        row["_t"] = t
        if t is not None:
            tests.append(t)
        rows.append(row)
    adjusted = iter(holm([t["p"] for t in tests]))
    for row in rows:
        t = row.pop("_t")
        row["p (Holm)"] = "" if t is None else format_p(next(adjusted))
    table = pd.DataFrame(rows)
    table.attrs.update(steps=steps, tests=sorted({t["test"] for t in tests}) or ["none"], comparisons=len(tests))
    return table


def recovery_caption(table: pd.DataFrame, metric: str) -> str:
    return (f"Recovery curves: {metric} (95% bootstrap CI) after {', '.join(map(str, table.attrs['steps']))} distillation "
            "steps of the same plan, on the same items and seeds; dev loss = distillation loss on the held-out dev batch "
            "(before recovery at 0 steps). Δ = longest recovery minus none, paired "
            f"({', '.join(table.attrs['tests'])}), Holm-adjusted across the table's {table.attrs['comparisons']} rows.")


__all__ = ["held_out_loss", "recovery_caption", "recovery_steps", "recovery_table"]
