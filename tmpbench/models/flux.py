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

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tmpbench.models.spec import write_marker
from tmpbench.models.base import (
    Generator,
    ModelEntry,
    check_batch,
    check_edit_batch,
    load_diffusers_pipeline,
    pipeline_call_kwargs,
    set_eval,
)

if TYPE_CHECKING:
    import torch
    from PIL import Image

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


class FluxGenerator(Generator):
    """A :class:`Generator` over a diffusers ``FluxPipeline``; ``edit_strength`` is the img2img noise level."""

    family = "flux"
    supports_edit = True

    def __init__(
        self,
        pipe: Any,
        name: str = "flux",
        edit_strength: float = 0.6,
        max_sequence_length: int = 256,
        model: str = "flux",
    ) -> None:
        if not 0.0 < edit_strength <= 1.0:
            raise ValueError(f"edit_strength={edit_strength} must be in (0, 1]")
        self.pipe = pipe
        self.name = name
        self.model = model
        self.edit_strength = edit_strength
        self.max_sequence_length = max_sequence_length
        self._img2img = None
        pipe.set_progress_bar_config(disable=True)
        set_eval(pipe)

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.pipe.transformer

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (VAE downsampling times the 2x2 latent packing)."""
        return int(self.pipe.vae_scale_factor) * 2

    def _guidance_kwargs(self, guidance: float, batch: int) -> dict[str, Any]:
        if self.pipe.transformer.config.guidance_embeds:
            return {"guidance_scale": guidance}
        if guidance > 1.0:
            return {"true_cfg_scale": guidance, "negative_prompt": [""] * batch}
        return {}

    def generate(
        self, prompts: list[str], seeds: list[int], steps: int, guidance: float, size: int
    ) -> list[Image.Image]:
        check_batch(prompts, seeds, steps, size, self.size_multiple)
        if not prompts:
            return []
        out = self.pipe(
            prompt=list(prompts),
            **pipeline_call_kwargs(self.pipe, seeds, steps, size, self.max_sequence_length),
            **self._guidance_kwargs(guidance, len(prompts)),
        )
        return [im.convert("RGB") for im in out.images]

    def edit(
        self,
        images: list[Image.Image],
        instructions: list[str],
        seeds: list[int],
        steps: int,
        guidance: float,
        size: int,
    ) -> list[Image.Image]:
        check_edit_batch(images, instructions, seeds, steps, size, self.size_multiple)
        if not images:
            return []
        if self._img2img is None:
            from diffusers import FluxImg2ImgPipeline

            self._img2img = FluxImg2ImgPipeline(**self.pipe.components)
            self._img2img.set_progress_bar_config(disable=True)
        out = self._img2img(
            prompt=list(instructions),
            image=[im.convert("RGB").resize((size, size)) for im in images],
            strength=self.edit_strength,
            **pipeline_call_kwargs(self.pipe, seeds, steps, size, self.max_sequence_length),
            **self._guidance_kwargs(guidance, len(images)),
        )
        return [im.convert("RGB") for im in out.images]

    def save(self, path: str | Path) -> None:
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        self.pipe.save_pretrained(directory)
        write_marker(directory, model=self.model, name=self.name)


def load_flux(entry: ModelEntry, path: str | None, device: str = "cpu") -> FluxGenerator:
    """Loader hook for the ``flux`` entry: a local directory if given, else the hub id."""
    from diffusers import FluxPipeline

    pipe = load_diffusers_pipeline(entry, path, FluxPipeline, device)
    return FluxGenerator(pipe, name=entry.name, model=entry.name)


def build_flux_meta(entry: ModelEntry) -> torch.nn.Module:
    """Meta-device hook: the full-size FLUX.1 transformer, no weights allocated."""
    import torch
    from diffusers import FluxTransformer2DModel

    config = entry.extra.get("transformer_config", FLUX_SCHNELL_TRANSFORMER_CONFIG)
    with torch.device("meta"):
        return FluxTransformer2DModel(**config)


FLUX_ENTRY = ModelEntry(
    name="flux",
    family="flux",
    source=FLUX_SCHNELL_ID,
    loader="tmpbench.models.flux:load_flux",
    meta_builder="tmpbench.models.flux:build_flux_meta",
    nominal_params=11_891_178_560,  # FluxTransformer2DModel at the schnell config, counted on meta
    default_steps=4,
    default_guidance=0.0,
    default_size=1024,
    path_env="TMPBENCH_FLUX_PATH",
    supports_edit=True,
    description="FLUX.1-schnell 12B dual/single-stream MM-DiT (diffusers FluxPipeline); edits via img2img",
)
