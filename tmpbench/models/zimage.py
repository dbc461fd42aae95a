"""Z-Image adapter: diffusers ``ZImagePipeline`` (T2I) and ``ZImageImg2ImgPipeline`` (editing).

The same class wraps the real Z-Image-Turbo checkpoint (hub id ``Tongyi-MAI/Z-Image-Turbo`` or a
local directory via ``--model-path`` / ``TMPBENCH_ZIMAGE_PATH``) and any ready-made pipeline with
tiny components, so every code path the 6B model takes runs on a CPU in tests::

    gen = ZImageGenerator(pipe, name="tiny-dit", edit_fn=edit_in_sequence)
    images = gen.generate(["a red circle"], seeds=[0], steps=2, guidance=0.0, size=32)

The denoiser pruners see is ``pipe.transformer`` (a ``ZImageTransformer2DModel``).
"""

from __future__ import annotations

from collections.abc import Callable
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

ZIMAGE_TURBO_ID = "Tongyi-MAI/Z-Image-Turbo"

# transformer/config.json of Tongyi-MAI/Z-Image-Turbo (public); used to build the meta-device copy.
ZIMAGE_TURBO_TRANSFORMER_CONFIG: dict[str, Any] = {
    "all_f_patch_size": [1],
    "all_patch_size": [2],
    "axes_dims": [32, 48, 48],
    "axes_lens": [1536, 512, 512],
    "cap_feat_dim": 2560,
    "dim": 3840,
    "in_channels": 16,
    "n_heads": 30,
    "n_kv_heads": 30,
    "n_layers": 30,
    "n_refiner_layers": 2,
    "norm_eps": 1e-05,
    "qk_norm": True,
    "rope_theta": 256.0,
    "t_scale": 1000.0,
}

# edit_fn(pipe, images, instructions, seeds, steps, guidance) -> uint8 array (N, H, W, 3) or PIL list;
# ``images`` are uint8 RGB arrays already resized to the requested size (the signature of
# tmpbench.models.reference.tiny_zimage.edit_in_sequence)
EditFn = Callable[[Any, list, list, list, int, float], Any]
# save_fn(pipe, directory): writes the pipeline (default: pipe.save_pretrained)
SaveFn = Callable[[Any, Path], None]


class ZImageGenerator(Generator):
    """A :class:`Generator` over a diffusers ``ZImagePipeline``.

    ``edit_fn`` replaces the default editing path (img2img from the source image, prompt =
    instruction), e.g. with the tiny reference's in-sequence editing. ``edit_strength`` is the
    img2img noise level: 1.0 ignores the source image, 0.0 returns it unchanged. ``save_fn``
    replaces ``pipe.save_pretrained`` for pipelines with non-diffusers components. ``model`` is
    the registered name written to the save marker so ``--model DIR`` loads it back.
    """

    family = "zimage"
    supports_edit = True

    def __init__(
        self,
        pipe: Any,
        name: str = "zimage",
        edit_fn: EditFn | None = None,
        edit_strength: float = 0.6,
        max_sequence_length: int = 512,
        model: str = "zimage",
        save_fn: SaveFn | None = None,
    ) -> None:
        if not 0.0 < edit_strength <= 1.0:
            raise ValueError(f"edit_strength={edit_strength} must be in (0, 1]")
        self.pipe = pipe
        self.name = name
        self.model = model  # registered name written to the save marker, used to load it back
        self.edit_fn = edit_fn
        self.save_fn = save_fn
        self.edit_strength = edit_strength
        self.max_sequence_length = max_sequence_length
        self._img2img = None
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)
        set_eval(pipe)

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.pipe.transformer

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (VAE downsampling times the patch size 2)."""
        return int(self.pipe.vae_scale_factor) * 2

    def generate(
        self, prompts: list[str], seeds: list[int], steps: int, guidance: float, size: int
    ) -> list[Image.Image]:
        check_batch(prompts, seeds, steps, size, self.size_multiple)
        if not prompts:
            return []
        out = self.pipe(
            prompt=list(prompts),
            guidance_scale=guidance,
            **pipeline_call_kwargs(self.pipe, seeds, steps, size, self.max_sequence_length),
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
        sources = [im.convert("RGB").resize((size, size)) for im in images]
        if self.edit_fn is not None:
            import numpy as np
            from PIL import Image as PILImage

            arrays = [np.asarray(im, dtype=np.uint8) for im in sources]
            out = self.edit_fn(self.pipe, arrays, list(instructions), list(seeds), steps, guidance)
            return [im.convert("RGB") if isinstance(im, PILImage.Image) else PILImage.fromarray(np.asarray(im)) for im in out]
        if self._img2img is None:
            from diffusers import ZImageImg2ImgPipeline

            self._img2img = ZImageImg2ImgPipeline(**self.pipe.components)
            self._img2img.set_progress_bar_config(disable=True)
        out = self._img2img(
            prompt=list(instructions),
            image=sources,
            strength=self.edit_strength,
            guidance_scale=guidance,
            **pipeline_call_kwargs(self.pipe, seeds, steps, size, self.max_sequence_length),
        )
        return [im.convert("RGB") for im in out.images]

    def save(self, path: str | Path) -> None:
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        if self.save_fn is not None:
            self.save_fn(self.pipe, directory)
        else:
            self.pipe.save_pretrained(directory)
        write_marker(directory, model=self.model, name=self.name)


def load_zimage(entry: ModelEntry, path: str | None, device: str = "cpu") -> ZImageGenerator:
    """Loader hook for the ``zimage`` entry: a local directory if given, else the hub id."""
    from diffusers import ZImagePipeline

    pipe = load_diffusers_pipeline(entry, path, ZImagePipeline, device)
    return ZImageGenerator(pipe, name=entry.name, model=entry.name)


def build_zimage_meta(entry: ModelEntry) -> torch.nn.Module:
    """Meta-device hook: the full-size Z-Image-Turbo transformer, no weights allocated."""
    import torch
    from diffusers import ZImageTransformer2DModel

    config = entry.extra.get("transformer_config", ZIMAGE_TURBO_TRANSFORMER_CONFIG)
    with torch.device("meta"):
        return ZImageTransformer2DModel(**config)


ZIMAGE_ENTRY = ModelEntry(
    name="zimage",
    family="zimage",
    source=ZIMAGE_TURBO_ID,
    loader="tmpbench.models.zimage:load_zimage",
    meta_builder="tmpbench.models.zimage:build_zimage_meta",
    nominal_params=6_154_908_736,  # ZImageTransformer2DModel at the Turbo config, counted on meta
    default_steps=9,  # 9 scheduler steps = 8 DiT forwards (the Turbo recipe)
    default_guidance=0.0,  # guidance is distilled into Turbo
    default_size=1024,
    path_env="TMPBENCH_ZIMAGE_PATH",
    supports_edit=True,
    description="Z-Image-Turbo 6B single-stream DiT (diffusers ZImagePipeline); edits via img2img",
)
