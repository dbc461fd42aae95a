"""Each pruner's plan scored on TMP's own objective: the relative output error on the calibration inputs.

TMP's search minimises the relative output error ``E_t ||f(x_t) - f_S(x_t)||^2 / ||f(x_t)||^2`` on its
calibration inputs (docs/tmp.md). This prunes one model at one budget with each pruner named, on the
model's default calibration, and scores every physically pruned model on the same 16 inputs against the
same teacher outputs. It answers whether a pruner that beats TMP on held-out images also beats it on
TMP's objective (at 75% on the references it does not: the objective and the images disagree,
reports/evidence/README.md).

    python benchmarks/plan_calib_error.py --model tiny-dit --budget 75% --pruners tmp,best-of-n,block-influence,late-drop

Runs on CPU; TMP's plan takes a few minutes on one core.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--budget", required=True)
    ap.add_argument("--pruners", default="tmp,best-of-n,block-influence,late-drop")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    import torch

    from benchmarks._record import append_table
    from pruners.tmp import TMPPruner
    from tmpbench.loading import load_model
    from tmpbench.pruning.calibration import relative_output_error
    from tmpbench.pruning.recipes import default_calibration, model_defaults, model_name_of
    from tmpbench.pruning.runner import prune_generator

    torch.set_num_threads(args.threads)
    gen = load_model(args.model)
    calib = default_calibration(model_name_of(gen)).resolved(*model_defaults(gen)).collect(gen)
    inputs = calib.subset(TMPPruner.SETTINGS["max_calib_inputs"])  # the inputs TMP's search scores
    reference = inputs.outputs(gen.denoiser)
    rows = ["| model | budget | pruner | calib error (relative, 16 inputs) | decisions by policy | achieved params |",
            "|---|---|---|---|---|---|"]
    records = []
    for name in [p.strip() for p in args.pruners.split(",") if p.strip()]:
        result = prune_generator(gen, name, args.budget, progress=False, _collected=calib)
        err = relative_output_error(result.generator.denoiser, inputs, reference)
        policies: dict[str, int] = {}
        for d in result.plan.decisions:
            policies[d.policy] = policies.get(d.policy, 0) + 1
        text = ", ".join(f"{k} {v}" for k, v in sorted(policies.items()))
        rows.append(f"| {args.model} | {args.budget} | {name} | {err:.4g} | {text} | {result.achieved_params:,} |")
        records.append({"model": args.model, "budget": args.budget, "pruner": name, "calib_error": err,
                        "policies": policies, "achieved_params": result.achieved_params})
        print(rows[-1], flush=True)
    if args.out:
        append_table(args.out, rows, records, threads=args.threads, argv=argv)
    else:
        print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
