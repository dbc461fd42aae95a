"""Measure the ShapesWorld detector + GenEval rule on ground-truth renders, perturbed renders and noise.

Prints one table: per-tag accuracy (fraction of images judged correct by GenEval's rule) for

* ``clean``   - exact renders of scenes sampled for balanced GenEval-format records;
* ``noise``   - the same renders plus Gaussian noise (sigma 0.05 on the [0, 1] scale), clipped;
* ``blur``    - the same renders blurred by a Gaussian with sigma 1 px;
* ``box3``    - the same renders blurred by a 3x3 box filter;
* ``uniform`` - uniform-noise images (every pixel, channel uniform on 0..255) scored against the records.

Targets (issue 2): clean >= 99.5% per tag, noise/blur >= 95% per tag, uniform <= 2% overall.

    python benchmarks/detector_accuracy.py --per-tag 340 --size 32
    python benchmarks/detector_accuracy.py --per-tag 40 --size 512
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

from tmpbench.scoring.geneval.rule import summarize
from tmpbench.scoring.shapes import score_t2i_image
from tmpbench.shapes.grammar import TAGS, balanced_records, sample_scene
from tmpbench.shapes.world import DEFAULT_GRID, render


def gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    x = img.astype(np.float64) / 255.0 + rng.normal(0.0, sigma, img.shape)
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    x = ndimage.gaussian_filter(img.astype(np.float64), sigma=(sigma, sigma, 0), mode="nearest")
    return np.round(x).astype(np.uint8)


def box_blur(img: np.ndarray, k: int = 3) -> np.ndarray:
    x = ndimage.uniform_filter(img.astype(np.float64), size=(k, k, 1), mode="nearest")
    return np.round(x).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-tag", type=int, default=340, help="records per GenEval tag (6 tags)")
    ap.add_argument("--size", type=int, default=32, help="render resolution in pixels")
    ap.add_argument("--grid", type=int, default=DEFAULT_GRID)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show-failures", type=int, default=3, help="failures to print per condition")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    records = balanced_records(args.per_tag, seed=args.seed, grid=args.grid)
    conditions = {
        "clean": lambda im: im,
        "noise": lambda im: gaussian_noise(im, 0.05, rng),
        "blur": lambda im: gaussian_blur(im, 1.0),
        "box3": lambda im: box_blur(im, 3),
        "uniform": lambda im: rng.integers(0, 256, im.shape, dtype=np.uint8),
    }
    results: dict[str, list[dict]] = {c: [] for c in conditions}
    t0 = time.perf_counter()
    for rec in records:
        img = render(sample_scene(rec, rng, args.grid), args.size)
        for cond, perturb in conditions.items():
            correct, reason, _ = score_t2i_image(perturb(img), rec, args.grid)
            results[cond].append({"tag": rec["tag"], "correct": correct, "reason": reason, "prompt": rec["prompt"]})
    elapsed = time.perf_counter() - t0

    summaries = {c: summarize(r) for c, r in results.items()}
    print(
        f"{len(records)} records ({args.per_tag} per tag), {args.size} px, grid {args.grid}, seed {args.seed}; "
        f"{elapsed:.1f} s for {len(records) * len(conditions)} images"
    )
    header = f"{'tag':<14}" + "".join(f"{c:>10}" for c in conditions)
    print(header)
    print("-" * len(header))
    for tag in TAGS:
        row = f"{tag:<14}"
        for c in conditions:
            acc = summaries[c]["by_category"].get(tag)
            row += f"{'-':>10}" if acc is None else f"{acc:>10.2%}"
        print(row)
    print("-" * len(header))
    print(f"{'overall':<14}" + "".join(f"{summaries[c]['overall']:>10.2%}" for c in conditions))
    print(f"{'min per tag':<14}" + "".join(f"{min(summaries[c]['by_category'].values()):>10.2%}" for c in conditions))
    for c, rows in results.items():
        if c == "uniform":
            continue
        fails = [r for r in rows if not r["correct"]][: args.show_failures]
        for r in fails:
            print(f"  [{c}] {r['prompt']!r}: {r['reason']}".replace("\n", "; "))


if __name__ == "__main__":
    main()
