"""Full-size Z-Image on this CPU: plan, cut to 4B, save, reload, one forward, with peak RSS per stage.

Nothing is downloaded: the denoiser is Z-Image-Turbo's ``ZImageTransformer2DModel`` at its published
config (6.15B parameters), built on the meta device and materialised submodule by submodule in bf16
with random weights (normal, std 0.02; norms at 1), so the process holds one copy of the model at a
time. Then:

1. **plan**: TMP under ``--budget``. By default its data-free proxy (what ``plan --meta`` does). With
   ``--measured`` the measured tree search runs on ``--calib-inputs`` synthetic calibration inputs at
   64 px (random latents and caption features in the denoiser's own call format, timesteps spread over
   (0, 1]; the teacher's own outputs are the reference), at ``max_calib_inputs`` of them; then the
   linear maps its ``linear_replace`` decisions need, fitted from the same inputs' activations.
2. **surgery**: the plan replayed in place (``apply_plan(copy=False)``: each cut frees the old weight).
3. **save**: the pruned weights as safetensors beside ``plan.json``.
4. **reload**: the base built on meta again, the plan replayed on meta for the shapes, the weights
   assigned from the memory-mapped file; its parameter count must equal the plan's.
5. **forward**: one denoiser call of the reloaded model at 64 px (a denoiser call, not a pipeline
   call: the 4B text encoder and the VAE are not built here).

With ``--offload disk`` the model is never whole in memory; accelerate's disk offload holds it:

1. **checkpoint**: the same random weights (same generator, same order), written block by block as a
   sharded diffusers checkpoint (``diffusion_pytorch_model-*.safetensors`` + index + ``config.json``),
   each block sent back to meta once written, so one block is resident at a time.
2. **load**: ``tmpbench.models.offload.load_offloaded`` (what ``tmpbench plan/prune --offload-folder``
   load): ``ZImageTransformer2DModel.from_pretrained(checkpoint, torch_dtype=bf16, device_map=...,
   offload_folder=...)`` with every block on ``"disk"``; accelerate's ``AlignDevicesHook`` loads a
   block's weights for its call only.
3. **plan**: the same TMP plan (the search masks activations with hooks and never edits a weight, so
   it runs on the offloaded model unchanged; ``--measured`` as above), and the linear maps its
   ``linear_replace`` decisions need, fitted from activations.
3a. **surgery into memory**: what ``tmpbench prune --offload-folder`` does,
   ``families.apply_offloaded``: the pruned model built in memory one kept block at a time from the
   offloaded weights (held until stage 4 has checked it equals the sharded output, tensor for tensor).
4. **surgery**: block by block from the checkpoint: a block's tensors assigned into the meta model,
   the plan's decisions inside it replayed in place, the pruned block written under its index after
   the plan's drops, the block sent back to meta. A dropped block is never read; a linear-replaced
   one is written as its map.
5. **reload**: the plan replayed on a meta base for the shapes, then
   ``accelerate.load_checkpoint_and_dispatch`` with the same device map; its parameter count
   must equal the plan's.
6. **forward**: one denoiser call at 64 px, weights read from disk.

Each row gives the stage's own peak RSS (the kernel's high-water mark, reset at the stage's start)
beside the process's. The checkpoint and the offload folders go to ``--workdir`` (about 2.4x the
bf16 model on disk at the peak); each is deleted once no later stage reads it.

Prints one Markdown table (stage, wall seconds, peak RSS so far) and writes it with a JSON record:

    python benchmarks/fullsize_zimage_cpu.py --out reports/fullsize/zimage-cpu.md
    python benchmarks/fullsize_zimage_cpu.py --measured --calib-inputs 1 --out reports/fullsize/zimage-cpu-measured.md
    python benchmarks/fullsize_zimage_cpu.py --offload disk --measured --calib-inputs 2 --threads 1 --workdir /tmp/fs \
        --out reports/fullsize/zimage-cpu-offload.md
    python benchmarks/fullsize_zimage_cpu.py --offload disk --measured --dry-run   # tiny-dit's shapes, seconds
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tmpbench.models.offload import block_device_map, block_names, load_offloaded
from tmpbench.pruning.families import apply_offloaded

os.environ.setdefault("HF_HUB_OFFLINE", "1")


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


INDEX = "diffusion_pytorch_model.safetensors.index.json"
TINY_CONFIG = Path(__file__).resolve().parents[1] / "tmpbench" / "assets" / "tiny-dit" / "transformer"


def build(dry_run: bool) -> Any:
    """Z-Image's denoiser on the meta device: the published config, or (``dry_run``) tiny-dit's."""
    if not dry_run:
        from tmpbench.models.counting import build_meta

        return build_meta("zimage")
    import torch
    from diffusers import ZImageTransformer2DModel

    with torch.device("meta"):
        return ZImageTransformer2DModel.from_config(ZImageTransformer2DModel.load_config(TINY_CONFIG))


def _under(path: str, unit: str) -> bool:
    return path == unit or path.startswith(unit + ".")


class ShardWriter:
    """Writes a sharded diffusers checkpoint, one safetensors file per :meth:`write`, and its index."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.weight_map, self.total = folder, {}, 0

    def write(self, state: dict) -> None:
        from safetensors.torch import save_file

        if not state:
            return
        name = f"diffusion_pytorch_model-{len(set(self.weight_map.values())) + 1:05d}.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(self.folder / name), metadata={"format": "pt"})
        self.weight_map.update(dict.fromkeys(state, name))
        self.total += sum(v.numel() * v.element_size() for v in state.values())

    def close(self) -> Path:
        index = self.folder / INDEX
        index.write_text(json.dumps({"metadata": {"total_size": self.total}, "weight_map": self.weight_map}, indent=1))
        return index


def write_checkpoint(model: Any, dtype: Any, folder: Path) -> dict:
    """Materialise ``model`` (meta) with the random weights of :func:`_fullsize.materialise`, block by block,
    into a sharded diffusers checkpoint at ``folder``; each block goes back to meta once written."""
    from _fullsize import materialise  # benchmarks/ is on sys.path (this script's folder)

    writer = ShardWriter(folder)

    def done(unit: str) -> None:
        sub = model.get_submodule(unit) if unit else model
        writer.write({(f"{unit}.{k}" if unit else k): v for k, v in sub.state_dict().items() if v.device.type != "meta"})
        sub.to("meta")

    materialise(model, dtype, units=block_names(model), done=done)
    writer.close()
    model.save_config(folder)
    return {"shards": len(set(writer.weight_map.values())), "checkpoint_gb": round(writer.total / 1e9, 2)}


def _read(folder: Path, weight_map: dict[str, str], keys: list[str]) -> dict:
    """``keys`` of the sharded checkpoint at ``folder`` (``weight_map``: its index), read shard by shard."""
    from safetensors import safe_open

    by_file: dict[str, list[str]] = {}
    for k in keys:
        by_file.setdefault(weight_map[k], []).append(k)
    out = {}
    for name, ks in by_file.items():
        with safe_open(str(folder / name), framework="pt") as f:
            out.update({k: f.get_tensor(k) for k in ks})
    return out


def streamed_surgery(base: Any, checkpoint: Path, plan: Any, maps: dict, folder: Path) -> dict:
    """Cut ``base`` (the unpruned denoiser on meta, no hooks) to ``plan`` block by block from the sharded
    ``checkpoint`` and write the pruned model, sharded, to ``folder`` (module docstring, stage 4)."""
    import dataclasses

    from tmpbench.errors import TmpbenchError
    from tmpbench.pruning.plan import BLOCK_POLICIES
    from tmpbench.pruning.surgery import apply_plan

    units = block_names(base)
    outside = [d.path for d in plan.decisions if not any(_under(d.path, u) for u in units)]
    if outside:
        raise TmpbenchError(f"the plan cuts {outside[:3]} outside the blocks; the streamed surgery replays block decisions only")
    dropped = {d.path for d in plan.decisions if d.policy == "drop_block"}
    replaced = {d.path for d in plan.decisions if d.policy == "linear_replace"}

    def renamed(unit: str) -> str:
        """The block's path once the plan's drops have closed the gaps of its list."""
        parent, _, i = unit.rpartition(".")
        below = sum(1 for p in dropped if p.rpartition(".")[0] == parent and int(p.rpartition(".")[2]) < int(i))
        return f"{parent}.{int(i) - below}"

    weight_map = json.loads((checkpoint / INDEX).read_text())["weight_map"]
    writer = ShardWriter(folder)
    for unit in units + [""]:
        if unit in dropped:
            continue
        if unit in replaced:
            w, b = maps[unit]
            writer.write({f"{renamed(unit)}.linear.weight": w, **({f"{renamed(unit)}.linear.bias": b} if b is not None else {})})
            continue
        mine = [k for k in weight_map if (k.startswith(unit + ".") if unit else not any(k.startswith(u + ".") for u in units))]
        sub = base.get_submodule(unit) if unit else base
        sub.load_state_dict({(k[len(unit) + 1:] if unit else k): v for k, v in _read(checkpoint, weight_map, mine).items()},
                            assign=True, strict=bool(unit))
        inside = [d for d in plan.decisions if unit and d.policy not in BLOCK_POLICIES and _under(d.path, unit)]
        if inside:
            apply_plan(base, dataclasses.replace(plan, decisions=inside), copy=False)
        writer.write({(f"{renamed(unit)}.{k}" if unit else k): v for k, v in sub.state_dict().items() if v.device.type != "meta"})
        sub.to("meta")
    writer.close()
    plan.save(folder / "plan.json")
    return {"shards": len(set(writer.weight_map.values())), "file_gb": round(writer.total / 1e9, 2),
            "blocks_read": len(units) - len(dropped) - len(replaced), "blocks_dropped": len(dropped),
            "blocks_linear": len(replaced)}


def same_weights(model: Any, folder: Path) -> bool:
    """Whether ``model``'s state equals the sharded checkpoint at ``folder``, tensor for tensor (read shard by shard)."""
    import torch

    weight_map = json.loads((folder / INDEX).read_text())["weight_map"]
    state = model.state_dict()
    if sorted(state) != sorted(weight_map):
        return False
    by_file: dict[str, list[str]] = {}
    for k, f in weight_map.items():
        by_file.setdefault(f, []).append(k)
    return all(torch.equal(state[k], v) for ks in by_file.values() for k, v in _read(folder, weight_map, ks).items())


def plan_stage(args: argparse.Namespace, model: Any, stage: Callable[..., None], where: str = "") -> tuple[Any, dict]:
    """TMP's plan of ``model`` under ``--budget`` (measured on synthetic inputs with ``--measured``, else
    the data-free proxy on a fresh meta model) and the linear maps its ``linear_replace`` decisions need,
    recorded as the plan stage (timed from here)."""
    import torch

    from tmpbench.pruning.calibration import fit_linear_maps
    from tmpbench.pruning.runner import plan_model

    t = time.perf_counter()
    calib = synthetic_calibration(model, args.calib_inputs) if args.measured else None
    settings = {"max_calib_inputs": args.calib_inputs} if args.measured else None
    with torch.no_grad():
        plan = plan_model(model if args.measured else build(args.dry_run), "tmp", args.budget, pruner_settings=settings,
                          calibration=calib, model_name="tiny-dit" if args.dry_run else "zimage").plan
        maps = fit_linear_maps(model, plan, calib) if any(d.policy == "linear_replace" for d in plan.decisions) else {}
    search = plan.settings.get("search", {})
    stage("plan (TMP " + ("measured tree search" if args.measured else "data-free proxy") + where + ")", t,
          evaluations=search.get("evaluations"), forward_equivalents=search.get("forward_equivalents"),
          final_error=search.get("final_error"), planned_params=plan.achieved_params)
    return plan, maps


def meta_shapes(base: Any, plan: Any) -> Any:
    """``plan`` replayed on the meta ``base``: the pruned model's shapes, weights to be assigned."""
    import torch

    from tmpbench.pruning.surgery import apply_plan

    dim = int(base.config.dim)
    maps = {d.path: (torch.empty(dim, dim, device="meta"), torch.empty(dim, device="meta"))
            for d in plan.decisions if d.policy == "linear_replace"}
    return apply_plan(base, plan, linear_maps=maps, copy=False)


def forward_stage(model: Any, stage: Callable[..., None], name: str, plan: Any, search_params: int) -> dict:
    """One denoiser call of ``model`` at 64 px, recorded as a stage; returns the record's totals."""
    import torch

    t = time.perf_counter()
    probe = synthetic_calibration(model, 1)
    with torch.no_grad():
        out = probe.call(model, 0)
    flat = out[0][0] if isinstance(out, tuple) else out
    stage(name, t, finite=bool(torch.isfinite(flat.float()).all()))
    reloaded = sum(p.numel() for p in model.parameters())
    return {"params_before": search_params, "params_after": reloaded, "planned": plan.achieved_params,
            "plan_decisions": len(plan.decisions), "plan_search": plan.settings.get("search", {})}


def reload_offloaded(base: Any, folder: Path, offload: Path) -> Any:
    """The pruned model at ``folder`` (stage 4's output) under accelerate's disk offload: the plan replayed
    on the meta ``base`` for the shapes, then ``load_checkpoint_and_dispatch``."""
    import torch
    from accelerate import load_checkpoint_and_dispatch

    from tmpbench.pruning.plan import Plan

    shaped = meta_shapes(base, Plan.load(folder / "plan.json")).to(torch.bfloat16)
    return load_checkpoint_and_dispatch(shaped, str(folder / INDEX), device_map=block_device_map(shaped), offload_folder=str(offload))


def run_offloaded(args: argparse.Namespace, stage: Callable[..., None], mem: Any, work: Path) -> dict:
    """``--offload disk`` (module docstring); returns the record's extra fields."""
    import torch
    from diffusers import ZImageTransformer2DModel

    from tmpbench.pruning.calibration import offloaded

    ckpt, off, out, off2 = work / "checkpoint", work / "offload-search", work / "pruned", work / "offload-reload"
    mem.reset()
    t = time.perf_counter()
    meta = build(args.dry_run)
    n_params = sum(p.numel() for p in meta.parameters())
    info = write_checkpoint(meta, torch.bfloat16, ckpt)
    del meta
    stage("checkpoint (random bf16, block by block to safetensors shards)", t, params=n_params, **info)

    mem.reset()
    t = time.perf_counter()
    model = load_offloaded(ZImageTransformer2DModel, ckpt, off, dtype=torch.bfloat16)  # what --offload-folder loads
    stage("load (from_pretrained, blocks on disk, offload_folder)", t,
          offloaded=offloaded(model), resident_params=sum(p.numel() for p in model.parameters() if p.device.type != "meta"))

    mem.reset()
    plan, maps = plan_stage(args, model, stage, ", weights from disk")

    mem.reset()
    t = time.perf_counter()
    with torch.no_grad():
        in_memory = apply_offloaded(model, plan, linear_maps=maps)
    stage("surgery into memory (tmpbench prune --offload-folder: families.apply_offloaded)", t,
          params=sum(p.numel() for p in in_memory.parameters()))
    del model
    shutil.rmtree(off, ignore_errors=True)

    mem.reset()
    t = time.perf_counter()
    with torch.no_grad():
        cut = streamed_surgery(build(args.dry_run), ckpt, plan, maps, out)
    stage("surgery (block by block from the checkpoint, written sharded)", t, **cut,
          equals_in_memory=same_weights(in_memory, out))
    del in_memory
    if not args.keep_checkpoint:
        shutil.rmtree(ckpt, ignore_errors=True)

    mem.reset()
    t = time.perf_counter()
    shaped = reload_offloaded(build(args.dry_run), out, off2)
    reloaded = sum(p.numel() for p in shaped.parameters())
    stage("reload (plan on meta + load_checkpoint_and_dispatch, blocks on disk)", t, params=reloaded,
          equals_plan=reloaded == plan.achieved_params)

    mem.reset()
    return forward_stage(shaped, stage, "forward (one denoiser call, 64 px, weights from disk)", plan, n_params)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", default="4b")
    ap.add_argument("--measured", action="store_true", help="run TMP's measured tree search on synthetic inputs")
    ap.add_argument("--calib-inputs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--offload", choices=("none", "disk"), default="none",
                    help="disk: accelerate's disk offload holds the model (module docstring); none: it is in memory")
    ap.add_argument("--dry-run", action="store_true", help="tiny-dit's config instead of the published one (seconds)")
    ap.add_argument("--keep-checkpoint", action="store_true", help="--offload disk: keep the unpruned checkpoint")
    ap.add_argument("--workdir", type=Path, default=None, help="where the weights go (default: a temp dir, removed)")
    ap.add_argument("--out", type=Path, help="write the Markdown table and JSON record here")
    args = ap.parse_args(argv)
    if args.dry_run and args.budget == "4b":
        args.budget = "25%"

    import torch
    from _fullsize import Memory  # benchmarks/ is on sys.path (this script's folder)

    torch.set_num_threads(args.threads)
    rows, mem = [], Memory()
    record = {"budget": args.budget, "measured": args.measured, "offload": args.offload, "dry_run": args.dry_run}

    def stage(name: str, start: float, **extra) -> None:
        now, peak = mem.read()
        split = {f"rss_{k}_after_gib": round(v, 2) for k, v in mem.split().items()}
        rows.append({"stage": name, "seconds": round(time.perf_counter() - start, 1), "stage_peak_gib": round(peak, 2),
                     "process_peak_gib": round(mem.run_peak, 2), "rss_after_gib": round(now, 2), **split, **extra})
        print(f"| {name} | {rows[-1]['seconds']} | {rows[-1]['stage_peak_gib']} | {rows[-1]['process_peak_gib']} | {extra or ''} |",
              flush=True)

    print("| stage | seconds | stage peak RSS (GiB) | process peak RSS (GiB) | notes |\n|---|---|---|---|---|", flush=True)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="tmpbench-fullsize-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.offload == "disk":
            record.update(run_offloaded(args, stage, mem, work))
        else:
            record.update(run_in_memory(args, stage, mem, work))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    record.update(rows=rows, torch=torch.__version__, python=platform.python_version(), threads=args.threads,
                  command=" ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table = ["| stage | seconds | stage peak RSS (GiB) | process peak RSS (GiB) | notes |", "|---|---|---|---|---|"]
        for r in rows:
            notes = ", ".join(f"{k}={v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k}={v}"
                              for k, v in r.items() if k not in ("stage", "seconds", "stage_peak_gib", "process_peak_gib"))
            table.append(f"| {r['stage']} | {r['seconds']} | {r['stage_peak_gib']} | {r['process_peak_gib']} | {notes} |")
        args.out.write_text("\n".join(table) + "\n\n<!-- " + json.dumps(record, default=str) + " -->\n")
    return 0 if record["params_after"] == record["planned"] else 1


def run_in_memory(args: argparse.Namespace, stage: Callable[..., None], mem: Any, work: Path) -> dict:
    """The default (``--offload none``): the whole model in memory, stages 1-5 of the module docstring."""
    import torch
    from _fullsize import materialise
    from safetensors.torch import load_file, save_file

    from tmpbench.pruning.plan import Plan
    from tmpbench.pruning.surgery import apply_plan

    mem.reset()
    t = time.perf_counter()
    model = build(args.dry_run)
    materialise(model, torch.bfloat16)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    stage("build (random bf16, submodule by submodule)", t, params=n_params)

    mem.reset()
    plan, maps = plan_stage(args, model, stage)

    mem.reset()
    t = time.perf_counter()
    with torch.no_grad():
        pruned = apply_plan(model, plan, linear_maps=maps, copy=False)
    del model
    stage("surgery (in place)", t, params=sum(p.numel() for p in pruned.parameters()))

    mem.reset()
    t = time.perf_counter()
    save_file({k: v.contiguous() for k, v in pruned.state_dict().items()}, str(work / "model.safetensors"))
    plan.save(work / "plan.json")
    size_gb = (work / "model.safetensors").stat().st_size / 1e9
    del pruned
    stage("save (safetensors + plan.json)", t, file_gb=round(size_gb, 2))

    mem.reset()
    t = time.perf_counter()
    shaped = meta_shapes(build(args.dry_run), Plan.load(work / "plan.json"))
    shaped.load_state_dict(load_file(str(work / "model.safetensors")), assign=True, strict=True)
    reloaded = sum(p.numel() for p in shaped.parameters())
    stage("reload (meta shapes, weights assigned)", t, params=reloaded, equals_plan=reloaded == plan.achieved_params)

    mem.reset()
    return forward_stage(shaped, stage, "forward (one denoiser call, 64 px)", plan, n_params)


if __name__ == "__main__":
    raise SystemExit(main())
