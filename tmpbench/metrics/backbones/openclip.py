"""open_clip encoders: tmpbench's default CLIP checkpoint, and open_clip models saved in a local folder.

* :class:`OpenClipBundle` / :func:`load_open_clip_checkpoint` -- an architecture from open_clip's
  registry (default ``ViT-B-32-quickgelu``, OpenAI's weights) loaded from one checkpoint file:
  what CLIPScore, CLIP-I/-T/directional and the ``clip`` feature mode embed with. Images are
  resized as floats (bicubic, centre crop) by :func:`tmpbench.metrics.images.resize_float`.
  Finding the checkpoint is :func:`tmpbench.metrics.clip_score.resolve_clip_weights`' job.
* :class:`OpenClipEncoder` -- a model in a ``local-dir:`` folder (``open_clip_config.json`` +
  weights) with open_clip's own preprocessing: a stand-in judge for OneIG.

Nothing here downloads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tmpbench.errors import MissingDependencyError, OfflineError, TmpbenchError
from tmpbench.metrics.backbones.files import folder_identity, one_line
from tmpbench.metrics.images import as_uint8_images, resize_float
from tmpbench.provenance import library_version, sha256_file

DEFAULT_MODEL = "ViT-B-32-quickgelu"  # OpenAI's ViT-B/32 uses QuickGELU; open_clip's tag 'openai' sets it


# ------------------------------------------------------------------------------------------------
# tmpbench's CLIP: an open_clip architecture from one checkpoint file
def check_captions(captions) -> list[str]:
    """``captions`` as a list of strings; a bare string or non-strings are refused (one line)."""
    if isinstance(captions, str) or not all(isinstance(t, str) for t in captions):
        raise TmpbenchError("captions must be a list of strings, one per image")
    return list(captions)


@dataclass
class OpenClipBundle:
    """A loaded open_clip model with its tokenizer and the pixel pipeline tmpbench feeds it."""

    model: torch.nn.Module
    tokenizer: object
    model_name: str
    image_size: int
    mean: Tensor  # (1, 3, 1, 1)
    std: Tensor
    weights_path: Path
    weights_sha256: str
    device: str

    def encode_image_pixels(self, x: Tensor) -> Tensor:
        """``(N, 3, S, S)`` float images in [0, 255] (already at ``image_size``) -> raw image embeddings."""
        x = (x.to(self.device) / 255.0 - self.mean) / self.std
        return self.model.encode_image(x).float()

    @torch.no_grad()
    def embed_images(self, images) -> Tensor:
        import numpy as np

        arrays = as_uint8_images(images)
        x = torch.from_numpy(np.stack([resize_float(a, self.image_size, "bicubic", center_crop=True) for a in arrays]))
        return self.encode_image_pixels(x.permute(0, 3, 1, 2).contiguous()).cpu()

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> Tensor:
        return self.model.encode_text(self.tokenizer(check_captions(texts)).to(self.device)).float().cpu()


_BUNDLES: dict[tuple, OpenClipBundle] = {}


def load_open_clip_checkpoint(model_name: str, path: Path, device: str = "cpu") -> OpenClipBundle:
    """Load open_clip architecture ``model_name`` from the checkpoint file ``path`` (memoised). Never downloads."""
    if library_version("open_clip_torch") == "not installed":
        raise MissingDependencyError("CLIP metrics need open_clip: pip install open_clip_torch")
    import open_clip

    digest = sha256_file(path)
    key = (model_name, str(Path(path).resolve()), digest, device)
    if key not in _BUNDLES:
        # a file path as `pretrained` makes open_clip load it directly (no hub access)
        model = open_clip.create_model(model_name, pretrained=str(path), device=device)
        model.eval()
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", 224)
        size = size[0] if isinstance(size, (tuple, list)) else int(size)
        mean = torch.tensor(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN), device=device).view(1, 3, 1, 1)
        std = torch.tensor(cfg.get("std", open_clip.OPENAI_DATASET_STD), device=device).view(1, 3, 1, 1)
        _BUNDLES[key] = OpenClipBundle(model, open_clip.get_tokenizer(model_name), model_name, size, mean, std, path, digest, device)
    return _BUNDLES[key]


# ------------------------------------------------------------------------------------------------
# an open_clip model saved in a local folder
class OpenClipEncoder:
    """An open_clip model from a local folder (``open_clip_config.json`` + weights): a stand-in judge."""

    library = "open_clip_torch"

    def __init__(self, path: str | Path, device: str = "cpu", substitute_for: str | None = None) -> None:
        import open_clip

        self.path, self.device, self.substitute_for = Path(path), device, substitute_for
        try:
            self.model, _, self.preprocess = open_clip.create_model_and_transforms(f"local-dir:{self.path}", device=device)
            self.tokenizer = open_clip.get_tokenizer(f"local-dir:{self.path}")
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise OfflineError(f"cannot load open_clip from {self.path} ({one_line(exc)})") from None
        self.model.eval()
        self._torch = torch

    def embed_images(self, pil_images) -> Any:
        with self._torch.no_grad():
            x = self._torch.stack([self.preprocess(im) for im in pil_images]).to(self.device)
            return self.model.encode_image(x).float().cpu()

    def embed_texts(self, texts: Sequence[str]) -> Any:
        with self._torch.no_grad():
            return self.model.encode_text(self.tokenizer(list(texts)).to(self.device)).float().cpu()

    def identity(self) -> dict:
        cfg = json.loads((self.path / "open_clip_config.json").read_text(encoding="utf-8"))
        return folder_identity(
            f"open_clip local-dir {self.path.name}", self.path, self.library, self.substitute_for, model_cfg=cfg.get("model_cfg", cfg)
        )
