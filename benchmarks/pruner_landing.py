"""Every pruner the model admits, at each budget, on the trained references: does it land and generate?

For each (model, pruner, budget) the prune runner plans and cuts with the model's default calibration
(edit-capable references mix shapes-edit instructions into it), then the pruned model generates one
image. Prints one markdown row per run: requested and achieved parameters, the relative budget error,
the policies the plan used, TMP's search evaluator, the pruning seconds by stage, and whether the pruned
model generated a finite image.

    python benchmarks/pruner_landing.py --models tiny-hy3 --budgets 25% 50% --threads 1 --out reports/landing/tiny-hy3.md
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny-dit", "tiny-moe", "tiny-hy3"])
    ap.add_argument("--budgets", nargs="+", default=["25%", "50%"])
    ap.add_argument("--pruners", nargs="*", help="default: every pruner the model admits")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from _record import append_table  # benchmarks/_record.py (this folder is on sys.path)

    from tmpbench.errors import TmpbenchError
    from tmpbench.loading import load_model
    from tmpbench.pruning.factory import pruner_list
    from tmpbench.pruning.families import model_family
    from tmpbench.pruning.runner import prune_generator

    torch.set_num_threads(args.threads)
    rows = ["| model | pruner | budget | requested | achieved | vs target | policies | evaluator | "
            "seconds (calib/plan/apply) | generates |", "|" + "---|" * 10]
    records = []
    for model in args.models:
        gen = load_model(model)
        family = model_family(gen.denoiser)
        names = args.pruners or [p["name"] for p in pruner_list() if family in p["families"]]
        for name in names:
            for budget in args.budgets:
                start = time.perf_counter()
                try:
                    r = prune_generator(gen, name, budget, progress=False)
                except TmpbenchError as exc:
                    row = f"| {model} | {name} | {budget} | - | - | - | - | - | - | refused: {str(exc)[:120]} |"
                    records.append({"model": model, "pruner": name, "budget": budget, "error": str(exc)})
                    rows.append(row)
                    print(row, flush=True)
                    continue
                image = np.asarray(r.generator.generate(["a photo of a red circle"], [0], 16, 1.0, 32)[0])
                ok = bool(np.isfinite(image).all() and image.std() > 0)
                s = r.seconds
                search = r.plan.settings.get("search", {})
                rep = r.budget_report
                policies = sorted({d.policy for d in r.plan.decisions})
                row = (f"| {model} | {name} | {budget} | {rep.target:,.0f} | {r.achieved_params:,} | {rep.relative_error:+.2%} | "
                       f"{', '.join(policies)} | {search.get('evaluator', '-')} | "
                       f"{s.get('calibration', 0):.0f}/{s.get('plan', 0):.0f}/{s.get('apply', 0):.0f} | {'yes' if ok else 'NO'} |")
                rows.append(row)
                print(row, flush=True)
                records.append({"model": model, "pruner": name, "budget": budget, "target": rep.target,
                                "achieved": r.achieved_params, "relative_error": rep.relative_error, "ok": rep.ok,
                                "policies": policies, "evaluator": search.get("evaluator"), "seconds": s,
                                "total_seconds": round(time.perf_counter() - start, 1), "generates": ok,
                                "calibration": r.calibration_identity.get("hash")})
    if args.out:
        append_table(args.out, rows, records, threads=args.threads, argv=argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
