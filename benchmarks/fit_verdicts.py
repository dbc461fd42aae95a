"""Print the markdown verdict table of ``tmpbench fit`` for several specs and GPUs (one estimate per spec).

    python benchmarks/fit_verdicts.py > reports/fit/verdicts.md
    python benchmarks/fit_verdicts.py --specs zimage,tiny-dit --gpus rtx4090 --size 512
"""

from __future__ import annotations

import argparse
import time

from tmpbench.fit import estimate, resolve_modules
from tmpbench.models import memory

SPECS = "zimage,zimage-4b,hunyuanimage3,hunyuanimage3-20b"
GPUS = "rtx4090,a100-80g,h100"


def _gib(n: float) -> str:
    return f"{n / memory.GIB:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", default=SPECS)
    parser.add_argument("--gpus", default=GPUS)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    cards = [memory.gpu(g) for g in args.gpus.split(",")]
    start = time.perf_counter()
    breakdown, rows = [], []
    for spec in args.specs.split(","):
        resolved = resolve_modules(spec)
        est = estimate(resolved, args.size)
        comps = ", ".join(f"{k} {_gib(v)}" for k, v in est.components.items())
        breakdown.append(f"| {spec} | {sum(p.numel() for p in resolved['denoiser'].parameters()) / 1e9:.2f}B | "
                         f"{_gib(est.denoiser_bytes)} | {comps} | {_gib(est.activations)} | {_gib(est.kv_cache)} | "
                         f"{_gib(est.text_activations)} | {_gib(est.vae_activations)} | {est.batch} | "
                         f"{est.flops_per_step / 1e12:.0f} |")
        for card in cards:
            found = memory.verdicts(est, card)
            best = memory.cheapest(found)
            cells = [f"{'fits' if v.fits else 'no'} {_gib(v.peak_bytes)} ({_gib(v.headroom_bytes):>5}) x{v.slowdown:.2f}"
                     for v in found]
            cells += ["n/a"] * (4 - len(cells))
            pick = f"**{best.strategy}** x{best.slowdown:.2f}" if best else "**none fits**"
            rows.append(f"| {spec} | {card.name} | " + " | ".join(cells) + f" | {pick} |")
    print(f"# Does it fit? Peak VRAM of one {args.size} px generation\n")
    print(f"Made by `python benchmarks/fit_verdicts.py --specs {args.specs} --gpus {args.gpus} --size {args.size}` "
          f"({time.perf_counter() - start:.0f} s on 2 CPU cores); one spec at a time: `tmpbench fit --model SPEC --gpu GPU "
          f"--size {args.size}`. Models are built on the meta device in bf16; pruned specs are planned by TMP with its "
          "data-free proxies (as `tmpbench plan --meta`) and cut with the family's surgery. Formulas and assumptions: "
          "`tmpbench/models/memory.py`.\n")
    print("## Breakdown (GiB)\n")
    print("| spec | denoiser params | denoiser weights | other components | denoiser activations | KV cache | "
          "text enc. act. | VAE decode act. | batch | TFLOP/step |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(breakdown))
    print(f"\nEvery peak adds {_gib(memory.CUDA_CONTEXT_BYTES)} GiB of CUDA context.\n")
    print("## Verdicts: fits or not, peak GiB (headroom GiB), slowdown vs. no offload\n")
    print("| spec | GPU | none | model offload | group offload | expert offload | cheapest that fits |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print("\nGPUs: " + "; ".join(f"{c.name}: {c.memory_gib:g} GiB, {c.bf16_tflops:g} dense bf16 TFLOPs, "
                                 f"{c.pcie_gbs:g} GB/s host-to-device" for c in cards) + " (sources in the GPUS table).")


if __name__ == "__main__":
    main()
