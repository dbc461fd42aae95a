"""Image batches as the metrics and encoders take them: uint8 arrays in, float resizes out.

:func:`as_uint8_images` normalises a batch (a uint8 tensor, an array or a list of arrays / PIL
images) to ``(H, W, 3)`` uint8 arrays and refuses anything else (float images are never guessed
at). :func:`resize_float` resizes on float pixels per channel (PIL mode ``F``), never re-quantised
to uint8, as in clean-fid's "clean" mode; an image already at the size is used as is.

>>> as_uint8_images(np.zeros((2, 8, 8, 3), np.uint8))[0].shape
(8, 8, 3)
>>> resize_float(np.zeros((8, 8, 3), np.uint8), 4, "box").shape
(4, 4, 3)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tmpbench.errors import TmpbenchError

_FILTERS = {"box": 4, "bicubic": 3, "bilinear": 2}  # PIL.Image.Resampling values


def as_uint8_images(images) -> list[np.ndarray]:
    """Normalise a batch to a list of ``(H, W, 3)`` uint8 arrays.

    Accepts a uint8 tensor ``(N, 3, H, W)``, a uint8 array ``(N, H, W, 3)``, or a sequence of
    ``(H, W, 3)`` uint8 arrays / PIL images. Anything else (e.g. float images) is refused rather
    than guessed at.
    """
    import torch
    from PIL import Image

    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise TmpbenchError(
                f"expected a uint8 image tensor (N, 3, H, W), got {images.dtype} {tuple(images.shape)}; "
                "convert with (x.clamp(0, 1) * 255).round().to(torch.uint8)"
            )
        return list(images.permute(0, 2, 3, 1).cpu().numpy())
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    if not isinstance(images, Sequence):
        raise TmpbenchError(f"expected a batch of images, got {type(images).__name__}")
    out = []
    for img in images:
        if isinstance(img, Image.Image):
            img = np.asarray(img.convert("RGB"))
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise TmpbenchError(f"expected (H, W, 3) uint8 images, got {img.dtype} {img.shape}")
        out.append(img)
    return out


def resize_float(img: np.ndarray, size: int, filter_name: str, center_crop: bool = False) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(size, size, 3)`` float32 in [0, 255], resized per channel without quantising."""
    from PIL import Image

    if center_crop and img.shape[0] != img.shape[1]:
        s = min(img.shape[:2])
        y0, x0 = (img.shape[0] - s) // 2, (img.shape[1] - s) // 2
        img = img[y0 : y0 + s, x0 : x0 + s]
    if img.shape[0] == size and img.shape[1] == size:
        return img.astype(np.float32)
    channels = [
        np.asarray(Image.fromarray(img[:, :, c].astype(np.float32), mode="F").resize((size, size), resample=_FILTERS[filter_name]))
        for c in range(3)
    ]
    return np.stack(channels, axis=2).clip(0, 255).astype(np.float32)
