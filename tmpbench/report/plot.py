"""The quality-vs-ratio plot: one metric against the share of parameters removed, Pareto front marked.

Each pruner is one series (its runs at every budget, 95% CI error bars); the unpruned teacher sits
at ratio 0 as a star. The Pareto front over the pruned runs (nothing removes more AND scores better)
is drawn as a dashed line through ringed points; runs are placed at their achieved ratio, and the front
is taken over requested ratios (runs that met the same budget compete on quality). Written as PNG and SVG with matplotlib's Agg backend
(no display needed).
"""

from __future__ import annotations

from pathlib import Path

from tmpbench.errors import TmpbenchError
from tmpbench.report.stats import pareto_front
from tmpbench.report.tables import RunRecord, distinct_labels, order_runs


def quality_points(runs: list[RunRecord], metric: str) -> list[dict]:
    """Per run: label, pruner, achieved ratio, value, CI (runs where the metric was not scored are left out)."""
    points = []
    labels = distinct_labels(runs)
    for r in order_runs(runs):
        if metric not in r.results["metrics"]:
            continue
        s = r.metric_summary(metric)
        if "not_scored" in s or s.get("value") is None:
            continue
        points.append({"label": labels[str(r.path)], "pruner": r.pruner, "teacher": r.is_teacher, "ratio": r.achieved_ratio,
                       "requested": r.requested_ratio,
                       "value": float(s["value"]), "ci": s.get("ci95"), "higher_is_better": bool(s["higher_is_better"])})
    return points


def plot_quality_vs_ratio(runs: list[RunRecord], metric: str, out_stem: str | Path, title: str | None = None) -> dict:
    """Write ``<out_stem>.png`` and ``<out_stem>.svg``; return the paths and the Pareto-front labels."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    points = quality_points(runs, metric)
    if not points:
        raise TmpbenchError(f"no run has a value for metric {metric!r}; pick a scored metric for the plot")
    higher = points[0]["higher_is_better"]
    pruned = [p for p in points if not p["teacher"]]
    # the front is taken over REQUESTED ratios: runs that met the same budget (within 0.5%) compete on
    # quality alone, instead of a run winning a place by removing 0.3% more than its target
    front = [pruned[i] for i in pareto_front([p["requested"] for p in pruned], [p["value"] for p in pruned], higher)]

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    cmap = plt.get_cmap("tab10")
    for k, pruner in enumerate(dict.fromkeys(p["pruner"] for p in pruned)):
        series = sorted((p for p in pruned if p["pruner"] == pruner), key=lambda p: p["ratio"])
        xs = [100 * p["ratio"] for p in series]
        ys = [p["value"] for p in series]
        err = [[p["value"] - p["ci"][0] if p["ci"] else 0 for p in series],
               [p["ci"][1] - p["value"] if p["ci"] else 0 for p in series]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, color=cmap(k % 10), label=pruner,
                    linewidth=2.2 if pruner == "tmp" else 1.2)
    for p in points:
        if p["teacher"]:
            ax.scatter([0], [p["value"]], marker="*", s=180, color="black", zorder=5, label="teacher (unpruned)")
    if front:
        ax.plot([100 * p["ratio"] for p in front], [p["value"] for p in front], linestyle="--", color="grey",
                zorder=1, label="Pareto front")
        ax.scatter([100 * p["ratio"] for p in front], [p["value"] for p in front], s=160, facecolors="none",
                   edgecolors="crimson", linewidths=1.6, zorder=6)
    ax.set_xlabel("parameters removed (achieved, %)")
    ax.set_ylabel(f"{metric} ({'higher' if higher else 'lower'} is better)")
    ax.set_title(title or f"{metric} vs pruning ratio")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = out_stem.with_suffix(".png"), out_stem.with_suffix(".svg")
    fig.savefig(png)
    fig.savefig(svg)
    plt.close(fig)
    return {"png": png, "svg": svg, "pareto": [p["label"] for p in front], "metric": metric}


__all__ = ["plot_quality_vs_ratio", "quality_points"]
