"""Tiny Z-Image components for the ShapesWorld reference models (``tiny-dit``, ``tiny-moe``).

``tiny-dit`` is a real diffusers :class:`~diffusers.ZImagePipeline` whose components are tiny:

* a :class:`~diffusers.ZImageTransformer2DModel` (the exact class Z-Image-Turbo uses);
* a small Qwen3 text encoder (the family Z-Image uses) and a word-level tokenizer, built in code;
* :class:`PixelShuffleAutoencoder` in place of the VAE.

Why pixel space: at 32 px a learned VAE adds reconstruction error and training cost and buys
nothing. A lossless space-to-depth "autoencoder" (``pixel_unshuffle`` by 4: 32x32x3 -> 8x8x48)
keeps the analytic detector exact, keeps edit preservation measurable to the pixel, and lets the
pipeline run unchanged: ZImagePipeline only reads ``config.block_out_channels`` (for the scale
factor), ``config.scaling_factor``/``shift_factor`` and calls ``decode``. The reference models use
factor 2 (32x32x3 -> 16x16x12); with the transformer's patch size 2 one token covers a 4x4-pixel
patch (48 values): 64 image tokens at 32 px. The token must stay narrower than the model width:
the velocity target carries the token's full noise, which a narrower hidden state cannot pass
(a factor-4, 192-value token through a 128-wide model left a third of the noise in every image).

Editing puts the source image in the sequence, as Z-Image's omni mode does: the transformer runs
with ``x[i] = [source_latent, noisy_latent]`` and ``image_noise_mask = [0, 1]`` (clean condition
tokens get the t=1 modulation). :func:`edit_in_sequence` is that sampler.

:func:`reference_generator` wraps a tiny pipeline in the Z-Image adapter (editing in sequence,
saving with :func:`save_pipeline`); the ``tiny-dit`` / ``tiny-moe`` registry entries and their
hooks are in :mod:`tmpbench.models.reference.entries`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from PIL import Image

from tmpbench.models.reference.tiny_hy3 import TinyHY3Transformer, tiny_hy3_kwargs
from tmpbench.models.reference.tiny_moe import TinyMoETransformer
from tmpbench.models.zimage import ZImageGenerator
from tmpbench.shapes.edits import EDIT_TYPES  # noqa: F401  (vocabulary source, see _vocabulary)
from tmpbench.shapes.grammar import NUMBER_WORDS, RELATIONS, TAGS, enumerate_prompts
from tmpbench.shapes.world import COLORS, SHAPES, cell_name

# Special tokens of the tiny chat format (Qwen-style names, whitespace-separated so a
# whitespace word-level tokenizer keeps them whole).
BOS, VISION_START, VISION_END, PAD, UNK = "<|im_start|>", "<|vision_start|>", "<|vision_end|>", "<|endoftext|>", "<unk>"
CHAT_TEMPLATE = "{{ '<|im_start|> ' }}{% for m in messages %}{{ m['content'] }}{% endfor %}"


# --------------------------------------------------------------------------------------------
# pixel-space "autoencoder"
# --------------------------------------------------------------------------------------------
class _DeterministicLatent:
    def __init__(self, z: torch.Tensor) -> None:
        self._z = z

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._z

    def mode(self) -> torch.Tensor:
        return self._z


class _EncoderOutput:
    def __init__(self, z: torch.Tensor) -> None:
        self.latent_dist = _DeterministicLatent(z)


class PixelShuffleAutoencoder(ModelMixin, ConfigMixin):
    """Lossless space-to-depth stand-in for a VAE: ``encode`` is pixel_unshuffle, ``decode`` its inverse.

    Images are in [-1, 1] (diffusers' convention). ``block_out_channels`` only sets the scale factor
    that ZImagePipeline derives as ``2 ** (len(block_out_channels) - 1)``.
    """

    @register_to_config
    def __init__(
        self,
        factor: int = 4,
        in_channels: int = 3,
        block_out_channels: tuple[int, ...] = (3, 3, 3),
        scaling_factor: float = 1.0,
        shift_factor: float = 0.0,
    ) -> None:
        super().__init__()
        if 2 ** (len(block_out_channels) - 1) != factor:  # ZImagePipeline derives its scale factor from this
            raise ValueError(f"block_out_channels must have log2(factor)+1 entries, got {block_out_channels} for factor {factor}")
        self.latent_channels = in_channels * factor * factor
        # ModelMixin reads dtype/device from a parameter; this one carries no information
        self.register_buffer("_anchor", torch.zeros(1), persistent=False)

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        z = F.pixel_unshuffle(x, self.config.factor)
        return _EncoderOutput(z) if return_dict else (_DeterministicLatent(z),)

    def decode(self, z: torch.Tensor, return_dict: bool = True, generator=None):
        x = F.pixel_shuffle(z, self.config.factor)
        if return_dict:
            from diffusers.models.autoencoders.vae import DecoderOutput

            return DecoderOutput(sample=x)
        return (x,)


def images_to_latents(images: list[np.ndarray] | np.ndarray, factor: int = 4) -> torch.Tensor:
    """uint8 RGB images (N,H,W,3) -> latents (N, 3*f*f, H/f, W/f) in [-1, 1] space."""
    arr = torch.as_tensor(np.asarray(images), dtype=torch.float32).permute(0, 3, 1, 2) / 127.5 - 1.0
    return F.pixel_unshuffle(arr, factor)


def latents_to_images(latents: torch.Tensor, factor: int = 4) -> np.ndarray:
    x = F.pixel_shuffle(latents.float(), factor)
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


# --------------------------------------------------------------------------------------------
# tokenizer and text encoder
# --------------------------------------------------------------------------------------------
def _vocabulary(grid: int = 2) -> list[str]:
    words: set[str] = set()
    for tag in TAGS:
        for rec in enumerate_prompts(tag, grid):
            words.update(rec["prompt"].split())
    words.update(SHAPES)
    words.update(COLORS)
    words.update(NUMBER_WORDS.values())
    for rel in RELATIONS:
        words.update(rel.split())
    for r in range(grid):
        for c in range(grid):
            words.update(cell_name(r, c, grid).split())
    # edit instruction words (tmpbench.shapes.edits phrasing)
    words.update("add a at the remove make move to replace with".split())
    return [PAD, UNK, BOS, VISION_START, VISION_END] + sorted(words)


def build_tokenizer(grid: int = 2):
    """A word-level fast tokenizer over the ShapesWorld vocabulary, with a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(_vocabulary(grid))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, unk_token=UNK, bos_token=BOS)
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 64
    return fast


def build_text_encoder(vocab_size: int, hidden: int, layers: int, seed: int):
    from transformers import Qwen3Config, Qwen3Model

    torch.manual_seed(seed)
    cfg = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden // 4,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    return Qwen3Model(cfg)


# --------------------------------------------------------------------------------------------
# configuration and construction
# --------------------------------------------------------------------------------------------
@dataclass
class TinyZImageConfig:
    """Architecture of the tiny Z-Image reference (and, with ``moe`` set, of tiny-moe)."""

    size: int = 32
    grid: int = 2
    factor: int = 2  # pixel-unshuffle factor of the pixel-space autoencoder (token dim 4*factor^2*3 <= dim)
    dim: int = 128
    n_layers: int = 6
    n_refiner_layers: int = 1
    n_heads: int = 4
    text_hidden: int = 64
    text_layers: int = 3  # ZImagePipeline reads hidden_states[-2]
    max_sequence_length: int = 24
    moe: dict | None = None  # tiny-moe: extra TinyMoETransformer config fields
    hy3: dict | None = None  # tiny-hy3: the HunyuanImage-3.0 decoder layout (TinyHY3Transformer fields)
    seed: int = 0
    # FlowMatchEulerDiscreteScheduler shift (Z-Image-Turbo ships 3.0): more sampling steps at high
    # noise, where colour and layout are decided. 1.0 in folders saved before the field existed.
    scheduler_shift: float = 1.0

    @property
    def axes_dims(self) -> list[int]:
        head_dim = self.dim // self.n_heads
        a = head_dim // 4 // 2 * 2
        b = (head_dim - a) // 2 // 2 * 2
        return [head_dim - 2 * b, b, b]


def transformer_kwargs(cfg: TinyZImageConfig) -> dict:
    return dict(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=3 * cfg.factor * cfg.factor,
        dim=cfg.dim,
        n_layers=cfg.n_layers,
        n_refiner_layers=cfg.n_refiner_layers,
        n_heads=cfg.n_heads,
        n_kv_heads=cfg.n_heads,
        cap_feat_dim=cfg.text_hidden,
        rope_theta=256.0,
        axes_dims=cfg.axes_dims,
        axes_lens=[256, 32, 32],
    )


def transformer_class(cfg: TinyZImageConfig) -> type:
    """The denoiser class of ``cfg``: :class:`TinyHY3Transformer` when ``cfg.hy3`` is set (tiny-hy3),
    :class:`TinyMoETransformer` when ``cfg.moe`` is (tiny-moe), else Z-Image's own."""
    if cfg.hy3:
        return TinyHY3Transformer
    return TinyMoETransformer if cfg.moe else ZImageTransformer2DModel


def build_transformer(cfg: TinyZImageConfig):
    """A fresh denoiser of ``cfg`` (under the caller's RNG state and device, e.g. ``torch.device("meta")``)."""
    if cfg.hy3:
        return TinyHY3Transformer(**tiny_hy3_kwargs(3 * cfg.factor * cfg.factor, cfg.dim, cfg.n_layers, cfg.n_heads,
                                                    cfg.text_hidden, cfg.hy3))
    return transformer_class(cfg)(**transformer_kwargs(cfg), **(cfg.moe or {}))


def build_components(cfg: TinyZImageConfig) -> dict:
    """Fresh, seeded components of a tiny ZImagePipeline."""
    tokenizer = build_tokenizer(cfg.grid)
    text_encoder = build_text_encoder(len(tokenizer), cfg.text_hidden, cfg.text_layers, cfg.seed)
    torch.manual_seed(cfg.seed + 1)
    transformer = build_transformer(cfg)
    vae = PixelShuffleAutoencoder(factor=cfg.factor, block_out_channels=(3,) * (int(np.log2(cfg.factor)) + 1))
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=cfg.scheduler_shift, use_dynamic_shifting=False)
    return dict(transformer=transformer, text_encoder=text_encoder, tokenizer=tokenizer, vae=vae, scheduler=scheduler)


def make_pipeline(components: dict) -> ZImagePipeline:
    pipe = ZImagePipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --------------------------------------------------------------------------------------------
# text encoding (the exact ZImagePipeline path for T2I; omni-style segments for edits)
# --------------------------------------------------------------------------------------------
def encode_prompts(pipe: ZImagePipeline, prompts: list[str], max_len: int = 24) -> list[torch.Tensor]:
    """Caption features exactly as ZImagePipeline computes them (chat template, hidden_states[-2])."""
    return pipe._encode_prompt(list(prompts), device=pipe.text_encoder.device, max_sequence_length=max_len)


def _encode_raw(pipe: ZImagePipeline, texts: list[str], max_len: int) -> list[torch.Tensor]:
    tok = pipe.tokenizer(texts, padding="max_length", max_length=max_len, truncation=True, return_tensors="pt")
    ids = tok.input_ids.to(pipe.text_encoder.device)
    mask = tok.attention_mask.to(pipe.text_encoder.device).bool()
    hs = pipe.text_encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-2]
    return [hs[i][mask[i]] for i in range(len(texts))]


def encode_edit_segments(pipe: ZImagePipeline, instructions: list[str], max_len: int = 24) -> list[list[torch.Tensor]]:
    """Omni-mode caption segments for one condition image, as ZImageOmniPipeline lays them out:
    ``[<bos> <vision_start>]``, ``[<vision_end> instruction <vision_start>]``, ``[<vision_end>]``."""
    flat = []
    for ins in instructions:
        flat += [f"{BOS} {VISION_START}", f"{VISION_END} {ins} {VISION_START}", VISION_END]
    feats = _encode_raw(pipe, flat, max_len)
    return [feats[3 * i : 3 * i + 3] for i in range(len(instructions))]


# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------
def _initial_noise(seeds: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


def _sigmas(pipe: ZImagePipeline, steps: int) -> torch.Tensor:
    from diffusers.pipelines.z_image.pipeline_z_image import get_default_z_image_sigmas

    pipe.scheduler.set_timesteps(sigmas=get_default_z_image_sigmas(steps), mu=0.0)
    return pipe.scheduler.sigmas


@torch.no_grad()
def generate_t2i(
    pipe: ZImagePipeline, prompts: list[str], seeds: list[int], steps: int = 16, guidance: float = 1.0, size: int = 32
) -> np.ndarray:
    """T2I through ZImagePipeline itself, one generator per seed; returns uint8 (N,H,W,3)."""
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    out = pipe(
        prompt=list(prompts),
        height=size,
        width=size,
        num_inference_steps=steps,
        guidance_scale=guidance,
        generator=gens,
        max_sequence_length=24,
        output_type="np",
    ).images
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


@torch.no_grad()
def edit_in_sequence(
    pipe: ZImagePipeline,
    images: list[np.ndarray],
    instructions: list[str],
    seeds: list[int],
    steps: int = 16,
    guidance: float = 1.0,
) -> np.ndarray:
    """TI2I: the source image enters the sequence as clean tokens (omni mode); returns uint8 images."""
    tr = pipe.transformer
    factor = pipe.vae.config.factor
    cond = images_to_latents(images, factor).to(tr.dtype)
    caps = encode_edit_segments(pipe, instructions)
    neg = encode_edit_segments(pipe, [""] * len(instructions)) if guidance > 1.0 else None
    latents = _initial_noise(seeds, tuple(cond.shape[1:]))
    sigmas = _sigmas(pipe, steps)
    for i in range(steps):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        t = torch.full((len(images),), 1.0 - s)
        x = [[cond[j].unsqueeze(1), latents[j].unsqueeze(1).to(tr.dtype)] for j in range(len(images))]
        mask = [[0, 1]] * len(images)
        out = tr(x, t, caps, siglip_feats=[None] * len(images), image_noise_mask=mask, return_dict=False)[0]
        v = torch.stack([o.float().squeeze(1) for o in out])
        if neg is not None:
            out_n = tr(x, t, neg, siglip_feats=[None] * len(images), image_noise_mask=mask, return_dict=False)[0]
            vn = torch.stack([o.float().squeeze(1) for o in out_n])
            v = vn + guidance * (v - vn)
        # model predicts x0 - noise; Euler step on sigma
        latents = latents + (s_next - s) * (-v)
    return latents_to_images(latents, factor)


# --------------------------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------------------------
def save_pipeline(pipe: ZImagePipeline, path: str | Path, cfg: TinyZImageConfig, dtype=torch.float16, extra: dict | None = None) -> None:
    """Save each component in diffusers/transformers layout (weights as ``dtype`` safetensors)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tr = pipe.transformer
    orig = next(tr.parameters()).dtype
    tr.to(dtype)
    tr.save_pretrained(path / "transformer", safe_serialization=True)
    tr.to(orig)
    te = pipe.text_encoder
    te.to(dtype)
    te.save_pretrained(path / "text_encoder", safe_serialization=True)
    te.to(orig)
    pipe.tokenizer.save_pretrained(path / "tokenizer")
    pipe.vae.save_config(path / "vae")
    pipe.scheduler.save_pretrained(path / "scheduler")
    meta = {"tiny_config": asdict(cfg), **(extra or {})}
    (path / "tmpbench.json").write_text(json.dumps(meta, indent=2, sort_keys=True))


def load_pipeline(path: str | Path, device: str = "cpu", dtype=torch.float32,
                  offload_folder: str | Path | None = None) -> tuple[ZImagePipeline, TinyZImageConfig]:
    """Load a tiny pipeline saved by :func:`save_pipeline`; with ``offload_folder`` its transformer's
    blocks stay on disk there (:func:`tmpbench.models.offload.load_offloaded`)."""
    from transformers import PreTrainedTokenizerFast, Qwen3Model

    from tmpbench.models.offload import load_offloaded, pipeline_to

    path = Path(path)
    meta = json.loads((path / "tmpbench.json").read_text())
    cfg = TinyZImageConfig(**meta["tiny_config"])
    if offload_folder is not None:
        transformer = load_offloaded(transformer_class(cfg), path / "transformer", offload_folder, dtype=dtype, device=device)
    else:
        transformer = transformer_class(cfg).from_pretrained(path / "transformer", torch_dtype=dtype)
    text_encoder = Qwen3Model.from_pretrained(path / "text_encoder", torch_dtype=dtype)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path / "tokenizer")
    vae = PixelShuffleAutoencoder.from_config(PixelShuffleAutoencoder.load_config(path / "vae"))
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(path / "scheduler")
    pipe = pipeline_to(make_pipeline(
        dict(transformer=transformer, text_encoder=text_encoder, tokenizer=tokenizer, vae=vae, scheduler=scheduler)
    ), device)
    return pipe, cfg


def to_pil(images: np.ndarray) -> list[Image.Image]:
    return [Image.fromarray(im) for im in images]


def reference_generator(
    pipe: ZImagePipeline, cfg: TinyZImageConfig, name: str, model: str | None = None, dtype=torch.float16
) -> ZImageGenerator:
    """The Z-Image adapter over a tiny pipeline: edits by :func:`edit_in_sequence`, saves by
    :func:`save_pipeline` (weights as ``dtype``); ``model`` (default ``name``) is the registered name."""
    return ZImageGenerator(
        pipe,
        name=name,
        model=name if model is None else model,
        edit_fn=edit_in_sequence,
        max_sequence_length=cfg.max_sequence_length,
        save_fn=lambda p, d: save_pipeline(p, d, cfg, dtype=dtype),
    )


__all__ = [
    "PixelShuffleAutoencoder",
    "TinyZImageConfig",
    "build_components",
    "build_transformer",
    "build_tokenizer",
    "edit_in_sequence",
    "encode_edit_segments",
    "encode_prompts",
    "generate_t2i",
    "images_to_latents",
    "latents_to_images",
    "load_pipeline",
    "make_pipeline",
    "reference_generator",
    "save_pipeline",
    "transformer_class",
]
