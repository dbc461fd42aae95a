"""What TMP's search predicts against what surgery delivers, on the trained references.

For each model and budget, TMP plans with its measured search (default settings unless --fast), the
plan is applied, and :func:`tmpbench.pruning.runner.check_prediction` scores the physically pruned
model on the search's own calibration inputs. Prints one markdown row per run: predicted and measured
relative output error, their relative gap, the search's evaluations and seconds, and the budget check.

    python benchmarks/tmp_prediction.py --model tiny-dit --budgets 25% 50% --threads 1 --out reports/tmp-prediction-tiny-dit.md

Runs on CPU; the default TMP settings take minutes per plan on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a registered reference, e.g. tiny-dit or tiny-moe")
    ap.add_argument("--budgets", nargs="+", default=["25%", "50%"])
    ap.add_argument("--set", action="append", default=[], help="TMP setting key=value (JSON values), repeatable")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="append the markdown rows (and a JSON record) to this file")
    args = ap.parse_args(argv)

    import torch
    from _record import append_table  # benchmarks/_record.py (this folder is on sys.path)

    from tmpbench.loading import load_model
    from tmpbench.pruning.runner import prune_generator

    torch.set_num_threads(args.threads)
    settings = {}
    for kv in args.set:
        k, _, v = kv.partition("=")
        try:
            settings[k] = json.loads(v)
        except ValueError:
            settings[k] = v
    gen = load_model(args.model)
    header = ("| model | budget | search | settings | policies | predicted error | measured error | gap (rel.) | evaluations | "
              "forward-equivalents | search s | budget check |")
    rows = [header, "|" + "---|" * 12]
    records = []
    for budget in args.budgets:
        start = time.perf_counter()
        result = prune_generator(gen, "tmp", budget, pruner_settings=settings or None, progress=False)
        search = result.plan.settings["search"]
        policies = sorted({d.policy for d in result.plan.decisions})
        record = {
            "model": args.model, "budget": budget, "settings": settings, "policies": policies,
            "predicted_error": search.get("predicted_error"), "measured_error": search.get("measured_error"),
            "prediction_gap": search.get("prediction_gap"), "evaluations": search.get("evaluations"),
            "search": search.get("search"), "forward_equivalents": search.get("forward_equivalents"),
            "search_seconds": search.get("seconds"), "total_seconds": round(time.perf_counter() - start, 1),
            "budget_check": result.budget_report.message, "relative_error": result.budget_report.relative_error,
        }
        records.append(record)
        row = (f"| {args.model} | {budget} | {record['search']} | {json.dumps(settings) if settings else 'defaults'} | "
               f"{', '.join(policies)} | {record['predicted_error']:.6g} | {record['measured_error']:.6g} | "
               f"{record['prediction_gap']:.2e} | {record['evaluations']} | {record['forward_equivalents']:.0f} | "
               f"{record['search_seconds']} | {record['relative_error']:+.3%} |")
        rows.append(row)
        print(row, flush=True)
    if args.out:
        append_table(args.out, rows, records, threads=args.threads, argv=argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
