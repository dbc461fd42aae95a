"""Regression gates: did quality at any pruning ratio get worse than a committed baseline?

A baseline is a compact JSON file (``reports/<name>.json``) written from run folders by
:func:`write_baseline` (``tmpbench gate --write-baseline FILE --run DIR...``). It keeps, per run,
the model, pruner and budget and every per-sample metric value keyed by ``item id#seed``, plus the
suite hash and seeds that make the numbers comparable.

:func:`gate` pairs each candidate run with the baseline run of the same model and budget (the same
pruner when the baseline holds several at that budget) and compares every per-sample metric on
the same prompts and seeds: McNemar's exact test for binary correctness (GenEval), a paired
bootstrap otherwise. A metric REGRESSES when its drop (baseline minus candidate, sign-adjusted for
lower-is-better metrics) exceeds the tolerance (``--max-drop metric=value``, default 0) AND the
one-sided test says the candidate is worse (p < alpha). An unchanged rerun has no drop and passes.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.report.stats import is_binary, mcnemar_exact, paired_bootstrap
from tmpbench.report.tables import (
    RunRecord,
    check_comparable,
    check_held_out,
    check_split,
    expand_run_dirs,
    load_run,
    markdown,
)

FORMAT = "tmpbench-gate-baseline"
VERSION = 1
ALPHA = 0.05


# ------------------------------------------------------------------------------------------------
# baseline files
def baseline_entry(run: RunRecord) -> dict[str, Any]:
    """One run in baseline form: identity, budget and per-sample values of every per-sample metric."""
    metrics = {}
    for name in run.metric_names():
        m = run.results["metrics"][name]
        values = run.metric_values(name)
        if isinstance(m, str) or not values:
            continue
        metrics[name] = {"higher_is_better": bool(m["higher_is_better"]), "binary": is_binary(list(values.values())),
                         "value": m["value"], "values": values}
    return {
        "model": run.model,
        "pruner": run.pruner,
        "budget": run.budget,
        "requested_removed": run.requested_ratio,
        "achieved_removed": run.achieved_ratio,
        "pruner_settings": run.settings,
        "source": str(run.path),
        "metrics": metrics,
    }


def baseline_from_runs(runs: list[RunRecord], name: str | None = None) -> dict[str, Any]:
    check_comparable(runs, "gate --write-baseline")
    check_held_out(runs, "gate --write-baseline")
    first = runs[0].results
    keys = sorted(runs[0].sample_keys())
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "suite": {"name": first["suite"]["name"], "version": first["suite"]["version"], "hash": first["suite"]["hash"],
                  "items": first["suite"]["items"], "split": runs[0].split},
        "seeds": {"seeds_per_item": first["generation"]["seeds_per_item"], "seed_rule": first["generation"]["seed_rule"],
                  "suite_seed_range": first["generation"]["suite_seed_range"], "samples": keys},
        "generation": {k: first["generation"][k] for k in ("steps", "guidance", "size")},
        "runs": [baseline_entry(r) for r in runs],
    }


def write_baseline(run_dirs: list[str | Path], out: str | Path, name: str | None = None) -> Path:
    """Write the baseline file of ``run_dirs`` (a sweep folder stands for all its runs) to ``out``."""
    runs = [load_run(p) for p in expand_run_dirs(run_dirs)]
    data = baseline_from_runs(runs, name or Path(out).stem)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return out


def load_baseline(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise TmpbenchError(
            f"baseline file {str(path)!r} not found; write one with `tmpbench gate --write-baseline {path} --run RUN_DIR...`"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataFormatError(f"{path} is not a tmpbench gate baseline (format {FORMAT!r}); write one with --write-baseline")
    if data.get("version") != VERSION:
        raise DataFormatError(f"{path}: baseline version {data.get('version')!r}, this tmpbench reads {VERSION}")
    return data


# ------------------------------------------------------------------------------------------------
# the gate
@dataclass
class GateRow:
    model: str
    budget: str
    baseline_pruner: str
    candidate_pruner: str
    metric: str
    baseline: float
    candidate: float
    drop: float  # positive = candidate worse (sign-adjusted)
    tolerance: float
    test: str
    n: int
    detail: str  # e.g. "lost 5 / gained 1" or the CI of the difference
    p_worse: float
    regressed: bool


@dataclass
class GateReport:
    rows: list[GateRow]
    alpha: float

    @property
    def failed(self) -> bool:
        return any(r.regressed for r in self.rows)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "model": r.model, "budget": r.budget, "baseline": r.baseline_pruner, "candidate": r.candidate_pruner,
            "metric": r.metric, "base value": f"{r.baseline:.3f}", "cand value": f"{r.candidate:.3f}",
            "drop": f"{r.drop:+.3f}", "max drop": f"{r.tolerance:g}", "test": r.test, "n": r.n, "pairs": r.detail,
            "p(worse)": f"{r.p_worse:.3g}", "verdict": "REGRESSED" if r.regressed else "ok",
        } for r in self.rows])

    def table(self) -> str:
        verdict = (f"FAIL: {sum(r.regressed for r in self.rows)} of {len(self.rows)} comparisons regressed beyond tolerance "
                   f"(one-sided p < {self.alpha:g})") if self.failed else (
                       f"PASS: no regression beyond tolerance in {len(self.rows)} comparisons")
        return markdown(self.frame()) + "\n" + verdict


def parse_max_drop(items: list[str] | None) -> dict[str, float]:
    """``["geneval=0.05", ...]`` -> ``{"geneval": 0.05}`` (one-line errors for malformed items)."""
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = str(item).partition("=")
        try:
            tol = float(value)
        except ValueError:
            tol = float("nan")
        if not sep or not name.strip() or not math.isfinite(tol) or tol < 0:
            raise TmpbenchError(f"--max-drop {item!r} must look like METRIC=VALUE with VALUE >= 0, e.g. geneval=0.05")
        out[name.strip()] = tol
    return out


def _check_suite(baseline: dict, run: RunRecord) -> None:
    if run.suite_hash != baseline["suite"]["hash"]:
        raise TmpbenchError(
            f"gate: {run.path} is not comparable with the baseline: suite {run.results['suite']['name']} "
            f"({run.results['suite']['items']} items, hash {run.suite_hash[:12]}) vs baseline {baseline['suite']['name']} "
            f"({baseline['suite']['items']} items, hash {baseline['suite']['hash'][:12]}); rerun with the baseline's suite and --limit"
        )
    seeds = baseline["seeds"]
    same = (run.results["generation"]["seeds_per_item"] == seeds["seeds_per_item"]
            and run.results["generation"]["seed_rule"] == seeds["seed_rule"]
            and sorted(run.sample_keys()) == sorted(seeds["samples"]))
    if not same:
        raise TmpbenchError(
            f"gate: {run.path} is not comparable with the baseline: different seeds (seeds per item "
            f"{run.results['generation']['seeds_per_item']} vs {seeds['seeds_per_item']}, or other sample seeds); "
            "rerun with the baseline's --seeds"
        )


def _match(baseline: dict, run: RunRecord) -> dict:
    same = [e for e in baseline["runs"] if e["model"] == run.model and e["budget"] == run.budget]
    if not same:
        have = ", ".join(sorted({f"{e['model']} @ {e['budget']}" for e in baseline["runs"]}))
        raise TmpbenchError(f"gate: the baseline has no run of {run.model} at budget {run.budget} (it has {have}); "
                            "gate a run at one of those budgets")
    if len(same) > 1:
        same = [e for e in same if e["pruner"] == run.pruner]
        if len(same) != 1:
            raise TmpbenchError(f"gate: the baseline holds several pruners at {run.model} @ {run.budget} and none is "
                                f"{run.pruner!r}; write a baseline with one run per budget")
    return same[0]


def gate(
    baseline: dict,
    runs: list[RunRecord],
    max_drop: dict[str, float] | None = None,
    alpha: float = ALPHA,
    split: str = "test",
) -> GateReport:
    """Compare ``runs`` with ``baseline`` metric by metric (see the module docstring). Runs and baseline
    must be evaluated on ``split``; runs that evaluate their own calibration or recovery items are refused."""
    max_drop = dict(max_drop or {})
    check_split(runs, split, "gate")
    base_split = baseline["suite"].get("split", "all")
    if base_split != split:
        raise TmpbenchError(f"gate: the baseline was evaluated on split {base_split!r}, not {split!r}; pass --split "
                            f"{base_split}, or rewrite the baseline from runs on {split!r} (--write-baseline)")
    check_held_out(runs, "gate")
    if not 0 < alpha < 1:
        raise TmpbenchError(f"--alpha {alpha} must lie strictly between 0 and 1")
    if not runs:
        raise TmpbenchError("gate: no candidate runs given; pass --run RUN_DIR")
    known = sorted({m for e in baseline["runs"] for m in e["metrics"]})
    for name in max_drop:
        if name not in known:
            raise TmpbenchError(
                f"--max-drop names unknown metric {name!r}; the baseline has per-sample metrics {', '.join(known) or 'none'}"
            )
    rows = []
    for run in runs:
        _check_suite(baseline, run)
        entry = _match(baseline, run)
        for name, base in entry["metrics"].items():
            cand_values = run.metric_values(name)
            if not cand_values:
                continue  # the candidate did not score it per sample: nothing to pair
            keys = sorted(base["values"])
            a = [base["values"][k] for k in keys]
            b = [cand_values.get(k, float("nan")) for k in keys]
            higher = bool(base["higher_is_better"])
            if base["binary"] and is_binary(b):
                t = mcnemar_exact(a, b)
                diff, p, test, detail, n = t.mean_diff, t.p_worse, "McNemar exact", f"lost {t.lost} / gained {t.gained}", t.n
            else:
                t = paired_bootstrap(a, b, higher)
                ci = f"[{t.ci95[0]:+.3f}, {t.ci95[1]:+.3f}]" if t.ci95 else "n/a"
                diff, p, test, detail, n = t.mean_diff, t.p_worse, "paired bootstrap", f"diff CI {ci}", t.n
            drop = -diff if higher else diff
            tol = max_drop.get(name, 0.0)
            regressed = bool(drop > tol + 1e-12 and p < alpha)
            base_mean = float(sum(x for x in a if math.isfinite(x)) / max(1, sum(math.isfinite(x) for x in a)))
            cand_mean = float(sum(x for x in b if math.isfinite(x)) / max(1, sum(math.isfinite(x) for x in b)))
            rows.append(GateRow(run.model, run.budget, entry["pruner"], run.pruner, name, base_mean, cand_mean, drop, tol,
                                test, n, detail, p, regressed))
    if not rows:
        raise TmpbenchError("gate: the candidate runs share no per-sample metric with the baseline; nothing to compare")
    return GateReport(rows, alpha)


def gate_runs(baseline_path: str | Path, run_dirs: list[str | Path], max_drop: list[str] | None = None,
              alpha: float = ALPHA, split: str = "test") -> GateReport:
    """``tmpbench gate``: load the baseline and the runs, validate ``--max-drop``, compare on ``split``."""
    baseline = load_baseline(baseline_path)
    tolerances = parse_max_drop(max_drop)
    runs = [load_run(p) for p in expand_run_dirs(run_dirs)]
    return gate(baseline, runs, tolerances, alpha, split)


__all__ = ["GateReport", "GateRow", "baseline_from_runs", "gate", "gate_runs", "load_baseline", "parse_max_drop",
           "write_baseline"]
