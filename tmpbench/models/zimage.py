"""Z-Image adapter: diffusers ``ZImagePipeline`` (T2I) and ``ZImageImg2ImgPipeline`` (editing).

The same class wraps the real Z-Image-Turbo checkpoint (hub id ``Tongyi-MAI/Z-Image-Turbo`` or a
local directory via ``--model-path`` / ``TMPBENCH_ZIMAGE_PATH``) and any ready-made pipeline with
tiny components, so every code path the 6B model takes runs on a CPU in tests::

    gen = ZImageGenerator(pipe, name="tiny-dit", edit_fn=edit_in_sequence)
    images = gen.generate(["a red circle"], seeds=[0], steps=2, guidance=0.0, size=32)

The denoiser pruners see is ``pipe.transformer`` (a ``ZImageTransformer2DModel``). What Z-Image
shares with FLUX.1 (loading, generate/edit plumbing, save, the meta-device hook) lives in
:class:`~tmpbench.models.diffusers_generator.DiffusersGenerator`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tmpbench.models.base import ModelEntry
from tmpbench.models.diffusers_generator import DiffusersGenerator

if TYPE_CHECKING:
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

# text_encoder/config.json of Z-Image-Turbo: a Qwen3Model at Qwen3-4B's size (Qwen/Qwen3-4B config.json)
ZIMAGE_TEXT_ENCODER_CONFIG: dict[str, Any] = {
    "vocab_size": 151936,
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "tie_word_embeddings": True,
}
# vae/config.json of Z-Image-Turbo: diffusers AutoencoderKL with FLUX.1's 16-channel VAE layout
ZIMAGE_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 16,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
}


def zimage_meta_components(entry: ModelEntry | None = None) -> dict[str, Any]:
    """Z-Image-Turbo's text encoder (Qwen3-4B, no LM head) and VAE on the meta device."""
    import torch
    from diffusers import AutoencoderKL
    from transformers import Qwen3Config, Qwen3Model

    with torch.device("meta"):
        return {
            "text_encoder": Qwen3Model(Qwen3Config(**ZIMAGE_TEXT_ENCODER_CONFIG)),
            "vae": AutoencoderKL(**ZIMAGE_VAE_CONFIG),
        }


# edit_fn(pipe, images, instructions, seeds, steps, guidance) -> uint8 array (N, H, W, 3) or PIL list;
# ``images`` are uint8 RGB arrays already resized to the requested size (the signature of
# tmpbench.models.reference.tiny_zimage.edit_in_sequence)
EditFn = Callable[[Any, list, list, list, int, float], Any]
# save_fn(pipe, directory): writes the pipeline (default: pipe.save_pretrained)
SaveFn = Callable[[Any, Path], None]


class ZImageGenerator(DiffusersGenerator):
    """A :class:`~tmpbench.models.diffusers_generator.DiffusersGenerator` over a diffusers ``ZImagePipeline``.

    ``edit_fn`` replaces the default editing path (img2img from the source image, prompt =
    instruction), e.g. with the tiny reference's in-sequence editing. ``save_fn`` replaces
    ``pipe.save_pretrained`` for pipelines with non-diffusers components. The other arguments are
    :class:`~tmpbench.models.diffusers_generator.DiffusersGenerator`'s.
    """

    family = "zimage"
    pipeline_class = "ZImagePipeline"
    img2img_class = "ZImageImg2ImgPipeline"
    transformer_class = "ZImageTransformer2DModel"
    default_transformer_config = ZIMAGE_TURBO_TRANSFORMER_CONFIG
    default_max_sequence_length = 512

    def __init__(
        self,
        pipe: Any,
        name: str | None = None,
        edit_fn: EditFn | None = None,
        edit_strength: float = 0.6,
        max_sequence_length: int | None = None,
        model: str | None = None,
        save_fn: SaveFn | None = None,
    ) -> None:
        super().__init__(pipe, name=name, edit_strength=edit_strength, max_sequence_length=max_sequence_length, model=model)
        self.edit_fn = edit_fn
        self.save_fn = save_fn

    def _guidance_kwargs(self, guidance: float, batch: int) -> dict[str, Any]:
        return {"guidance_scale": guidance}  # ZImagePipeline runs CFG against an empty prompt when guidance > 0

    def _edit_sources(
        self, sources: list[Image.Image], instructions: list[str], seeds: list[int], steps: int, guidance: float, size: int
    ) -> list[Image.Image]:
        if self.edit_fn is None:
            return super()._edit_sources(sources, instructions, seeds, steps, guidance, size)
        import numpy as np
        from PIL import Image as PILImage

        arrays = [np.asarray(im, dtype=np.uint8) for im in sources]
        out = self.edit_fn(self.pipe, arrays, instructions, seeds, steps, guidance)
        return [im.convert("RGB") if isinstance(im, PILImage.Image) else PILImage.fromarray(np.asarray(im)) for im in out]

    def _save_pipeline(self, directory: Path) -> None:
        if self.save_fn is None:
            super()._save_pipeline(directory)
        else:
            self.save_fn(self.pipe, directory)


ZIMAGE_ENTRY = ModelEntry(
    name="zimage",
    family="zimage",
    source=ZIMAGE_TURBO_ID,
    loader="tmpbench.models.zimage:ZImageGenerator.from_entry",
    meta_builder="tmpbench.models.zimage:ZImageGenerator.meta_denoiser",
    meta_components="tmpbench.models.zimage:zimage_meta_components",
    nominal_params=6_154_908_736,  # ZImageTransformer2DModel at the Turbo config, counted on meta
    default_steps=9,  # 9 scheduler steps = 8 DiT forwards (the Turbo recipe)
    default_guidance=0.0,  # guidance is distilled into Turbo
    default_size=1024,
    path_env="TMPBENCH_ZIMAGE_PATH",
    supports_edit=True,
    cfg_above=0.0,  # ZImagePipeline and ZImageImg2ImgPipeline: do_classifier_free_guidance = guidance_scale > 0
    description="Z-Image-Turbo 6B single-stream DiT (diffusers ZImagePipeline); edits via img2img",
)
