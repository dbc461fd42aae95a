"""Loaders of the ShapesWorld suites: generated in code from the suite YAML, no source file.

``shapes-t2i``: ``n_per_category`` GenEval-format records per GenEval tag
(:func:`tmpbench.shapes.grammar.balanced_records`); metadata is the GenEval record plus ``grid`` and
``size``; the ground-truth image of an item is
``render(sample_scene(metadata, np.random.default_rng(item.seed), grid), size)``.

``shapes-edit``: ``n_per_category`` cases per edit type (:func:`tmpbench.shapes.edits.balanced_edits`);
metadata is ``EditCase.to_dict()`` plus ``prompt`` (the instruction), ``grid`` and ``size``.
"""

from __future__ import annotations

import numpy as np

from tmpbench.errors import TmpbenchError
from tmpbench.shapes import render as render_module
from tmpbench.shapes.edits import balanced_edits
from tmpbench.shapes.grammar import balanced_records
from tmpbench.shapes.world import Scene
from tmpbench.suites.core import SuiteItem, SuiteSpec


def _no_source(spec: SuiteSpec, source: str | None) -> None:
    if source is not None:
        raise TmpbenchError(f"suite {spec.name!r} is generated in code and takes no --source (got {source!r})")


def _grid_size(spec: SuiteSpec) -> tuple[int, int]:
    grid, size = int(spec.option("grid")), int(spec.option("size"))
    if grid < 1 or size < 4 * grid:
        raise TmpbenchError(f"suite {spec.name!r}: grid {grid} / size {size} invalid; need grid >= 1 and size >= 4*grid")
    return grid, size


def load_t2i(spec: SuiteSpec, source: str | None) -> list[SuiteItem]:
    """The shapes-t2i items, in GenEval tag order."""
    _no_source(spec, source)
    grid, size = _grid_size(spec)
    records = balanced_records(int(spec.option("n_per_category")), seed=spec.seed, grid=grid)
    return [
        spec.item(
            i,
            id=f"{i:05d}",
            category=rec["tag"],
            prompt=rec["prompt"],
            metadata={**rec, "grid": grid, "size": size},
        )
        for i, rec in enumerate(records)
    ]


def load_edit(spec: SuiteSpec, source: str | None) -> list[SuiteItem]:
    """The shapes-edit items, in edit-type order."""
    _no_source(spec, source)
    grid, size = _grid_size(spec)
    cases = balanced_edits(int(spec.option("n_per_category")), seed=spec.seed, grid=grid)
    return [
        spec.item(
            i,
            id=f"{i:05d}",
            category=case.tag,
            prompt=case.instruction,
            metadata={**case.to_dict(), "prompt": case.instruction, "grid": grid, "size": size},
        )
        for i, case in enumerate(cases)
    ]


def ground_truth_scene(kind: str, item: SuiteItem) -> Scene:
    """The exact scene an item asks for (:func:`tmpbench.shapes.render.ground_truth_scene`)."""
    return render_module.ground_truth_scene(kind, item.metadata, item.seed)


def render_ground_truth(kind: str, item: SuiteItem, size: int | None = None) -> np.ndarray:
    """The ground-truth image of a ShapesWorld item at ``size`` px (default: the item's size)."""
    return render_module.render_ground_truth(kind, item.metadata, item.seed, size)


def render_source(item: SuiteItem, size: int | None = None) -> np.ndarray:
    """The source image of a shapes-edit item (what an editing model is given)."""
    return render_module.render_source(item.metadata, size)
