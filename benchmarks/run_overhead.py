"""Share of `tmpbench run` wall time spent in metrics (goal: <= 10%).

Runs ``tmpbench run --suite shapes-t2i --model tiny-dit --limit 32`` (in-process, fresh output folder)
and reads the timings that results.json records: generation, scoring (every quality metric) and the
efficiency measurement (FLOPs call, plus latency calls when a run makes fewer than two generator
calls). Prints one JSON object.

    python benchmarks/run_overhead.py [--model-path DIR] [--limit 32] [--steps N] [--batch-size 8]

Without --model-path it uses the committed trained tiny-dit (tmpbench/assets/tiny-dit).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-dit")
    ap.add_argument("--model-path", default=None)
    ap.add_argument("--limit", type=int, default=32)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tmpbench.run import RunConfig, run_benchmark

    out = Path(args.out or tempfile.mkdtemp(prefix="tmpbench-overhead-"))
    t0 = time.perf_counter()
    res = run_benchmark(
        RunConfig(suite="shapes-t2i", model=args.model, model_path=args.model_path, limit=args.limit, steps=args.steps,
                  batch_size=args.batch_size, out=out, progress=False, argv=sys.argv)
    )
    wall = time.perf_counter() - t0
    t = res["timings"]
    eff_s = t["per_metric_s"].get("efficiency", 0.0)
    report = {
        "wall_s": round(wall, 2),
        "results_total_s": round(t["total_s"], 2),
        "generate_s": round(t["generate_s"], 2),
        "load_s": round(t["load_s"], 2),
        "metrics_s": round(t["score_s"], 2),
        "efficiency_s": round(eff_s, 2),
        "metric_share": round(t["score_s"] / t["total_s"], 4),
        "metric_share_with_efficiency": round((t["score_s"] + eff_s) / t["total_s"], 4),
        "per_metric_s": {k: round(v, 3) for k, v in t["per_metric_s"].items()},
        "goal": "metric_share <= 0.10",
        "threads": res["run"]["threads_per_process"],
        "samples": res["generation"]["samples"],
        "out": str(out),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
