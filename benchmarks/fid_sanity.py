"""FID sanity check for the ``shapes`` feature mode (what ``tmpbench fid DIR1 DIR2 --mode shapes`` prints).

Writes ground-truth ShapesWorld renders for two seeds (GenEval layout, as generators write them), a
folder of uniform noise and a folder of wrong-colour renders, then prints FID and KID for:

* seed A vs seed A (must be ~0),
* seed A vs seed B (two samples of the same distribution: small),
* seed A vs noise (large),
* two imperfect "generators", in between: seed B with Gaussian pixel noise (sigma 20/255), and
  seed B with one object dropped from every scene (wrong counts, missing objects).

FID is unconditional: a map that keeps the image distribution (e.g. cycling every colour through
the palette, whose colours the suite draws uniformly) is invisible to it; prompt adherence is the
GenEval-style scorer's job.

Usage::

    python benchmarks/fid_sanity.py [--n-per-tag 50] [--size 32] [--mode shapes] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from tmpbench.metrics.fid import fid_between_folders
from tmpbench.shapes.grammar import balanced_records, sample_scene
from tmpbench.shapes.world import Scene, render
from tmpbench.suites.layout import write_item


def write_renders(root: Path, seed: int, n_per_tag: int, size: int, degrade: str | None = None) -> int:
    rng = np.random.default_rng(seed)
    noise_rng = np.random.default_rng(seed + 1000)
    records = balanced_records(n_per_tag, seed)
    for i, rec in enumerate(records):
        scene = sample_scene(rec, rng)
        if degrade == "drop":
            scene = Scene(scene.objects[:-1], scene.grid)
        img = render(scene, size)
        if degrade == "noise":
            img = np.clip(img + noise_rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
        write_item(root, i, rec, [img])
    return len(records)


def write_noise(root: Path, n: int, size: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        write_item(root, i, {"prompt": "uniform noise"}, [rng.integers(0, 256, (size, size, 3), dtype=np.uint8)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-per-tag", type=int, default=50, help="records per GenEval tag (6 tags)")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--mode", default="shapes")
    parser.add_argument("--out", type=Path, default=None, help="keep the folders here (default: a temp dir)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        t0 = time.perf_counter()
        n = write_renders(out / "seed1", 1, args.n_per_tag, args.size)
        write_renders(out / "seed2", 2, args.n_per_tag, args.size)
        write_renders(out / "seed2-noisy", 2, args.n_per_tag, args.size, degrade="noise")
        write_renders(out / "seed2-dropped", 2, args.n_per_tag, args.size, degrade="drop")
        write_noise(out / "noise", n, args.size)
        t_render = time.perf_counter() - t0
        rows = {}
        t0 = time.perf_counter()
        for name, other in (
            ("self (seed1 vs seed1)", "seed1"),
            ("seeds (seed1 vs seed2)", "seed2"),
            ("noise (seed1 vs uniform noise)", "noise"),
            ("pixel noise (seed1 vs seed2 + noise 20/255)", "seed2-noisy"),
            ("missing objects (seed1 vs seed2, one dropped)", "seed2-dropped"),
        ):
            rows[name] = fid_between_folders(out / "seed1", out / other, args.mode, use_cache=False)
        t_fid = time.perf_counter() - t0
    ident = next(iter(rows.values()))["identity"]
    print(f"mode {ident['mode']} ({ident['network']}), weights sha256 {ident['weights_sha256'][:16]}, "
          f"{n} images per folder at {args.size} px")
    for name, r in rows.items():
        print(f"  {name:<46} FID {r['fid']:>12.6f}   KID {r['kid_mean']:>10.6f} +- {r['kid_std']:.6f}")
    print(f"render {t_render:.1f}s, features+FID+KID for 5 pairs {t_fid:.1f}s")
    print(json.dumps({k: {"fid": v["fid"], "kid_mean": v["kid_mean"]} for k, v in rows.items()}))


if __name__ == "__main__":
    main()
