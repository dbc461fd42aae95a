"""Benchmark: does pruning buy real speed? Latency ratio vs FLOPs ratio for every pruner at 25% and 50%.

For each registered pruner (the MoE-only ones on the tiny MoE only) and each budget, the denoiser is
planned and physically cut with the prune runner's own code, then one denoiser forward on a fixed
input is timed: median of ``--repeats`` runs after ``--warmup`` runs, pruned over original. The
FLOPs ratio comes from :func:`tmpbench.models.counting.flop_table` (classes it knows) or the unit
tree's FLOPs (the tiny MoE, whose routed experts cost top-k per token). Each pruned model is timed
right after the original (paired), so drifts in machine load cancel. The goal is
``latency_ratio / flops_ratio <= 1.10``: surgery that removes FLOPs should remove time too.

This is a benchmark, not a test: numbers depend on the machine and its load. Run::

    python benchmarks/prune_latency.py --repeats 20 --json latency.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from tmpbench.catalog import PRUNERS
from tmpbench.errors import TmpbenchError
from tmpbench.models.reference import tiny_zimage as tz
from tmpbench.models.zimage import ZImageGenerator
from tmpbench.pruning.factory import make_pruner
from tmpbench.pruning.families import apply, model_family, unit_tree
from tmpbench.pruning.recipes import CalibrationSpec
from tmpbench.pruning.runner import plan_model


def generator(moe: bool, dim: int, layers: int, heads: int) -> ZImageGenerator:
    extra = {"num_experts": 8, "moe_topk": 2, "moe_intermediate_size": dim, "num_shared_expert": 1} if moe else None
    cfg = tz.TinyZImageConfig(dim=dim, n_layers=layers, n_refiner_layers=1, n_heads=heads, text_hidden=64,
                              text_layers=2, moe=extra)
    name = "tiny-moe" if moe else "tiny-dit"
    return ZImageGenerator(tz.make_pipeline(tz.build_components(cfg)), name=name, model="bench-" + name,
                           edit_fn=tz.edit_in_sequence, max_sequence_length=24)


def fixed_input(gen: ZImageGenerator, size: int) -> tuple:
    captured = []
    handle = gen.denoiser.register_forward_pre_hook(lambda m, a, k: captured.append((a, k)), with_kwargs=True)
    try:
        gen.generate(["a photo of two red circles"], [0], 1, 1.0, size)
    finally:
        handle.remove()
    return captured[0]


@torch.no_grad()
def latency(model: torch.nn.Module, call: tuple, repeats: int, warmup: int) -> float:
    args, kwargs = call
    for _ in range(warmup):
        model(*args, **kwargs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def flops(model: torch.nn.Module, size: int, latent_factor: int) -> tuple[float, str]:
    from tmpbench.models.counting import FLOP_COUNTERS, flop_table

    if type(model).__name__ in FLOP_COUNTERS:
        return float(sum(flop_table(model, size, latent_factor=latent_factor).values())), "flop_table"
    return float(unit_tree(model, size=size).flops), "unit_tree"


def print_row(r: dict) -> None:
    rnd = str(r["round_to"] or "-")
    if "error" in r:
        print(f"{r['model']:<9} {r['pruner']:<17} {r['budget']:>6} {rnd:>5}  error: {r['error'][:90]}", flush=True)
        return
    flag = "" if r["lat_over_flops"] <= 1.10 else "  > 1.10"
    print(f"{r['model']:<9} {r['pruner']:<17} {r['budget']:>6} {rnd:>5} {r['params_ratio']:>7.3f} {r['flops_ratio']:>7.3f} "
          f"{r['latency_ratio']:>8.3f} {r['lat_over_flops']:>9.3f}{flag}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", nargs="+", default=["25%", "50%"])
    ap.add_argument("--pruners", nargs="*", default=None, help="default: every registered pruner")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--size", type=int, default=128, help="image side in pixels (pixel-shuffle factor 4, patch 2)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--round-to", nargs="+", default=["none"],
                    help="kept-width rounding multiples to compare side by side (pruner setting round_to), e.g. none 8 32")
    ap.add_argument("--json", default=None, help="write the rows here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = args.pruners or PRUNERS.names()
    rows = []
    print(f"{'model':<9} {'pruner':<17} {'budget':>6} {'round':>5} {'params':>7} {'flops':>7} {'latency':>8} {'lat/flops':>9}",
          flush=True)
    for moe in (False, True):
        gen = generator(moe, args.dim, args.layers, args.heads)
        model = gen.denoiser.eval()
        call = fixed_input(gen, args.size)
        factor = int(gen.pipe.vae_scale_factor)
        base_lat = latency(model, call, args.repeats, args.warmup)
        base_flops, how = flops(model, args.size, factor)
        base_params = sum(p.numel() for p in model.parameters())
        spec = CalibrationSpec(n_prompts=2, steps=2, size=args.size, guidance=1.0)
        calib = None
        for name in names:
            pruner = make_pruner(name)
            family = model_family(model)
            if family not in getattr(pruner, "families", {family}):
                continue
            if getattr(pruner, "needs_calibration", False) and calib is None:
                calib = spec.collect(gen)
            for budget, rnd in [(b, r) for b in args.budgets for r in args.round_to]:
                round_to = None if rnd.lower() == "none" else int(rnd)
                row = {"model": "tiny-moe" if moe else "tiny-dit", "pruner": name, "budget": budget, "round_to": round_to,
                       "flops_by": how}
                try:
                    outcome = plan_model(model, name, budget, calibration=calib, model_name=row["model"],
                                         pruner_settings={"round_to": round_to})
                    outcome.report.require()
                    maps = None
                    if any(d.policy == "linear_replace" for d in outcome.plan.decisions):
                        from tmpbench.pruning.calibration import fit_linear_maps

                        calib = calib if calib is not None else spec.collect(gen)
                        maps = fit_linear_maps(model, outcome.plan, calib)
                    pruned = apply(model, outcome.plan, linear_maps=maps).eval()
                    # paired: time the original right before the pruned model, so load drifts cancel
                    base_lat = latency(model, call, args.repeats, args.warmup)
                    lat = latency(pruned, call, args.repeats, args.warmup)
                    fl, _ = flops(pruned, args.size, factor)
                    row.update(params_ratio=sum(p.numel() for p in pruned.parameters()) / base_params,
                               flops_ratio=fl / base_flops, latency_ratio=lat / base_lat)
                    row["lat_over_flops"] = row["latency_ratio"] / row["flops_ratio"]
                except TmpbenchError as exc:
                    row["error"] = str(exc)
                rows.append(row)
                print_row(row)  # as each row finishes: a long run shows progress and keeps what it measured
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"settings": vars(args), "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
