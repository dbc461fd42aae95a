"""Ground-truth rendering of ShapesWorld suite items: the exact image an item asks for.

A ShapesWorld item's metadata fully determines its scene: a T2I item's scene is sampled from its
GenEval record with the item's own seed; an edit item's metadata is an ``EditCase`` whose target
(and source) scene is explicit. These functions take ``(metadata, seed)`` rather than a suite item
so that ShapesWorld stays below the suite layer (``tmpbench.suites`` items pass their fields).

Example::

    >>> from tmpbench.shapes.grammar import balanced_records
    >>> rec = {**balanced_records(1, seed=0)[0], "grid": 2, "size": 32}
    >>> render_ground_truth("t2i", rec, seed=7).shape
    (32, 32, 3)
"""

from __future__ import annotations

import numpy as np

from tmpbench.shapes.edits import EditCase
from tmpbench.shapes.grammar import sample_scene
from tmpbench.shapes.world import Scene, render


def ground_truth_scene(kind: str, metadata: dict, seed: int) -> Scene:
    """The exact scene an item asks for: a sampled scene (``t2i``) or the edit's target scene (``edit``)."""
    grid = int(metadata.get("grid", 2))
    if kind == "t2i":
        return sample_scene(metadata, np.random.default_rng(seed), grid)
    return EditCase.from_dict(metadata).target


def render_ground_truth(kind: str, metadata: dict, seed: int, size: int | None = None) -> np.ndarray:
    """The ground-truth image of a ShapesWorld item at ``size`` px (default: the item's size)."""
    return render(ground_truth_scene(kind, metadata, seed), int(size or metadata.get("size", 32)))


def render_source(metadata: dict, size: int | None = None) -> np.ndarray:
    """The source image of a shapes-edit item (what an editing model is given)."""
    return render(EditCase.from_dict(metadata).source, int(size or metadata.get("size", 32)))
