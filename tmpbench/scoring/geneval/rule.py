"""GenEval's correctness rule, re-implemented as small pure functions.

This follows ``evaluate`` and ``relative_position`` in GenEval's ``evaluation/evaluate_images.py``
(djghosh13/geneval) and the per-tag summary in ``evaluation/summary_scores.py``:

* ``include`` requirements are ANDed. For each, the first ``count`` objects of the class (objects
  arrive sorted by confidence) must exist; if the requirement names a ``color``, at least ``count``
  of those objects must have it; if it names a ``position: [relation, index]``, every one of those
  objects must stand in ``relation`` to every object of the ``index``-th include group, using
  :func:`~tmpbench.shapes.world.relative_position` with ``POSITION_THRESHOLD`` = 0.1 (box geometry,
  kept in :mod:`tmpbench.shapes.world` so the ShapesWorld grammar places objects with the same rule).
  A group that failed any check cannot serve as a position target ("no target").
* ``exclude`` requirements are ORed: ``count`` or more objects of the class fail the image.
* The reason strings are GenEval's, joined by newlines (relations listed in sorted order, where
  GenEval joins a set in hash order).

The one deliberate difference: GenEval classifies each object's colour with CLIP over its crop; here
the detector supplies the colour (``obj.color``). GenEval's per-class confidence thresholds
(0.3, 0.9 for counting) belong to its Mask2Former scores and are not applied to other detectors;
callers pass the objects they accept, sorted by confidence.

Aggregation (:func:`summarize`): GenEval's summary prints the fraction of correct *images* per tag
and its "Overall score (avg. over tasks)" is the unweighted mean of those per-tag fractions, so a
tag with fewer prompts weighs the same as any other. :func:`summarize` computes exactly that.

>>> objs = {"circle": [DetectedObject((0, 0, 10, 10), "red")], "square": [DetectedObject((20, 0, 30, 10), "blue")]}
>>> evaluate(objs, {"tag": "position", "include": [{"class": "square", "count": 1},
...          {"class": "circle", "count": 1, "position": ["left of", 0]}]})
(True, '')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple, Protocol

import numpy as np

from tmpbench.shapes.world import POSITION_THRESHOLD, relative_position

__all__ = [  # relative_position and POSITION_THRESHOLD are box geometry from tmpbench.shapes.world
    "GENEVAL_COLORS", "MAX_OBJECTS", "POSITION_THRESHOLD", "DetectedObject", "ObjectLike", "evaluate", "group_by_class",
    "relative_position", "summarize",
]

#: GenEval's colour vocabulary, in its order (reason strings list colour counts in this order).
GENEVAL_COLORS: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white"
)
#: GenEval's ``max_objects`` default: at most this many objects per class are considered.
MAX_OBJECTS = 16


class ObjectLike(Protocol):
    """Anything with a pixel ``bbox`` ``(x0, y0, x1, y1)`` and a ``color`` name (e.g. a Detection)."""

    bbox: Sequence[float]
    color: str | None


class DetectedObject(NamedTuple):
    """A minimal detected object: pixel box ``(x0, y0, x1, y1)`` and colour name."""

    bbox: tuple[float, float, float, float]
    color: str | None = None


def _color_counts_text(colors: list[str | None]) -> str:
    vocab = list(GENEVAL_COLORS) + sorted({c for c in colors if c is not None and c not in GENEVAL_COLORS})
    return ", ".join(f"{colors.count(c)} {c}" for c in vocab if c in colors)


def evaluate(
    objects: Mapping[str, Sequence[ObjectLike]],
    metadata: Mapping,
    threshold: float = POSITION_THRESHOLD,
) -> tuple[bool, str]:
    """Apply GenEval's rule: is the image with these detected ``objects`` correct for ``metadata``?

    ``objects`` maps a class name to its detected objects, most confident first. ``metadata`` is a
    GenEval record (``include``/``exclude`` lists of ``{class, count, color?, position?}``).
    Returns ``(correct, reason)``; ``reason`` is empty when correct.
    """
    correct = True
    reasons: list[str] = []
    matched_groups: list[Sequence[ObjectLike] | None] = []
    for req in metadata.get("include", []):
        cls, count = req["class"], int(req["count"])
        matched = True
        found = list(objects.get(cls, []))[:count]
        if len(found) < count:
            correct = matched = False
            reasons.append(f"expected {cls}>={count}, found {len(found)}")
        else:
            if "color" in req:
                colors = [o.color for o in found]
                if colors.count(req["color"]) < count:
                    correct = matched = False
                    reasons.append(
                        f"expected {req['color']} {cls}>={count}, found {colors.count(req['color'])} "
                        f"{req['color']}; and {_color_counts_text(colors)}"
                    )
            if "position" in req and matched:
                relation, target = req["position"]
                target_group = matched_groups[int(target)]
                if target_group is None:
                    correct = matched = False
                    reasons.append(f"no target for {cls} to be {relation}")
                else:
                    for obj in found:
                        for target_obj in target_group:
                            true_rels = relative_position(obj.bbox, target_obj.bbox, threshold)
                            if relation not in true_rels:
                                correct = matched = False
                                # sorted: GenEval joins a set, whose order varies between processes
                                found_rels = " and ".join(sorted(true_rels))
                                reasons.append(f"expected {cls} {relation} target, found {found_rels} target")
                                break
                        if not matched:
                            break
        matched_groups.append(found if matched else None)
    for req in metadata.get("exclude", []):
        cls, count = req["class"], int(req["count"])
        n = len(objects.get(cls, []))
        if n >= count:
            correct = False
            reasons.append(f"expected {cls}<{count}, found {n}")
    return correct, "\n".join(reasons)


def group_by_class(
    detections: Iterable, max_objects: int = MAX_OBJECTS, class_attr: str = "shape"
) -> dict[str, list]:
    """Group detections by class, most confident (``score``) first, at most ``max_objects`` each.

    Ties keep the input order (Python's sort is stable).
    """
    groups: dict[str, list] = {}
    for det in sorted(detections, key=lambda d: -float(getattr(d, "score", 1.0))):
        group = groups.setdefault(getattr(det, class_attr), [])
        if len(group) < max_objects:
            group.append(det)
    return groups


def summarize(results: Iterable[Mapping]) -> dict:
    """GenEval's summary: per-tag fraction of correct images, and ``overall`` = their unweighted mean.

    ``results`` are mappings with ``tag`` and ``correct``. Tags keep first-seen order (GenEval
    groups with ``sort=False``). Returns ``{"overall", "by_category", "counts", "images",
    "correct_images"}`` where ``counts[tag] = [n_correct, n_images]``.
    """
    counts: dict[str, list[int]] = {}
    total = n_correct = 0
    for r in results:
        c = counts.setdefault(r["tag"], [0, 0])
        c[0] += bool(r["correct"])
        c[1] += 1
        total += 1
        n_correct += bool(r["correct"])
    by_category = {tag: c[0] / c[1] for tag, c in counts.items()}
    overall = float(np.mean(list(by_category.values()))) if by_category else float("nan")
    return {
        "overall": overall,
        "by_category": by_category,
        "counts": counts,
        "images": total,
        "correct_images": n_correct / total if total else float("nan"),
    }
