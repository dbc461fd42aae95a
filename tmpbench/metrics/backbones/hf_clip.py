"""transformers CLIP folders as encoders: a full ``CLIPModel`` or a vision tower with projection.

Used where a judge allows an explicitly named CLIP stand-in (OneIG reasoning / diversity). Also
holds the two small transformers version shims the LLM2CLIP encoder shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tmpbench.errors import OfflineError
from tmpbench.metrics.backbones.files import folder_identity, one_line
from tmpbench.provenance import library_version


def dtype_kwargs(dtype) -> dict:
    """``from_pretrained`` keyword for a dtype: ``dtype`` in transformers 5, ``torch_dtype`` before."""
    major = int(library_version("transformers").split(".")[0])
    return {"dtype": dtype} if major >= 5 else {"torch_dtype": dtype}


def projected_features(out):
    """transformers < 5 returns the projected features; 5.x a model output whose pooler_output holds them."""
    return out if hasattr(out, "float") else out.pooler_output


class TransformersClipEncoder:
    """A transformers CLIP folder (``CLIPModel``, or a vision tower with projection for images only): a stand-in."""

    library = "transformers"

    def __init__(self, path: str | Path, device: str = "cpu", substitute_for: str | None = None, need_text: bool = True) -> None:
        import torch
        from transformers import AutoConfig, CLIPImageProcessor, CLIPModel, CLIPVisionModelWithProjection

        self.path, self.device, self.substitute_for = Path(path), device, substitute_for
        self._torch = torch
        try:
            kind = AutoConfig.from_pretrained(self.path, local_files_only=True).model_type
            self.image_processor = CLIPImageProcessor.from_pretrained(self.path, local_files_only=True)
            if kind == "clip":
                self.model = CLIPModel.from_pretrained(self.path, local_files_only=True).to(device).eval()
            elif kind == "clip_vision_model" and not need_text:
                self.model = CLIPVisionModelWithProjection.from_pretrained(self.path, local_files_only=True).to(device).eval()
            else:
                raise ValueError(f"model_type {kind!r} is not a CLIP model{' with a text tower' if need_text else ''}")
            self.tokenizer = None
            if need_text:
                from transformers import AutoTokenizer

                self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise OfflineError(f"cannot load a transformers CLIP from {self.path} ({one_line(exc)})") from None

    def embed_images(self, pil_images) -> Any:
        with self._torch.no_grad():
            px = self.image_processor(images=list(pil_images), return_tensors="pt").pixel_values.to(self.device)
            if hasattr(self.model, "get_image_features"):
                return projected_features(self.model.get_image_features(pixel_values=px)).float().cpu()
            return self.model(pixel_values=px).image_embeds.float().cpu()

    def embed_texts(self, texts: Sequence[str]) -> Any:
        with self._torch.no_grad():
            limit = self.model.config.text_config.max_position_embeddings
            tok = self.tokenizer(list(texts), padding=True, truncation=True, max_length=limit, return_tensors="pt").to(self.device)
            return projected_features(self.model.get_text_features(**tok)).float().cpu()

    def identity(self) -> dict:
        return folder_identity(f"transformers CLIP {self.path.name}", self.path, self.library, self.substitute_for)
