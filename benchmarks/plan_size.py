"""Plan JSON sizes: format version 1 (kept ids listed), version 2 (range strings only) and what
``Plan.save`` writes now (each keep in its shorter form: range string or Rice-coded id set, version 3
when any decision is coded).

For each (model, pruner, budget) the full-size model is planned on the meta device (data-free, as
``tmpbench plan --meta``) and the Plan is written each way: ``plan.json`` as ``Plan.save`` writes it
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


def cli_json(outcome, version: int | None) -> str:
    """What ``tmpbench plan --meta --json`` prints, with the decisions in plan format ``version`` (None:
    the canonical one, as the CLI writes it now)."""
    data = outcome.to_dict()
    decisions = outcome.plan.to_dict(version)
    data["decisions"] = decisions["decisions"]
    data["plan_version"] = decisions["version"]
    if version == 1:
        data.pop("plan_version")  # the version-1 CLI had no such key
    data["meta"] = True
    data["data_free"] = True
    return json.dumps(data, indent=2, default=str) + "\n"


def measure(model: str, pruner: str, budget: str) -> dict:
    from tmpbench.models.counting import build_meta
    from tmpbench.pruning.plan import Plan
    from tmpbench.pruning.runner import plan_model

    start = time.perf_counter()
    outcome = plan_model(build_meta(model), pruner, budget, model_name=model)
    outcome.report.require()
    seconds = time.perf_counter() - start
    plan = outcome.plan
    keeps = [d.keep for d in plan.decisions if d.keep is not None]
    ranges = sum(1 + sum(b != a + 1 for a, b in zip(k, k[1:])) for k in keeps if k)
    start = time.perf_counter()
    text = plan.to_json() + "\n"
    write_seconds = time.perf_counter() - start
    start = time.perf_counter()
    assert Plan.from_json(text) == plan
    read_seconds = time.perf_counter() - start
    data = json.loads(text)
    # the alternative considered (module docstring of plan.py): per decision the shorter of its ranges and
    # "b64:" + a base64 bitmap of one bit per unit; measured here, not written
    v2 = plan.to_dict(2)["decisions"]
    bitmap_saving = sum(max(0, len(out["keep"]) - len("b64:") - _bitmap_chars(d.original_count))
                        for d, out in zip(plan.decisions, v2) if d.keep is not None and d.original_count is not None)
    return {
        "model": model, "pruner": pruner, "budget": budget, "decisions": len(plan.decisions),
        "kept_ids": sum(len(k) for k in keeps), "ranges": ranges, "plan_seconds": round(seconds, 1),
        "coded": sum(1 for d in data["decisions"] if str(d.get("keep") or "").startswith("rice")),
        "version": data["version"], "write_seconds": round(write_seconds, 2), "read_seconds": round(read_seconds, 2),
        "plan_v1": len((plan.to_json(version=1) + "\n").encode()),
        "plan_v2": len((plan.to_json(version=2) + "\n").encode()), "plan_now": len(text.encode()),
        "plan_bitmap": len((plan.to_json(version=2) + "\n").encode()) - bitmap_saving,
        "cli_v1": len(cli_json(outcome, 1).encode()), "cli_v2": len(cli_json(outcome, 2).encode()),
        "cli_now": len(cli_json(outcome, None).encode()),
    }


def _bitmap_chars(count: int) -> int:
    """Characters of a padded base64 bitmap of ``count`` bits."""
    return 4 * -(-((count + 7) // 8) // 3)


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def table(records: list[dict]) -> list[str]:
    rows = ["| model | pruner | budget | decisions | kept ids | ranges | coded | plan.json v1 | plan.json v2 (ranges) | "
            "plan.json ranges or bitmaps (not written) | plan.json now | `plan --json` v1 | `plan --json` v2 | "
            "`plan --json` now | v1/now |", "|" + "---|" * 15]
    for r in records:
        rows.append(f"| {r['model']} | {r['pruner']} | {r['budget']} | {r['decisions']} | {r['kept_ids']:,} | "
                    f"{r['ranges']:,} | {r['coded']} | {_size(r['plan_v1'])} | {_size(r['plan_v2'])} | {_size(r['plan_bitmap'])} | "
                    f"{_size(r['plan_now'])} (v{r['version']}) | {_size(r['cli_v1'])} | {_size(r['cli_v2'])} | "
                    f"{_size(r['cli_now'])} | {r['plan_v1'] / r['plan_now']:.0f}x |")
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
            "# Plan JSON size: format 1 (ids listed), format 2 (inclusive range strings), and now (ranges or Rice-coded id sets)",
            "",
            f"Made by `{command}` ({platform.machine()}, Python {platform.python_version()}); each row plans the",
            "full-size model on the meta device, data-free, as these commands do:",
            "",
            *[f"    python -m tmpbench plan --model {r['model']} --pruner {r['pruner']} --budget {r['budget']} --meta --json"
              for r in records],
            "",
            "`plan.json` is what `Plan.save` writes (`to_json(version=1|2)` or, \"now\", `to_json()`, plus a newline);",
            "`plan --json` is the CLI's output, which embeds the decisions in the same format. `ranges` counts the",
            "maximal runs of consecutive kept ids over all decisions: the version-2 size grows with it, not with the",
            "ids kept. `coded` counts the decisions whose keep is written as a Rice-coded id set (shorter than its",
            "ranges); \"now\" is version 2 when none is, version 3 otherwise (`tmpbench/pruning/plan.py`). \"ranges or",
            "bitmaps\" is the alternative that was measured and not adopted: per decision the shorter of its ranges and",
            "`\"b64:\"` + a base64 bitmap of one bit per unit.",
            "",
            *rows,
            "",
            "Writing and reading back the plan.json \"now\" took "
            + ", ".join(f"{r['write_seconds']} s / {r['read_seconds']} s ({r['model']} {r['pruner']})" for r in records) + ".",
            "",
        ]
        args.out.write_text("\n".join(lines))
        args.out.with_suffix(".json").write_text(json.dumps(records, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
