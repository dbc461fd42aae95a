"""T2I-only against mixed (T2I + edit) calibration for one pruner and budget, scored on T2I and editing.

For each model: the pruner prunes it twice, once calibrated on shapes-t2i prompts only and once on the
model's default mix (half shapes-edit instructions). Each pruned model runs shapes-t2i and shapes-edit
on ``--limit + n_prompts`` items; the items calibration used (the first items of each suite, as
:class:`~tmpbench.pruning.recipes.CalibrationSpec` draws them) are dropped before scoring, so every
number is on held-out items. Per suite it prints: n, each arm's mean with a 95% bootstrap CI, the
paired difference (mixed - T2I-only) with its 95% CI, and the paired test (exact McNemar for 0/1
outcomes, paired bootstrap otherwise), with Holm's correction over every comparison of the run. A
difference whose corrected p >= 0.05 is reported as a tie.

    python benchmarks/calibration_mix.py --models tiny-dit tiny-hy3 --budget 25% --limit 200 --out reports/calibration-mix
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

METRICS = {"shapes-t2i": ["geneval"], "shapes-edit": ["edit_success", "preservation_psnr"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny-dit", "tiny-hy3"])
    ap.add_argument("--pruner", default="tmp")
    ap.add_argument("--budget", default="25%")
    ap.add_argument("--limit", type=int, default=200, help="held-out items per suite")
    ap.add_argument("--calib-prompts", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    import dataclasses

    import numpy as np
    import torch

    from tmpbench.pruning.recipes import default_calibration
    from tmpbench.report.stats import bootstrap_ci, holm, is_binary, mcnemar_exact, paired_bootstrap
    from tmpbench.run import RunConfig, run_benchmark
    from tmpbench.suites.core import load_suite

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    rows, records, start = [], [], time.perf_counter()
    for model in args.models:
        base = dataclasses.replace(default_calibration(model), n_prompts=args.calib_prompts)
        arms = {"t2i-only": dataclasses.replace(base, mix=None),
                "mixed": dataclasses.replace(base, mix=(("edit", 0.5), ("t2i", 0.5)))}
        # the items calibration draws (first items of each suite): excluded from every score below
        held = {}
        for suite_name, task in (("shapes-t2i", "t2i"), ("shapes-edit", "edit")):
            used = set()
            for spec in arms.values():
                n = spec.counts[task]
                if n:
                    used |= {it.id for it in load_suite(spec.suite if task == "t2i" else spec.edit_suite, limit=n).items}
            held[suite_name] = used
        for suite_name, metrics in METRICS.items():
            values = {}
            for arm, spec in arms.items():
                out = args.out / model / suite_name / arm
                cfg = RunConfig(suite=suite_name, model=f"{model}-{args.budget}", pruner=args.pruner, out=out,
                                limit=args.limit + len(held[suite_name]), calibration=spec, metrics=",".join(metrics),
                                prune_cache=args.out / "pruned-cache", progress=False, argv=["benchmarks/calibration_mix.py"])
                run_benchmark(cfg)
                samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
                values[arm] = {f"{s['id']}#{s['seed']}": s for s in samples if s["id"] not in held[suite_name]}
            keys = sorted(set(values["t2i-only"]) & set(values["mixed"]))
            for metric in metrics:
                a = [float(values["t2i-only"][k]["metrics"][metric]) for k in keys]
                b = [float(values["mixed"][k]["metrics"][metric]) for k in keys]
                if is_binary(a + b):
                    test = mcnemar_exact(a, b)
                    p, name = test.p_value, f"McNemar (lost {test.lost} / gained {test.gained})"
                else:
                    # two-sided: twice the smaller bootstrap share on either side of 0
                    up, down = paired_bootstrap(a, b, higher_is_better=True), paired_bootstrap(a, b, higher_is_better=False)
                    p, name = min(1.0, 2 * min(up.p_worse, down.p_worse)), "paired bootstrap"
                diff = paired_bootstrap(a, b)
                records.append({
                    "model": model, "suite": suite_name, "metric": metric, "n": len(keys),
                    "excluded_calibration_items": len(held[suite_name]),
                    "t2i_only": [float(np.mean(a)), bootstrap_ci(a, None, False)[1]],
                    "mixed": [float(np.mean(b)), bootstrap_ci(b, None, False)[1]],
                    "diff": diff.mean_diff, "diff_ci95": diff.ci95, "test": name, "p": p,
                    "calibration": {arm: spec.hash for arm, spec in arms.items()},
                })
    adjusted = holm([r["p"] for r in records])
    header = ("| model | suite | metric | n held out | T2I-only [95% CI] | mixed [95% CI] | mixed - T2I-only [95% CI] | test | "
              "p | p (Holm) | verdict |")
    rows = [header, "|" + "---|" * 11]
    for r, p_adj in zip(records, adjusted):
        r["p_holm"] = p_adj
        verdict = "tie" if p_adj >= 0.05 else ("mixed better" if r["diff"] > 0 else "T2I-only better")
        r["verdict"] = verdict
        ci = lambda v: f"{v[0]:.3f} [{v[1][0]:.3f}, {v[1][1]:.3f}]"  # noqa: E731
        dci = r["diff_ci95"] or (r["diff"], r["diff"])
        rows.append(f"| {r['model']} | {r['suite']} | {r['metric']} | {r['n']} | {ci(r['t2i_only'])} | {ci(r['mixed'])} | "
                    f"{r['diff']:+.3f} [{dci[0]:+.3f}, {dci[1]:+.3f}] | {r['test']} | {r['p']:.3g} | {p_adj:.3g} | {verdict} |")
    text = "\n".join(rows)
    print(text)
    meta = {"torch": torch.__version__, "python": platform.python_version(), "threads": args.threads,
            "pruner": args.pruner, "budget": args.budget, "seconds": round(time.perf_counter() - start, 1)}
    (args.out / "table.md").write_text(text + "\n\n<!-- " + json.dumps({"meta": meta, "records": records}) + " -->\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
