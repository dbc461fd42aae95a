"""``tmpbench ablate``: the three ablations the TMP paper lacks, each as a paper-like table with CIs.

* ``tree-depth``: TMP's top-down search with ``tree_depth`` 1 (blocks), 2 (+ components), 3 (+ unit chunks,
  the maximum), beside the flat greedy at full depth (``search="flat"``).
* ``policy-mix``: TMP restricted to depth policies (drop block, linear map), width policies (heads,
  channels), expert policies (prune/merge experts; MoE models only), and all of them mixed.
* ``arch-transfer``: a small grid over TMP's search settings (chunk size, re-scoring interval,
  timestep weighting) is scored on ``--limit`` items of the suite's ``calib`` split (less the items
  the models were calibrated on) for each of two architectures; the setting picked on one
  architecture is then applied unchanged to the other and compared, on the evaluation split
  (``--split``, default ``test``), with the setting picked there (per-architecture tuning).

Every variant is a run of :func:`tmpbench.experiments.sweep.run_sweep` (same calibration, recovery,
seeds and items for all), so the runs are ordinary run folders that ``tmpbench compare`` also reads.
Each table row carries the metric with its 95% bootstrap CI and the paired difference to the
reference variant (full TMP / per-architecture tuning) with its test's p-value.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pandas as pd

from tmpbench.errors import TmpbenchError
from tmpbench.experiments.sweep import SweepConfig, Variant, model_is_moe, run_dir_name, run_sweep
from tmpbench.report.paired import fmt as _fmt
from tmpbench.report.paired import paired, score
from tmpbench.report.stats import holm, min_detectable_effect
from tmpbench.report.tables import RunRecord, format_cost, load_run, render

AXES = ("tree-depth", "policy-mix", "arch-transfer")
DEPTH_POLICIES = ["drop_block", "linear_replace"]
WIDTH_POLICIES = ["prune_heads", "prune_channels"]
EXPERT_POLICIES = ["prune_experts", "merge_experts"]
# TMP search settings tried by arch-transfer (pruners/tmp.py TMPPruner.SETTINGS); the middle one is TMP's default
TRANSFER_GRID: list[dict[str, Any]] = [
    {"chunks": 4, "rescore_every": 2, "timestep_weighting": "uniform"},
    {"chunks": 8, "rescore_every": 8, "timestep_weighting": "uniform"},
    {"chunks": 16, "rescore_every": 16, "timestep_weighting": "noisy"},
]


def transfer_partner(model: str) -> str | None:
    """The model of another architecture the registry entry of ``model`` pairs it with, if any."""
    from tmpbench.models.spec import parse_spec, resolve_entry

    try:
        return resolve_entry(parse_spec(model)).transfer_partner
    except TmpbenchError:
        return None


def axis_variants(axis: str, moe: bool) -> list[Variant]:
    """The TMP variants an axis compares (the reference variant last)."""
    if axis == "tree-depth":  # the nested top-down depths, the flat greedy at full depth, full TMP last
        return [Variant("tmp-depth1", "tmp", {"tree_depth": 1}), Variant("tmp-depth2", "tmp", {"tree_depth": 2}),
                Variant("tmp-flat", "tmp", {"search": "flat"}), Variant("tmp-depth3", "tmp", {"tree_depth": 3})]
    if axis == "policy-mix":
        out = [Variant("depth-only", "tmp", {"policy_mix": DEPTH_POLICIES}),
               Variant("width-only", "tmp", {"policy_mix": WIDTH_POLICIES})]
        if moe:
            out.append(Variant("experts-only", "tmp", {"policy_mix": EXPERT_POLICIES}))
        return out + [Variant("mixed", "tmp", {})]
    raise TmpbenchError(f"unknown ablation axis {axis!r}; use one of {', '.join(AXES)}")


def pick_metric(run: RunRecord, metric: str | None) -> str:
    if metric:
        if metric not in run.results["metrics"] or not run.metric_values(metric):
            raise TmpbenchError(f"--metric {metric!r} has no per-sample values in {run.path}; it holds {', '.join(run.metric_names())}")
        return metric
    for name in run.metric_names():
        if run.metric_values(name):
            return name
    raise TmpbenchError(f"run {run.path} has no per-sample metric to ablate on")


def variant_table(base: SweepConfig, variants: list[Variant], budget: str, metric: str | None, reference: str) -> tuple[pd.DataFrame, str]:
    """Run (or reuse) ``variants`` at ``budget`` and tabulate them against variant ``reference``."""
    cfg = dataclasses.replace(base, variants=variants, budgets=[budget], teacher=True, record_misses=True)
    manifest = run_sweep(cfg, report=False)
    misses = {r["variant"]: r for r in manifest["runs"] if "error" in r}
    if reference in misses:
        raise TmpbenchError(misses[reference]["error"])
    teacher = load_run(Path(cfg.out) / "teacher")
    runs = {v.name: load_run(Path(cfg.out) / run_dir_name(v.name, budget)) for v in variants if v.name not in misses}
    metric = pick_metric(next(iter(runs.values())), metric)
    ref = runs[reference]
    rows = []
    t_point, t_ci, t_n = score(teacher, metric)
    delta = f"Δ vs {reference} [95% CI]"
    rows.append({"variant": "teacher (unpruned)", "settings": "-", "achieved": "0.00% removed", "vs target": "-",
                 "n": t_n, metric: _fmt(t_point, t_ci), delta: "", "p": "", "p (Holm)": "", "prune fwd / bwd": "-"})
    tests = {v.name: paired(ref, runs[v.name], metric) for v in variants if v.name not in misses and v.name != reference}
    adjusted = dict(zip(tests, holm([t["p"] for t in tests.values()])))
    for v in variants:
        settings = json.dumps(v.settings, sort_keys=True) if v.settings else "(TMP defaults)"
        if v.name in misses:  # not comparable at this budget: say why, with the nearest size it reaches
            miss = misses[v.name]
            nearest = f"nearest {miss['nearest']:,.0f} ({miss['relative_error']:+.2%})"
            rows.append({"variant": v.name, "settings": settings, "achieved": "cannot land", "vs target": nearest,
                         "n": "", metric: "-", delta: "", "p": "", "p (Holm)": "", "prune fwd / bwd": "-"})
            continue
        r = runs[v.name]
        point, ci, n = score(r, metric)
        t = tests.get(v.name)
        rows.append({"variant": v.name, "settings": settings, "achieved": f"{r.achieved_ratio:.2%} removed",
                     "vs target": "-" if r.budget_error is None else f"{r.budget_error:+.2%}", "n": n,
                     metric: _fmt(point, ci), delta: "" if t is None else _fmt(t["diff"], t["ci"]),
                     "p": "" if t is None else f"{t['p']:.3g}",
                     "p (Holm)": "" if t is None else f"{adjusted[v.name]:.3g}", "prune fwd / bwd": format_cost(r.pruning_cost)})
    diffs = [d for t in tests.values() for d in t["diffs"]]
    table = pd.DataFrame(rows)
    table.attrs["mde"] = min_detectable_effect(diffs) if diffs else float("nan")
    table.attrs["tests"] = sorted({t["test"] for t in tests.values()})
    return table, metric


def arch_transfer(base: SweepConfig, other: str, other_path: str | None, budget: str, metric: str | None,
                  grid: list[dict] | None = None) -> tuple[pd.DataFrame, str, dict]:
    """Tune TMP's settings on each architecture's calib-split items, then swap the picks (see module doc)."""
    from tmpbench.pruning.recipes import CALIB_SPLIT

    grid = grid or TRANSFER_GRID
    if base.limit is None:
        raise TmpbenchError(f"arch-transfer needs --limit K: K items of the {CALIB_SPLIT} split tune TMP's settings and "
                            f"K items of --split {base.split} are evaluated")
    if base.split == CALIB_SPLIT:
        raise TmpbenchError(f"arch-transfer tunes on the {CALIB_SPLIT} split; evaluate on another (--split test)")
    variants = [Variant(f"tmp-g{i}", "tmp", dict(g)) for i, g in enumerate(grid)]
    by_name = {v.name: v for v in variants}
    models = {base.model: base.model_path, other: other_path}
    picked: dict[str, dict] = {}
    tuned: dict[str, dict[str, RunRecord]] = {}
    for model, path in models.items():
        cfg = dataclasses.replace(base, model=model, model_path=path, variants=variants, budgets=[budget],
                                  split=CALIB_SPLIT, teacher=False, out=Path(base.out) / model / "tune")
        run_sweep(cfg, report=False)
        tuned[model] = {v.name: load_run(Path(cfg.out) / run_dir_name(v.name, budget)) for v in variants}
        first = next(iter(tuned[model].values()))
        metric = pick_metric(first, metric)
        suite = first.results["suite"]["name"]
        used = {i for r in tuned[model].values() for ids in r.training_item_ids().values() for i in ids.get(suite, ())}
        held = {k for k in first.sample_keys() if k.split("#")[0] not in used}
        if not held:
            raise TmpbenchError(f"arch-transfer: every tuning item of {model} was a calibration item; raise --limit")
        scores = {name: score(r, metric, held) for name, r in tuned[model].items()}
        higher = bool(first.results["metrics"][metric]["higher_is_better"])
        best = max(scores, key=lambda n: (scores[n][0] if higher else -scores[n][0], -list(scores).index(n)))
        picked[model] = {"variant": best, "settings": dict(by_name[best].settings),
                         "held_out": scores[best][0], "held_out_n": scores[best][2], "held_out_split": CALIB_SPLIT,
                         "grid": {n: round(s[0], 4) for n, s in scores.items()}}
    rows = []
    for target, path in models.items():
        source = other if target == base.model else base.model
        chosen = [by_name[n] for n in dict.fromkeys((picked[target]["variant"], picked[source]["variant"]))]
        cfg = dataclasses.replace(base, model=target, model_path=path, variants=chosen, budgets=[budget], teacher=False,
                                  out=Path(base.out) / target / "test")
        run_sweep(cfg, report=False)
        own = load_run(Path(cfg.out) / run_dir_name(picked[target]["variant"], budget))
        moved = load_run(Path(cfg.out) / run_dir_name(picked[source]["variant"], budget))
        for label, tuned_on, r in (("per-architecture tuning", target, own), ("transferred", source, moved)):
            point, ci, n = score(r, metric)
            t = paired(own, r, metric) if r is not own else None
            rows.append({"target": target, "settings from": f"{label} ({tuned_on})",
                         "settings": json.dumps(picked[tuned_on]["settings"], sort_keys=True),
                         "held-out score": f"{scores_of(picked, target, tuned_on):.3f}",
                         "achieved": f"{r.achieved_ratio:.2%} removed",
                         f"{base.split} {metric}": _fmt(point, ci),
                         "Δ vs own [95% CI]": "" if t is None else _fmt(t["diff"], t["ci"]),
                         "p": "" if t is None else f"{t['p']:.3g}", "n": n})
    return pd.DataFrame(rows), metric, picked


def scores_of(picked: dict, target: str, tuned_on: str) -> float:
    """The tuning (calib-split) score on ``target`` of the variant picked on ``tuned_on``."""
    return float(picked[target]["grid"][picked[tuned_on]["variant"]])


def run_ablation(axis: str, base: SweepConfig, budget: str, metric: str | None = None, other: str | None = None,
                 other_path: str | None = None, grid: list[dict] | None = None) -> dict:
    """Run one ablation axis; write ``OUT/table.md`` (+ csv, latex) and return the table and its metadata."""
    if axis not in AXES:
        raise TmpbenchError(f"unknown ablation axis {axis!r}; use one of {', '.join(AXES)}")
    out = Path(base.out)
    extra: dict = {}
    if axis == "arch-transfer":
        other = other or transfer_partner(base.model)
        if other is None:
            raise TmpbenchError(f"arch-transfer: no partner architecture for {base.model!r}; pass --other-model NAME")
        if other == base.model:
            raise TmpbenchError(f"arch-transfer needs two different architectures, got {other!r} twice")
        table, metric, extra = arch_transfer(base, other, other_path, budget, metric, grid)
        caption = (f"Architecture transfer of TMP settings at budget {budget}: per-architecture tuning on held-out items vs "
                   f"settings tuned on the other architecture ({base.model} <-> {other}); test {metric} with 95% bootstrap CI")
    else:
        variants = axis_variants(axis, model_is_moe(base.model))
        reference = variants[-1].name
        table, metric = variant_table(base, variants, budget, metric, reference)
        caption = (f"Ablation '{axis}' of TMP on {base.model} ({base.suite}, split {base.split}, budget {budget}): {metric} "
                   f"with 95% bootstrap CI; Δ is paired on the same items and seeds ({', '.join(table.attrs['tests'])}), "
                   f"Holm-adjusted across the table's {len(variants) - 1} comparisons; minimum detectable effect at this n "
                   f"(80% power, 5% level): {table.attrs['mde']:.3f}. Prune fwd / bwd: denoiser forward-equivalents / "
                   "backward passes spent pruning (seconds).")
    out.mkdir(parents=True, exist_ok=True)
    md = f"{caption}\n\n{render(table, 'md')}\n"
    (out / "table.md").write_text(md)
    (out / "table.csv").write_text(render(table, "csv"))
    (out / "table.tex").write_text(render(table, "latex"))
    (out / "ablation.json").write_text(json.dumps({"axis": axis, "budget": budget, "metric": metric, "caption": caption,
                                                   "rows": table.to_dict(orient="records"), **({"picked": extra} if extra else {})},
                                                  indent=1, default=str) + "\n")
    return {"axis": axis, "table": table, "markdown": md, "metric": metric, "out": out, "picked": extra}


__all__ = ["AXES", "TRANSFER_GRID", "arch_transfer", "axis_variants", "model_is_moe", "run_ablation", "variant_table"]
