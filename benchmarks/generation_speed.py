"""Images per second of the generation loop, before (8 images per call) and after (a larger batch), side by side.

For each reference model, suite and torch thread count, the real generation path
(:func:`tmpbench.run.generate.generate_suite`: source images, the generator call, PNG writes and the
resume check) makes the first ``--limit`` items of the suite into a fresh folder at each batch size.
Batch sizes alternate within each repeat (``before, after, before, after, ...``) so that drifts in
machine load hit both alike; the table shows the median images/s over ``--repeats`` and the ratio
after / before. The images of every batch size are compared with those at the first: an image depends
only on its own seed and item, so they must agree up to the one-level rounding CPU matmul blocking can
cause (``max |diff|`` column, in 8-bit levels; ``px !=`` is the share of pixels that differ at all).

This is a benchmark, not a test: numbers depend on the machine and its load. Run::

    python benchmarks/generation_speed.py --models tiny-dit tiny-moe tiny-hy3 --suites shapes-t2i shapes-edit \\
        --batch-sizes 8 64 --threads 1 2 --limit 64 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def versions() -> str:
    import diffusers
    import torch
    import transformers

    from tmpbench.provenance import git_state

    head, dirty = git_state()
    return (
        f"python {sys.version.split()[0]}, torch {torch.__version__}, diffusers {diffusers.__version__}, "
        f"transformers {transformers.__version__}, git {(head or '?')[:10]}{' (dirty)' if dirty else ''}, "
        f"{os.cpu_count()} CPUs visible"
    )


def run_once(generator, suite, batch_size: int, steps: int, guidance: float, size: int):
    """``(images per second, images as uint8 arrays)`` of one generate_suite pass into a fresh folder."""
    import numpy as np

    from tmpbench.run.generate import OutputLayout, generate_suite

    with tempfile.TemporaryDirectory(prefix="tmpbench-genspeed-") as tmp:
        layout = OutputLayout("geneval", Path(tmp), seeds=1)
        t0 = time.perf_counter()
        report = generate_suite(generator, suite, layout, steps=steps, guidance=guidance, size=size,
                                batch_size=batch_size, progress=False)
        seconds = time.perf_counter() - t0
        images = np.stack([layout.read(item)[0] for item in suite.items])
    return report.generated / seconds, images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny-dit", "tiny-moe", "tiny-hy3"])
    ap.add_argument("--suites", nargs="+", default=["shapes-t2i", "shapes-edit"])
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[8, 64],
                    help="the first is 'before'; each later one is compared with it")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--limit", type=int, default=64, help="items per suite (one image each)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch

    from tmpbench.catalog import MODELS
    from tmpbench.loading import load_model
    from tmpbench.suites.core import load_suite

    print(f"# {versions()}")
    print("# " + " ".join([Path(sys.argv[0]).name] + sys.argv[1:]))
    before = args.batch_sizes[0]
    header = ["model", "suite", "threads", f"img/s @{before}"]
    for b in args.batch_sizes[1:]:
        header += [f"img/s @{b}", f"x @{b}"]
    header += ["max |diff|", "px !="]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header), flush=True)
    for name in args.models:
        entry = MODELS.get(name)
        generator = load_model(name)
        steps = args.steps or entry.default_steps
        for suite_name in args.suites:
            suite = load_suite(suite_name, limit=args.limit)
            for threads in args.threads:
                torch.set_num_threads(threads)
                warm = load_suite(suite_name, limit=min(before, args.limit))
                run_once(generator, warm, before, steps, entry.default_guidance, entry.default_size)  # warm-up: one call
                rates: dict[int, list[float]] = {b: [] for b in args.batch_sizes}
                images: dict[int, np.ndarray] = {}
                for _ in range(args.repeats):
                    for b in args.batch_sizes:
                        rate, images[b] = run_once(generator, suite, b, steps, entry.default_guidance, entry.default_size)
                        rates[b].append(rate)
                med = {b: statistics.median(r) for b, r in rates.items()}
                diffs = [np.abs(images[b].astype(int) - images[before].astype(int)) for b in args.batch_sizes[1:]]
                row = [name, suite_name, str(threads), f"{med[before]:.2f}"]
                for b in args.batch_sizes[1:]:
                    row += [f"{med[b]:.2f}", f"{med[b] / med[before]:.2f}"]
                row += [str(max((int(d.max()) for d in diffs), default=0)),
                        f"{max((float((d > 0).mean()) for d in diffs), default=0.0):.5f}"]
                print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
