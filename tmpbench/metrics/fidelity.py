"""Fidelity of a pruned model to its teacher: images generated from the same prompt, seed and noise.

``update(pruned_images, teacher_images)`` takes pairs in the same order (uint8, as
:func:`tmpbench.metrics.images.as_uint8_images` accepts them); the pair must have equal sizes.

* :class:`TeacherPSNR` -- mean per-image PSNR in dB on [0, 1] pixels (torchmetrics
  ``peak_signal_noise_ratio``, ``data_range=1``); an identical pair gives ``inf``, so a mean over
  a set containing one is ``inf`` too (the pruned model reproduced that image exactly).
* :class:`TeacherSSIM` -- mean per-image SSIM (torchmetrics, 11 px Gaussian window, sigma 1.5).
* :class:`TeacherLPIPS` -- mean LPIPS (torchmetrics, AlexNet backbone), only when the backbone's
  torchvision weights are on local disk: ``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth``
  (``torch.hub.get_dir()``; default ``~/.cache/torch/hub/checkpoints``). LPIPS' own linear layers ship
  inside torchmetrics. Without the backbone, ``available()`` is False and ``update`` raises
  OfflineError; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torchmetrics import Metric

from tmpbench.errors import OfflineError, TmpbenchError
from tmpbench.metrics.images import as_uint8_images
from tmpbench.provenance import library_version, sha256_file


def paired_float_images(pruned, teacher) -> tuple[Tensor, Tensor]:
    """Two aligned batches as ``(N, 3, H, W)`` float32 in [0, 1]; refuses mismatched counts or sizes."""
    a, b = as_uint8_images(pruned), as_uint8_images(teacher)
    if len(a) != len(b):
        raise TmpbenchError(f"fidelity needs one teacher image per pruned image, got {len(a)} and {len(b)}")
    for i, (x, y) in enumerate(zip(a, b)):
        if x.shape != y.shape:
            raise TmpbenchError(
                f"pair {i}: pruned image {x.shape} and teacher image {y.shape} differ in size; generate both at one resolution"
            )
    import numpy as np

    def stack(arrs):
        return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float() / 255.0

    return stack(a), stack(b)


def psnr_per_image(pruned: Tensor, teacher: Tensor) -> Tensor:
    """Per-image PSNR (dB) of [0, 1] float batches -> ``(N,)``."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    return peak_signal_noise_ratio(pruned, teacher, data_range=1.0, reduction="none", dim=(1, 2, 3))


def ssim_per_image(pruned: Tensor, teacher: Tensor) -> Tensor:
    """Per-image SSIM of [0, 1] float batches -> ``(N,)``."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(pruned, teacher, data_range=1.0, reduction="none")


class _PairMetric(Metric):
    is_differentiable = False
    full_state_update = False
    name = "pair"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _per_image(self, pruned: Tensor, teacher: Tensor) -> Tensor:
        raise NotImplementedError

    def update(self, pruned, teacher) -> None:
        a, b = paired_float_images(pruned, teacher)
        values = self._per_image(a, b).double()
        self.total += values.sum()
        self.count += values.numel()

    def compute(self) -> Tensor:
        if int(self.count) == 0:
            raise TmpbenchError(f"{self.name}: no image pairs were scored; call update() first")
        return self.total / self.count

    def available(self) -> tuple[bool, str]:
        return True, ""

    def identity(self) -> dict:
        return {
            "name": self.name,
            "mode": "teacher-pairs",
            "library": "torchmetrics",
            "library_version": library_version("torchmetrics"),
            "weights_path": None,
            "weights_sha256": None,
        }


class TeacherPSNR(_PairMetric):
    """Mean per-image PSNR (dB) of pruned vs teacher images; higher is better."""

    higher_is_better = True
    name = "psnr_teacher"

    def _per_image(self, pruned, teacher):
        return psnr_per_image(pruned, teacher)


class TeacherSSIM(_PairMetric):
    """Mean per-image SSIM of pruned vs teacher images; higher is better."""

    higher_is_better = True
    name = "ssim_teacher"

    def _per_image(self, pruned, teacher):
        return ssim_per_image(pruned, teacher)


LPIPS_BACKBONE_URLS = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "squeeze": "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
}


def lpips_backbone_path(net: str = "alex") -> Path:
    """Where torchvision looks for the LPIPS backbone's ImageNet weights (no download)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE_URLS[net].rsplit("/", 1)[1]


class TeacherLPIPS(_PairMetric):
    """Mean LPIPS of pruned vs teacher images (lower is better); needs the backbone weights locally."""

    higher_is_better = False
    name = "lpips_teacher"

    def __init__(self, net: str = "alex", **kwargs) -> None:
        if net not in LPIPS_BACKBONE_URLS:
            raise TmpbenchError(f"unknown LPIPS backbone {net!r}; use one of {', '.join(LPIPS_BACKBONE_URLS)}")
        super().__init__(**kwargs)
        self.net = net
        self._lpips = None

    def available(self) -> tuple[bool, str]:
        path = lpips_backbone_path(self.net)
        if not path.is_file():
            return False, (
                f"LPIPS ({self.net}) backbone weights not found offline: put {path.name} at {path} "
                "(or set TORCH_HOME to a folder holding hub/checkpoints/); no download is attempted"
            )
        return True, ""

    def update(self, pruned, teacher) -> None:
        ok, reason = self.available()
        if not ok:
            raise OfflineError(reason)
        a, b = paired_float_images(pruned, teacher)
        if self._lpips is None:
            from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

            # reduction="sum": the batch's summed per-image distances; normalize=True: inputs in [0, 1]
            self._lpips = LearnedPerceptualImagePatchSimilarity(net_type=self.net, reduction="sum", normalize=True)
        with torch.no_grad():
            self.total += self._lpips(a, b).double()
        self.count += a.shape[0]

    def identity(self) -> dict:
        ident = {**super().identity(), "mode": f"lpips-{self.net}"}
        path = lpips_backbone_path(self.net)
        if path.is_file():
            ident.update(weights_path=str(path), weights_sha256=sha256_file(path))
        else:
            ident["unavailable"] = self.available()[1]
        return ident
