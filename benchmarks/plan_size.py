"""Plan JSON sizes, format version 1 (kept ids listed) against version 2 (kept ids as range strings).

For each (model, pruner, budget) the full-size model is planned on the meta device (data-free, as
``tmpbench plan --meta``) and the Plan is written both ways: ``plan.json`` as ``Plan.save`` writes it
(``to_json(version=...)``) and the ``tmpbench plan --meta --json`` output that embeds its decisions.
Prints a markdown table; ``--out`` writes it with the command lines that made it.

    python benchmarks/plan_size.py --out reports/plan-format/sizes.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_CASES = ["zimage:tmp:4b", "zimage:magnitude:4b", "hunyuanimage3:tmp:20b", "hunyuanimage3:magnitude:20b",
                 "hunyuanimage3:random:20b"]


def cli_json(outcome, version: int) -> str:
    """What ``tmpbench plan --meta --json`` prints, with the decisions in plan format ``version``."""
    data = outcome.to_dict()
    data["decisions"] = outcome.plan.to_dict(version)["decisions"]
    if version == 1:
        data.pop("plan_version")  # the version-1 CLI had no such key
    data["meta"] = True
    data["data_free"] = True
    return json.dumps(data, indent=2, default=str) + "\n"


def measure(model: str, pruner: str, budget: str) -> dict:
    from tmpbench.models.counting import build_meta
    from tmpbench.pruning.runner import plan_model

    start = time.perf_counter()
    outcome = plan_model(build_meta(model), pruner, budget, model_name=model)
    outcome.report.require()
    seconds = time.perf_counter() - start
    plan = outcome.plan
    keeps = [d.keep for d in plan.decisions if d.keep is not None]
    v2_text = plan.to_json() + "\n"
    ranges = sum(1 + sum(b != a + 1 for a, b in zip(k, k[1:])) for k in keeps if k)
    return {
        "model": model, "pruner": pruner, "budget": budget, "decisions": len(plan.decisions),
        "kept_ids": sum(len(k) for k in keeps), "ranges": ranges, "plan_seconds": round(seconds, 1),
        "plan_v1": len((plan.to_json(version=1) + "\n").encode()), "plan_v2": len(v2_text.encode()),
        "cli_v1": len(cli_json(outcome, 1).encode()), "cli_v2": len(cli_json(outcome, 2).encode()),
    }


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def table(records: list[dict]) -> list[str]:
    rows = ["| model | pruner | budget | decisions | kept ids | ranges | plan.json v1 | plan.json v2 | "
            "`plan --json` v1 | `plan --json` v2 | v1/v2 |", "|" + "---|" * 11]
    for r in records:
        rows.append(f"| {r['model']} | {r['pruner']} | {r['budget']} | {r['decisions']} | {r['kept_ids']:,} | "
                    f"{r['ranges']:,} | {_size(r['plan_v1'])} | {_size(r['plan_v2'])} | {_size(r['cli_v1'])} | "
                    f"{_size(r['cli_v2'])} | {r['plan_v1'] / r['plan_v2']:.0f}x |")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="model:pruner:budget, planned with --meta")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write the markdown report here (and a .json of the numbers beside it)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    records = []
    for case in args.cases:
        model, pruner, budget = case.split(":")
        records.append(measure(model, pruner, budget))
        print(table(records)[-1], flush=True)
    rows = table(records)
    print("\n".join(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = "python benchmarks/plan_size.py " + " ".join(sys.argv[1:] if argv is None else argv)
        lines = [
            "# Plan JSON size: format 1 (ids listed) vs format 2 (inclusive range strings)",
            "",
            f"Made by `{command}` ({platform.machine()}, Python {platform.python_version()}); each row plans the",
            "full-size model on the meta device, data-free, as these commands do:",
            "",
            *[f"    python -m tmpbench plan --model {r['model']} --pruner {r['pruner']} --budget {r['budget']} --meta --json"
              for r in records],
            "",
            "`plan.json` is what `Plan.save` writes (`to_json(version=1|2)` plus a newline); `plan --json` is the",
            "CLI's output, which embeds the decisions in the same format. `ranges` counts the maximal runs of",
            "consecutive kept ids over all decisions: the version-2 size grows with it, not with the ids kept.",
            "",
            *rows,
            "",
        ]
        args.out.write_text("\n".join(lines))
        args.out.with_suffix(".json").write_text(json.dumps(records, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
