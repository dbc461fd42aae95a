"""Score image folders against ShapesWorld suites with the analytic detector.

* :func:`score_t2i_folder` - GenEval-style text-to-image correctness per tag (see
  :mod:`tmpbench.scoring.geneval_rule`), read from folders in GenEval's layout.
* :func:`score_edit_folder` - editing (TI2I): *success* means the detected scene equals the exact
  target scene; *preservation* is PSNR and L1 outside the edited cells, against the source render and
  against the exact target render, both rendered at the sample's own resolution.

PSNR of identical regions is infinite; it is capped at :data:`PSNR_CAP` = 100 dB so that means stay
finite (an untouched 8-bit region scores exactly 100). L1 is the mean absolute difference on the
[0, 1] scale over the region's pixels and channels.

Both return plain dicts with ``overall`` (mean over categories, GenEval's convention),
``by_category`` and a per-sample list ``samples`` (each with ``correct`` and ``reason``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.suites.layout import SampleFolder, load_image
from tmpbench.scoring.geneval_rule import evaluate, group_by_class, summarize
from tmpbench.shapes.detector import SceneConflictError, detect, detect_scene
from tmpbench.shapes.edits import EditCase, region_mask
from tmpbench.shapes.world import SHAPES, Scene, render

#: Ceiling for PSNR in dB; identical regions (MSE 0) score exactly this.
PSNR_CAP = 100.0


# --- pure metric functions -----------------------------------------------------------------------


def _masked_pair(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}; render both at one resolution")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != a.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match image shape {a.shape[:2]}")
        return a[mask], b[mask]
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, cap: float = PSNR_CAP) -> float:
    """PSNR in dB between two uint8-range images over ``mask`` (all pixels when None), capped at ``cap``.

    Returns NaN when the mask selects no pixel (nothing to compare).

    >>> img = np.zeros((4, 4, 3), np.uint8)
    >>> psnr(img, img)
    100.0
    """
    x, y = _masked_pair(a, b, mask)
    if x.size == 0:
        return float("nan")
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return float(cap)
    return float(min(cap, 10.0 * np.log10(255.0**2 / mse)))


def l1(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute difference on the [0, 1] scale over ``mask``; NaN when the mask is empty."""
    x, y = _masked_pair(a, b, mask)
    if x.size == 0:
        return float("nan")
    return float(np.mean(np.abs(x - y)) / 255.0)


def describe_scene(scene: Scene) -> str:
    """Short text of a scene, e.g. ``red circle@(0,1), blue square@(1,0)`` (``empty`` if none)."""
    return ", ".join(f"{o.color} {o.shape}@({o.row},{o.col})" for o in scene.objects) or "empty"


# --- text-to-image --------------------------------------------------------------------------------


def _check_t2i_metadata(folder: SampleFolder) -> None:
    meta = folder.metadata
    where = f"item {folder.index:05d}"
    if not isinstance(meta, Mapping) or "tag" not in meta or "include" not in meta:
        raise DataFormatError(
            f"{where}: metadata is not a GenEval record (needs 'tag' and 'include'); was it written for an edit suite?"
        )
    classes = [r.get("class") for key in ("include", "exclude") for r in meta.get(key, [])]
    unknown = sorted({str(c) for c in classes if c not in SHAPES})
    if unknown:
        raise TmpbenchError(
            f"{where} asks for {', '.join(unknown)}: the ShapesWorld detector knows only {', '.join(SHAPES)}; "
            "real-photo prompts need an open-vocabulary detector, which tmpbench does not ship yet"
        )


def score_t2i_image(image: np.ndarray, metadata: Mapping, grid: int | None = None) -> tuple[bool, str, dict]:
    """Detect objects in one image and apply GenEval's rule to ``metadata``.

    Returns ``(correct, reason, details)`` with ``details[class] = [[x0, y0, x1, y1, color], ...]``.
    """
    objects = group_by_class(detect(image, grid))
    correct, reason = evaluate(objects, metadata)
    details = {cls: [[*d.bbox, d.color] for d in objs] for cls, objs in objects.items()}
    return correct, reason, details


def score_t2i_folder(folders: Iterable[SampleFolder]) -> dict:
    """Score GenEval-layout folders (from :func:`tmpbench.suites.layout.read_folder`) with GenEval's rule.

    A record's optional ``grid`` key sets the detector's minimum object area. Returns
    ``{"kind": "t2i", "overall", "by_category", "counts", "images", "correct_images", "samples"}``;
    ``overall`` is the mean of the per-tag accuracies (GenEval's summary), each sample entry holds
    ``index, sample, tag, prompt, correct, reason, details``.
    """
    samples = []
    for folder in folders:
        _check_t2i_metadata(folder)
        meta = folder.metadata
        grid = meta.get("grid")
        for n, path in enumerate(folder.samples):
            correct, reason, details = score_t2i_image(load_image(path), meta, grid)
            samples.append(
                {
                    "index": folder.index,
                    "sample": n,
                    "tag": meta["tag"],
                    "prompt": meta.get("prompt", ""),
                    "correct": bool(correct),
                    "reason": reason,
                    "details": details,
                }
            )
    if not samples:
        raise DataFormatError("no samples to score: the folder list is empty")
    return {"kind": "t2i", **summarize(samples), "samples": samples}


# --- editing --------------------------------------------------------------------------------------


def _edit_case(folder: SampleFolder) -> EditCase:
    try:
        return EditCase.from_dict(folder.metadata)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(
            f"item {folder.index:05d}: metadata is not an edit case ({type(exc).__name__}: {exc}); "
            "was it written for a text-to-image suite?"
        ) from None


def score_edit_image(image: np.ndarray, case: EditCase) -> dict:
    """Success and preservation of one edited image against ``case`` (rendered at the image's size).

    Returns ``{"correct", "reason", "psnr_source", "psnr_target", "l1_source", "l1_target"}``.
    """
    h, w = image.shape[:2]
    if h != w:
        raise DataFormatError(f"edited image is {w}x{h}; ShapesWorld renders are square")
    grid = case.source.grid
    try:
        found = detect_scene(image, grid)
        correct = found == case.target
        reason = "" if correct else f"expected {describe_scene(case.target)}; found {describe_scene(found)}"
    except SceneConflictError as exc:
        correct, reason = False, str(exc)
    outside = ~region_mask(case.region_cells, h, grid)
    src, tgt = render(case.source, h), render(case.target, h)
    return {
        "correct": bool(correct),
        "reason": reason,
        "psnr_source": psnr(image, src, outside),
        "psnr_target": psnr(image, tgt, outside),
        "l1_source": l1(image, src, outside),
        "l1_target": l1(image, tgt, outside),
    }


_PRESERVATION_KEYS = ("psnr_source", "psnr_target", "l1_source", "l1_target")


def _nanmean(values: list[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def score_edit_folder(folders: Iterable[SampleFolder], size: int | None = None) -> dict:
    """Score edited outputs whose metadata are :meth:`EditCase.to_dict` records.

    ``size``, when given, is the resolution every sample must have (a mismatch is refused, never
    resized); source and target are rendered at the sample's resolution either way. Returns
    ``{"kind": "edit", "overall", "by_category", "counts", "images", "correct_images",
    "preservation", "samples"}``: ``overall`` and ``by_category`` are edit success (``overall`` =
    mean over edit types); ``preservation = {"overall": {...}, "by_category": {type: {...}}}`` holds
    mean ``psnr_source, psnr_target`` (dB, capped at :data:`PSNR_CAP`) and ``l1_source, l1_target``.
    """
    if size is not None and size < 1:
        raise ValueError(f"size must be a positive resolution in pixels, got {size}")
    samples = []
    for folder in folders:
        case = _edit_case(folder)
        for n, path in enumerate(folder.samples):
            image = load_image(path)
            if size is not None and image.shape[:2] != (size, size):
                raise DataFormatError(
                    f"{path} is {image.shape[1]}x{image.shape[0]}, expected {size}x{size}; generate at the suite's size"
                )
            res = score_edit_image(image, case)
            samples.append({"index": folder.index, "sample": n, "tag": case.tag, "prompt": case.instruction, **res})
    if not samples:
        raise DataFormatError("no samples to score: the folder list is empty")
    summary = summarize(samples)
    by_tag: dict[str, dict[str, float]] = {}
    for tag in summary["by_category"]:
        rows = [s for s in samples if s["tag"] == tag]
        by_tag[tag] = {k: _nanmean([s[k] for s in rows]) for k in _PRESERVATION_KEYS}
    overall = {k: _nanmean([v[k] for v in by_tag.values()]) for k in _PRESERVATION_KEYS}
    return {"kind": "edit", **summary, "preservation": {"overall": overall, "by_category": by_tag}, "samples": samples}
