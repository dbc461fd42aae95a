"""Does a cheaper TMP search lose held-out quality, or did one calibration draw? Run a search variant and
TMP's default on several disjoint calibration draws and test the difference over draws and test items.

Session 8 measured screening (``screen_inputs=4``) on one calibration draw, the first 8 calib-split items
(``reports/tmp-search/screening.md``): 3.1-4.5x fewer forward-equivalents, ties at 25%, losses on tiny-moe
and tiny-hy3 at 50%. A plan is chosen on 16 denoiser calls from 8 prompts, so which prompts those were is
itself a source of variance that a test paired over test items alone does not see. Here each cell is
planned on ``--draws`` disjoint draws (``tmpbench prune --calib-draw K``), every plan is evaluated on the
whole test split (478 shapes-t2i prompts x 2 seeds), and per cell:

* **per draw**: the variant minus the default on the same items and seeds (McNemar for GenEval, paired
  bootstrap for PSNR to the teacher), as session 8 did for draw 0;
* **over draws**: for each test prompt, the mean over draws and seeds of variant minus default, bootstrapped
  over prompts (a clustered paired bootstrap: a prompt's samples move together), two-sided p, Holm across
  the cells of a metric. "tie" when the adjusted p is 0.05 or more;
* **the default against itself**: each draw's default minus draw 0's default (how far the search's own plan
  moves when only its calibration items change), with the same paired test.

Usage (the runs go to ``--workdir``; existing ones are reused, so a second call only reports)::

    python benchmarks/calibration_draws.py --cells tiny-moe:50 tiny-hy3:50 tiny-moe:25 tiny-hy3:25 tiny-dit:25 tiny-dit:50 \\
        --draws 0 1 2 --variant screen4 --set screen_inputs=4 --workdir runs/calib-draws \\
        --out reports/tmp-search/calibration-draws.md

Each run is ``tmpbench prune --model M --pruner tmp --budget B% --calib-draw K [--set ...]`` then
``tmpbench run --model DIR --suite shapes-t2i --split test --seeds 2`` (CPU, one thread each: about 5
minutes a run on the tiny references).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

METRICS = ("geneval", "psnr_teacher")


def run_dir(workdir: Path, model: str, budget: str, draw: int, variant: str) -> Path:
    return workdir / f"{model}-{budget}pct" / f"draw{draw}-{variant}"


def ensure_run(workdir: Path, model: str, budget: str, draw: int, variant: str, settings: list[str]) -> Path:
    """Prune and evaluate one (cell, draw, variant) unless its samples exist already."""
    d = run_dir(workdir, model, budget, draw, variant)
    d.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "tmpbench"]
    if not (d / "pruned" / "plan.json").is_file():
        sets = [a for s in settings for a in ("--set", s)]
        subprocess.run([*cli, "prune", "--model", model, "--pruner", "tmp", "--budget", f"{budget}%", "--calib-draw", str(draw),
                        *sets, "--out", str(d / "pruned"), "--quiet"], check=True)
    if not (d / "run" / "samples.jsonl").is_file():
        subprocess.run([*cli, "run", "--model", str(d / "pruned"), "--suite", "shapes-t2i", "--split", "test", "--seeds", "2",
                        "--out", str(d / "run"), "--quiet"], check=True)
    return d


def load(d: Path) -> dict[str, Any]:
    """Per-sample metrics keyed by (item id, sample), and what the prune spent and achieved."""
    samples: dict[tuple[str, int], dict[str, float]] = {}
    for line in (d / "run" / "samples.jsonl").read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            samples[(rec["id"], int(rec["sample"]))] = rec["metrics"]
    pruned = json.loads((d / "pruned" / "pruned.json").read_text())
    plan = json.loads((d / "pruned" / "plan.json").read_text())
    report = pruned["budget_report"]
    return {"samples": samples, "fwd_eq": pruned["pruning_cost"]["total"].get("forward_equivalents"),
            "achieved": (report["achieved"] - report["target"]) / report["target"], "removed": 1 - report["achieved"] / report["original"],
            "calib_error": plan["settings"]["search"].get("measured_error"),
            "calib_items": pruned["calibration"].get("item_ids")}


def per_item(run: dict[str, Any], metric: str, keys: list[tuple[str, int]]) -> np.ndarray:
    return np.array([run["samples"][k][metric] for k in keys], dtype=np.float64)


def two_sided(base: np.ndarray, cand: np.ndarray) -> tuple[float, tuple[float, float] | None, float]:
    """Mean of cand - base, its 95% bootstrap CI (resampling the paired rows) and a two-sided p."""
    from tmpbench.report.stats import paired_bootstrap

    up, down = paired_bootstrap(base, cand, higher_is_better=True), paired_bootstrap(base, cand, higher_is_better=False)
    return up.mean_diff, up.ci95, min(1.0, 2 * min(up.p_worse, down.p_worse))


def per_draw_test(base: np.ndarray, cand: np.ndarray, metric: str) -> tuple[float, tuple[float, float] | None, float]:
    """The session-8 test of one draw: McNemar for 0/1 GenEval, the paired bootstrap for PSNR."""
    mean, ci, p = two_sided(base, cand)
    if metric == "geneval":
        from tmpbench.report.stats import mcnemar_exact

        p = mcnemar_exact(base, cand).p_value
    return mean, ci, p


def fmt(mean: float, ci: tuple[float, float] | None, digits: int) -> str:
    if ci is None:
        return f"{mean:+.{digits}f}"
    return f"{mean:+.{digits}f} [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]"


def fmt_p(p: float) -> str:
    from tmpbench.report.stats import format_p

    return format_p(p)


def verdict(ci: tuple[float, float] | None, p_adj: float) -> str:
    if p_adj >= 0.05 or ci is None:
        return "tie"
    return "variant better" if ci[0] > 0 else "variant worse"


def report(cells: list[tuple[str, str]], draws: list[int], variant: str, settings: list[str],
           workdir: Path) -> tuple[list[str], list[dict]]:
    from tmpbench.report.stats import holm

    rows: list[str] = []
    records: list[dict] = []
    pooled: dict[str, list[tuple[int, float, tuple | None, float]]] = {m: [] for m in METRICS}
    data = {}
    for model, budget in cells:
        runs = {(k, v): load(run_dir(workdir, model, budget, k, v)) for k in draws for v in ("default", variant)}
        keys = sorted(set.intersection(*(set(r["samples"]) for r in runs.values())))
        items = sorted({k[0] for k in keys})
        data[(model, budget)] = (runs, keys, items)
        seeds_of: dict[str, list[int]] = {}
        for i, s in keys:
            seeds_of.setdefault(i, []).append(s)
        for metric in METRICS:
            # item means over draws and seeds of variant - default: the clustered paired bootstrap's rows
            base, cand = (np.array([np.mean([runs[(k, v)]["samples"][(i, s)][metric] for k in draws for s in seeds_of[i]])
                                    for i in items]) for v in ("default", variant))
            mean, ci, p = two_sided(base, cand)
            pooled[metric].append((len(items), mean, ci, p))
    adjusted = {m: holm([x[3] for x in pooled[m]]) for m in METRICS}

    rows += [f"### {variant} ({', '.join(settings)}) against TMP's default, over {len(draws)} calibration draws", "",
             "Over draws: per test prompt, the mean over draws x 2 seeds of variant minus default, bootstrapped over the "
             f"prompts; two-sided p, Holm across the {len(cells)} cells of each metric.", "",
             "| model | budget | prompts | fwd-eq default / variant (mean over draws) | GenEval Δ over draws [95% CI], Holm p | "
             "PSNR Δ dB over draws [95% CI], Holm p | verdict GenEval / PSNR |",
             "|---|---|---|---|---|---|---|"]
    for c, (model, budget) in enumerate(cells):
        runs, keys, items = data[(model, budget)]
        fe = [np.mean([runs[(k, v)]["fwd_eq"] for k in draws]) for v in ("default", variant)]
        g, ps = pooled["geneval"][c], pooled["psnr_teacher"][c]
        pg, pp = adjusted["geneval"][c], adjusted["psnr_teacher"][c]
        rows.append(f"| {model} | {budget}% | {len(items)} | {fe[0]:,.0f} / {fe[1]:,.0f} ({fe[0] / fe[1]:.1f}x) | "
                    f"{fmt(g[1], g[2], 3)}, {fmt_p(pg)} | {fmt(ps[1], ps[2], 2)}, {fmt_p(pp)} | "
                    f"{verdict(g[2], pg)} / {verdict(ps[2], pp)} |")
    rows += ["", "### Per draw", "",
             "Each draw's variant minus default on the same 956 samples (McNemar for GenEval, paired bootstrap for PSNR; "
             "unadjusted p), each default minus draw 0's default (the search's own spread when only its calibration items "
             "change), what each plan spent and achieved, and its error on its own calibration inputs.", "",
             "| model | budget | draw | GenEval default / variant | PSNR default / variant dB | GenEval Δ variant [95% CI], p | "
             "PSNR Δ variant dB [95% CI], p | default − draw-0 default: GenEval, PSNR dB | fwd-eq default / variant | "
             "achieved vs target default / variant | calib error default / variant |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for model, budget in cells:
        runs, keys, items = data[(model, budget)]
        for k in draws:
            base, cand = runs[(k, "default")], runs[(k, variant)]
            rec: dict[str, Any] = {"model": model, "budget": budget, "draw": k, "variant": variant, "settings": settings,
                                   "n": len(keys), "calib_items": {"default": base["calib_items"], variant: cand["calib_items"]}}
            cells_txt = []
            for metric, digits in (("geneval", 3), ("psnr_teacher", 2)):
                b, v = per_item(base, metric, keys), per_item(cand, metric, keys)
                mean, ci, p = per_draw_test(b, v, metric)
                rec[metric] = {"default": float(b.mean()), variant: float(v.mean()), "delta": mean, "ci": ci, "p": p}
                cells_txt.append((f"{b.mean():.3f} / {v.mean():.3f}" if digits == 3 else f"{b.mean():.2f} / {v.mean():.2f}",
                                  f"{fmt(mean, ci, digits)}, {fmt_p(p)}"))
            if k == draws[0]:
                spread = "(reference)"
            else:
                ref = runs[(draws[0], "default")]
                sg = per_draw_test(per_item(ref, "geneval", keys), per_item(base, "geneval", keys), "geneval")
                sp = per_draw_test(per_item(ref, "psnr_teacher", keys), per_item(base, "psnr_teacher", keys), "psnr_teacher")
                rec["default_vs_draw0"] = {"geneval": sg, "psnr_teacher": sp}
                spread = f"{fmt(sg[0], sg[1], 3)}, p {fmt_p(sg[2])}; {fmt(sp[0], sp[1], 2)}, p {fmt_p(sp[2])}"
            rec.update(fwd_eq={"default": base["fwd_eq"], variant: cand["fwd_eq"]},
                       achieved={"default": base["achieved"], variant: cand["achieved"]},
                       calib_error={"default": base["calib_error"], variant: cand["calib_error"]})
            rows.append(f"| {model} | {budget}% | {k} | {cells_txt[0][0]} | {cells_txt[1][0]} | {cells_txt[0][1]} | {cells_txt[1][1]} | "
                        f"{spread} | {base['fwd_eq']:,.0f} / {cand['fwd_eq']:,.0f} | {base['achieved']:+.2%} / {cand['achieved']:+.2%} | "
                        f"{base['calib_error']:.4g} / {cand['calib_error']:.4g} |")
            records.append(rec)
    for c, (model, budget) in enumerate(cells):
        records.append({"model": model, "budget": budget, "pooled": {m: {"prompts": pooled[m][c][0], "delta": pooled[m][c][1],
                                                                          "ci": pooled[m][c][2], "p": pooled[m][c][3],
                                                                          "p_holm": adjusted[m][c]} for m in METRICS}})
    return rows, records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", nargs="+", required=True, help="MODEL:BUDGET_PERCENT, e.g. tiny-moe:50")
    ap.add_argument("--draws", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--variant", default="screen4", help="name of the variant's runs")
    ap.add_argument("--set", dest="settings", action="append", default=[], help="the variant's TMP setting key=value")
    ap.add_argument("--workdir", type=Path, default=Path("runs/calib-draws"))
    ap.add_argument("--report-only", action="store_true", help="only report; every run must exist")
    ap.add_argument("--out", type=Path, help="append the tables to this Markdown file")
    args = ap.parse_args(argv)
    cells = [tuple(c.split(":")) for c in args.cells]
    if not args.report_only:
        for model, budget in cells:
            for k in args.draws:
                ensure_run(args.workdir, model, budget, k, "default", [])
                ensure_run(args.workdir, model, budget, k, args.variant, args.settings)
    rows, records = report(cells, args.draws, args.variant, args.settings, args.workdir)
    print("\n".join(rows))
    if args.out:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _record import append_table

        append_table(args.out, rows, records, threads=int(os.environ.get("OMP_NUM_THREADS", "0") or 0), argv=argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
