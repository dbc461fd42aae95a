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
from tmpbench.shapes.edits import EditCase, balanced_edits
from tmpbench.shapes.grammar import balanced_records, sample_scene
from tmpbench.shapes.world import Scene, render
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
    """The exact scene an item asks for: a sampled scene (t2i) or the edit's target scene (edit)."""
    grid = int(item.metadata.get("grid", 2))
    if kind == "t2i":
        return sample_scene(item.metadata, np.random.default_rng(item.seed), grid)
    return EditCase.from_dict(item.metadata).target


def render_ground_truth(kind: str, item: SuiteItem, size: int | None = None) -> np.ndarray:
    """The ground-truth image of a ShapesWorld item at ``size`` px (default: the item's size)."""
    return render(ground_truth_scene(kind, item), int(size or item.metadata.get("size", 32)))


def render_source(item: SuiteItem, size: int | None = None) -> np.ndarray:
    """The source image of a shapes-edit item (what an editing model is given)."""
    return render(EditCase.from_dict(item.metadata).source, int(size or item.metadata.get("size", 32)))
