"""``tmpbench ablate``: the three ablations the TMP paper lacks, each as a paper-like table with CIs.

* ``tree-depth``: TMP's top-down search with ``tree_depth`` 1 (blocks), 2 (+ components), 3 (+ unit chunks,
  the maximum), beside the flat greedy at full depth (``search="flat"``).
* ``policy-mix``: TMP restricted to depth policies (drop block, linear map), width policies (heads,
  channels), expert policies (prune/merge experts; MoE models only), and all of them mixed.
* ``search-cost``: TMP's cheaper searches against the default one: screened (probes on 4 of the calibration
  inputs, candidates confirmed on all of them; with and without the refine pass) and local probes (group
  probes scored on their own block, scaled by a per-block gain): held-out quality, the plan's calibration
  error and the forward-equivalents each spent (docs/tmp.md §4d).
* ``arch-transfer``: a grid of TMP settings (:data:`TRANSFER_GRID`: defaults, tree depth, policy mix,
  timestep weighting, width step, refine pass) is scored on the ``dev`` split of each architecture
  (by default the three references: dense DiT, MoE DiT, decoder MoE); each architecture's pick is
  then applied unchanged to every other one and evaluated on ``--split`` (default ``test``) beside
  that architecture's own pick, TMP's defaults and one seeded random grid setting. The table gives
  the regret Q_B(own pick) - Q_B(setting) with a paired CI over items and seeds, and Holm's correction.

Every variant is a run of :func:`tmpbench.experiments.sweep.run_sweep` (same calibration, recovery,
seeds and items for all), so the runs are ordinary run folders that ``tmpbench compare`` also reads.
Each table row carries the metric with its 95% bootstrap CI and the paired difference to the
reference variant (full TMP / per-architecture tuning) with its test's p-value.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pandas as pd

from tmpbench.errors import TmpbenchError
from tmpbench.experiments.sweep import SweepConfig, Variant, model_is_moe, run_dir_name, run_sweep
from tmpbench.report.paired import fmt as _fmt
from tmpbench.report.paired import paired, score
from tmpbench.report.stats import format_p, holm, min_detectable_effect
from tmpbench.report.tables import RunRecord, format_cost, load_run, render

AXES = ("tree-depth", "policy-mix", "search-cost", "arch-transfer")
DEPTH_POLICIES = ["drop_block", "linear_replace"]
WIDTH_POLICIES = ["prune_heads", "prune_channels"]
EXPERT_POLICIES = ["prune_experts", "merge_experts"]
# TMP settings arch-transfer tunes over (pruners/tmp.py TMPPruner.SETTINGS): the defaults, then one change at a
# time along tree depth, policy mix, timestep weighting, the width step and the refine pass; each is valid on
# dense DiTs and MoE models alike
TRANSFER_GRID: list[dict[str, Any]] = [
    {},
    {"tree_depth": 2},
    {"policy_mix": WIDTH_POLICIES},
    {"policy_mix": DEPTH_POLICIES[:1] + WIDTH_POLICIES},
    {"timestep_weighting": "noisy"},
    {"timestep_weighting": "clean"},
    {"chunks": 4},
    {"refine": 0},
]
SCREEN_INPUTS = 4  # search-cost: calibration inputs the screened search probes on (of the default 16)
TUNE_SPLIT = "dev"  # arch-transfer picks settings on dev items (calibration draws from calib, evaluation from test)
ARCH_TRANSFER_REFERENCES = ("tiny-dit", "tiny-moe", "tiny-hy3")


def transfer_partners(model: str) -> list[str]:
    """The architectures arch-transfer pairs ``model`` with: the other reference models for a reference
    (tiny-dit, tiny-moe, tiny-hy3: dense DiT, MoE DiT, decoder MoE), else the registry entry's partner."""
    from tmpbench.models.spec import parse_spec, resolve_entry

    if model in ARCH_TRANSFER_REFERENCES:
        return [m for m in ARCH_TRANSFER_REFERENCES if m != model]
    try:
        partner = resolve_entry(parse_spec(model)).transfer_partner
    except TmpbenchError:
        return []
    return [partner] if partner else []


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
    if axis == "search-cost":  # the screened search and local probes (docs/tmp.md §4d) against the default
        return [Variant("tmp-screen4", "tmp", {"screen_inputs": SCREEN_INPUTS, "refine": 0}),
                Variant("tmp-screen4-refine1", "tmp", {"screen_inputs": SCREEN_INPUTS}),
                Variant("tmp-local", "tmp", {"local_probes": True}),
                Variant("tmp", "tmp", {})]
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
    delta = f"Δ vs {reference} [95% CI]"
    if teacher.metric_values(metric):
        t_point, t_ci, t_n = score(teacher, metric)
        t_score = _fmt(t_point, t_ci)
    else:  # a fidelity metric (PSNR to the teacher) has no teacher value
        t_n, t_score = "", "n/a"
    rows.append({"variant": "teacher (unpruned)", "settings": "-", "achieved": "0.00% removed", "vs target": "-",
                 "n": t_n, metric: t_score, delta: "", "p": "", "p (Holm)": "", "prune fwd / bwd": "-",
                 "calib error": "-"})
    tests = {v.name: paired(ref, runs[v.name], metric) for v in variants if v.name not in misses and v.name != reference}
    adjusted = dict(zip(tests, holm([t["p"] for t in tests.values()])))
    for v in variants:
        settings = json.dumps(v.settings, sort_keys=True) if v.settings else "(TMP defaults)"
        if v.name in misses:  # not comparable at this budget: say why, with the nearest size it reaches
            miss = misses[v.name]
            nearest = f"nearest {miss['nearest']:,.0f} ({miss['relative_error']:+.2%})"
            rows.append({"variant": v.name, "settings": settings, "achieved": "cannot land", "vs target": nearest,
                         "n": "", metric: "-", delta: "", "p": "", "p (Holm)": "", "prune fwd / bwd": "-",
                         "calib error": "-"})
            continue
        r = runs[v.name]
        point, ci, n = score(r, metric)
        t = tests.get(v.name)
        rows.append({"variant": v.name, "settings": settings, "achieved": f"{r.achieved_ratio:.2%} removed",
                     "vs target": "-" if r.budget_error is None else f"{r.budget_error:+.2%}", "n": n,
                     metric: _fmt(point, ci), delta: "" if t is None else _fmt(t["diff"], t["ci"]),
                     "p": "" if t is None else format_p(t['p']),
                     "p (Holm)": "" if t is None else format_p(adjusted[v.name]), "prune fwd / bwd": format_cost(r.pruning_cost),
                     "calib error": _calib_error(r)})
    diffs = [d for t in tests.values() for d in t["diffs"]]
    table = pd.DataFrame(rows)
    table.attrs["mde"] = min_detectable_effect(diffs) if diffs else float("nan")
    table.attrs["tests"] = sorted({t["test"] for t in tests.values()})
    return table, metric


def _calib_error(run: RunRecord) -> str:
    """The plan's relative output error on its calibration inputs, measured after surgery ("-" when the
    pruned folder is gone or the pruner has no measured search)."""
    err = run.plan_search.get("measured_error")
    return f"{err:.4g}" if isinstance(err, (int, float)) else "-"


def _settings_text(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True) if settings else "(TMP defaults)"


def arch_transfer(base: SweepConfig, others: list[str], other_paths: dict[str, str | None], budget: str, metric: str | None,
                  grid: list[dict] | None = None, random_seed: int = 0) -> tuple[pd.DataFrame, str, dict]:
    """Tune TMP's settings on each architecture's ``dev`` split, apply each pick to every other
    architecture, and report the regret on the evaluation split (see the module docstring).

    Returns ``(table, metric, picked)``; ``picked`` holds every model's dev score per grid setting."""
    from tmpbench.pruning.recipes import CALIB_SPLIT

    grid = grid or TRANSFER_GRID
    if base.split in (CALIB_SPLIT, TUNE_SPLIT):
        raise TmpbenchError(f"arch-transfer tunes on the {TUNE_SPLIT} split and calibrates on {CALIB_SPLIT}; "
                            "evaluate on another (--split test)")
    if len(grid) < 2:
        raise TmpbenchError("arch-transfer needs a grid of at least 2 settings to tune over")
    variants = [Variant(f"tmp-g{i}", "tmp", dict(g)) for i, g in enumerate(grid)]
    by_name = {v.name: v for v in variants}
    default = next((v for v in variants if not v.settings), None)
    models = {base.model: base.model_path, **{m: other_paths.get(m) for m in others}}
    if len(models) < 2:
        raise TmpbenchError("arch-transfer needs at least two different architectures (--other-model A,B)")
    picked: dict[str, dict] = {}
    for model, path in models.items():  # 1. tune: every grid setting on the dev split
        cfg = dataclasses.replace(base, model=model, model_path=path, variants=variants, budgets=[budget],
                                  split=TUNE_SPLIT, teacher=True, out=Path(base.out) / model / "tune",
                                  prune_cache=Path(base.out) / model / "pruned-cache")
        run_sweep(cfg, report=False)
        tuned = {v.name: load_run(Path(cfg.out) / run_dir_name(v.name, budget)) for v in variants}
        first = next(iter(tuned.values()))
        metric = pick_metric(first, metric)
        higher = bool(first.results["metrics"][metric]["higher_is_better"])
        scores = {name: score(r, metric) for name, r in tuned.items()}
        best = max(scores, key=lambda n: (scores[n][0] if higher else -scores[n][0], -list(scores).index(n)))
        picked[model] = {"variant": best, "settings": dict(by_name[best].settings), "split": TUNE_SPLIT,
                         "n": scores[best][2], "grid": {n: round(s[0], 4) for n, s in scores.items()}}
    rng = random.Random(random_seed)
    rows, tests = [], []
    for target, path in models.items():  # 2. evaluate on the test split: own pick, each transferred pick, default, random
        own = picked[target]["variant"]
        rand = rng.choice(variants).name
        wanted = [(f"own pick ({target})", own)]
        wanted += [(f"transferred from {src}", picked[src]["variant"]) for src in models if src != target]
        if default is not None:
            wanted.append(("TMP default settings", default.name))
        wanted.append((f"random grid setting (seed {random_seed})", rand))
        chosen = [by_name[n] for n in dict.fromkeys(n for _, n in wanted)]
        cfg = dataclasses.replace(base, model=target, model_path=path, variants=chosen, budgets=[budget], teacher=True,
                                  out=Path(base.out) / target / "test", prune_cache=Path(base.out) / target / "pruned-cache")
        run_sweep(cfg, report=False)
        runs = {v.name: load_run(Path(cfg.out) / run_dir_name(v.name, budget)) for v in chosen}
        for label, name in wanted:
            r = runs[name]
            point, ci, n = score(r, metric)
            t = None if name == own else paired(runs[own], r, metric)
            if t is not None:
                tests.append(t)
            higher = bool(r.results["metrics"][metric]["higher_is_better"])
            # regret: how much worse than the target's own pick (positive = worse), paired on items and seeds
            sign = -1.0 if higher else 1.0
            regret = "0 (same setting)" if t is None else _fmt(sign * t["diff"], sorted(sign * c for c in t["ci"]))
            rows.append({"target": target, "settings from": label, "variant": name, "settings": _settings_text(r.settings),
                         f"{TUNE_SPLIT} {metric}": f"{picked[target]['grid'][name]:.3f}",
                         "achieved": f"{r.achieved_ratio:.2%} removed", "n": n, f"{base.split} {metric}": _fmt(point, ci),
                         "regret [95% CI]": regret, "p": "" if t is None else format_p(t['p']), "_test": t,
                         "prune fwd / bwd": format_cost(r.pruning_cost)})
    adjusted = iter(holm([t["p"] for t in tests]))
    for row in rows:
        t = row.pop("_test")
        row["p (Holm)"] = "" if t is None else format_p(next(adjusted))
    table = pd.DataFrame(rows)
    diffs = [d for t in tests for d in t["diffs"]]
    table.attrs["mde"] = min_detectable_effect(diffs) if diffs else float("nan")
    table.attrs["tests"] = sorted({t["test"] for t in tests}) or ["none"]
    table.attrs["comparisons"] = len(tests)
    return table, metric, picked


def grid_table(picked: dict, metric: str) -> pd.DataFrame:
    """Dev-split score of every grid setting on every architecture, the pick marked with *."""
    models = list(picked)
    names = list(next(iter(picked.values()))["grid"])
    rows = []
    for name in names:
        row = {"variant": name}
        for m in models:
            v = picked[m]["grid"][name]
            row[f"{m} ({TUNE_SPLIT} {metric})"] = f"{v:.3f}" + (" *" if picked[m]["variant"] == name else "")
        rows.append(row)
    return pd.DataFrame(rows)


def run_ablation(axis: str, base: SweepConfig, budget: str, metric: str | None = None, other: str | None = None,
                 other_path: str | None = None, grid: list[dict] | None = None) -> dict:
    """Run one ablation axis; write ``OUT/table.md`` (+ csv, latex) and return the table and its metadata."""
    if axis not in AXES:
        raise TmpbenchError(f"unknown ablation axis {axis!r}; use one of {', '.join(AXES)}")
    out = Path(base.out)
    extra: dict = {}
    if axis == "arch-transfer":
        others = [m.strip() for m in other.split(",") if m.strip()] if other else transfer_partners(base.model)
        if not others:
            raise TmpbenchError(f"arch-transfer: no partner architecture for {base.model!r}; pass --other-model NAME[,NAME]")
        if base.model in others or len(set(others)) != len(others):
            raise TmpbenchError(f"arch-transfer needs different architectures, got {base.model!r} and {others}")
        paths = {m: p for m, p in zip(others, (other_path or "").split(",") if other_path else [])}
        table, metric, extra = arch_transfer(base, others, paths, budget, metric, grid)
        caption = (f"Architecture transfer of TMP settings at budget {budget} ({', '.join([base.model, *others])}): each "
                   f"architecture's pick from a grid of {len(grid or TRANSFER_GRID)} settings tuned on its {TUNE_SPLIT} split, "
                   f"applied to every other architecture. Regret = Q_B(own pick) - Q_B(setting), {metric} on split "
                   f"{base.split} (positive: worse than B's own pick), paired on the same items and seeds "
                   f"({', '.join(table.attrs['tests'])}), Holm-adjusted across the table's {table.attrs['comparisons']} "
                   f"comparisons; minimum detectable effect at this n: {table.attrs['mde']:.3f}. A transferred pick equal to "
                   "the own pick has regret 0 by construction (the same run).")
        caption += f"\n\nGrid ({TUNE_SPLIT} split, * = pick):\n\n" + render(grid_table(extra, metric), "md") + "\n\nSettings: " + \
            "; ".join(f"tmp-g{i} = {_settings_text(g)}" for i, g in enumerate(grid or TRANSFER_GRID))
    else:
        variants = axis_variants(axis, model_is_moe(base.model))
        reference = variants[-1].name
        table, metric = variant_table(base, variants, budget, metric, reference)
        caption = (f"Ablation '{axis}' of TMP on {base.model} ({base.suite}, split {base.split}, budget {budget}): {metric} "
                   f"with 95% bootstrap CI; Δ is paired on the same items and seeds ({', '.join(table.attrs['tests'])}), "
                   f"Holm-adjusted across the table's {len(variants) - 1} comparisons; minimum detectable effect at this n "
                   f"(80% power, 5% level): {table.attrs['mde']:.3f}. Prune fwd / bwd: denoiser forward-equivalents / "
                   "backward passes spent pruning (seconds). Calib error: the plan's relative output error on its "
                   "calibration inputs, measured on the pruned model (what TMP's search minimises).")
    out.mkdir(parents=True, exist_ok=True)
    md = f"{caption}\n\n{render(table, 'md')}\n"
    (out / "table.md").write_text(md)
    (out / "table.csv").write_text(render(table, "csv"))
    (out / "table.tex").write_text(render(table, "latex"))
    (out / "ablation.json").write_text(json.dumps({"axis": axis, "budget": budget, "metric": metric, "caption": caption,
                                                   "rows": table.to_dict(orient="records"), **({"picked": extra} if extra else {})},
                                                  indent=1, default=str) + "\n")
    return {"axis": axis, "table": table, "markdown": md, "metric": metric, "out": out, "picked": extra}


__all__ = [
    "AXES",
    "TRANSFER_GRID",
    "arch_transfer",
    "axis_variants",
    "grid_table",
    "model_is_moe",
    "run_ablation",
    "transfer_partners",
    "variant_table",
]
