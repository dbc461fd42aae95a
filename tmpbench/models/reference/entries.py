"""Registry entries of the ShapesWorld reference models (``tiny-dit``, ``tiny-moe``, ``tiny-hy3``) and their hooks.

Both are tiny ``ZImagePipeline`` s (:mod:`tmpbench.models.reference.tiny_zimage`); ``tiny-moe``'s
denoiser has HunyuanImage-3.0-layout MoE FFNs (:mod:`tmpbench.models.reference.tiny_moe`). Each
entry's ``architecture`` holds the :class:`~tmpbench.models.reference.tiny_zimage.TinyZImageConfig`
keywords the training recipe builds (``moe`` set for tiny-moe), so one loader and one meta-device
builder serve both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tmpbench.errors import OfflineError, TmpbenchError
from tmpbench.models.assets import asset_dir
from tmpbench.models.base import ModelEntry
from tmpbench.models.reference.tiny_zimage import TinyZImageConfig, build_transformer, load_pipeline, reference_generator
from tmpbench.models.weights import weights_source
from tmpbench.models.zimage import ZImageGenerator

#: tiny-dit's architecture (TinyZImageConfig keywords; the rest are the config's defaults)
TINY_DIT_ARCHITECTURE: dict[str, Any] = {"scheduler_shift": 3.0}
#: tiny-moe's architecture (TinyZImageConfig keywords): Z-Image DiT with HunyuanImage-3.0-layout MoE FFNs
TINY_MOE_ARCHITECTURE: dict[str, Any] = {
    "dim": 128,
    "n_layers": 4,
    "moe": {"num_experts": 8, "moe_topk": 2, "moe_intermediate_size": 128, "num_shared_expert": 1},
    "scheduler_shift": 3.0,
}
#: tiny-hy3's architecture: HunyuanImage-3.0's decoder layout (one sequence of text and image tokens,
#: timestep embedding, GQA 4 heads / 2 KV groups, 8 routed experts top-2 + 1 shared expert per layer)
TINY_HY3_ARCHITECTURE: dict[str, Any] = {
    "dim": 128,
    "n_layers": 4,
    "hy3": {"n_kv_heads": 2, "num_experts": 8, "moe_topk": 2, "moe_intermediate_size": 128, "num_shared_expert": 1},
    "scheduler_shift": 3.0,
}


def _kind(cfg_like: dict | Any) -> str:
    get = cfg_like.get if isinstance(cfg_like, dict) else (lambda k: getattr(cfg_like, k, None))
    return "HunyuanImage-3.0 decoder" if get("hy3") else "MoE" if get("moe") else "dense"


def load_reference(entry: ModelEntry, path: str | None, device: str = "cpu",
                   offload_folder: str | None = None) -> ZImageGenerator:
    """Loader hook for ``tiny-dit`` / ``tiny-moe``: a folder written by
    :func:`~tmpbench.models.reference.tiny_zimage.save_pipeline`.

    The folder is ``--model-path``, else the entry's environment variable, else the committed
    reference in ``tmpbench/assets/<name>``. Its transformer must be MoE exactly when the entry's
    architecture is.
    """
    source, local = weights_source(entry, path)
    if not local:
        source = str(asset_dir(entry.name))
        if not (Path(source) / "tmpbench.json").is_file():
            raise OfflineError(
                f"no trained {entry.name} weights in {source}; run `tmpbench train-reference {entry.name}` "
                f"or pass --model-path DIR (or set {entry.path_env}=DIR)"
            )
    if not (Path(source) / "tmpbench.json").is_file():
        raise OfflineError(f"{source!r} is not a saved {entry.name} pipeline (no tmpbench.json); pass its directory")
    pipe, cfg = load_pipeline(source, device=device, offload_folder=offload_folder)
    if _kind(cfg) != _kind(entry.architecture or {}):
        raise TmpbenchError(f"{source!r} holds a {_kind(cfg)} transformer, which does not match model {entry.name!r}")
    return reference_generator(pipe, cfg, name=entry.name)


def build_reference_meta(entry: ModelEntry) -> torch.nn.Module:
    """Meta-device hook: the reference transformer at the architecture its entry records."""
    with torch.device("meta"):
        return build_transformer(TinyZImageConfig(**entry.architecture))


def _reference_entry(
    name: str, nominal_params: int, path_env: str, architecture: dict[str, Any], transfer_partner: str, description: str,
    train: dict[str, Any] | None = None,
) -> ModelEntry:
    """An entry with the recipe the references share: 32 px, 16 steps, guidance 1, 64 images per call, edits, and a calibration
    mixing shapes-t2i prompts with shapes-edit instructions (half each)."""
    return ModelEntry(
        name=name,
        family="zimage",
        source="builtin",
        loader="tmpbench.models.reference.entries:load_reference",
        meta_builder="tmpbench.models.reference.entries:build_reference_meta",
        nominal_params=nominal_params,
        default_steps=16,
        default_guidance=1.0,
        default_size=32,
        # a 32 px image costs a few GFLOPs: 64 per call keeps an accelerator busy and, on CPU, amortises
        # the per-call work and the MoE layers' per-expert loops (benchmarks/generation_speed.py)
        default_batch_size=64,
        path_env=path_env,
        supports_edit=True,
        # text-to-image runs ZImagePipeline (guides when guidance > 0); edits run tiny_zimage.edit_in_sequence
        # (guides when guidance > 1)
        cfg_above=0.0,
        edit_cfg_above=1.0,
        calibration_suite="shapes-t2i",
        calibration_edit_suite="shapes-edit",
        architecture=architecture,
        transfer_partner=transfer_partner,
        description=description,
        extra={"train": dict(train)} if train else {},
    )


TINY_DIT_ENTRY = _reference_entry(
    "tiny-dit",
    nominal_params=2_470_768,  # ZImageTransformer2DModel at TINY_DIT_ARCHITECTURE
    path_env="TMPBENCH_TINY_DIT_PATH",
    architecture=TINY_DIT_ARCHITECTURE,
    transfer_partner="tiny-moe",
    description="ShapesWorld reference: a real ZImagePipeline with a tiny ZImageTransformer2DModel, "
    "Qwen3 text encoder and pixel-space autoencoder",
)
TINY_MOE_ENTRY = _reference_entry(
    "tiny-moe",
    nominal_params=3_194_352,  # TinyMoETransformer at TINY_MOE_ARCHITECTURE
    path_env="TMPBENCH_TINY_MOE_PATH",
    architecture=TINY_MOE_ARCHITECTURE,
    transfer_partner="tiny-dit",
    description="ShapesWorld reference: Z-Image DiT, HunyuanImage-3.0-layout MoE FFNs (8 experts, top-2, 1 shared)",
)
TINY_HY3_ENTRY = _reference_entry(
    "tiny-hy3",
    nominal_params=2_046_512,  # TinyHY3Transformer at TINY_HY3_ARCHITECTURE
    path_env="TMPBENCH_TINY_HY3_PATH",
    architecture=TINY_HY3_ARCHITECTURE,
    transfer_partner="tiny-dit",
    # no adaLN (the timestep is a token): 1,500 steps reached 0.33 on shapes-t2i, so it trains longer
    train={"steps": 4000},
    description="ShapesWorld reference in HunyuanImage-3.0's decoder layout: text and image tokens in one sequence, "
    "timestep embedding, GQA, 8 routed experts top-2 + 1 shared (transformers' HunYuan MoE layers)",
)
