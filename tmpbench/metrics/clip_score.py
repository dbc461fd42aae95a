"""CLIPScore for text-to-image, and CLIP-I, CLIP-T and directional CLIP for edits, via open_clip.

Definitions (embeddings are L2-normalised CLIP image / text embeddings):

* **CLIPScore** = ``100 * max(cos(E_I(image), E_T(caption)), 0)``, averaged (torchmetrics'
  ``CLIPScore`` definition; higher is better).
* **CLIP-I** = ``cos(E_I(edited), E_I(reference))``: the reference is the ground-truth target image
  when the suite has one, else the source image (the caller decides and records which).
* **CLIP-T** = ``cos(E_I(edited), E_T(target caption))``.
* **Directional CLIP** = ``cos(E_I(edited) - E_I(source), E_T(target caption) - E_T(source caption))``
  (StyleGAN-NADA / InstructPix2Pix): did the image move the way the text moved.

Weights. The default model is open_clip ``ViT-B-32-quickgelu`` with OpenAI's weights. They are found
locally, never downloaded, in this order: the ``weights`` argument, ``$TMPBENCH_CLIP_WEIGHTS``, then
the Hugging Face hub cache entry that open_clip itself would create (``create_model(...,
pretrained="openai")`` prefers the hub: repo ``timm/vit_base_patch32_clip_224.openai``, file
``open_clip_model.safetensors``, i.e.
``$HF_HUB_CACHE/models--timm--vit_base_patch32_clip_224.openai/snapshots/<rev>/open_clip_model.safetensors``).
Any other open_clip architecture needs its checkpoint passed explicitly with ``model_name``.
The network itself is loaded by :mod:`tmpbench.metrics.backbones.openclip`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torchmetrics import Metric

from tmpbench.errors import MissingDependencyError, TmpbenchError
from tmpbench.metrics.backbones.openclip import DEFAULT_MODEL, OpenClipBundle, check_captions, load_open_clip_checkpoint
from tmpbench.metrics.features import resolve_weights
from tmpbench.metrics.images import as_uint8_images
from tmpbench.provenance import library_version, sha256_file


# ------------------------------------------------------------------------------------------------
# pure maths
def normalize(x: Tensor) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def cosine_rows(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise cosine similarity of two ``(N, D)`` matrices -> ``(N,)``."""
    if a.shape != b.shape:
        raise ValueError(f"embedding shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return (normalize(a) * normalize(b)).sum(-1)


def clip_score(image_emb: Tensor, text_emb: Tensor) -> Tensor:
    """Per-pair CLIPScore ``100 * max(cos, 0)`` -> ``(N,)``."""
    return 100.0 * cosine_rows(image_emb, text_emb).clamp_min(0.0)


def directional_similarity(source_img: Tensor, edited_img: Tensor, source_txt: Tensor, target_txt: Tensor) -> Tensor:
    """Per-pair directional CLIP similarity -> ``(N,)`` in [-1, 1]."""
    d_img = normalize(edited_img) - normalize(source_img)
    d_txt = normalize(target_txt) - normalize(source_txt)
    return cosine_rows(d_img, d_txt)


# ------------------------------------------------------------------------------------------------
# loading
def resolve_clip_weights(model_name: str = DEFAULT_MODEL, weights: str | Path | None = None) -> Path:
    """Local checkpoint for ``model_name`` (see the module docstring); OfflineError when absent."""
    if model_name != DEFAULT_MODEL and weights is None:
        raise TmpbenchError(f"open_clip model {model_name!r} is not tmpbench's default: pass its checkpoint with --clip-weights PATH")
    return resolve_weights("clip", weights)


def load_open_clip(model_name: str = DEFAULT_MODEL, weights: str | Path | None = None, device: str = "cpu") -> OpenClipBundle:
    """Find the checkpoint (:func:`resolve_clip_weights`) and load it (memoised). Never downloads."""
    if library_version("open_clip_torch") == "not installed":
        raise MissingDependencyError("CLIP metrics need open_clip: pip install open_clip_torch")
    return load_open_clip_checkpoint(model_name, resolve_clip_weights(model_name, weights), device)


# ------------------------------------------------------------------------------------------------
# metrics
class _OpenClipMetric(Metric):
    """Shared loading, availability and identity of the CLIP metrics; states are a sum and a count."""

    higher_is_better = True
    is_differentiable = False
    full_state_update = False
    name = "clip"

    def __init__(self, model_name: str = DEFAULT_MODEL, weights: str | Path | None = None, device: str = "cpu", **kwargs) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.weights = weights
        self.clip_device = device
        self._bundle: OpenClipBundle | None = None
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def available(self) -> tuple[bool, str]:
        if library_version("open_clip_torch") == "not installed":
            return False, "CLIP metrics need open_clip: pip install open_clip_torch"
        try:
            resolve_clip_weights(self.model_name, self.weights)
        except TmpbenchError as exc:
            return False, str(exc)
        return True, ""

    @property
    def bundle(self) -> OpenClipBundle:
        if self._bundle is None:
            self._bundle = load_open_clip(self.model_name, self.weights, self.clip_device)
        return self._bundle

    def identity(self) -> dict:
        ok, reason = self.available()
        ident = {
            "name": self.name,
            "mode": self.model_name,
            "library": "open_clip_torch",
            "library_version": library_version("open_clip_torch"),
            "weights_path": None,
            "weights_sha256": None,
        }
        if ok:
            path = resolve_clip_weights(self.model_name, self.weights)
            ident.update(weights_path=str(path), weights_sha256=sha256_file(path))
        else:
            ident["unavailable"] = reason
        return ident

    def _add(self, values: Tensor) -> None:
        self.total += values.double().sum()
        self.count += values.numel()

    def compute(self) -> Tensor:
        if int(self.count) == 0:
            raise TmpbenchError(f"{self.name}: no samples were scored; call update() first")
        return self.total / self.count


def _check_len(name: str, **seqs) -> int:
    lengths = {k: len(v) for k, v in seqs.items()}
    if len(set(lengths.values())) != 1:
        raise TmpbenchError(f"{name}: inputs differ in length {lengths}; pass one of each per sample")
    return next(iter(lengths.values()))


class CLIPScore(_OpenClipMetric):
    """Mean ``100 * max(cos(image, caption), 0)``; ``update(images, captions)``."""

    name = "clipscore"

    def update(self, images, captions: Sequence[str]) -> None:
        arrays, captions = as_uint8_images(images), check_captions(captions)
        _check_len(self.name, images=arrays, captions=captions)
        self._add(clip_score(self.bundle.embed_images(arrays), self.bundle.embed_texts(captions)))


class CLIPImageSimilarity(_OpenClipMetric):
    """CLIP-I: mean ``cos(edited, reference)`` image embeddings; ``update(edited, references)``."""

    name = "clip_i"

    def update(self, edited, references) -> None:
        a, b = as_uint8_images(edited), as_uint8_images(references)
        _check_len(self.name, edited=a, references=b)
        self._add(cosine_rows(self.bundle.embed_images(a), self.bundle.embed_images(b)))


class CLIPTextSimilarity(_OpenClipMetric):
    """CLIP-T: mean ``cos(edited image, target caption)``; ``update(edited, target_captions)``."""

    name = "clip_t"

    def update(self, edited, target_captions: Sequence[str]) -> None:
        a, target_captions = as_uint8_images(edited), check_captions(target_captions)
        _check_len(self.name, edited=a, target_captions=target_captions)
        self._add(cosine_rows(self.bundle.embed_images(a), self.bundle.embed_texts(target_captions)))


class DirectionalCLIPSimilarity(_OpenClipMetric):
    """Directional CLIP; ``update(sources, edited, source_captions, target_captions)``."""

    name = "clip_dir"

    def update(self, sources, edited, source_captions: Sequence[str], target_captions: Sequence[str]) -> None:
        s, e = as_uint8_images(sources), as_uint8_images(edited)
        source_captions, target_captions = check_captions(source_captions), check_captions(target_captions)
        _check_len(self.name, sources=s, edited=e, source_captions=source_captions, target_captions=target_captions)
        b = self.bundle
        src_txt, tgt_txt = b.embed_texts(source_captions), b.embed_texts(target_captions)
        self._add(directional_similarity(b.embed_images(s), b.embed_images(e), src_txt, tgt_txt))
