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
from tmpbench.models import tiny_zimage as tz
from tmpbench.scoring.geneval_rule import summarize
from tmpbench.scoring.shapes_scoring import score_edit_image, score_t2i_image
from tmpbench.shapes.edits import EditCase
from tmpbench.suite import load_suite


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
    out["edit"] = {
        "success": float(np.mean([r["correct"] for r in erows])),
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
    a = ap.parse_args()
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


if __name__ == "__main__":
    main()
