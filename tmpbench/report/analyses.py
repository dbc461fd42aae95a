"""The tables that follow a comparison when its runs call for them, for ``tmpbench compare`` and the HTML
report alike: every pruner paired with a reference pruner (``versus``; :mod:`tmpbench.report.paired`) and,
when the runs span several recovery lengths, the recovery curves (:mod:`tmpbench.report.curves`); one of
each per per-sample metric."""

from __future__ import annotations

import pandas as pd

from tmpbench.report.curves import recovery_caption, recovery_steps, recovery_table
from tmpbench.report.paired import versus_caption, versus_table
from tmpbench.report.tables import RunRecord, metric_order


def extra_tables(runs: list[RunRecord], metrics: list[str] | None = None,
                 versus: str | None = None) -> dict[str, list[tuple[str, str, pd.DataFrame]]]:
    """``{"paired": [(metric, caption, table), ...], "recovery": [...]}`` over the per-sample ``metrics`` (default:
    every per-sample metric of the runs). ``versus`` None skips the paired tables; a ``versus`` pruner
    with no run is one line of error (:func:`versus_table`)."""
    per_sample = [m for m in (metrics or metric_order(runs)) if any(r.metric_values(m) for r in runs)]
    out: dict[str, list[tuple[str, str, pd.DataFrame]]] = {"paired": [], "recovery": []}
    for m in per_sample if versus is not None else []:
        table = versus_table(runs, versus, m)
        if not table.empty:
            out["paired"].append((m, versus_caption(table, versus, m), table))
    for m in per_sample if len(recovery_steps(runs)) > 1 else []:
        table = recovery_table(runs, m)
        out["recovery"].append((m, recovery_caption(table, m), table))
    return out


__all__ = ["extra_tables"]
