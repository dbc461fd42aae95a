"""ShapesWorld editing cases (TI2I): a source scene, an instruction and the exact target scene.

Five edit types: recolor, remove, add, move and replace (shape). Each case records the cells it
changes (``region``, as canvas-fraction boxes), so scorers can measure preservation outside it.
Objects in a source scene have distinct (colour, shape) pairs, so every instruction names exactly
one object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tmpbench.errors import TmpbenchError
from tmpbench.shapes.world import COLORS, DEFAULT_GRID, SHAPES, Scene, ShapeObject, cell_box, cell_name

EDIT_TYPES: tuple[str, ...] = ("recolor", "remove", "add", "move", "replace")


@dataclass(frozen=True)
class EditCase:
    """One editing case: apply ``instruction`` to ``source``; the exact answer is ``target``."""

    tag: str
    instruction: str
    source: Scene
    target: Scene
    region_cells: tuple[tuple[int, int], ...]

    @property
    def region(self) -> list[list[float]]:
        """Boxes ``[x0, y0, x1, y1]`` (canvas fractions) of the cells the edit may change."""
        return [list(cell_box(r, c, self.source.grid)) for r, c in self.region_cells]

    def to_dict(self) -> dict:
        return {
            "tag": self.tag,
            "instruction": self.instruction,
            "source": self.source.to_dict(),
            "target": self.target.to_dict(),
            "region_cells": [list(c) for c in self.region_cells],
            "region": self.region,
        }

    @classmethod
    def from_dict(cls, d: dict) -> EditCase:
        return cls(
            tag=d["tag"],
            instruction=d["instruction"],
            source=Scene.from_dict(d["source"]),
            target=Scene.from_dict(d["target"]),
            region_cells=tuple(tuple(c) for c in d["region_cells"]),
        )


def region_mask(cells, size: int, grid: int = DEFAULT_GRID) -> np.ndarray:
    """Boolean mask (``size x size``) of the given grid cells."""
    mask = np.zeros((size, size), dtype=bool)
    for r, c in cells:
        x0, y0, x1, y1 = cell_box(r, c, grid)
        mask[round(y0 * size) : round(y1 * size), round(x0 * size) : round(x1 * size)] = True
    return mask


def _random_source(rng: np.random.Generator, grid: int, n_min: int, n_max: int) -> Scene:
    cells = [(r, c) for r in range(grid) for c in range(grid)]
    n = int(rng.integers(n_min, min(n_max, len(cells)) + 1))
    kinds = [(s, c) for s in SHAPES for c in COLORS]
    picked = rng.choice(len(kinds), size=n, replace=False)
    where = rng.choice(len(cells), size=n, replace=False)
    return Scene(
        tuple(ShapeObject(kinds[k][0], kinds[k][1], *cells[w]) for k, w in zip(picked, where)), grid=grid
    )


def make_edit(tag: str, rng: np.random.Generator, grid: int = DEFAULT_GRID) -> EditCase:
    """Draw one edit case of type ``tag``."""
    if tag not in EDIT_TYPES:
        raise TmpbenchError(f"unknown edit type {tag!r}; edit types are {', '.join(EDIT_TYPES)}")
    n_cells = grid * grid
    # add and move need a free cell; the others need at least one object
    hi = n_cells - 1 if tag in ("add", "move") else min(3, n_cells)
    lo = 0 if tag == "add" else 1
    src = _random_source(rng, grid, lo, max(lo, min(3, hi)))
    objs = list(src.objects)
    taken = {(o.shape, o.color) for o in objs}

    if tag == "add":
        free = src.free_cells()
        cell = free[int(rng.integers(len(free)))]
        options = [(s, c) for s in SHAPES for c in COLORS if (s, c) not in taken]
        s, c = options[int(rng.integers(len(options)))]
        new = ShapeObject(s, c, *cell)
        return EditCase(
            tag,
            f"add a {c} {s} at the {cell_name(*cell, grid)}",
            src,
            Scene(tuple(objs + [new]), grid),
            (cell,),
        )

    i = int(rng.integers(len(objs)))
    obj = objs[i]
    rest = objs[:i] + objs[i + 1 :]
    if tag == "remove":
        return EditCase(tag, f"remove the {obj.describe()}", src, Scene(tuple(rest), grid), (obj.cell,))
    if tag == "recolor":
        options = [c for c in COLORS if c != obj.color and (obj.shape, c) not in taken]
        c = options[int(rng.integers(len(options)))]
        new = ShapeObject(obj.shape, c, obj.row, obj.col)
        return EditCase(
            tag, f"make the {obj.describe()} {c}", src, Scene(tuple(rest + [new]), grid), (obj.cell,)
        )
    if tag == "replace":
        options = [s for s in SHAPES if s != obj.shape and (s, obj.color) not in taken]
        if not options:  # every shape of this colour is present: fall back to another object
            return make_edit(tag, rng, grid)
        s = options[int(rng.integers(len(options)))]
        new = ShapeObject(s, obj.color, obj.row, obj.col)
        return EditCase(
            tag,
            f"replace the {obj.describe()} with a {obj.color} {s}",
            src,
            Scene(tuple(rest + [new]), grid),
            (obj.cell,),
        )
    # move
    free = src.free_cells()
    cell = free[int(rng.integers(len(free)))]
    new = ShapeObject(obj.shape, obj.color, *cell)
    return EditCase(
        tag,
        f"move the {obj.describe()} to the {cell_name(*cell, grid)}",
        src,
        Scene(tuple(rest + [new]), grid),
        (obj.cell, cell),
    )


def balanced_edits(n_per_type: int, seed: int, grid: int = DEFAULT_GRID) -> list[EditCase]:
    """``n_per_type`` cases of each edit type, deterministic from ``seed``."""
    rng = np.random.default_rng(seed)
    return [make_edit(tag, rng, grid) for tag in EDIT_TYPES for _ in range(n_per_type)]
