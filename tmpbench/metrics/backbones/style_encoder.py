"""OneIG-Bench's StyleEncoder (``xingpng/OneIG-StyleEncoder``): a transformers CLIP vision tower in bfloat16.

OneIG feeds it a default ``CLIPImageProcessor()`` (not the folder's processor) and L2-normalises
``image_embeds``; both are repeated here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tmpbench.errors import OfflineError
from tmpbench.metrics.backbones.files import one_line, weight_files, weights_sha256
from tmpbench.provenance import library_version


class SEStyleEncoder:
    """OneIG's StyleEncoder: a transformers CLIPVisionModelWithProjection with a default CLIPImageProcessor()."""

    def __init__(self, path: str | Path, device: str = "cpu", dtype: Any = None) -> None:
        import torch
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        self.path = Path(path)
        if not self.path.is_dir():
            raise OfflineError(f"StyleEncoder folder {self.path} does not exist (a local copy of xingpng/OneIG-StyleEncoder)")
        self.dtype = torch.bfloat16 if dtype is None else dtype  # OneIG runs it in bfloat16
        try:
            self.model = CLIPVisionModelWithProjection.from_pretrained(self.path, local_files_only=True).to(device, dtype=self.dtype).eval()
        except (OSError, ValueError) as exc:
            raise OfflineError(f"cannot load the StyleEncoder from {self.path} ({one_line(exc)})") from None
        self.processor = CLIPImageProcessor()  # OneIG uses the defaults, not the folder's processor
        self.device, self._torch = device, torch

    def embed_images(self, pil_images) -> Any:
        torch = self._torch
        px = self.processor(images=[im.convert("RGB") for im in pil_images], return_tensors="pt").pixel_values
        px = px.to(self.device, dtype=self.dtype)
        with torch.no_grad():
            emb = self.model(px).image_embeds
            return torch.nn.functional.normalize(emb, p=2, dim=-1).float().cpu()

    def identity(self) -> dict:
        return {
            "name": "OneIG-StyleEncoder (xingpng/OneIG-StyleEncoder)",
            "dtype": str(self.dtype).replace("torch.", ""),
            "library": "transformers",
            "library_version": library_version("transformers"),
            "weights_path": str(self.path),
            "weights_sha256": weights_sha256(weight_files(self.path)),
        }
