"""Score a ShapesWorld reference model (a training checkpoint or an exported folder) on the suites.

    python benchmarks/eval_reference.py --ckpt .cache/train/tiny-dit/checkpoint.pt --limit 120
    python benchmarks/eval_reference.py --model-dir tmpbench/assets/tiny-dit            # full suites

Prints GenEval-style accuracy per tag on ``shapes-t2i`` and edit success per type on
``shapes-edit``, with seconds per image, and writes the numbers as JSON with --json-out.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from suites.shapes import render_source
from tmpbench.models.reference import tiny_zimage as tz
from tmpbench.scoring.geneval.rule import summarize
from tmpbench.scoring.shapes import score_edit_image, score_t2i_image
from tmpbench.shapes.edits import EditCase
from tmpbench.suites.core import load_suite


def _batches(items, n):
    for i in range(0, len(items), n):
        yield items[i : i + n]


def evaluate(pipe, limit: int | None, steps: int, guidance: float, batch: int = 32, edit_guidance: float | None = None) -> dict:
    out: dict = {}
    t2i = load_suite("shapes-t2i", limit=limit)
    rows = []
    t0 = time.time()
    for chunk in _batches(t2i.items, batch):
        imgs = tz.generate_t2i(pipe, [it.prompt for it in chunk], [it.seed for it in chunk], steps=steps, guidance=guidance)
        for it, im in zip(chunk, imgs):
            ok, reason, _ = score_t2i_image(im, it.metadata)
            rows.append({"tag": it.category, "correct": ok})
    out["t2i_seconds_per_image"] = (time.time() - t0) / len(t2i.items)
    out["t2i"] = summarize(rows)
    from tmpbench.report.stats import bootstrap_ci

    _, out["t2i"]["overall_ci95"] = bootstrap_ci([float(r["correct"]) for r in rows], [r["tag"] for r in rows], category_mean=True)
    ed = load_suite("shapes-edit", limit=limit // 2 if limit else None)
    erows = []
    t0 = time.time()
    for chunk in _batches(ed.items, batch):
        src = [render_source(it) for it in chunk]
        imgs = tz.edit_in_sequence(
            pipe, src, [it.prompt for it in chunk], [it.seed for it in chunk], steps=steps, guidance=edit_guidance or guidance
        )
        for it, im in zip(chunk, imgs):
            r = score_edit_image(im, EditCase.from_dict(it.metadata))
            erows.append({"tag": it.category, **r})
    out["edit_seconds_per_image"] = (time.time() - t0) / len(ed.items)
    by = {}
    for r in erows:
        by.setdefault(r["tag"], []).append(bool(r["correct"]))
    _, success_ci = bootstrap_ci([float(r["correct"]) for r in erows], [r["tag"] for r in erows])
    out["edit"] = {
        "success": float(np.mean([r["correct"] for r in erows])),
        "success_ci95": success_ci,
        "psnr_outside_vs_source": float(np.nanmean([r["psnr_source"] for r in erows])),
        "by_type": {k: float(np.mean(v)) for k, v in sorted(by.items())},
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ckpt")
    ap.add_argument("--model-dir")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--edit-guidance", type=float, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json-out")
    ap.add_argument("--record", action="store_true",
                    help="write the scores into --model-dir's tmpbench.json ('measured'), as committed with the model")
    a = ap.parse_args()
    if a.record and (not a.model_dir or a.limit):
        ap.error("--record needs --model-dir and the full suites (no --limit)")
    torch.set_num_threads(a.threads)
    if a.ckpt:
        from tmpbench.training.reference import load_checkpoint_pipeline

        pipe, _, step = load_checkpoint_pipeline(a.ckpt)
        print(f"checkpoint step {step}")
    else:
        pipe, _ = tz.load_pipeline(a.model_dir)
    res = evaluate(pipe, a.limit, a.steps, a.guidance, edit_guidance=a.edit_guidance)
    print(json.dumps(res, indent=2))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(res, f, indent=2)
    if a.record:
        import sys
        from pathlib import Path

        meta_path = Path(a.model_dir) / "tmpbench.json"
        meta = json.loads(meta_path.read_text())
        meta["measured"] = {
            "command": "python benchmarks/eval_reference.py " + " ".join(sys.argv[1:]),
            "seconds_per_image": {"t2i": round(res["t2i_seconds_per_image"], 3), "edit": round(res["edit_seconds_per_image"], 3),
                                  "threads": a.threads},
            "shapes-t2i": {**res["t2i"], "steps": a.steps, "guidance": a.guidance},
            "shapes-edit": {**res["edit"], "steps": a.steps, "guidance": a.edit_guidance or a.guidance},
        }
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True))
        print(f"recorded in {meta_path}")


if __name__ == "__main__":
    main()
