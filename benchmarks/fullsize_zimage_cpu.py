"""Full-size Z-Image on this CPU: plan, cut to 4B, save, reload, one forward, with peak RSS per stage.

Nothing is downloaded: the denoiser is Z-Image-Turbo's ``ZImageTransformer2DModel`` at its published
config (6.15B parameters), built on the meta device and materialised submodule by submodule in bf16
with random weights (normal, std 0.02; norms at 1), so the process holds one copy of the model at a
time. Then:

1. **plan**: TMP under ``--budget``. By default its data-free proxy (what ``plan --meta`` does). With
   ``--measured`` the measured tree search runs on ``--calib-inputs`` synthetic calibration inputs at
   64 px (random latents and caption features in the denoiser's own call format, timesteps spread over
   (0, 1]; the teacher's own outputs are the reference), at ``max_calib_inputs`` of them.
2. **surgery**: the plan replayed in place (``apply_plan(copy=False)``: each cut frees the old weight).
3. **save**: the pruned weights as safetensors beside ``plan.json``.
4. **reload**: the base built on meta again, the plan replayed on meta for the shapes, the weights
   assigned from the memory-mapped file; its parameter count must equal the plan's.
5. **forward**: one denoiser call of the reloaded model at 64 px (a denoiser call, not a pipeline
   call: the 4B text encoder and the VAE are not built here).

Prints one Markdown table (stage, wall seconds, peak RSS so far) and writes it with a JSON record:

    python benchmarks/fullsize_zimage_cpu.py --out reports/fullsize/zimage-cpu.md
    python benchmarks/fullsize_zimage_cpu.py --measured --calib-inputs 1 --out reports/fullsize/zimage-cpu-measured.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def materialise(module, dtype, seed: int = 0) -> None:
    """Allocate a meta module's tensors submodule by submodule on the CPU and fill them at random
    (``seed`` seeds the normal draws; benchmarks/fullsize_hy3_cpu.py gives each layer its own)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    for name, sub in module.named_modules():
        own = list(sub.named_parameters(recurse=False)) + list(sub.named_buffers(recurse=False))
        if not own or all(t.device.type != "meta" for _, t in own):
            continue
        sub.to_empty(device="cpu", recurse=False)
        with torch.no_grad():
            for pname, p in sub.named_parameters(recurse=False):
                p.data = p.data.to(dtype)
                if "norm" in name.lower() or "norm" in pname.lower():
                    p.fill_(1.0) if pname == "weight" else p.zero_()
                elif pname == "bias":
                    p.zero_()
                else:
                    p.normal_(0.0, 0.02, generator=gen)


def synthetic_calibration(model, n: int, size: int = 64):
    """``n`` denoiser calls in the pipeline's own format: a list of [C, 1, h, w] latents, the timestep and
    a list of [L, cap_dim] caption features (random, fixed seed)."""
    import torch

    from tmpbench.pruning.calibration import Calibration

    gen = torch.Generator().manual_seed(1)
    channels = int(model.config.in_channels)
    cap_dim = int(model.config.cap_feat_dim)
    side = size // 8
    dtype = next(model.parameters()).dtype
    inputs, times = [], []
    for i in range(n):
        t = (i + 1) / n
        latent = torch.randn(channels, 1, side, side, generator=gen).to(dtype)
        caption = torch.randn(32, cap_dim, generator=gen).to(dtype)
        inputs.append((([latent], torch.tensor([t], dtype=dtype), [caption]), {"return_dict": False}))
        times.append(t)
    return Calibration({"kind": "synthetic 64 px latents and caption features", "n_inputs": n}, inputs, times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", default="4b")
    ap.add_argument("--measured", action="store_true", help="run TMP's measured tree search on synthetic inputs")
    ap.add_argument("--calib-inputs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None, help="where the pruned weights go (default: a temp dir)")
    ap.add_argument("--out", type=Path, help="write the Markdown table and JSON record here")
    args = ap.parse_args(argv)

    import torch
    from safetensors.torch import load_file, save_file

    from tmpbench.models.counting import build_meta
    from tmpbench.pruning.cost import peak_rss_mb
    from tmpbench.pruning.plan import Plan
    from tmpbench.pruning.runner import plan_model
    from tmpbench.pruning.surgery import apply_plan

    torch.set_num_threads(args.threads)
    rows, record = [], {"budget": args.budget, "measured": args.measured}

    def stage(name: str, start: float, **extra) -> None:
        rows.append({"stage": name, "seconds": round(time.perf_counter() - start, 1), "peak_rss_gb": round(peak_rss_mb() / 1024, 2),
                     **extra})
        print(f"| {name} | {rows[-1]['seconds']} | {rows[-1]['peak_rss_gb']} | {extra or ''} |", flush=True)

    print("| stage | seconds | peak RSS (GB, process so far) | notes |\n|---|---|---|---|", flush=True)
    t = time.perf_counter()
    model = build_meta("zimage")
    materialise(model, torch.bfloat16)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    stage("build (random bf16, submodule by submodule)", t, params=n_params)

    t = time.perf_counter()
    calib = synthetic_calibration(model, args.calib_inputs) if args.measured else None
    settings = {"max_calib_inputs": args.calib_inputs} if args.measured else None
    with torch.no_grad():
        outcome = plan_model(model if args.measured else build_meta("zimage"), "tmp", args.budget, pruner_settings=settings,
                             calibration=calib, model_name="zimage")
    plan = outcome.plan
    search = plan.settings.get("search", {})
    stage("plan (TMP " + ("measured tree search" if args.measured else "data-free proxy") + ")", t,
          evaluations=search.get("evaluations"), forward_equivalents=search.get("forward_equivalents"),
          planned_params=plan.achieved_params)

    t = time.perf_counter()
    maps = {}
    if any(d.policy == "linear_replace" for d in plan.decisions):
        from tmpbench.pruning.calibration import fit_linear_maps

        maps = fit_linear_maps(model, plan, calib)
    with torch.no_grad():
        pruned = apply_plan(model, plan, linear_maps=maps, copy=False)
    del model
    cut_params = sum(p.numel() for p in pruned.parameters())
    stage("surgery (in place)", t, params=cut_params)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="tmpbench-fullsize-"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    save_file({k: v.contiguous() for k, v in pruned.state_dict().items()}, str(work / "model.safetensors"))
    plan.save(work / "plan.json")
    size_gb = (work / "model.safetensors").stat().st_size / 1e9
    del pruned
    stage("save (safetensors + plan.json)", t, file_gb=round(size_gb, 2))

    t = time.perf_counter()
    base = build_meta("zimage")
    state = load_file(str(work / "model.safetensors"))
    reloaded_plan = Plan.load(work / "plan.json")
    maps = {d.path: (state[f"{d.path}.linear.weight"], state.get(f"{d.path}.linear.bias"))
            for d in reloaded_plan.decisions if d.policy == "linear_replace"}
    shaped = apply_plan(base, reloaded_plan, linear_maps=maps, copy=False)
    shaped.load_state_dict(state, assign=True, strict=True)
    reloaded = sum(p.numel() for p in shaped.parameters())
    stage("reload (meta shapes, weights assigned)", t, params=reloaded, equals_plan=reloaded == plan.achieved_params)

    t = time.perf_counter()
    probe = synthetic_calibration(shaped, 1)
    with torch.no_grad():
        out = probe.call(shaped, 0)
    flat = out[0][0] if isinstance(out, tuple) else out
    stage("forward (one denoiser call, 64 px)", t, finite=bool(torch.isfinite(flat.float()).all()))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)

    record.update(rows=rows, params_before=n_params, params_after=reloaded, planned=plan.achieved_params,
                  torch=torch.__version__, python=platform.python_version(), threads=args.threads,
                  command=" ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table = ["| stage | seconds | peak RSS (GB, process so far) | notes |", "|---|---|---|---|"]
        for r in rows:
            notes = ", ".join(f"{k}={v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k}={v}"
                              for k, v in r.items() if k not in ("stage", "seconds", "peak_rss_gb"))
            table.append(f"| {r['stage']} | {r['seconds']} | {r['peak_rss_gb']} | {notes} |")
        args.out.write_text("\n".join(table) + "\n\n<!-- " + json.dumps(record) + " -->\n")
    return 0 if reloaded == plan.achieved_params else 1


if __name__ == "__main__":
    raise SystemExit(main())
