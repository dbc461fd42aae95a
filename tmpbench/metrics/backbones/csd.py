"""CSD (Contrastive Style Descriptors), one of OneIG-Bench's two style encoders, rebuilt on open_clip.

CSD's ViT has the same parameter names as OpenAI's ``clip`` package, so its ``checkpoint.pth``
loads into open_clip's vision tower key for key; unmatched keys are an error rather than ignored.
The embedding is ``normalize(ViT(x) @ last_layer_style)`` with torchvision's Resize (bicubic),
CenterCrop and CLIP's mean/std, as ``CSD_CLIP("vit_large")`` computes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tmpbench.errors import DataFormatError, MissingDependencyError, OfflineError
from tmpbench.metrics.backbones.files import weights_sha256
from tmpbench.provenance import library_version

CSD_ARCH = "ViT-L-14-quickgelu"  # OpenAI's ViT-L/14 (QuickGELU), the backbone CSD_CLIP("vit_large") loads
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class CSDStyleEncoder:
    """CSD (Contrastive Style Descriptors) rebuilt on open_clip: ``normalize(ViT(x) @ last_layer_style)``.

    ``checkpoint`` is CSD's ``checkpoint.pth`` (``{"model_state_dict": {"[module.]backbone.*",
    "[module.]last_layer_style", ...}}``); ``openai_weights`` is OpenAI's ``ViT-L-14.pt`` that
    OneIG loads underneath it (needed only when the checkpoint lacks backbone weights). ``arch``
    is an open_clip architecture (tests pass a tiny one).
    """

    def __init__(self, checkpoint: str | Path, openai_weights: str | Path | None = None, device: str = "cpu", arch: str = CSD_ARCH) -> None:
        if library_version("open_clip_torch") == "not installed":
            raise MissingDependencyError("CSD is rebuilt on open_clip: pip install open_clip_torch")
        import open_clip
        import torch
        from torchvision import transforms

        self.checkpoint = Path(checkpoint)
        self.openai_weights = Path(openai_weights) if openai_weights else None
        if not self.checkpoint.is_file():
            raise OfflineError(f"CSD checkpoint {self.checkpoint} not found (OneIG's scripts/style/models/checkpoint.pth)")
        if self.openai_weights is not None:
            visual = open_clip.load_openai_model(str(self.openai_weights), precision="fp32", device="cpu").visual
        else:
            visual = open_clip.create_model(arch, device="cpu").visual
        try:
            ckpt = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception:
            # CSD's training checkpoint pickles more than tensors; OneIG loads it the same way
            ckpt = torch.load(self.checkpoint, map_location="cpu", weights_only=False)
        sd = ckpt.get("model_state_dict", ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(sd, dict):
            raise DataFormatError(f"{self.checkpoint}: expected a dict with 'model_state_dict'")
        sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
        if "last_layer_style" not in sd:
            raise DataFormatError(f"{self.checkpoint}: key 'last_layer_style' missing from model_state_dict (not a CSD checkpoint?)")
        backbone = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
        visual.proj = None  # CSD_CLIP drops the CLIP projection; the style head replaces it
        result = visual.load_state_dict(backbone, strict=False)
        if result.unexpected_keys:
            raise DataFormatError(f"{self.checkpoint}: backbone keys not in a {arch} vision tower: {', '.join(result.unexpected_keys[:4])}")
        if result.missing_keys and self.openai_weights is None:
            raise DataFormatError(
                f"{self.checkpoint}: backbone lacks {', '.join(result.missing_keys[:4])} and no ViT-L-14.pt was given to fill them"
            )
        self.style_head = sd["last_layer_style"].float().to(device)
        self.visual = visual.float().to(device).eval()
        size = self.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else int(size)
        self.preprocess = transforms.Compose([
            transforms.Resize(size=size, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize(CLIP_MEAN, CLIP_STD),
        ])
        self.device, self.arch, self._torch = device, arch, torch

    def embed_images(self, pil_images) -> Any:
        torch = self._torch
        with torch.no_grad():
            x = torch.stack([self.preprocess(im.convert("RGB")) for im in pil_images]).to(self.device)
            out = self.visual(x) @ self.style_head
            return torch.nn.functional.normalize(out, dim=1, p=2).cpu()

    def identity(self) -> dict:
        files = [self.checkpoint] + ([self.openai_weights] if self.openai_weights else [])
        return {
            "name": "CSD (CSD_CLIP vit_large, style head)",
            "arch": self.arch,
            "library": "open_clip_torch",
            "library_version": library_version("open_clip_torch"),
            "weights_path": str(self.checkpoint),
            "weights_sha256": weights_sha256(files),
        }
