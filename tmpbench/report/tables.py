"""Comparison tables from run folders (``results.json`` + ``samples.jsonl``, the run schema only).

One row per run (model, pruner, budget); per metric the value and its 95% bootstrap CI recomputed
from the per-sample values (the same estimator ``tmpbench run`` uses, so a table reproduces the run's
own intervals), and the achieved budget beside the requested one. Runs that were not made on the
same items with the same seeds are refused: their numbers cannot be compared.

Example::

    >>> runs = [load_run(d) for d in ("sweep/teacher", "sweep/tmp-25pct")]   # doctest: +SKIP
    >>> print(render(comparison_table(runs), "md"))                          # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.report.stats import bootstrap_ci
from tmpbench.run.results import metric_aggregation

FORMATS = ("md", "csv", "latex", "html")
TEACHER = "teacher"


@dataclass
class RunRecord:
    """One run folder read back: its results, its per-sample rows and what it is called in a table."""

    path: Path
    results: dict
    samples: list[dict] = field(default_factory=list)

    # --- identity -------------------------------------------------------------------------------
    @property
    def model(self) -> str:
        return str(self.results["model"]["base"])

    @property
    def pruner(self) -> str:
        return self.results["model"]["pruner"] or TEACHER

    @property
    def is_teacher(self) -> bool:
        return self.results["model"]["budget"] is None

    @property
    def budget(self) -> str:
        return self.results["model"]["budget"] or "0%"

    @property
    def label(self) -> str:
        return TEACHER if self.is_teacher else f"{self.pruner} @ {self.budget}"

    @property
    def settings(self) -> dict:
        return dict(self.results["model"].get("pruner_settings") or {})

    # --- size -----------------------------------------------------------------------------------
    @property
    def original_params(self) -> int:
        return int(self.results["model"]["original_params"])

    @property
    def achieved_params(self) -> int:
        return int(self.results["model"]["achieved_params"])

    @property
    def requested_params(self) -> int | None:
        r = self.results["model"]["requested_params"]
        return None if r is None else int(r)

    @property
    def requested_ratio(self) -> float:
        """Share of the denoiser's parameters the budget asked to remove (0 for the teacher)."""
        if self.requested_params is None:
            return 0.0
        return 1.0 - self.requested_params / self.original_params

    @property
    def achieved_ratio(self) -> float:
        """Share of the denoiser's parameters actually removed."""
        return 1.0 - self.achieved_params / self.original_params

    @property
    def budget_error(self) -> float | None:
        """(achieved - target) / target in parameters, as the prune runner's budget check defines it."""
        if self.requested_params is None:
            return None
        return (self.achieved_params - self.requested_params) / self.requested_params

    # --- what pruning spent ----------------------------------------------------------------------
    @property
    def pruning_cost(self) -> dict:
        """``model.pruning_cost.total`` (tmpbench.pruning.cost); {} for the teacher and older files."""
        return dict((self.results["model"].get("pruning_cost") or {}).get("total") or {})

    @property
    def plan_search(self) -> dict:
        """The plan's ``settings.search`` (the measured search's error and cost), read from the pruned
        folder the run loaded when it is still there; {} otherwise (teacher, moved cache, older files)."""
        path = ((self.results["model"].get("prune_info") or {}).get("path"))
        if not path:
            return {}
        try:
            plan = json.loads((Path(path) / "plan.json").read_text())
        except (OSError, ValueError):
            return {}
        search = (plan.get("settings") or {}).get("search")
        return search if isinstance(search, dict) else {}

    # --- comparability --------------------------------------------------------------------------
    @property
    def suite_hash(self) -> str:
        return str(self.results["suite"]["hash"])

    @property
    def seeds_signature(self) -> tuple:
        g = self.results["generation"]
        return (g["seeds_per_item"], g["seed_rule"], tuple(g["suite_seed_range"]))

    def sample_keys(self) -> list[str]:
        return [sample_key(r) for r in self.samples]

    @property
    def split(self) -> str:
        """The evaluation split of the run (``all`` for files written before splits existed)."""
        return str(self.results["suite"].get("split", "all"))

    def training_item_ids(self) -> dict[str, dict[str, set[str]]]:
        """``{"calibration"|"recovery": {suite: {item id}}}``: the items the pruned model was calibrated or
        recovered on (``model.calibration.item_ids``, ``model.recovery.item_ids``; empty when unpruned)."""
        out: dict[str, dict[str, set[str]]] = {}
        for stage in ("calibration", "recovery"):
            ident = self.results["model"].get(stage)
            ids = ident.get("item_ids") if isinstance(ident, dict) else None
            out[stage] = {str(suite): {str(i) for i in items} for suite, items in (ids or {}).items()}
        return out

    # --- metrics --------------------------------------------------------------------------------
    def metric_names(self) -> list[str]:
        return list(self.results["metrics"])

    def metric_values(self, name: str) -> dict[str, float]:
        """``{item id#seed: value}`` of a per-sample metric (empty for set-level metrics such as FID)."""
        out = {}
        for r in self.samples:
            v = (r.get("metrics") or {}).get(name)
            if v is not None:
                out[sample_key(r)] = float(v)
        return out

    def metric_summary(self, name: str) -> dict[str, Any]:
        """value, ci95, n, higher_is_better of one metric; ``{"not_scored": reason}`` when it was not scored.

        The CI is recomputed from ``samples.jsonl`` with the estimator the run recorded
        (``aggregation``: plain ``mean`` or ``category_mean``); set-level metrics and metrics with a
        benchmark-defined summary keep the interval ``results.json`` holds. A recomputed value that
        does not reproduce the recorded one keeps the recorded interval (the samples were edited).
        """
        m = self.results["metrics"][name]
        if isinstance(m, str):
            return {"not_scored": m}
        out = {"value": m["value"], "ci95": m["ci95"], "n": m["n"], "higher_is_better": m["higher_is_better"],
               "ci_source": "results.json"}
        rows = [r for r in self.samples if (r.get("metrics") or {}).get(name) is not None]
        if len(rows) < 2 or m["value"] is None:
            return out
        aggregation = metric_aggregation(name, m)
        out["aggregation"] = aggregation
        if aggregation not in ("mean", "category_mean"):
            return out
        values = [float(r["metrics"][name]) for r in rows]
        cats = [str(r.get("category")) for r in rows]
        point, ci = bootstrap_ci(values, cats, aggregation == "category_mean")
        if math.isfinite(point) and abs(point - float(m["value"])) <= 1e-9 * max(1.0, abs(point)):
            out.update(value=point, ci95=ci, n=len(values), ci_source="samples.jsonl")
        return out


def sample_key(row: dict) -> str:
    """The pairing key of one sample: suite item id and the seed it was generated with."""
    return f"{row['id']}#{row['seed']}"


def load_run(path: str | Path) -> RunRecord:
    """Read a run folder written by ``tmpbench run`` (validated ``results.json`` + ``samples.jsonl``)."""
    from tmpbench.run.results import load_results

    path = Path(path)
    if not path.exists():
        raise TmpbenchError(f"run folder {str(path)!r} does not exist; pass folders written by `tmpbench run` or `tmpbench sweep`")
    results = load_results(path)
    samples_file = path / results["samples_file"]
    if not samples_file.is_file():
        raise DataFormatError(f"{samples_file} not found; the run folder {path} is incomplete (rerun `tmpbench run` to finish it)")
    samples = []
    for n, line in enumerate(samples_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            samples.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{samples_file}:{n}: malformed JSON ({exc.msg})") from None
    return RunRecord(path, dict(results), samples)


def check_comparable(runs: list[RunRecord], what: str = "compare") -> None:
    """Refuse (one line) runs that were not made on the same suite items with the same seeds."""
    if not runs:
        raise TmpbenchError(f"{what}: no runs given; pass run folders written by `tmpbench run` or `tmpbench sweep`")
    first = runs[0]
    for other in runs[1:]:
        if other.suite_hash != first.suite_hash:
            raise TmpbenchError(
                f"{what}: runs are not comparable: {first.path} is suite {first.results['suite']['name']} "
                f"({first.results['suite']['items']} items, hash {first.suite_hash[:12]}) but {other.path} is "
                f"{other.results['suite']['name']} ({other.results['suite']['items']} items, hash {other.suite_hash[:12]}); "
                "compare runs of the same suite and --limit"
            )
        if other.seeds_signature != first.seeds_signature or set(other.sample_keys()) != set(first.sample_keys()):
            raise TmpbenchError(
                f"{what}: runs are not comparable: {first.path} and {other.path} used different seeds "
                f"(seeds per item {first.seeds_signature[0]} vs {other.seeds_signature[0]}, or other sample seeds); "
                "rerun with the same --seeds"
            )


def check_split(runs: list[RunRecord], split: str, what: str = "compare") -> None:
    """Refuse (one line) runs evaluated on another split than ``split`` (``--split``, default ``test``)."""
    from tmpbench.suites.core import check_split as check_split_name

    check_split_name(split)
    for r in runs:
        if r.split != split:
            raise TmpbenchError(
                f"{what}: {r.path} was evaluated on split {r.split!r}, not {split!r}; pass --split {r.split} to {what} "
                f"it, or rerun it with --split {split}"
            )


def check_held_out(runs: list[RunRecord], what: str = "compare") -> None:
    """Refuse (one line) a run whose evaluated items (``samples.jsonl``) include items its model was
    calibrated or recovered on: its scores would not measure held-out quality."""
    for r in runs:
        suite = str(r.results["suite"]["name"])
        evaluated = {str(row["id"]) for row in r.samples}
        for stage, by_suite in r.training_item_ids().items():
            overlap = sorted(evaluated & by_suite.get(suite, set()))
            if overlap:
                raise TmpbenchError(
                    f"{what}: {r.path} evaluated {len(overlap)} item(s) of {suite} that its model's {stage} used "
                    f"(first: {overlap[0]!r}); evaluate on the test split (tmpbench run --split test)"
                )


def order_runs(runs: list[RunRecord], pruner_order: list[str] | None = None) -> list[RunRecord]:
    """Teacher first, then by requested ratio, then in ``pruner_order`` (TMP first by default), then by
    recovery length."""
    order = pruner_order or ["tmp"]

    def key(r: RunRecord):
        rank = order.index(r.pruner) if r.pruner in order else len(order)
        return (r.model, not r.is_teacher, round(r.requested_ratio, 6), rank, r.pruner, recover_steps(r), str(r.path))

    return sorted(runs, key=key)


def _identity(r: RunRecord, key: str) -> str | None:
    """A short form of the calibration or recovery identity a run recorded (its hash), or None."""
    v = r.results["model"].get(key)
    if isinstance(v, dict):
        v = v.get("hash") or json.dumps(v, sort_keys=True)
    return None if v is None else str(v)[:8]


def recover_steps(r: RunRecord) -> int:
    """Recovery distillation steps the run's model had (0 when none was recorded)."""
    rec = r.results["model"].get("recovery")
    return int(rec.get("steps", 0)) if isinstance(rec, dict) else 0


def variants(runs: list[RunRecord]) -> dict[str, str]:
    """``{run folder: suffix}`` telling apart runs that share model, pruner and budget ("" when unique).

    The suffix names what differs inside such a group, in this order: the pruner settings that differ
    (``tree_depth=1``), the calibration or recovery identity, and last the run folder's name. Labels
    are therefore stable: they depend only on the runs being compared, not on their order.
    """
    groups: dict[tuple, list[RunRecord]] = {}
    for r in runs:
        groups.setdefault((r.model, r.label), []).append(r)
    out = {str(r.path): "" for r in runs}
    for members in groups.values():
        if len(members) < 2:
            continue
        keys = sorted({k for r in members for k in r.settings})
        differing = [k for k in keys if len({json.dumps(r.settings.get(k), sort_keys=True) for r in members}) > 1]
        parts: dict[str, list[str]] = {str(r.path): [f"{k}={r.settings.get(k)}" for k in differing] for r in members}
        steps = {str(r.path): recover_steps(r) for r in members}
        for key, short in (("calibration", "calib"), ("recovery", "recovery")):
            if len({_identity(r, key) for r in members}) > 1:
                by_steps = key == "recovery" and len(set(steps.values())) == len(members)
                for r in members:  # recovery lengths name themselves; other differences by their identity hash
                    parts[str(r.path)].append(f"{steps[str(r.path)]} recovery steps" if by_steps else f"{short} {_identity(r, key)}")
        texts = [", ".join(parts[str(r.path)]) for r in members]
        if len(set(texts)) < len(texts):  # still ambiguous: the folder name tells them apart
            for r in members:
                parts[str(r.path)].append(r.path.name)
        for r in members:
            out[str(r.path)] = ", ".join(parts[str(r.path)])
    return out


def distinct_labels(runs: list[RunRecord]) -> dict[str, str]:
    """``{run folder: label}``: ``pruner @ budget``, with :func:`variants`' suffix where labels collide."""
    suffix = variants(runs)
    return {str(r.path): r.label + (f" ({suffix[str(r.path)]})" if suffix[str(r.path)] else "") for r in runs}


def comparison_frame(runs: list[RunRecord], metrics: list[str] | None = None) -> pd.DataFrame:
    """Long table: one row per (run, metric) with value, CI and the run's requested/achieved budget."""
    rows = []
    labels = distinct_labels(runs)
    for r in runs:
        names = metrics or r.metric_names()
        for name in names:
            if name not in r.results["metrics"]:
                continue
            s = r.metric_summary(name)
            ci = s.get("ci95") or [None, None]
            rows.append({
                "run": str(r.path),
                "label": labels[str(r.path)],
                "model": r.model,
                "pruner": r.pruner,
                "budget": r.budget,
                "requested_removed": r.requested_ratio,
                "achieved_removed": r.achieved_ratio,
                "budget_error": r.budget_error,
                "params": r.achieved_params,
                "metric": name,
                "value": s.get("value"),
                "ci_low": ci[0],
                "ci_high": ci[1],
                "n": s.get("n"),
                "higher_is_better": s.get("higher_is_better"),
                "not_scored": s.get("not_scored"),
            })
    return pd.DataFrame(rows)


def metric_order(runs: list[RunRecord]) -> list[str]:
    names: list[str] = []
    for r in runs:
        for n in r.metric_names():
            if n not in names:
                names.append(n)
    return names


def comparison_table(runs: list[RunRecord], metrics: list[str] | None = None, numeric: bool = False) -> pd.DataFrame:
    """Wide table, one row per run: model, pruner, requested vs achieved budget, params, each metric.

    ``numeric`` keeps numbers (``<metric>``, ``<metric>_ci_low``, ``<metric>_ci_high`` columns, for
    CSV); otherwise a metric cell reads ``0.812 [0.771, 0.850]`` and unscored metrics read ``n/a``.
    """
    runs = order_runs(runs)
    names = [m for m in (metrics or metric_order(runs))]
    suffix = variants(runs)
    table = []
    for r in runs:
        variant = suffix[str(r.path)]
        row: dict[str, Any] = {"model": r.model, "pruner": r.pruner if numeric or not variant else f"{r.pruner} ({variant})"}
        cost = r.pruning_cost
        if numeric:
            row.update(requested_removed=r.requested_ratio, achieved_removed=r.achieved_ratio,
                       budget_error=r.budget_error, params=r.achieved_params, variant=variant,
                       prune_forward_equivalents=cost.get("forward_equivalents"),
                       prune_backward_passes=cost.get("backward_passes"), prune_seconds=cost.get("seconds"))
        else:
            requested = "" if r.requested_params is None else f" ({r.requested_params:,})"
            row["requested"] = "-" if r.is_teacher else f"{r.budget}{requested}"
            row["achieved"] = f"{r.achieved_ratio:.2%} removed"
            row["vs target"] = "-" if r.budget_error is None else f"{r.budget_error:+.2%}"
            row["params"] = f"{r.achieved_params:,}"
            row["prune fwd / bwd"] = format_cost(cost)
        for name in names:
            s = r.metric_summary(name) if name in r.results["metrics"] else {"not_scored": "absent"}
            ci = s.get("ci95")
            if numeric:
                row[name] = s.get("value")
                row[f"{name}_ci_low"] = ci[0] if ci else None
                row[f"{name}_ci_high"] = ci[1] if ci else None
            else:
                row[name] = format_value(s)
        table.append(row)
    return pd.DataFrame(table)


def format_cost(cost: dict) -> str:
    """Pruning compute in one cell: forward-equivalents / backward passes (and seconds); "-" when none
    was recorded (the teacher, or a run folder written before pruning cost was)."""
    if not cost:
        return "-"
    fwd = cost.get("forward_equivalents", cost.get("denoiser_forwards", 0))
    return f"{fwd:,.0f} / {cost.get('backward_passes', 0):,} ({cost.get('seconds', 0):.0f} s)"


def format_value(s: dict) -> str:
    if "not_scored" in s or s.get("value") is None:
        return "n/a"
    v = float(s["value"])
    digits = 3 if abs(v) < 100 else 1
    ci = s.get("ci95")
    return f"{v:.{digits}f}" + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")


def markdown(df: pd.DataFrame) -> str:
    """A GitHub pipe table (pandas' own needs the optional tabulate package)."""
    cols = [str(c) for c in df.columns]
    cells = [[("" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)).replace("|", "\\|") for v in row]
             for row in df.itertuples(index=False)]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    out = [line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)


def render(df: pd.DataFrame, fmt: str) -> str:
    """The table as md, csv, latex or html text."""
    if fmt not in FORMATS:
        raise TmpbenchError(f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "md":
        return markdown(df)
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "latex":
        return df.to_latex(index=False, escape=True)
    return df.to_html(index=False, classes="tmpbench-table", border=0, escape=True, na_rep="")


def compare_runs(paths: list[str | Path], fmt: str = "md", metrics: list[str] | None = None,
                 split: str = "test") -> tuple[list[RunRecord], str]:
    """Load, check and tabulate run folders: ``(runs, rendered table)`` (what ``tmpbench compare`` prints).

    Refuses runs evaluated on another split than ``split`` and runs whose evaluated items overlap
    their model's calibration or recovery items."""
    if fmt not in FORMATS:
        raise TmpbenchError(f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}")
    runs = [load_run(p) for p in expand_run_dirs(paths)]
    check_split(runs, split)
    check_held_out(runs)
    check_comparable(runs)
    if metrics:
        known = metric_order(runs)
        for m in metrics:
            if m not in known:
                raise TmpbenchError(f"metric {m!r} is in none of the runs; they hold {', '.join(known)}")
    return runs, render(comparison_table(runs, metrics, numeric=fmt == "csv"), fmt)


def expand_run_dirs(paths: list[str | Path]) -> list[Path]:
    """Run folders as given; a sweep folder (holding ``sweep.json``) stands for all its runs."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        manifest = p / "sweep.json"
        if manifest.is_file() and not (p / "results.json").is_file():
            data = json.loads(manifest.read_text())
            out.extend(p / r["dir"] for r in data.get("runs", []) if "error" not in r)  # misses wrote no run
        else:
            out.append(p)
    return out


__all__ = [
    "FORMATS",
    "RunRecord",
    "check_held_out",
    "check_split",
    "check_comparable",
    "compare_runs",
    "comparison_frame",
    "comparison_table",
    "expand_run_dirs",
    "load_run",
    "markdown",
    "order_runs",
    "render",
    "sample_key",
]
