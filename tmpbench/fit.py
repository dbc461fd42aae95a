"""``tmpbench fit``: does a (pruned) model generate on a given GPU, and with which offload strategy?

A composition of models (meta-device builders, loaders), pruning (replaying a Plan, planning a
spec such as ``zimage-4b``) and the memory arithmetic of :mod:`tmpbench.models.memory`; it sits at
the level of :mod:`tmpbench.loading` and never imports the run pipeline.

Where the modules come from:

* ``NAME`` (``zimage``, ``hunyuanimage3``): the full-size denoiser and the pipeline's other
  components built on the meta device and cast to ``dtype`` (bf16, as both models ship); or, with
  ``load=True``, the generator itself as :func:`tmpbench.loading.load_model` loads it, counted in
  the dtypes it was loaded in.
* ``NAME-SIZE`` (``zimage-4b``): the base as above, planned by ``pruner`` with the data-free
  proxies the pruners use at full size (``tmpbench plan --meta``) and cut with the family's surgery.
* ``--plan DIR`` (a folder written by ``tmpbench prune``): its ``plan.json`` replayed on the base
  built on the meta device, or with ``load=True`` the folder loaded as is. A folder made for
  another model than ``--model`` is refused.

Example::

    >>> report = fit_report("zimage", "rtx4090", size=1024)          # doctest: +SKIP
    >>> report["cheapest"]["strategy"], report["cheapest"]["slowdown"]  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from tmpbench.errors import TmpbenchError
from tmpbench.models import memory
from tmpbench.models.counting import build_meta
from tmpbench.models.moe import MoEBlockView
from tmpbench.models.spec import parse_spec, resolve_entry
from tmpbench.models.weights import quiet_hub_logs
from tmpbench.pruning.families import apply, layout_of, unit_tree
from tmpbench.pruning.hunyuan_tree import gqa_geometry
from tmpbench.pruning.io import folder_provenance, is_pruned_dir, read_plan
from tmpbench.pruning.tree import attention_geometry

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
KV_CACHE_LAYOUTS = ("hunyuan-decoder",)  # causal decoders that keep text and image tokens in one sequence


def _dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise TmpbenchError(f"unknown --dtype {name!r}; expected one of {', '.join(DTYPES)}")
    return DTYPES[name]


def _pipeline_components(generator: Any) -> dict[str, nn.Module]:
    """A loaded generator's modules other than its denoiser (a diffusers pipeline's text encoder, VAE...)."""
    pipe = getattr(generator, "pipe", None)
    found = getattr(pipe, "components", {}) if pipe is not None else {}
    return {name: mod for name, mod in found.items() if isinstance(mod, nn.Module) and mod is not generator.denoiser}


def resolve_modules(
    spec: str, plan_dir: str | Path | None = None, *, pruner: str | None = None, dtype: str = "bf16", load: bool = False
) -> dict[str, Any]:
    """The denoiser and other components ``fit`` counts, plus where they came from (see the module docstring)."""
    parsed = parse_spec(spec, pruner=pruner)
    if parsed.path is not None and plan_dir is None and is_pruned_dir(parsed.path):
        plan_dir, parsed = parsed.path, parse_spec(folder_provenance(parsed.path)["base"] or parsed.base)
    entry = resolve_entry(parsed)
    origin: dict[str, Any] = {"model": entry.name, "loaded": load}
    if plan_dir is not None:
        if parsed.budget is not None:
            raise TmpbenchError(f"--plan {str(plan_dir)!r} already prunes the model; pass the base name, not {spec!r}")
        if not is_pruned_dir(plan_dir):
            raise TmpbenchError(f"--plan {str(plan_dir)!r} is not a pruned model folder; write one with `tmpbench prune`")
        made_for = folder_provenance(plan_dir)["base"]
        if made_for != entry.name:
            raise TmpbenchError(f"--plan {str(plan_dir)!r} was made for model {made_for!r}, not {entry.name!r}; "
                                f"pass --model {made_for}")
        origin.update(plan=str(plan_dir), pruner=read_plan(Path(plan_dir)).pruner)
    if load:
        from tmpbench.loading import load_model

        gen = load_model(str(plan_dir) if plan_dir is not None else str(parsed.base if parsed.budget else spec))
        denoiser, components = gen.denoiser, _pipeline_components(gen)
    else:
        if parsed.path is not None:
            raise TmpbenchError(f"{spec!r} is a folder of weights; count it with --load (or pass a registered name)")
        with quiet_hub_logs():  # diffusers warns about casting with .to(); on meta tensors only the dtype changes
            denoiser = build_meta(entry.name).to(_dtype(dtype))
            components = {k: m.to(_dtype(dtype)) for k, m in entry.build_meta_components().items()}
        origin["dtype"] = dtype
    if plan_dir is not None and not load:
        denoiser = apply(denoiser, read_plan(Path(plan_dir)))
    if parsed.budget is not None:
        from tmpbench.pruning.runner import plan_model

        outcome = plan_model(denoiser, parsed.pruner, parsed.budget, model_name=entry.name)
        outcome.report.require()
        denoiser = apply(denoiser, outcome.plan)
        origin.update(pruner=parsed.pruner, budget=parsed.budget)
    return {"entry": entry, "denoiser": denoiser, "components": components, "origin": origin}


# --------------------------------------------------------------------------------------------
# reading the shapes the memory formulas need
# --------------------------------------------------------------------------------------------
def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _attention_heads(attn: nn.Module) -> tuple[int, int, int]:
    """(heads, kv_heads, head_dim) of a diffusers Attention or a HunyuanImage-3.0-layout one."""
    return attention_geometry(attn) if hasattr(attn, "to_q") else gqa_geometry(attn)


def denoiser_shapes(denoiser: nn.Module, size: int, batch: int, act_bytes: int, eager_attention: bool) -> dict[str, Any]:
    """Activation peak, KV cache, block and expert bytes of a denoiser at ``size`` px (formulas in
    :mod:`tmpbench.models.memory`), with the unit tree's token counts and FLOPs."""
    tree = unit_tree(denoiser, size=size)
    tokens = tree.image_tokens + tree.caption_tokens
    kv_layers: list[tuple[int, int]] = []
    peak = routed = largest_routed = largest_block = blocks = 0
    hit: list[float] = []
    for block in tree.at_level("block"):
        module = denoiser.get_submodule(block.path)
        size_b = memory.total_bytes(memory.module_bytes(module))
        blocks += size_b
        largest_block = max(largest_block, size_b)
        dim, transient, scores = 0, 0, 0
        for comp in block.children:
            sub = denoiser.get_submodule(comp.path)
            if comp.kind == "moe":
                view = MoEBlockView(comp.path, sub)
                dim = dim or view.hidden_size
                transient = max(transient, memory.routed_transient(tokens, view.top_k, view.hidden_size, view.intermediate_size))
                experts = memory.total_bytes(memory.module_bytes(view.block.experts))
                routed += experts
                largest_routed = max(largest_routed, experts)
                hit.append(memory.experts_hit(view.num_experts, view.top_k, tokens))
                continue
            lins = _linears(sub)
            transient = max(transient, memory.linear_transient(tokens, [x.out_features for x in lins],
                                                               max(x.in_features for x in lins)))
            if comp.kind == "attention":
                heads, kv_heads, head_dim = _attention_heads(sub)
                dim = max(lins, key=lambda x: x.in_features).out_features  # the output projection
                kv_layers.append((kv_heads, head_dim))
                if eager_attention:
                    scores = max(scores, memory.attention_scores_bytes(batch, heads, tokens, act_bytes))
        peak = max(peak, batch * act_bytes * (2 * tokens * dim + transient) + scores)
    kv = memory.kv_cache_bytes(batch, tokens, kv_layers, act_bytes) if layout_of(denoiser) in KV_CACHE_LAYOUTS else 0
    return {
        "tree": tree, "tokens": tokens, "activations": peak, "kv_cache": kv, "blocks": blocks,
        "largest_block": largest_block, "routed_experts": routed, "largest_layer_experts": largest_routed,
        "expert_hit_share": sum(hit) / len(hit) if hit else 0.0,
    }


def _act_bytes(module: nn.Module) -> int:
    for p in module.parameters():
        if p.is_floating_point():
            return p.element_size()
    return 4


def text_activations(encoder: nn.Module | None, tokens: int) -> int:
    """Text-encoder activations over ``tokens`` prompt tokens (0 without a separate encoder)."""
    if encoder is None:
        return 0
    lins = _linears(encoder)
    if not lins:
        return 0
    return memory.text_encoder_bytes(tokens, lins[0].in_features, max(x.out_features for x in lins), _act_bytes(encoder))


def vae_activations(vae: nn.Module | None, size: int) -> int:
    """VAE decode activations at ``size`` x ``size`` px; ``C_full`` is ``block_out_channels[1]`` when the
    VAE has such a config, else the 3 channels of the image itself (a pixel-shuffle VAE)."""
    if vae is None:
        return 0
    channels = list(getattr(getattr(vae, "config", None), "block_out_channels", None) or [3, 3])
    return memory.vae_decode_bytes(size, size, channels[1] if len(channels) > 1 else channels[0], _act_bytes(vae))


def estimate(resolved: dict[str, Any], size: int, *, guidance: float | None = None, steps: int | None = None,
             attention: str = "sdpa") -> memory.MemoryEstimate:
    """The :class:`~tmpbench.models.memory.MemoryEstimate` of what :func:`resolve_modules` returned."""
    if size < 16 or size % 16:
        raise TmpbenchError(f"--size {size} must be a positive multiple of 16")
    if attention not in ("sdpa", "eager"):
        raise TmpbenchError(f"--attention {attention!r} must be sdpa (flash / memory-efficient kernels) or eager")
    entry, denoiser, components = resolved["entry"], resolved["denoiser"], resolved["components"]
    guidance = entry.default_guidance if guidance is None else guidance
    batch = entry.cfg_batch(guidance)  # CFG batches the unconditional pass with the conditional one
    act = _act_bytes(denoiser)
    shapes = denoiser_shapes(denoiser, size, batch, act, eager_attention=attention == "eager")
    tree = shapes["tree"]
    notes = [f"{tree.image_tokens} image + {tree.caption_tokens} caption tokens per sequence, batch {batch} "
             f"(guidance {guidance:g}), {attention} attention"]
    return memory.MemoryEstimate(
        denoiser=memory.module_bytes(denoiser),
        components={k: memory.total_bytes(memory.module_bytes(m)) for k, m in components.items()},
        blocks=shapes["blocks"], largest_block=shapes["largest_block"], routed_experts=shapes["routed_experts"],
        largest_layer_experts=shapes["largest_layer_experts"], expert_hit_share=shapes["expert_hit_share"],
        activations=shapes["activations"], kv_cache=shapes["kv_cache"],
        text_activations=text_activations(components.get("text_encoder"), tree.caption_tokens),
        vae_activations=vae_activations(components.get("vae"), size),
        flops_per_step=float(tree.flops) * batch, steps=steps or entry.default_steps, batch=batch,
        tokens=shapes["tokens"], notes=notes,
    )


def fit_report(spec: str, gpu: str, size: int = 1024, *, plan_dir: str | Path | None = None, pruner: str | None = None,
               dtype: str = "bf16", load: bool = False, guidance: float | None = None, steps: int | None = None,
               attention: str = "sdpa") -> dict[str, Any]:
    """Everything ``tmpbench fit`` prints: the breakdown, one verdict per strategy and the cheapest that fits."""
    card = memory.gpu(gpu)  # before anything is built: a typo costs nothing
    resolved = resolve_modules(spec, plan_dir, pruner=pruner, dtype=dtype, load=load)
    est = estimate(resolved, size, guidance=guidance, steps=steps, attention=attention)
    found = memory.verdicts(est, card)
    best = memory.cheapest(found)
    return {
        "spec": spec, "size": size, "gpu": vars(card) | {"memory_bytes": card.memory_bytes},
        "origin": resolved["origin"], "estimate": est.to_dict(),
        "params": sum(p.numel() for p in resolved["denoiser"].parameters()),
        "verdicts": [vars(v) for v in found], "cheapest": None if best is None else vars(best),
    }


def _gib(n: float) -> str:
    return f"{n / memory.GIB:.2f} GiB"


def format_report(report: dict[str, Any]) -> str:
    """The human-readable form of :func:`fit_report`."""
    est, card = report["estimate"], report["gpu"]
    lines = [f"{report['spec']} at {report['size']} px on {card['description']} ({card['memory_gib']:g} GiB, "
             f"{card['bf16_tflops']:g} bf16 TFLOPs, {card['pcie_gbs']:g} GB/s host link)",
             f"denoiser: {report['params']:,} params"]
    for dtype, row in est["denoiser"].items():
        lines.append(f"  weights {dtype}: {_gib(row['params'])} params + {_gib(row['buffers'])} buffers")
    for name, n in est["components"].items():
        lines.append(f"  {name}: {_gib(n)}")
    lines += [f"  activations (denoiser): {_gib(est['activations'])}", f"  kv cache: {_gib(est['kv_cache'])}",
              f"  text encoder activations: {_gib(est['text_activations'])}",
              f"  vae decode activations: {_gib(est['vae_activations'])}",
              f"  cuda context: {_gib(memory.CUDA_CONTEXT_BYTES)}"] + [f"  note: {n}" for n in est["notes"]]
    for v in report["verdicts"]:
        word = "fits" if v["fits"] else "does not fit"
        lines.append(f"{v['strategy']:<7} peak {_gib(v['peak_bytes'])}: {word} ({_gib(v['headroom_bytes'])} headroom), "
                     f"{_gib(v['moved_per_step'])} moved per step, slowdown x{v['slowdown']:.2f}; {v['detail']}")
    best = report["cheapest"]
    lines.append(f"cheapest strategy that fits: {best['strategy']} (slowdown x{best['slowdown']:.2f})" if best
                 else "no strategy fits")
    if best and best["strategy"] != "none":
        lines.append(f"  with tmpbench run: --size {report['size']} --offload {best['strategy']} (the diffusers pipelines take "
                     "model, group and, with MoE, expert; HunyuanImage-3.0 takes expert)")
    return "\n".join(lines)
