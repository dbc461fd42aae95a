"""GPU check: measured peak VRAM, latency and TMP planning time against tmpbench's own predictions.

Runs on one CUDA device with random-init weights (nothing is downloaded) and writes one JSON and
one Markdown table (default ``reports/gpu-check/gpu-check.{json,md}``)::

    python benchmarks/gpu_check.py                         # one H100/H200, about 8 minutes at most
    python benchmarks/gpu_check.py --parts zimage          # one part
    python benchmarks/gpu_check.py --dry-run --out /tmp/gc # the same code paths on CPU, tiny models, < 1 min

Three parts, each in its own child process with its own timeout (a part that runs out of time or
memory is recorded with the reason and the rows it finished; the others still run):

* ``zimage``: full-size Z-Image (``ZImageTransformer2DModel``), the teacher and TMP cuts at ``4b``
  planned on the meta device with TMP's data-free proxies (what ``tmpbench fit --model zimage-4b``
  and ``tmpbench plan --meta`` do), once as planned and once with widths rounded to multiples of 64
  (TMP ``round_to=64``). Each is materialised in bf16 directly on the GPU (``to_empty`` + random
  init), then at 512 and 1024 px: peak memory of one denoiser forward against ``tmpbench fit``'s
  prediction for the same modules (denoiser weights + activations, strategy ``none``; the text
  encoder and VAE are not run, so their share of fit's ``none`` peak is reported but not compared),
  a short Euler sampling loop over random caption features, and latency(pruned)/latency(teacher)
  divided by the unit tree's FLOPs ratio (goal <= 1.10). Models are timed one at a time. The teacher
  is then measured once more under ``tmpbench run --offload group``'s diffusers group offloading
  (weights on the CPU, one block on the device and the next prefetched): peak memory against fit's
  ``group`` denoise phase, and its slowdown against the resident forward.
* ``hunyuanimage3``: the HunyuanImage-3.0 backbone layout (transformers' HunYuanMoEV1 classes)
  planned to ``20b`` on meta, built pruned in bf16 on the GPU (about 40 GB), one forward of the
  decoder (``model.model``, no LM-head logits) over ``batch x tokens`` random token ids, with the
  token count and CFG batch ``fit`` assumes at 1024 px and the KV cache kept (``use_cache=True``);
  peak memory against fit's denoiser weights + activations + KV cache; then the same forward under
  ``tmpbench run --offload expert`` (routed experts streamed from the CPU, no cache) against fit's
  expert-offload floor.
* ``plan-time``: TMP's measured search on the Z-Image teacher (random weights, on the GPU) with a
  calibration of 2 prompts x 2 steps at 256 px, captured through the ordinary
  :func:`tmpbench.pruning.calibration.collect_calibration` from a sampler that feeds random caption
  features and latents (no text encoder or VAE with random weights is assembled); the seconds of
  calibration + search against ``tmpbench plan --estimate``'s projection for an H100
  (:func:`tmpbench.pruning.estimate.estimate_plan`), and the search's evaluations and
  forward-equivalents against the estimate's.

Measured memory on CUDA is ``torch.cuda.max_memory_allocated`` (PyTorch tensors only); the
device-level figure (``max_memory_reserved`` plus what the device holds outside PyTorch's
allocator, read with ``mem_get_info``) is compared with fit's prediction plus its fixed CUDA-context
allowance. Weights are most of each peak (97% for Z-Image at 1024 px), so each row also compares
the measured bytes minus the weights with fit's activations (+ KV cache): ``activation_ratio``.
``--dry-run`` runs every part on the CPU with tiny models (the registered ``tiny-dit``,
and a HunYuanMoEV1 at a few hundred thousand parameters) and tiny sizes; there it measures the
parameter bytes of the materialised module plus the growth of peak RSS during the call, which is
not comparable with the prediction, and its latencies and timings say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SCHEMA = "tmpbench-gpu-check/1"
PARTS = ("zimage", "hunyuanimage3", "plan-time")
MEMORY_GOAL = 0.10  # |measured / predicted - 1| within 10%
LATENCY_GOAL = 1.10  # latency ratio / FLOPs ratio at most 1.10
FIT_CARD = "h100"  # the card fit's verdicts are read for (the predicted peak does not depend on it)
GIB = 1024**3


@dataclasses.dataclass(frozen=True)
class Mode:
    """What one mode (GPU or dry run) builds and how long each part may take."""

    name: str
    device: str
    zimage_model: str  # a registered Z-Image-family entry
    zimage_budget: str
    round_to: int
    sizes: tuple[int, ...]
    hy3_overrides: dict  # HunYuanMoEV1 config overrides of the hunyuanimage3 entry ({} = full size)
    hy3_budget: str
    hy3_size: int
    plan_budget: str
    plan_size: int
    plan_prompts: int
    plan_steps: int
    tmp_settings: dict  # TMP settings of the measured search (and its estimate)
    loop_steps: int
    repeats: int
    warmup: int
    timeouts: dict  # seconds per part
    total_s: int  # all parts together


GPU = Mode(
    name="gpu", device="cuda", zimage_model="zimage", zimage_budget="4b", round_to=64, sizes=(512, 1024),
    hy3_overrides={}, hy3_budget="20b", hy3_size=1024,
    plan_budget="4b", plan_size=256, plan_prompts=2, plan_steps=2, tmp_settings={},
    loop_steps=4, repeats=10, warmup=2,
    timeouts={"zimage": 200, "hunyuanimage3": 130, "plan-time": 150}, total_s=480,
)
DRY_RUN = Mode(
    name="dry-run", device="cpu", zimage_model="tiny-dit", zimage_budget="35%", round_to=8, sizes=(64, 128),
    hy3_overrides={"vocab_size": 512, "hidden_size": 64, "intermediate_size": 32, "num_hidden_layers": 2,
                   "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "num_experts": 8, "moe_topk": 2,
                   "max_position_embeddings": 512},
    hy3_budget="50%", hy3_size=64,
    plan_budget="35%", plan_size=64, plan_prompts=2, plan_steps=2, tmp_settings={"chunks": 4, "max_calib_inputs": 2},
    loop_steps=2, repeats=2, warmup=1,
    timeouts={"zimage": 90, "hunyuanimage3": 90, "plan-time": 90}, total_s=240,
)


class SkipPart(Exception):
    """A part cannot run here (no CUDA device); recorded as skipped with this reason."""


# --------------------------------------------------------------------------------------------
# building: the meta variants fit counts, materialised with random weights on the device
# --------------------------------------------------------------------------------------------
def meta_variant(entry: Any, budget: str | None = None, settings: dict | None = None) -> dict[str, Any]:
    """What :func:`tmpbench.fit.resolve_modules` returns for ``NAME`` / ``NAME-BUDGET`` (the same meta
    build, bf16 cast, data-free TMP plan and surgery), with TMP ``settings`` added (e.g. round_to)."""
    import torch

    from tmpbench.models.weights import quiet_hub_logs
    from tmpbench.pruning.families import apply
    from tmpbench.pruning.runner import plan_model

    with quiet_hub_logs():
        denoiser = entry.build_meta().to(torch.bfloat16)
        components = {k: m.to(torch.bfloat16) for k, m in entry.build_meta_components().items()}
    plan = None
    if budget is not None:
        outcome = plan_model(denoiser, "tmp", budget, model_name=entry.name, pruner_settings=settings or None)
        outcome.report.require()
        plan, denoiser = outcome.plan, apply(denoiser, outcome.plan)
    return {"entry": entry, "denoiser": denoiser, "components": components, "plan": plan,
            "origin": {"model": entry.name, "pruner": "tmp" if budget else None, "budget": budget, "settings": settings}}


def fit_prediction(resolved: dict[str, Any], size: int, strategy: str = "none") -> dict[str, Any]:
    """``tmpbench fit``'s numbers for these modules at ``size`` px: the denoising phase under ``strategy``
    (its resident denoiser weights, activations, KV cache), and the whole-generation peak of ``none`` and
    of ``strategy`` on the card fit's verdicts are read for."""
    from tmpbench import fit
    from tmpbench.models import memory

    est = fit.estimate(resolved, size)
    found = {v.strategy: v for v in memory.verdicts(est, memory.gpu(FIT_CARD))}
    out = {
        "tokens": est.tokens, "batch": est.batch, "denoiser_weight_bytes": memory.denoise_weight_bytes(est, strategy),
        "activation_bytes": est.activations, "kv_cache_bytes": est.kv_cache,
        "predicted_bytes": memory.denoise_phase_bytes(est, strategy),
        "cuda_context_bytes": memory.CUDA_CONTEXT_BYTES, "fit_none_peak_bytes": found["none"].peak_bytes,
        "fit_components_bytes": est.components, "flops_per_forward": est.flops_per_step,
    }
    if strategy != "none":
        chosen = found[strategy]
        out[f"fit_{strategy}_peak_bytes"] = chosen.peak_bytes
        out[f"fit_{strategy}_step_slowdown"] = chosen.step_seconds / chosen.compute_seconds if chosen.compute_seconds else None
    return out


def materialise(meta_model: Any, device: str, seed: int = 0) -> Any:
    """A copy of ``meta_model`` with random weights allocated on ``device`` in the dtypes it holds:
    weights N(0, 0.02), biases 0, other 1-D parameters (norm scales) 1. Buffers are recomputed by a
    fresh instance of their module built from its ``config`` (rotary ``inv_freq``)."""
    import torch

    from tmpbench.errors import TmpbenchError

    model = copy.deepcopy(meta_model).to_empty(device=device)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.02)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.fill_(1.0)
        for name, mod in model.named_modules():
            own = dict(mod.named_buffers(recurse=False))
            if not own:
                continue
            if not hasattr(mod, "config"):
                raise TmpbenchError(f"cannot recompute the buffers {sorted(own)} of {name or type(mod).__name__} "
                                    "after to_empty (no config to rebuild it from)")
            fresh = type(mod)(mod.config)
            for key in own:
                mod._buffers[key] = fresh._buffers[key].to(device)
    return model.eval()


# --------------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------------
def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


class PeakMemory:
    """Peak memory of what runs inside ``with``: CUDA allocator peaks on a GPU; on the CPU the
    module's own parameter bytes plus peak-RSS growth (see the module docstring)."""

    def __init__(self, device: str, model: Any) -> None:
        self.device, self.model = device, model
        self.result: dict[str, Any] = {}

    def __enter__(self) -> PeakMemory:
        import resource

        import torch

        _sync(self.device)
        if self.device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        self._rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc: Any) -> None:
        import resource

        import torch

        from tmpbench.models import memory

        _sync(self.device)
        if self.device == "cuda":
            free, total = torch.cuda.mem_get_info()
            outside = (total - free) - torch.cuda.memory_reserved()  # CUDA context, library workspaces
            self.result = {"measured_bytes": torch.cuda.max_memory_allocated(),
                           "reserved_bytes": torch.cuda.max_memory_reserved(), "outside_allocator_bytes": outside,
                           "device_bytes": torch.cuda.max_memory_reserved() + outside,
                           "memory_source": "cuda max_memory_allocated"}
        else:
            growth = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self._rss) * 1024  # Linux: KiB
            weights = memory.total_bytes(memory.module_bytes(self.model))
            self.result = {"measured_bytes": weights + growth, "memory_source": "cpu: parameter bytes + peak-RSS growth "
                           "(no CUDA memory; not comparable with the prediction)"}


def median_seconds(fn: Any, device: str, repeats: int, warmup: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs, synchronised."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def memory_row(measured: dict[str, Any], predicted: dict[str, Any]) -> dict[str, Any]:
    """Measured against predicted: the allocator ratio and, on CUDA, the device-level one."""
    row = {**predicted, **measured, "memory_ratio": measured["measured_bytes"] / predicted["predicted_bytes"]}
    # weights are most of the peak (97% for Z-Image at 1024 px): the rest against fit's activations + KV cache
    # says whether the activation model holds
    row["activation_measured_bytes"] = measured["measured_bytes"] - predicted["denoiser_weight_bytes"]
    row["activation_ratio"] = row["activation_measured_bytes"] / (predicted["activation_bytes"] + predicted["kv_cache_bytes"])
    if "device_bytes" in measured:
        row["device_ratio"] = measured["device_bytes"] / (predicted["predicted_bytes"] + predicted["cuda_context_bytes"])
    row["memory_within_goal"] = abs(row["memory_ratio"] - 1.0) <= MEMORY_GOAL
    return row


# --------------------------------------------------------------------------------------------
# a sampler over random caption features: calibration and the short loop
# --------------------------------------------------------------------------------------------
class SyntheticZImageSampler:
    """Euler flow-matching sampling of a Z-Image denoiser from random caption features and latents.

    Not a :class:`~tmpbench.models.base.Generator` (there is no text encoder or VAE): it has what
    :func:`~tmpbench.pruning.calibration.collect_calibration` reads, ``denoiser`` and ``generate``,
    and ``generate`` returns the final latents. The latent grid is the one the unit tree counts
    (``size / vae_factor``), the caption is ``caption_tokens`` long, as in ``fit``'s estimate.
    """

    name = "synthetic-zimage-sampler"

    def __init__(self, denoiser: Any, caption_tokens: int, vae_factor: int) -> None:
        self.denoiser, self.caption_tokens, self.vae_factor = denoiser, caption_tokens, vae_factor

    def inputs(self, seed: int, size: int) -> tuple[Any, Any]:
        """(latents (C, 1, H, W), caption features (L, D)) of one sample, seeded."""
        import torch

        p = next(self.denoiser.parameters())
        cfg = self.denoiser.config
        gen = torch.Generator().manual_seed(int(seed))
        side = size // self.vae_factor
        latents = torch.randn(cfg.in_channels, 1, side, side, generator=gen).to(p.device, p.dtype)
        caption = torch.randn(self.caption_tokens, cfg.cap_feat_dim, generator=gen).to(p.device, p.dtype)
        return latents, caption

    def forward(self, latents: list, t: Any, captions: list) -> list:
        return self.denoiser(latents, t, captions, return_dict=False)[0]

    def generate(self, prompts: list[str], seeds: list[int], steps: int, guidance: float, size: int) -> list:
        import torch

        out = []
        with torch.no_grad():
            for seed in seeds:
                x, cap = self.inputs(seed, size)
                uncond = torch.zeros_like(cap)
                sigmas = torch.linspace(1.0, 0.0, steps + 1)
                for i in range(steps):
                    t = torch.full((1,), 1.0 - float(sigmas[i]), device=x.device)  # Z-Image: t = 0 is pure noise
                    if guidance > 1.0:  # classifier-free guidance batches the unconditional pass, as the pipeline does
                        cond, unc = self.forward([x, x], t.repeat(2), [cap, uncond])
                        v = unc + guidance * (cond - unc)
                    else:
                        v = self.forward([x], t, [cap])[0]
                    x = x + (float(sigmas[i + 1]) - float(sigmas[i])) * -v.to(x.dtype)  # the model predicts -velocity
                out.append(x)
        return out


# --------------------------------------------------------------------------------------------
# the parts (each runs in its own child process)
# --------------------------------------------------------------------------------------------
def _require_device(mode: Mode) -> None:
    import torch

    if mode.device == "cuda" and not torch.cuda.is_available():
        raise SkipPart("no CUDA device (run with --dry-run for the CPU code paths)")


def _free(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def part_zimage(mode: Mode, record: Any) -> None:
    import torch

    from tmpbench.models.spec import parse_spec, resolve_entry
    from tmpbench.pruning.families import unit_tree
    from tmpbench.pruning.tree import DEFAULT_VAE_FACTOR

    _require_device(mode)
    entry = resolve_entry(parse_spec(mode.zimage_model))
    variants = [("teacher", None, None), (f"tmp-{mode.zimage_budget}", mode.zimage_budget, None),
                (f"tmp-{mode.zimage_budget}-round{mode.round_to}", mode.zimage_budget, {"round_to": mode.round_to})]
    record.note(f"{entry.name}: denoiser only (random caption features, no text encoder or VAE); fit's 'none' peak "
                "also counts those components and its CUDA-context allowance, reported as fit_none_peak_bytes")
    teacher_latency: dict[int, float] = {}
    teacher_flops: dict[int, float] = {}
    for label, budget, settings in variants:
        resolved = meta_variant(entry, budget, settings)
        meta = resolved["denoiser"]
        model = materialise(meta, mode.device)
        sampler = SyntheticZImageSampler(model, unit_tree(meta).caption_tokens, DEFAULT_VAE_FACTOR)
        for size in mode.sizes:
            row: dict[str, Any] = {"variant": label, "model": entry.name, "budget": budget, "settings": settings,
                                   "size": size, "params": sum(p.numel() for p in model.parameters())}
            try:
                predicted = fit_prediction(resolved, size)
                flops = float(unit_tree(meta, size=size).flops)
                x, cap = sampler.inputs(0, size)
                t = torch.full((1,), 0.5, device=x.device)
                with torch.no_grad(), PeakMemory(mode.device, model) as peak:
                    sampler.forward([x], t, [cap])
                row.update(memory_row(peak.result, predicted), flops=flops)

                def step(x=x, t=t, cap=cap, forward=sampler.forward) -> None:
                    with torch.no_grad():
                        forward([x], t, [cap])

                row["latency_s"] = median_seconds(step, mode.device, mode.repeats, mode.warmup)
                with PeakMemory(mode.device, model) as loop_peak:
                    start = time.perf_counter()
                    sampler.generate(["synthetic"], [0], mode.loop_steps, 0.0, size)
                    _sync(mode.device)
                row.update(loop_steps=mode.loop_steps, loop_s=time.perf_counter() - start,
                           loop_measured_bytes=loop_peak.result["measured_bytes"])
                if budget is None:
                    teacher_latency[size], teacher_flops[size] = row["latency_s"], flops
                elif size in teacher_latency:
                    row["flops_ratio"] = flops / teacher_flops[size]
                    row["latency_ratio"] = row["latency_s"] / teacher_latency[size]
                    row["lat_over_flops"] = row["latency_ratio"] / row["flops_ratio"]
                    row["latency_within_goal"] = row["lat_over_flops"] <= LATENCY_GOAL
            except torch.cuda.OutOfMemoryError as exc:
                row["error"] = f"out of memory: {str(exc).splitlines()[0]}"
            record.row(row)
        if budget is None:
            model = group_offload_rows(mode, resolved, model, sampler, record, teacher_latency)
        del model, sampler
        _free(mode.device)


def group_offload_rows(mode: Mode, resolved: dict[str, Any], model: Any, sampler: Any, record: Any,
                       teacher_latency: dict[int, float]) -> Any:
    """The teacher again under ``tmpbench run --offload group``'s diffusers group offloading
    (:func:`tmpbench.models.offload.group_offload_kwargs`): weights back on the CPU, blocks streamed to
    the device one at a time with the next prefetched. Peak memory of one forward against fit's denoise
    phase for ``group`` (:func:`tmpbench.models.memory.denoise_phase_bytes`), and its latency against the
    resident forward's (the slowdown fit predicts from PCIe bandwidth, for the card it names)."""
    import torch
    from diffusers.hooks import apply_group_offloading

    from tmpbench.models.offload import group_offload_kwargs

    model = model.to("cpu")
    _free(mode.device)
    apply_group_offloading(model, **group_offload_kwargs(mode.device))
    for size in mode.sizes:
        row: dict[str, Any] = {"variant": "teacher-group-offload", "model": resolved["origin"]["model"], "budget": None,
                               "settings": None, "offload": "group", "size": size,
                               "params": sum(p.numel() for p in model.parameters())}
        try:
            predicted = fit_prediction(resolved, size, "group")
            x, cap = (v.to(mode.device) for v in sampler.inputs(0, size))
            t = torch.full((1,), 0.5, device=mode.device)
            with torch.no_grad(), PeakMemory(mode.device, model) as peak:
                sampler.forward([x], t, [cap])
            row.update(memory_row(peak.result, predicted))

            def step(x=x, t=t, cap=cap, forward=sampler.forward) -> None:
                with torch.no_grad():
                    forward([x], t, [cap])

            row["latency_s"] = median_seconds(step, mode.device, mode.repeats, mode.warmup)
            if size in teacher_latency:
                row["offload_slowdown"] = row["latency_s"] / teacher_latency[size]
        except torch.cuda.OutOfMemoryError as exc:
            row["error"] = f"out of memory: {str(exc).splitlines()[0]}"
        record.row(row)
    return model


def hy3_entry(mode: Mode) -> Any:
    """The hunyuanimage3 entry, with the mode's config overrides (the dry run's tiny stand-in)."""
    from tmpbench.models.spec import parse_spec, resolve_entry

    entry = resolve_entry(parse_spec("hunyuanimage3"))
    if not mode.hy3_overrides:
        return entry
    return dataclasses.replace(entry, name="hunyuanimage3-tiny",
                               extra={**entry.extra, "config_overrides": dict(mode.hy3_overrides)})


def part_hunyuanimage3(mode: Mode, record: Any) -> None:
    import torch

    _require_device(mode)
    entry = hy3_entry(mode)
    resolved = meta_variant(entry, mode.hy3_budget)
    predicted = fit_prediction(resolved, mode.hy3_size)
    model = materialise(resolved["denoiser"], mode.device)
    record.note(f"{entry.name}-{mode.hy3_budget}: decoder forward (model.model, use_cache=True) over random token ids; "
                f"attention {getattr(model.config, '_attn_implementation', None)}, experts "
                f"{getattr(model.config, '_experts_implementation', None) or 'default'}")
    row: dict[str, Any] = {"variant": f"tmp-{mode.hy3_budget}", "model": entry.name, "budget": mode.hy3_budget,
                           "size": mode.hy3_size, "params": sum(p.numel() for p in model.parameters())}
    try:
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(0, model.config.vocab_size, (predicted["batch"], predicted["tokens"]), generator=gen)
        ids = ids.to(mode.device)

        def forward() -> None:
            with torch.no_grad():
                model.model(input_ids=ids, use_cache=True)

        with PeakMemory(mode.device, model) as peak:
            forward()
        row.update(memory_row(peak.result, predicted))
        row["latency_s"] = median_seconds(forward, mode.device, max(1, mode.repeats // 3), 1)
    except torch.cuda.OutOfMemoryError as exc:
        row["error"] = f"out of memory: {str(exc).splitlines()[0]}"
    record.row(row)
    if "error" not in row:
        record.row(expert_offload_row(mode, resolved, model, forward, row))


def expert_offload_row(mode: Mode, resolved: dict[str, Any], model: Any, forward: Any, resident: dict[str, Any]) -> dict:
    """The same forward under ``tmpbench run --offload expert`` (:func:`tmpbench.models.offload.expert_offload`,
    no cache): weights back on the CPU, everything but the routed experts placed on the device, each
    expert's weights streamed for its own call. Peak memory against fit's expert floor
    (:func:`tmpbench.models.memory.denoise_phase_bytes`: two layers' experts in flight, so an upper bound
    for a leaf-level stream) and latency against the resident forward's."""
    import torch

    from tmpbench.models.offload import expert_offload

    row: dict[str, Any] = {**{k: resident[k] for k in ("model", "budget", "size", "params")},
                           "variant": f"{resident['variant']}-expert-offload", "offload": "expert"}
    try:
        model.to("cpu")
        _free(mode.device)
        row["placement"] = expert_offload(model, mode.device)
        predicted = fit_prediction(resolved, mode.hy3_size, "expert")
        with PeakMemory(mode.device, model) as peak:
            forward()
        row.update(memory_row(peak.result, predicted))
        row["latency_s"] = median_seconds(forward, mode.device, max(1, mode.repeats // 5), 1)
        row["offload_slowdown"] = row["latency_s"] / resident["latency_s"]
    except torch.cuda.OutOfMemoryError as exc:
        row["error"] = f"out of memory: {str(exc).splitlines()[0]}"
    return row


def part_plan_time(mode: Mode, record: Any) -> None:
    from tmpbench.models.memory import GPUS
    from tmpbench.pruning.calibration import collect_calibration
    from tmpbench.pruning.estimate import MFU, estimate_plan
    from tmpbench.pruning.families import unit_tree
    from tmpbench.pruning.runner import plan_model
    from tmpbench.pruning.tree import DEFAULT_VAE_FACTOR

    _require_device(mode)
    resolved = meta_variant(resolve_entry_named(mode.zimage_model))
    meta = resolved["denoiser"]
    guidance = 0.0  # Z-Image-Turbo's default (no CFG): one sequence per call, as the estimate assumes
    est = estimate_plan(meta, "tmp", mode.plan_budget, n_prompts=mode.plan_prompts, steps=mode.plan_steps,
                        size=mode.plan_size, guidance=guidance, pruner_settings=mode.tmp_settings or None)
    # estimate_plan's projection (its "hours" are rounded to 4 decimals, too coarse for a tiny dry run)
    predicted_s = est["flops"] / (GPUS["h100"].bf16_tflops * 1e12 * MFU)
    record.note(f"predicted seconds: estimate_plan's H100 projection at {MFU:.0%} MFU (calibration sampling + search)")
    row: dict[str, Any] = {
        "model": resolved["entry"].name, "budget": mode.plan_budget, "settings": mode.tmp_settings,
        "calibration": f"{mode.plan_prompts} prompts x {mode.plan_steps} steps at {mode.plan_size} px",
        "predicted_s": predicted_s, "predicted_evaluations": est["evaluations"],
        "predicted_forward_equivalents": est["forward_equivalents"],
    }
    record.row(row)  # the prediction is kept even when the search runs out of time
    model = materialise(meta, mode.device)
    sampler = SyntheticZImageSampler(model, unit_tree(meta).caption_tokens, DEFAULT_VAE_FACTOR)
    start = time.perf_counter()
    calib = collect_calibration(sampler, [f"synthetic prompt {i}" for i in range(mode.plan_prompts)],
                                list(range(mode.plan_prompts)), mode.plan_steps, mode.plan_size, guidance)
    _sync(mode.device)
    row.update(calib_inputs=len(calib), calibration_s=time.perf_counter() - start)
    record.flush()
    start = time.perf_counter()
    outcome = plan_model(model, "tmp", mode.plan_budget, calibration=calib, model_name=resolved["entry"].name,
                         pruner_settings=mode.tmp_settings or None)
    _sync(mode.device)
    search = outcome.plan.settings.get("search", {})
    row.update(search_s=time.perf_counter() - start, measured_evaluations=search.get("evaluations"),
               measured_forward_equivalents=(search.get("forward_equivalents") or 0) + len(calib),
               budget_check=outcome.report.message)
    row["measured_s"] = row["calibration_s"] + row["search_s"]
    row["time_ratio"] = row["measured_s"] / predicted_s
    record.flush()


def resolve_entry_named(name: str) -> Any:
    from tmpbench.models.spec import parse_spec, resolve_entry

    return resolve_entry(parse_spec(name))


PART_FUNCS = {"zimage": part_zimage, "hunyuanimage3": part_hunyuanimage3, "plan-time": part_plan_time}


class PartRecord:
    """What one part has measured so far, rewritten to ``path`` after every row (a timeout keeps them)."""

    def __init__(self, path: Path, mode: Mode) -> None:
        self.path, self.data = path, {"rows": [], "notes": [], "device": device_info(mode)}
        self.flush()

    def note(self, text: str) -> None:
        self.data["notes"].append(text)
        self.flush()

    def row(self, row: dict[str, Any]) -> None:
        self.data["rows"].append(row)
        print(json.dumps(row, default=str), flush=True)
        self.flush()

    def flush(self) -> None:
        from tmpbench.provenance import json_safe

        self.path.write_text(json.dumps(json_safe(self.data), indent=2))


def device_info(mode: Mode) -> dict[str, Any]:
    import torch

    if mode.device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return {"type": "cuda", "name": props.name, "memory_bytes": props.total_memory,
                "capability": f"{props.major}.{props.minor}"}
    return {"type": "cpu", "name": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}


def run_part(name: str, mode: Mode, path: Path) -> int:
    """Child process: run one part, writing its rows to ``path``; exit 3 when it is skipped."""
    record = PartRecord(path, mode)
    try:
        PART_FUNCS[name](mode, record)
    except SkipPart as exc:
        record.data["skipped"] = str(exc)
        record.flush()
        return 3
    return 0


# --------------------------------------------------------------------------------------------
# the parent: parts under timeouts, then the JSON and the Markdown
# --------------------------------------------------------------------------------------------
def versions() -> dict[str, Any]:
    import torch

    from tmpbench.provenance import library_version

    return {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            **{d: library_version(d) for d in ("diffusers", "transformers", "tmpbench")}}


def run_parts(mode: Mode, parts: list[str], workdir: Path, threads: int | None) -> dict[str, Any]:
    """Each part in a child process under its timeout (and what is left of the total); its rows and status."""
    deadline = time.monotonic() + mode.total_s
    results = {}
    for name in parts:
        left = deadline - time.monotonic()
        budget = min(mode.timeouts[name], left)
        if budget < 20:
            results[name] = {"status": "skipped", "reason": f"no time left in the {mode.total_s} s budget", "rows": []}
            continue
        path = workdir / f"{name}.json"
        path.unlink(missing_ok=True)  # a child that dies before its first write leaves no stale rows behind
        cmd = [sys.executable, str(Path(__file__).resolve()), "--part", name, "--part-json", str(path)]
        cmd += ["--dry-run"] if mode is DRY_RUN else []
        cmd += ["--threads", str(threads)] if threads else []
        start = time.monotonic()
        print(f"[gpu-check] {name}: up to {budget:.0f} s", flush=True)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=budget)
            rc, tail = proc.returncode, (proc.stderr or "").strip().splitlines()[-5:]
        except subprocess.TimeoutExpired:
            rc, tail = None, []
        data = json.loads(path.read_text()) if path.is_file() else {"rows": [], "notes": []}
        path.unlink(missing_ok=True)
        entry = {"seconds": round(time.monotonic() - start, 1), **data}
        if rc == 0:
            entry["status"] = "ok"
        elif rc == 3:
            entry.update(status="skipped", reason=data.get("skipped"))
        elif rc is None:
            entry.update(status="timed out", reason=f"timed out after {budget:.0f} s; rows finished before are kept")
        else:
            entry.update(status="failed", reason=" | ".join(tail) or f"exit code {rc}")
        results[name] = entry
        print(f"[gpu-check] {name}: {entry['status']} in {entry['seconds']} s", flush=True)
    return results


def _gib(n: Any) -> str:
    return "-" if n is None else f"{n / GIB:.2f}"


def _num(x: Any, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def markdown(report: dict[str, Any]) -> str:
    """The tables of one report (what the JSON holds, rounded)."""
    dev = report["device"]
    lines = [f"# GPU check ({report['mode']})", "",
             f"`{report['command']}` on {dev.get('name')} ({dev.get('type')}); {report['wall_s']} s. "
             f"Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()) + ".",
             f"Goals: measured / predicted memory within {MEMORY_GOAL:.0%}; latency ratio / FLOPs ratio <= {LATENCY_GOAL}. "
             "Predicted: fit's denoiser weights + activations (+ KV cache); device ratio: device-level use against that plus "
             "fit's CUDA-context allowance; act. ratio: measured minus weights against fit's activations (+ KV cache).", ""]
    for name, part in report["parts"].items():
        lines.append(f"## {name}: {part['status']}" + (f" ({part['reason']})" if part.get("reason") else ""))
        lines += [""] + [f"- {n}" for n in part.get("notes", [])] + [""]
        rows = part.get("rows", [])
        if not rows:
            continue
        if name == "plan-time":
            lines += ["| model | budget | calibration | predicted s (H100) | measured s (calib + search) | ratio | "
                      "evaluations pred / meas | forward-equiv. pred / meas |", "|" + " --- |" * 8]
            for r in rows:
                lines.append(f"| {r['model']} | {r['budget']} | {r['calibration']} | {_num(r['predicted_s'], '.3g')} | "
                             f"{_num(r.get('measured_s'), '.3g')} | {_num(r.get('time_ratio'), '.3g')} | "
                             f"{r['predicted_evaluations']} / {r.get('measured_evaluations', '-')} | "
                             f"{_num(r['predicted_forward_equivalents'], '.0f')} / {_num(r.get('measured_forward_equivalents'), '.0f')} |")
        else:
            lines += ["| variant | size | params | tokens x batch | predicted GiB | measured GiB | ratio | device ratio | "
                      "act. ratio | fit 'none' GiB | latency ms | FLOPs ratio | latency ratio | lat / FLOPs |", "|" + " --- |" * 14]
            for r in rows:
                if "error" in r:
                    lines.append(f"| {r['variant']} | {r['size']} | {r['params']:,} | error: {r['error']} |" + " |" * 10)
                    continue
                lat = r.get("latency_s")
                lines.append(f"| {r['variant']} | {r['size']} | {r['params']:,} | {r['tokens']} x {r['batch']} | "
                             f"{_gib(r['predicted_bytes'])} | {_gib(r['measured_bytes'])} | {_num(r['memory_ratio'])} | "
                             f"{_num(r.get('device_ratio'))} | {_num(r['activation_ratio'])} | {_gib(r['fit_none_peak_bytes'])} | "
                             f"{_num(None if lat is None else lat * 1e3, '.1f')} | {_num(r.get('flops_ratio'))} | "
                             f"{_num(r.get('latency_ratio'))} | {_num(r.get('lat_over_flops'))} |")
            sources = sorted({r["memory_source"] for r in rows if "memory_source" in r})
            lines += ["", "Measured memory: " + "; ".join(sources) + "."]
            for r in rows:
                if r.get("offload") and "error" not in r:
                    held = "2 blocks" if r["offload"] == "group" else "2 layers' routed experts"
                    slowdown = r.get(f"fit_{r['offload']}_step_slowdown")
                    fit_says = f", fit predicts x{_num(slowdown, '.2f')} per step on {FIT_CARD}" if slowdown else ""
                    lines.append(f"- {r['variant']} at {r['size']} px: predicted = fit's '{r['offload']}' denoise phase "
                                 f"(resident weights + {held} + activations); latency "
                                 f"x{_num(r.get('offload_slowdown'), '.2f')} the resident forward{fit_says}.")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny models and sizes: the same code paths in < 1 min")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    ap.add_argument("--out", type=Path, default=Path("reports/gpu-check"), help="folder for the JSON and the Markdown")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    ap.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)  # child process: run one part
    ap.add_argument("--part-json", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    mode = DRY_RUN if args.dry_run else GPU
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.part:
        return run_part(args.part, mode, args.part_json)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        ap.error(f"--parts {args.parts!r}: choose from {', '.join(PARTS)}")
    from tmpbench.provenance import git_state, json_safe

    args.out.mkdir(parents=True, exist_ok=True)
    stem = "dry-run" if args.dry_run else "gpu-check"
    workdir = args.out / f".{stem}-parts"
    workdir.mkdir(exist_ok=True)
    start = time.monotonic()
    results = run_parts(mode, parts, workdir, args.threads)
    workdir.rmdir()
    commit, dirty = git_state()
    device = next((p["device"] for p in results.values() if p.get("device")), {"type": mode.device, "name": None})
    report = {
        "schema": SCHEMA, "mode": mode.name, "command": " ".join(["python", "benchmarks/gpu_check.py", *argv]),
        "device": device, "versions": versions(), "git": {"commit": commit, "dirty": dirty},
        "budget_s": mode.total_s, "wall_s": round(time.monotonic() - start, 1),
        "goals": {"memory_ratio_within": MEMORY_GOAL, "lat_over_flops_max": LATENCY_GOAL, "fit_card": FIT_CARD},
        "mode_settings": dataclasses.asdict(mode), "parts": results,
    }
    (args.out / f"{stem}.json").write_text(json.dumps(json_safe(report), indent=2) + "\n")
    text = markdown(report)
    (args.out / f"{stem}.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
