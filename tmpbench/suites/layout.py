"""The on-disk layout of generated (or ground-truth) images, as GenEval lays them out.

::

    DIR/<index:05d>/metadata.jsonl     one line: the suite item's metadata (GenEval record, or edit case)
    DIR/<index:05d>/samples/<n:04d>.png    n = 0 .. samples_per_item-1

GenEval's own tooling reads this layout, so images written by tmpbench can be scored by it too.
Reading validates the layout and refuses a wrong or incomplete folder with a one-line error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tmpbench.errors import DataFormatError


@dataclass(frozen=True)
class SampleFolder:
    """One item's folder: its index, metadata and the paths of its samples (sorted)."""

    index: int
    metadata: dict
    samples: tuple[Path, ...]


def item_dir(root: Path, index: int) -> Path:
    return Path(root) / f"{index:05d}"


def sample_path(root: Path, index: int, n: int) -> Path:
    return item_dir(root, index) / "samples" / f"{n:04d}.png"


def write_item(root: Path, index: int, metadata: dict, images: Iterable[np.ndarray | Image.Image]) -> list[Path]:
    """Write one item's metadata and samples atomically enough for resumable runs.

    Each PNG is written to a temporary name then renamed, so a killed process never leaves a
    truncated image under its final name.
    """
    d = item_dir(root, index)
    (d / "samples").mkdir(parents=True, exist_ok=True)
    meta_path = d / "metadata.jsonl"
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(metadata, sort_keys=True) + "\n")
    tmp.replace(meta_path)
    paths = []
    for n, img in enumerate(images):
        pil = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img, dtype=np.uint8))
        p = sample_path(root, index, n)
        tmp_png = p.with_name(p.stem + ".tmp.png")
        pil.save(tmp_png)
        tmp_png.replace(p)
        paths.append(p)
    return paths


def read_folder(root: Path, expected_items: int | None = None, samples_per_item: int | None = None) -> list[SampleFolder]:
    """Read and validate a GenEval-layout folder.

    Raises DataFormatError naming the problem when the folder is missing, holds entries that are not
    ``<index:05d>`` folders, lacks a ``metadata.jsonl`` or samples, has a malformed metadata line, or
    has fewer items / samples than expected.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(f"image folder {root} does not exist")
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    folders: list[SampleFolder] = []
    stray = [p.name for p in entries if not (p.is_dir() and p.name.isdigit() and len(p.name) == 5)]
    if stray:
        raise DataFormatError(
            f"{root} is not in GenEval layout (<index:05d>/metadata.jsonl + samples/*.png): unexpected {stray[:3]}"
        )
    for d in entries:
        meta = d / "metadata.jsonl"
        if not meta.is_file():
            raise DataFormatError(f"{d} has no metadata.jsonl")
        lines = [ln for ln in meta.read_text().splitlines() if ln.strip()]
        if len(lines) != 1:
            raise DataFormatError(f"{meta} must hold exactly one JSON line, found {len(lines)}")
        try:
            metadata = json.loads(lines[0])
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{meta}:1: malformed JSON ({exc.msg})") from None
        samples = tuple(sorted(p for p in (d / "samples").glob("*.png") if ".tmp" not in p.name))
        if not samples:
            raise DataFormatError(f"{d} has no samples/*.png")
        if samples_per_item is not None and len(samples) < samples_per_item:
            raise DataFormatError(f"{d} has {len(samples)} samples, expected {samples_per_item}")
        folders.append(SampleFolder(int(d.name), metadata, samples))
    if not folders:
        raise DataFormatError(f"{root} holds no <index:05d> item folders")
    if expected_items is not None:
        have = {f.index for f in folders}
        missing = [i for i in range(expected_items) if i not in have]
        if missing:
            raise DataFormatError(
                f"{root} is incomplete: {len(missing)} of {expected_items} items missing (first: {missing[0]:05d})"
            )
    return folders


def load_image(path: Path) -> np.ndarray:
    """Load an image as an RGB uint8 array."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
