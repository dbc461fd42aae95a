"""The on-disk layout of generated (or ground-truth) images, as GenEval lays them out.

::

    DIR/<index:05d>/metadata.jsonl     one line: the suite item's metadata (GenEval record, or edit case)
    DIR/<index:05d>/samples/<n:04d>.png    n = 0 .. samples_per_item-1

GenEval's own tooling reads this layout, so images written by tmpbench can be scored by it too.
Reading validates the layout and refuses a wrong or incomplete folder with a one-line error.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
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
        try:
            lines = [ln for ln in meta.read_text(encoding="utf-8").splitlines() if ln.strip()]
        except UnicodeDecodeError:
            raise DataFormatError(f"{meta} is not UTF-8 text; delete the item folder {d} and regenerate it") from None
        if len(lines) != 1:
            raise DataFormatError(f"{meta} must hold exactly one JSON line, found {len(lines)}")
        try:
            metadata = json.loads(lines[0])
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{meta}:1: malformed JSON ({exc.msg})") from None
        if not isinstance(metadata, dict):
            raise DataFormatError(f"{meta}:1: expected a JSON object, got {type(metadata).__name__}")
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


# what Pillow raises on a truncated, overwritten or foreign file (varies by format and damage)
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the 12-byte chunk every PNG ends with
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error, Image.DecompressionBombError)


def load_image(path: Path, size: tuple[int, int] | None = None, mode: str | None = None) -> np.ndarray:
    """Decode an image completely and return it as an RGB uint8 array.

    The one check of image files (resume, ``tmpbench score``, ``tmpbench fid``): a missing,
    truncated or undecodable file, or one whose ``(width, height)`` / Pillow mode differ from
    ``size`` / ``mode`` when given, raises :class:`DataFormatError` naming the file and the fix.
    """
    path = Path(path)
    fix = "delete it and regenerate it (a rerun of `tmpbench run` or `tmpbench generate` into the same --out redoes it)"
    if not path.is_file():
        raise DataFormatError(f"image {path} does not exist; {fix}")
    try:
        with Image.open(path) as im:
            im.load()  # decodes every byte: truncation shows here, not at first use
            got_size, got_mode, fmt = im.size, im.mode, im.format
            array = np.asarray(im.convert("RGB"))
        if fmt == "PNG":  # decoding stops at the last pixel; verify() also checks every chunk's CRC and the IEND end
            with Image.open(path) as im:
                im.verify()
            with open(path, "rb") as f:
                f.seek(-len(_PNG_END), os.SEEK_END)
                if f.read() != _PNG_END:
                    raise EOFError("the PNG does not end with its IEND chunk")
    except _DECODE_ERRORS as exc:
        reason = (str(exc).splitlines() or [""])[0].replace(str(path), "").strip(" :'\"") or type(exc).__name__
        raise DataFormatError(f"image {path} is damaged ({type(exc).__name__}: {reason}); {fix}") from None
    if size is not None and tuple(got_size) != tuple(size):
        raise DataFormatError(f"image {path} is {got_size[0]}x{got_size[1]}, expected {size[0]}x{size[1]}; {fix}")
    if mode is not None and got_mode != mode:
        raise DataFormatError(f"image {path} has mode {got_mode}, expected {mode}; {fix}")
    return array


def image_problem(path: Path, size: tuple[int, int] | None = None, mode: str | None = None) -> str | None:
    """Why ``path`` is not a usable image (the :func:`load_image` message), or None when it is."""
    try:
        load_image(path, size, mode)
    except DataFormatError as exc:
        return str(exc)
    return None
