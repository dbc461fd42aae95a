"""What TMP's measured search spends, per phase, with and without screening, on the trained references.

For each model, budget and variant (TMP's defaults, and ``screen_inputs=4``: probes on 4 of the 16
calibration inputs, every pass and the final state confirmed on all 16), TMP plans on the model's
default calibration, the plan is applied, and the pruned model is scored on the search's own inputs
(``measured_error``: the calibration error the search minimises, after surgery). One Markdown row per
plan: evaluations, states met again (scored once), forward-equivalents and their split by phase, the
measured error, and the ratio of forward-equivalents to the ``--before`` column when given.

    python benchmarks/tmp_search_cost.py --models tiny-dit tiny-moe tiny-hy3 --budgets 25% 50% \\
        --threads 1 --out reports/tmp-search/screening.md

``--before MODEL:BUDGET=FE`` (repeatable) names what the search spent before a change (e.g. the plans
of the session-7 sweeps, commit 9f8adb8), so the table prints the cut beside each row.
Runs on CPU; about a minute per plan on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VARIANTS = {"defaults": {}, "screen4": {"screen_inputs": 4}, "local": {"local_probes": True},
            "wprobe2": {"width_probes": 2}, "wprobe4": {"width_probes": 4}, "state": {"width_savings": "state"},
            "state-wprobe2": {"width_savings": "state", "width_probes": 2}, "best": {"width_savings": "best"},
            "best-wprobe2": {"width_savings": "best", "width_probes": 2}, "lazy": {"fill": "lazy"},
            "curves": {"fill": "curves"}}
PHASES = ("scorers", "teacher pass", "level 1", "level 2", "refine", "confirm", "fill", "final")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny-dit", "tiny-moe", "tiny-hy3"])
    ap.add_argument("--budgets", nargs="+", default=["25%", "50%"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--before", action="append", default=[], help="MODEL:BUDGET=FORWARD_EQUIVALENTS spent before")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    import torch

    from benchmarks._record import append_table
    from pruners.tmp import TMPPruner
    from tmpbench.loading import load_model
    from tmpbench.pruning.budget import Budget
    from tmpbench.pruning.families import unit_tree
    from tmpbench.pruning.runner import prune_generator

    torch.set_num_threads(args.threads)
    before = {}
    for item in args.before:
        key, _, value = item.partition("=")
        before[key] = float(value)
    header = ("| model | budget | variant | evaluations | repeated states | forward-equivalents "
              "| estimate (refine repeats - at most) | before "
              "| cut | " + " | ".join(PHASES) + " | calib error (measured) | search s |")
    rows = [header, "|" + "---|" * (header.count("|") - 1)]
    records = []
    for model in args.models:
        gen = load_model(model)
        for budget in args.budgets:
            for name in args.variants:
                start = time.perf_counter()
                result = prune_generator(gen, "tmp", budget, pruner_settings=VARIANTS[name] or None, progress=False)
                s = result.plan.settings["search"]
                fe = float(s["forward_equivalents"])
                was = before.get(f"{model}:{budget}")
                # what plan --estimate predicts for the same search (tree at the calibration size, same inputs)
                tree = unit_tree(gen.denoiser, size=Budget.parse(budget).resolution)
                est = TMPPruner(**VARIANTS[name]).estimate(tree, Budget.parse(budget), int(s["calib_inputs"]))
                rec = {"model": model, "budget": budget, "variant": name, "settings": VARIANTS[name],
                       "evaluations": s["evaluations"], "repeated_states": s.get("repeated_states"),
                       "forward_equivalents": fe, "phases": s.get("phases", {}), "measured_error": s.get("measured_error"),
                       "predicted_error": s.get("predicted_error"), "screen_inputs": s.get("screen_inputs"),
                       "calib_inputs": s.get("calib_inputs"), "rounds": s.get("tree", {}).get("rounds"),
                       "estimate": est, "before": was, "search_seconds": s.get("seconds"),
                       "total_seconds": round(time.perf_counter() - start, 1)}
                records.append(rec)
                phases = " | ".join(f"{rec['phases'].get(p, 0):,.0f}" for p in PHASES)
                rows.append(f"| {model} | {budget} | {name} | {rec['evaluations']} | {rec['repeated_states']} | {fe:,.0f} | "
                            f"{est['forward_equivalents_low']:,.0f}-{est['forward_equivalents']:,.0f} | "
                            f"{'-' if was is None else f'{was:,.0f}'} | {'-' if was is None else f'{was / fe:.1f}x'} | {phases} | "
                            f"{rec['measured_error']:.4g} | {rec['search_seconds']} |")
                print(rows[-1], flush=True)
    if args.out:
        append_table(args.out, rows, records, threads=args.threads, argv=argv)
    else:
        print("\n".join(rows))
    print(json.dumps({"plans": len(records)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
