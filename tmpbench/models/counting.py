"""Parameter and FLOP counting for any model spec, loaded module or meta-device skeleton.

What "params" means here: the parameters of the **denoiser**, the module tree pruners see
(``Generator.denoiser``): Z-Image's ``ZImageTransformer2DModel`` (6.15B; the published "6B" of
Z-Image-Turbo is this transformer alone, without the Qwen3-4B text encoder and the VAE), FLUX's
``FluxTransformer2DModel`` (11.9B), HunyuanImage-3.0's MoE backbone. Budgets such as
``zimage-4b`` are targets for this same count.

FLOPs (:func:`count_flops`) are analytic, for **one denoiser forward of one image** (multiply by
the number of steps, and by 2 when classifier-free guidance runs a second pass):

* every ``nn.Linear`` costs ``2 * in_features * out_features`` per token it sees;
* every attention costs ``4 * q_tokens * kv_tokens * inner_dim`` (``Q K^T`` and ``A V``, each
  ``2 * q * kv * inner_dim``), with ``inner_dim = to_q.out_features`` (heads x head_dim);
* norms, activations, RoPE, softmax and residual adds are not counted (well under 1%).

Which tokens a layer sees is family data (a :class:`FlopProfile`): e.g. Z-Image's noise refiner
sees the image tokens, its context refiner the caption tokens, its main layers both, its adaLN
projections one timestep vector. Layer widths are read from the modules themselves, so the count
follows pruned widths. Families add their own profile with :func:`register_flop_counter`.

Meta-device skeletons (:func:`build_meta`) come from each registered model's ``meta_builder``
hook (see :class:`tmpbench.models.base.ModelEntry`), so the MoE family plugs in its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tmpbench.errors import TmpbenchError
from tmpbench.models.base import Generator, resolve_target
from tmpbench.models.spec import parse_spec, resolve_entry

if TYPE_CHECKING:
    import torch


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------
def count_params(obj: Any) -> int:
    """Parameters of a module, of a generator's denoiser, or of a spec's full-size denoiser (on meta).

    >>> import torch
    >>> count_params(torch.nn.Linear(3, 2))
    8
    """
    import torch

    if isinstance(obj, str):
        spec = parse_spec(obj)
        if spec.budget is not None:
            raise TmpbenchError(
                f"{obj!r} is a pruned spec; its model exists only after `tmpbench prune` "
                f"(count the base {spec.base!r}, or the pruned directory)"
            )
        if spec.path is not None:
            raise TmpbenchError(
                f"{obj!r} is a folder; load it first (tmpbench.loading.load_model) and count the generator"
            )
        obj = build_meta(obj)
    if isinstance(obj, Generator):
        obj = obj.denoiser
    if not isinstance(obj, torch.nn.Module):
        raise TmpbenchError(f"cannot count parameters of {type(obj).__name__}; pass a module, generator or spec")
    return sum(p.numel() for p in obj.parameters())  # parameters() already skips shared tensors


def build_meta(spec_name: str) -> torch.nn.Module:
    """The full-size denoiser of a registered model on the meta device (no weights allocated)."""
    spec = parse_spec(spec_name)
    if spec.path is not None:
        raise TmpbenchError(f"--meta needs a registered model name, not a directory ({spec_name!r})")
    entry = resolve_entry(spec)
    module = entry.build_meta()
    first = next(iter(module.parameters()), None)
    if first is not None and first.device.type != "meta":
        raise TmpbenchError(f"meta builder of {entry.name!r} returned weights on {first.device}, not meta")
    return module


# --------------------------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlopProfile:
    """Which token stream each layer of one denoiser class sees.

    ``linear_rules`` / ``attention_rules`` map a regex on the qualified module name (first match
    wins) to a stream name; an attention rule's stream is its query stream, and it attends over
    the same stream. ``streams(module, size, text_tokens, latent_factor)`` returns the token count
    of every stream for one image. The stream ``"skip"`` marks layers not used in T2I.
    """

    linear_rules: tuple[tuple[str, str], ...]
    attention_rules: tuple[tuple[str, str], ...]
    streams: Callable[[Any, int, int, int], dict[str, int]]
    default_text_tokens: int
    default_latent_factor: int = 8


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _zimage_streams(module: Any, size: int, text_tokens: int, latent_factor: int) -> dict[str, int]:
    patch = module.config.all_patch_size[0]
    side = size // latent_factor // patch
    img = _round_up(side * side, 32)  # Z-Image pads each sequence to a multiple of 32 (SEQ_MULTI_OF)
    txt = _round_up(text_tokens, 32)
    return {"img": img, "txt": txt, "joint": img + txt, "one": 1, "skip": 0}


ZIMAGE_FLOPS = FlopProfile(
    linear_rules=(
        (r"(^|\.)adaLN_modulation\.", "one"),
        (r"^t_embedder\.", "one"),
        (r"^siglip_", "skip"),
        (r"^all_x_embedder\.", "img"),
        (r"^all_final_layer\.[^.]+\.linear$", "joint"),  # applied to the unified sequence, then sliced
        (r"^cap_embedder\.", "txt"),
        (r"^noise_refiner\.", "img"),
        (r"^context_refiner\.", "txt"),
        (r"^layers\.", "joint"),
    ),
    attention_rules=(
        (r"^siglip_", "skip"),
        (r"^noise_refiner\.\d+\.attention$", "img"),
        (r"^context_refiner\.\d+\.attention$", "txt"),
        (r"^layers\.\d+\.attention$", "joint"),
    ),
    streams=_zimage_streams,
    default_text_tokens=128,  # caption tokens are unpadded prompt lengths (max 512); 128 is a long prompt
)


def _flux_streams(module: Any, size: int, text_tokens: int, latent_factor: int) -> dict[str, int]:
    side = size // latent_factor // 2  # latents are packed 2x2 into tokens
    img = side * side
    return {"img": img, "txt": text_tokens, "joint": img + text_tokens, "one": 1}


FLUX_FLOPS = FlopProfile(
    linear_rules=(
        (r"^time_text_embed\.", "one"),
        (r"(^|\.)norm1(_context)?\.linear$", "one"),
        (r"^single_transformer_blocks\.\d+\.norm\.linear$", "one"),
        (r"^norm_out\.linear$", "one"),
        (r"^x_embedder$", "img"),
        (r"^context_embedder$", "txt"),
        (r"^proj_out$", "img"),
        (r"^transformer_blocks\.\d+\.attn\.(to_q|to_k|to_v|to_out\.0)$", "img"),
        (r"^transformer_blocks\.\d+\.attn\.(add_q_proj|add_k_proj|add_v_proj|to_add_out)$", "txt"),
        (r"^transformer_blocks\.\d+\.ff\.", "img"),
        (r"^transformer_blocks\.\d+\.ff_context\.", "txt"),
        (r"^single_transformer_blocks\.", "joint"),
    ),
    attention_rules=(
        (r"^transformer_blocks\.\d+\.attn$", "joint"),  # joint attention over image + text tokens
        (r"^single_transformer_blocks\.\d+\.attn$", "joint"),
    ),
    streams=_flux_streams,
    default_text_tokens=256,  # T5 prompts are padded to max_sequence_length (256 for schnell)
)

# denoiser class name -> FlopProfile or callable(module, size, **kw) -> dict[str, int], or "module:attr"
FLOP_COUNTERS: dict[str, Any] = {
    "ZImageTransformer2DModel": ZIMAGE_FLOPS,
    "FluxTransformer2DModel": FLUX_FLOPS,
}


def register_flop_counter(class_name: str, counter: Any) -> None:
    """Add the FLOP profile (or ``"module:attr"`` / callable returning a per-module table) of a class."""
    if class_name in FLOP_COUNTERS:
        raise TmpbenchError(f"a FLOP counter for {class_name!r} is already registered")
    FLOP_COUNTERS[class_name] = counter


def _first_match(name: str, rules: tuple[tuple[str, str], ...]) -> str | None:
    for pattern, stream in rules:
        if re.search(pattern, name):
            return stream
    return None


def _profile_table(
    module: Any, profile: FlopProfile, size: int, text_tokens: int | None, latent_factor: int | None
) -> dict[str, int]:
    import torch

    tokens = profile.streams(
        module,
        size,
        profile.default_text_tokens if text_tokens is None else text_tokens,
        profile.default_latent_factor if latent_factor is None else latent_factor,
    )
    table: dict[str, int] = {}
    for name, sub in module.named_modules():
        if isinstance(sub, torch.nn.Linear):
            stream = _first_match(name, profile.linear_rules)
            if stream is None:
                raise TmpbenchError(
                    f"no FLOP rule for linear layer {name!r} of {type(module).__name__}; extend its FlopProfile"
                )
            table[name] = 2 * sub.in_features * sub.out_features * tokens[stream]
        stream = _first_match(name, profile.attention_rules) if name else None
        if stream is not None:
            query = getattr(sub, "to_q", None)
            if not isinstance(query, torch.nn.Linear):
                raise TmpbenchError(f"attention rule matched {name!r}, which has no to_q projection")
            table[f"{name}.<attention>"] = 4 * tokens[stream] * tokens[stream] * query.out_features
    return table


def flop_table(
    transformer: Any, size: int, text_tokens: int | None = None, latent_factor: int | None = None
) -> dict[str, int]:
    """Per-module FLOPs of one denoiser forward for one ``size`` x ``size`` image.

    ``transformer`` may be a module (real or meta) or a :class:`Generator` (its denoiser, with the
    latent factor read from its pipeline). ``text_tokens`` defaults to the family's typical prompt.
    """
    if isinstance(transformer, Generator):
        pipe = getattr(transformer, "pipe", None)
        if latent_factor is None and pipe is not None and hasattr(pipe, "vae_scale_factor"):
            latent_factor = int(pipe.vae_scale_factor)
        transformer = transformer.denoiser
    if size <= 0:
        raise TmpbenchError(f"size={size} must be positive")
    cls = type(transformer).__name__
    counter = FLOP_COUNTERS.get(cls)
    if counter is None:
        raise TmpbenchError(
            f"no FLOP counter for {cls}; known: {', '.join(sorted(FLOP_COUNTERS))} (add one with register_flop_counter)"
        )
    if isinstance(counter, str):
        counter = resolve_target(counter)
    if isinstance(counter, FlopProfile):
        return _profile_table(transformer, counter, size, text_tokens, latent_factor)
    return counter(transformer, size, text_tokens=text_tokens, latent_factor=latent_factor)


def count_flops(
    transformer: Any, size: int, text_tokens: int | None = None, latent_factor: int | None = None
) -> int:
    """Total FLOPs of one denoiser forward for one image (see the module docstring for the formula).

    >>> from tmpbench.models.counting import build_meta, count_flops
    >>> count_flops(build_meta("zimage"), 1024) / 1e12  # doctest: +SKIP
    """
    return sum(flop_table(transformer, size, text_tokens, latent_factor).values())
