"""FLUX.1 adapter: diffusers ``FluxPipeline`` (T2I) and ``FluxImg2ImgPipeline`` (editing).

The third DiT family, showing the adapter pattern of :mod:`tmpbench.models.zimage` generalises to
a dual-stream (MM-DiT) transformer with two text encoders (CLIP + T5). The registered ``flux``
entry is FLUX.1-schnell (Apache-2.0, 4 steps, no guidance embedding): hub id
``black-forest-labs/FLUX.1-schnell`` or a local directory via ``--model-path`` /
``TMPBENCH_FLUX_PATH``. The denoiser pruners see is ``pipe.transformer``
(a ``FluxTransformer2DModel``: 19 dual-stream ``transformer_blocks`` + 38 ``single_transformer_blocks``).

Guidance: a guidance-distilled checkpoint (``guidance_embeds=True``, FLUX.1-dev) takes ``guidance``
as its embedded guidance scale; otherwise ``guidance > 1`` runs true classifier-free guidance
against an empty negative prompt.
"""

from __future__ import annotations

from typing import Any

from tmpbench.models.base import ModelEntry
from tmpbench.models.diffusers_generator import DiffusersGenerator

FLUX_SCHNELL_ID = "black-forest-labs/FLUX.1-schnell"

# transformer/config.json of FLUX.1-schnell (public); used to build the meta-device copy.
FLUX_SCHNELL_TRANSFORMER_CONFIG: dict[str, Any] = {
    "patch_size": 1,
    "in_channels": 64,
    "num_layers": 19,
    "num_single_layers": 38,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "pooled_projection_dim": 768,
    "guidance_embeds": False,
    "axes_dims_rope": [16, 56, 56],
}


class FluxGenerator(DiffusersGenerator):
    """A :class:`~tmpbench.models.diffusers_generator.DiffusersGenerator` over a diffusers ``FluxPipeline``."""

    family = "flux"
    pipeline_class = "FluxPipeline"
    img2img_class = "FluxImg2ImgPipeline"
    transformer_class = "FluxTransformer2DModel"
    default_transformer_config = FLUX_SCHNELL_TRANSFORMER_CONFIG
    default_max_sequence_length = 256

    def _guidance_kwargs(self, guidance: float, batch: int) -> dict[str, Any]:
        if self.pipe.transformer.config.guidance_embeds:
            return {"guidance_scale": guidance}
        if guidance > 1.0:
            return {"true_cfg_scale": guidance, "negative_prompt": [""] * batch}
        return {}


FLUX_ENTRY = ModelEntry(
    name="flux",
    family="flux",
    source=FLUX_SCHNELL_ID,
    loader="tmpbench.models.flux:FluxGenerator.from_entry",
    meta_builder="tmpbench.models.flux:FluxGenerator.meta_denoiser",
    nominal_params=11_891_178_560,  # FluxTransformer2DModel at the schnell config, counted on meta
    default_steps=4,
    default_guidance=0.0,
    default_size=1024,
    path_env="TMPBENCH_FLUX_PATH",
    supports_edit=True,
    description="FLUX.1-schnell 12B dual/single-stream MM-DiT (diffusers FluxPipeline); edits via img2img",
)
