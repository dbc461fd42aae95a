"""ShapesWorld scorers: GenEval correctness, edit success and preservation, with the analytic detector.

ShapesWorld images are scored exactly, without a learned model: :mod:`tmpbench.shapes.detector`
finds every object (shape, colour, box) and GenEval's rule (:mod:`tmpbench.scoring.geneval.rule`)
judges a text-to-image sample; an edited sample succeeds when the detected scene equals the exact
target scene, and *preservation* is PSNR and L1 outside the edited cells against the source render
(and, as extras, against the target render), rendered at the sample's own resolution.

PSNR of identical regions is infinite; it is capped at :data:`PSNR_CAP` = 100 dB so that means stay
finite (an untouched 8-bit region scores exactly 100). L1 is the mean absolute difference on the
[0, 1] scale over the region's pixels and channels.

* per image: :func:`score_t2i_image`, :func:`score_edit_image` (plain functions);
* as scorers of ``tmpbench run`` / ``tmpbench score``: :class:`ShapesGenEval` (metric ``geneval``
  on a suite with ``world: shapes``), :class:`ShapesEditSuccess`, :class:`ShapesPreservationPSNR`,
  :class:`ShapesPreservationL1`. GenEval correctness and edit success are reported as the mean of
  per-category means (GenEval's convention).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tmpbench.errors import DataFormatError
from tmpbench.scoring.base import SampleScorer
from tmpbench.scoring.geneval.rule import evaluate, group_by_class
from tmpbench.shapes.detector import SceneConflictError, detect, detect_scene
from tmpbench.shapes.edits import EditCase, region_mask
from tmpbench.shapes.world import Scene, render

#: Ceiling for PSNR in dB; identical regions (MSE 0) score exactly this.
PSNR_CAP = 100.0


# ------------------------------------------------------------------------------------------------
# pure metric functions
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


# ------------------------------------------------------------------------------------------------
# one image
def score_t2i_image(image: np.ndarray, metadata: Mapping, grid: int | None = None) -> tuple[bool, str, dict]:
    """Detect objects in one image and apply GenEval's rule to ``metadata``.

    Returns ``(correct, reason, details)`` with ``details[class] = [[x0, y0, x1, y1, color], ...]``.
    """
    objects = group_by_class(detect(image, grid))
    correct, reason = evaluate(objects, metadata)
    details = {cls: [[*d.bbox, d.color] for d in objs] for cls, objs in objects.items()}
    return correct, reason, details


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


# ------------------------------------------------------------------------------------------------
# scorers
class ShapesGenEval(SampleScorer):
    """GenEval-style correctness of ShapesWorld images with the analytic detector (1 = correct)."""

    name = "geneval"
    aggregation = "category_mean"
    kinds = ("t2i",)

    def identity(self) -> dict:
        return {
            "name": self.name,
            "mode": "shapes-analytic-detector",
            "library": "tmpbench",
            "rule": "tmpbench.scoring.geneval.rule (GenEval evaluate_images.py)",
            "weights_path": None,
            "weights_sha256": None,
        }

    def score(self, samples):
        out = []
        for s in samples:
            correct, reason, _ = score_t2i_image(s.image, s.item.metadata, s.item.metadata.get("grid"))
            out.append({self.name: float(correct), "geneval_reason": reason})
        return out


class _ShapesEdit(SampleScorer):
    """One number of :func:`score_edit_image` per edited sample (``key``), with its extras."""

    kinds = ("edit",)
    key = "correct"
    extras: tuple[str, ...] = ()  # further score_edit_image keys written to samples.jsonl

    def identity(self) -> dict:
        return {"name": self.name, "mode": "shapes-analytic-detector", "library": "tmpbench", "weights_path": None, "weights_sha256": None}

    def score(self, samples):
        out = []
        for s in samples:
            res = score_edit_image(s.image, EditCase.from_dict(s.item.metadata))
            row = {self.name: float(res[self.key])}
            row.update({extra: res[extra] for extra in self.extras})
            out.append(row)
        return out


class ShapesEditSuccess(_ShapesEdit):
    """Edit success: the detected scene equals the exact target scene."""

    name, key, aggregation = "edit_success", "correct", "category_mean"
    extras = ("reason",)

    def score(self, samples):
        return [{self.name: row[self.name], "edit_reason": row["reason"]} for row in super().score(samples)]


class ShapesPreservationPSNR(_ShapesEdit):
    """PSNR (dB, capped at 100) outside the edited cells, against the source render (extra: against the target)."""

    name, key = "preservation_psnr", "psnr_source"
    extras = ("psnr_target",)


class ShapesPreservationL1(_ShapesEdit):
    """Mean absolute difference outside the edited cells, against the source render (lower is better)."""

    name, key, higher_is_better = "preservation_l1", "l1_source", False
    extras = ("l1_target",)
