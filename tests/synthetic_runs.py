"""Synthetic run folders in the real results schema (validated), so report logic is tested without models.

Shared by tests/report, tests/experiments and tests/cli/test_report_cli.py (on pytest's pythonpath)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from tmpbench.run.results import SCHEMA_VERSION, validate_results

CATEGORIES = ("single_object", "two_object", "counting", "colors")
SEED_RULE = "seed of sample n = (item.seed + 1000003 * n) mod 2**31"


def write_run(
    out: Path,
    geneval: list[float],
    *,
    pruner: str | None = None,
    budget: str | None = None,
    original: int = 1000,
    achieved: int | None = None,
    psnr: list[float] | None = None,
    suite_hash: str = "a" * 64,
    seeds_per_item: int = 1,
    seed_offset: int = 0,
    color: tuple[int, int, int] = (200, 30, 30),
    split: str | None = "test",
    calibration_ids: list[str] | None = None,
    recovery_ids: list[str] | None = None,
    pruner_settings: dict | None = None,
) -> Path:
    """A run folder: results.json (valid schema), samples.jsonl and one 16 px PNG per sample.

    ``split`` None writes a file from before splits (no ``suite.split``); ``calibration_ids`` /
    ``recovery_ids`` record the shapes-t2i items the model was calibrated / recovered on."""
    n = len(geneval)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, g in enumerate(geneval):
        image = f"images/{i:05d}/samples/0000.png"
        (out / image).parent.mkdir(parents=True, exist_ok=True)
        arr = np.zeros((16, 16, 3), np.uint8)
        arr[4:12, 4:12] = color if g else (40, 40, 200)
        Image.fromarray(arr).save(out / image)
        metrics = {"geneval": float(g)}
        if psnr is not None:
            metrics["psnr_teacher"] = float(psnr[i])
        rows.append({"index": i, "id": f"{i:05d}", "category": CATEGORIES[i % len(CATEGORIES)], "prompt": f"a photo of thing {i}",
                     "sample": 0, "seed": 1000 + i + seed_offset, "item_seed": 1000 + i + seed_offset, "image": image,
                     "cell": None, "metrics": metrics, "extras": {}})
    (out / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from tmpbench.report.stats import bootstrap_ci

    gv, gci = bootstrap_ci(geneval, [r["category"] for r in rows], category_mean=True)
    metrics = {"geneval": {"value": gv, "ci95": gci, "n": n, "higher_is_better": True, "by_category": {}, "details": {}},
               "fid": {"value": 123.0, "ci95": [110.0, 130.0], "n": n, "higher_is_better": False, "by_category": {}, "details": {}},
               "clipscore": "not scored: no weights offline"}
    scorers = {"geneval": {"name": "geneval"}, "fid": {"name": "fid"}, "clipscore": {"name": "clipscore"}}
    if psnr is not None:
        pv, pci = bootstrap_ci(psnr)
        metrics["psnr_teacher"] = {"value": pv, "ci95": pci, "n": n, "higher_is_better": True, "by_category": {}, "details": {}}
        scorers["psnr_teacher"] = {"name": "psnr_teacher"}
    achieved = original if achieved is None else achieved
    requested = None if budget is None else round(original * (1 - float(budget.rstrip("%")) / 100))
    results = {
        "schema_version": SCHEMA_VERSION,
        "run": {"argv": ["test"], "git_hash": None, "git_dirty": None, "device": "cpu", "device_name": "cpu",
                "num_processes": 1, "threads_per_process": 1, "started_at": "2025-01-01T00:00:00+00:00"},
        "versions": {k: "0" for k in ("tmpbench", "python", "torch", "diffusers", "transformers", "torchmetrics", "open_clip",
                                      "clean_fid", "accelerate")},
        "suite": {"name": "shapes-t2i", "version": "1", "hash": suite_hash, "kind": "t2i", "items": n, "limit": n,
                  "source": None, "layout": "geneval", **({"split": split} if split is not None else {})},
        "model": {"spec": "tiny-dit" if budget is None else f"tiny-dit-{budget}", "base": "tiny-dit", "family": "zimage",
                  "model_path": None, "budget": budget, "pruner": pruner, "pruner_settings": pruner_settings or {},
                  "original_params": original, "requested_params": requested, "achieved_params": achieved,
                  "calibration": None if calibration_ids is None else {"hash": "c" * 16, "item_ids": {"shapes-t2i": calibration_ids}},
                  "recovery": None if recovery_ids is None else {"hash": "r" * 16, "item_ids": {"shapes-t2i": recovery_ids}},
                  "prune_cache_key": None, "prune_info": {}},
        "generation": {"steps": 2, "guidance": 1.0, "size": 16, "batch_size": 8, "seeds_per_item": seeds_per_item,
                       "seed_rule": SEED_RULE, "suite_seed_range": [1000 + seed_offset, 1000 + n - 1 + seed_offset],
                       "samples": n, "generated_now": n, "resumed": 0, "teacher_generated_now": 0},
        "scorers": scorers,
        "metrics": metrics,
        "efficiency": "not scored: synthetic",
        "timings": {"total_s": 1.0, "load_s": 0.1, "generate_s": 0.5, "teacher_s": 0.0, "score_s": 0.1, "per_metric_s": {}},
        "samples_file": "samples.jsonl",
        "images_dir": "images",
    }
    validate_results(results)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return out


GOOD = [1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1]  # 17/20 correct
BAD = [0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0]  # 4/20 correct
