"""TMP against the compute-matched best-of-n baseline: does TMP's structure help, or only its compute?

For each model and budget, TMP plans with its default settings; then ``best-of-n`` plans with
``forward_budget`` set to the forward-equivalents TMP's plan recorded (``settings.search``), on the same
calibration set (the runner's default spec, checked identical). Both plans are cut, and the physically
pruned models are scored on the search's own calibration inputs (``measured_error``, the masked output
error the searches minimise). Prints one markdown row per pruner and budget.

    python benchmarks/matched_baseline.py --model tiny-dit --budgets 25% 50% --threads 1 --out reports/matched-baseline/tiny-dit.md

Runs on CPU; TMP's default settings take minutes per plan on one core, and best-of-n as long again.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HEADER = ("| model | budget | pruner | measured error | vs TMP | plans / evaluations | forward-equivalents | search s | "
          "policies | budget check |")


def row(model: str, budget: str, rec: dict) -> str:
    extra = f" (median {rec['median_error']:.4g}, uniform {rec['uniform_error']:.4g})" if rec["pruner"] == "best-of-n" else ""
    return (f"| {model} | {budget} | {rec['pruner']} | {rec['measured_error']:.6g}{extra} | {rec['vs_tmp']:.2f}x | "
            f"{rec['plans']} | {rec['forward_equivalents']:.0f} | {rec['search_seconds']:.1f} | {', '.join(rec['policies'])} | "
            f"{rec['relative_error']:+.3%} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a registered reference, e.g. tiny-dit or tiny-hy3")
    ap.add_argument("--budgets", nargs="+", default=["25%", "50%"])
    ap.add_argument("--seed", type=int, default=0, help="best-of-n's sampling seed")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="append the markdown rows (and a JSON record) to this file")
    args = ap.parse_args(argv)

    import torch
    from _record import append_table  # benchmarks/_record.py (this folder is on sys.path)

    from tmpbench.loading import load_model
    from tmpbench.pruning.runner import check_identical, prune_generator

    torch.set_num_threads(args.threads)
    gen = load_model(args.model)
    rows = [HEADER, "|" + "---|" * 10]
    print("\n".join(rows), flush=True)
    records = []
    for budget in args.budgets:
        results = {}
        tmp = prune_generator(gen, "tmp", budget, progress=False)
        spent = tmp.plan.settings["search"]["forward_equivalents"]
        results["tmp"] = tmp
        results["best-of-n"] = prune_generator(gen, "best-of-n", budget, pruner_settings={"forward_budget": spent},
                                               seed=args.seed, progress=False)
        check_identical(list(results.values()))  # one calibration spec
        tmp_error = tmp.plan.settings["search"]["measured_error"]
        for name, result in results.items():
            s = result.plan.settings["search"]
            rec = {
                "model": args.model, "budget": budget, "pruner": name,
                "measured_error": s["measured_error"], "predicted_error": s["predicted_error"],
                "vs_tmp": s["measured_error"] / tmp_error,
                "plans": s.get("plans_tried", s["evaluations"]) if name == "best-of-n" else s["evaluations"],
                "evaluations": s["evaluations"], "forward_equivalents": s["forward_equivalents"],
                "forward_budget": s.get("forward_budget"), "search_seconds": s["seconds"],
                "median_error": s.get("median_error"), "uniform_error": s.get("uniform_error"),
                "best_plan": s.get("best_plan"), "calib_inputs": s["calib_inputs"],
                "policies": sorted({d.policy for d in result.plan.decisions}),
                "relative_error": result.budget_report.relative_error,
                "calibration": result.calibration_identity.get("hash"),
            }
            records.append(rec)
            rows.append(row(args.model, budget, rec))
            print(rows[-1], flush=True)
    if args.out:
        append_table(args.out, rows, records, threads=args.threads, argv=argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
