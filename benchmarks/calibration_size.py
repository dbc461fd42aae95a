"""TMP on its default calibration against TMP on a 4x larger calibration with screened probes.

Session 8 found that TMP's plans fit their 16 calibration inputs (8 prompts) better than they fit
held-out prompts: a screened plan with the *lower* calibration error had far worse test images on
tiny-hy3 at 50% (reports/tmp-search/screening.md). This asks whether more calibration helps at about
the same search cost. A calibration input is one denoiser call, which carries every prompt of its mode
in one batch (the references' batch is 64), so 32 prompts make 16 calls of 16 samples where the
default makes 16 calls of 4. Arm "default" is TMP's defaults (8 calib prompts, probes on all 16 calls);
arm "calib32-screen4" calibrates on 32 calib-split prompts (half shapes-edit) and scores probes on 4 of
its 16 calls (4 x 16 samples: the default's probe cost in samples), confirming each pass and the final
state on all 16 calls (256 samples). Forward-equivalents count calls, so multiply the larger arm's by 4
to compare compute in samples. Each arm is one ``tmpbench sweep`` folder (same suite items, seeds, steps and teacher), evaluated on
the whole test split; the arms are paired on the same items and seeds (McNemar for GenEval, paired
bootstrap for PSNR to the teacher), Holm across every comparison of the run.

    python benchmarks/calibration_size.py --models tiny-moe tiny-hy3 --budgets 50% --out reports/tmp-search/calibration-size.md

Runs on CPU; several minutes per model and budget on one core.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._record import append_table  # noqa: E402
from tmpbench.experiments.sweep import SweepConfig, Variant, run_dir_name, run_sweep  # noqa: E402
from tmpbench.report.paired import fmt, paired, score  # noqa: E402
from tmpbench.report.stats import format_p, holm  # noqa: E402
from tmpbench.report.tables import format_cost, load_run  # noqa: E402

ARMS = {
    "default": (None, {}),
    "calib32-screen4": (32, {"screen_inputs": 4}),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny-moe", "tiny-hy3"])
    ap.add_argument("--budgets", nargs="+", default=["50%"])
    ap.add_argument("--metrics", default="geneval,psnr_teacher")
    ap.add_argument("--work", type=Path, default=Path("runs/calibration-size"), help="sweep folders (one per model and arm)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    results = []
    for model in args.models:
        runs = {}
        for arm, (prompts, settings) in ARMS.items():
            out = args.work / f"{model}-{arm}"
            cfg = SweepConfig(model=model, suite="shapes-t2i", variants=[Variant("tmp", "tmp", settings)], budgets=args.budgets,
                              out=out, calib_prompts=prompts, metrics=args.metrics, progress=False)
            run_sweep(cfg, report=False)
            runs[arm] = {b: load_run(out / run_dir_name("tmp", b)) for b in args.budgets}
        for budget in args.budgets:
            ref, run = runs["default"][budget], runs["calib32-screen4"][budget]
            for metric in metrics:
                t = paired(ref, run, metric)
                results.append({"model": model, "budget": budget, "metric": metric, "test": t,
                                "default": score(ref, metric), "larger": score(run, metric),
                                "cost": (format_cost(ref.pruning_cost), format_cost(run.pruning_cost)),
                                "calib_error": (ref.plan_search.get("measured_error"), run.plan_search.get("measured_error"))})
    adjusted = holm([r["test"]["p"] for r in results])
    header = ("| model | budget | metric | n | default | calib32-screen4 | Δ larger − default [95% CI] | test | p | p (Holm) | "
              "prune fwd / bwd (default / larger) | calib error (default on its 16 calls / larger on its 16) |")
    rows = [header, "|" + "---|" * 12]
    records = []
    for r, q in zip(results, adjusted):
        t = r["test"]
        e0, e1 = r["calib_error"]
        rows.append(f"| {r['model']} | {r['budget']} | {r['metric']} | {t['n']} | {fmt(r['default'][0], r['default'][1])} | "
                    f"{fmt(r['larger'][0], r['larger'][1])} | {fmt(t['diff'], t['ci'])} | {t['test']} | {format_p(t['p'])} | "
                    f"{format_p(q)} | {r['cost'][0]} / {r['cost'][1]} | {e0:.4g} / {e1:.4g} |")
        records.append({"model": r["model"], "budget": r["budget"], "metric": r["metric"], "n": t["n"], "diff": t["diff"],
                        "ci": t["ci"], "p": t["p"], "p_holm": q, "default": r["default"][:2], "larger": r["larger"][:2],
                        "cost": r["cost"], "calib_error": r["calib_error"]})
    print("\n".join(rows))
    if args.out:
        append_table(args.out, rows, records, threads=args.threads, argv=argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
