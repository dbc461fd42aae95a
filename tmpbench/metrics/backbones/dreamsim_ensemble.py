"""DreamSim's ensemble (``dreamsim(pretrained=True)``), OneIG-Bench's diversity encoder, from its local cache.

The cache folder is checked for every file first, so the ``dreamsim`` package never starts a
download; embeddings are taken one image at a time, as OneIG calls ``model(img_a, img_b)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tmpbench.errors import MissingDependencyError, OfflineError
from tmpbench.metrics.backbones.files import one_line, weight_files, weights_sha256
from tmpbench.provenance import library_version

#: the environment variable tmpbench reads DreamSim's cache folder from (named in the errors below)
DIVERSITY_DIR_ENV = "TMPBENCH_ONEIG_DIVERSITY_DIR"
DREAMSIM_NAME = "DreamSim ensemble (dreamsim package, dreamsim(pretrained=True))"
DREAMSIM_FILES = ("dino_vitb16_pretrain.pth", "open_clip_vitb16_pretrain.pth.tar", "clip_vitb16_pretrain.pth.tar", "ensemble_lora")


class DreamSimEncoder:
    """DreamSim's ensemble from its local cache folder; ``embed`` per cell, distance ``1 - cos``."""

    def __init__(self, cache_dir: str | Path, device: str = "cpu") -> None:
        self.cache_dir = Path(cache_dir).expanduser()
        if not self.cache_dir.is_dir():
            raise OfflineError(f"DreamSim folder {self.cache_dir} does not exist; set ${DIVERSITY_DIR_ENV} to dreamsim's cache_dir")
        missing = [f for f in DREAMSIM_FILES if not (self.cache_dir / f).exists()]
        if missing:  # dreamsim() would start a download
            raise OfflineError(
                f"DreamSim folder {self.cache_dir} lacks {', '.join(missing)} (run dreamsim(pretrained=True, cache_dir=...) once online)"
            )
        try:
            from dreamsim import dreamsim
        except ImportError:
            raise MissingDependencyError("diversity needs DreamSim: pip install dreamsim") from None
        import torch

        try:
            self.model, self.preprocess = dreamsim(pretrained=True, device=device, cache_dir=str(self.cache_dir))
        except Exception as exc:
            raise OfflineError(f"cannot load DreamSim from {self.cache_dir} ({one_line(exc)})") from None
        self.device, self._torch = device, torch

    def embed_images(self, pil_images) -> Any:
        torch = self._torch
        with torch.no_grad():  # one image at a time, as OneIG calls model(img_a, img_b)
            return torch.cat([self.model.embed(self.preprocess(im).to(self.device)).reshape(1, -1).float().cpu() for im in pil_images])

    @staticmethod
    def _files(path: Path) -> list[Path]:
        """A weight file itself, or the weight files in a folder (``ensemble_lora/``)."""
        return [path] if path.is_file() else weight_files(path)

    def identity(self) -> dict:
        return {
            "name": DREAMSIM_NAME,
            "library": "dreamsim",
            "library_version": library_version("dreamsim"),
            "weights_path": str(self.cache_dir),
            "weights_sha256": weights_sha256([p for f in DREAMSIM_FILES for p in self._files(self.cache_dir / f)]),
            "substitute_for": None,
            "official": True,
        }
