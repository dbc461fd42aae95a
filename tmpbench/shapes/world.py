"""ShapesWorld: the vocabulary, the scene type and the renderer.

A scene is a few coloured shapes placed on a coarse grid over a plain background. The world is
designed to be learnable by a ~2M-parameter generator on a CPU:

* a coarse placement grid (2x2 by default) whose cells align with 4-px patches at 32 px, so an
  object covers whole tokens of a patch-4 DiT;
* large objects (75% of a cell) with hard edges on a black background;
* six saturated colours far apart in RGB, so colour is never ambiguous, even under noise;
* three shape classes whose bounding-box fill ratios (square 1.0, circle ~0.79, triangle ~0.5)
  separate cleanly, so an analytic detector can score any image without a learned model.

Rendering is a pure function of the scene and the resolution (default 32 px; 512 and 1024 px
renders serve real-model runs), so it is deterministic by construction.

Box geometry lives here too: :func:`relative_position` is GenEval's rule for "left of", "above",
..., used by the prompt grammar to place objects and by GenEval's correctness rule
(:mod:`tmpbench.scoring.geneval.rule`) to check them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from tmpbench.errors import TmpbenchError

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

#: RGB of each colour name; names follow GenEval's colour vocabulary.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "orange": (245, 150, 30),
    "yellow": (240, 230, 50),
    "green": (40, 190, 70),
    "blue": (40, 90, 235),
    "purple": (160, 60, 210),
}
BACKGROUND: tuple[int, int, int] = (0, 0, 0)

DEFAULT_SIZE = 32
DEFAULT_GRID = 2

#: GenEval's default ``position_threshold``: offsets shrink by this fraction of the summed box sizes.
POSITION_THRESHOLD = 0.1

#: Object extent as a fraction of the cell: circle radius, square half-side, triangle half-base.
_CIRCLE_RADIUS = 0.375
_SQUARE_HALF = 0.34
_TRIANGLE_HALF = 0.40


@dataclass(frozen=True, order=True)
class ShapeObject:
    """One object: its class, colour and grid cell (row 0 is the top, col 0 is the left)."""

    shape: str
    color: str
    row: int
    col: int

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise TmpbenchError(f"unknown shape {self.shape!r}; ShapesWorld shapes are {', '.join(SHAPES)}")
        if self.color not in COLORS:
            raise TmpbenchError(f"unknown colour {self.color!r}; ShapesWorld colours are {', '.join(COLORS)}")

    @property
    def cell(self) -> tuple[int, int]:
        return (self.row, self.col)

    def describe(self) -> str:
        return f"{self.color} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """A set of objects on a ``grid`` x ``grid`` board, at most one object per cell."""

    objects: tuple[ShapeObject, ...] = field(default_factory=tuple)
    grid: int = DEFAULT_GRID

    def __post_init__(self) -> None:
        if self.grid < 1:
            raise TmpbenchError(f"grid must be >= 1, got {self.grid}")
        cells = [o.cell for o in self.objects]
        if len(set(cells)) != len(cells):
            raise TmpbenchError(f"two objects share a cell in scene {self.objects}")
        for o in self.objects:
            if not (0 <= o.row < self.grid and 0 <= o.col < self.grid):
                raise TmpbenchError(f"object {o} lies outside the {self.grid}x{self.grid} grid")
        # canonical order makes equality and hashing independent of construction order
        object.__setattr__(self, "objects", tuple(sorted(self.objects, key=lambda o: (o.row, o.col))))

    def to_dict(self) -> dict:
        return {"grid": self.grid, "objects": [asdict(o) for o in self.objects]}

    @classmethod
    def from_dict(cls, data: dict) -> Scene:
        return cls(objects=tuple(ShapeObject(**o) for o in data["objects"]), grid=int(data["grid"]))

    def free_cells(self) -> list[tuple[int, int]]:
        used = {o.cell for o in self.objects}
        return [(r, c) for r in range(self.grid) for c in range(self.grid) if (r, c) not in used]


def cell_box(row: int, col: int, grid: int = DEFAULT_GRID) -> tuple[float, float, float, float]:
    """The cell's box ``(x0, y0, x1, y1)`` as fractions of the canvas."""
    return (col / grid, row / grid, (col + 1) / grid, (row + 1) / grid)


def relative_position(
    box_a: Sequence[float], box_b: Sequence[float], threshold: float = POSITION_THRESHOLD
) -> set[str]:
    """Relations of box A relative to box B, as GenEval computes them.

    The centre offset ``A - B`` is shrunk towards zero on each axis by ``threshold`` times the two
    boxes' summed extent on that axis. If nothing is left (below 1e-3 on both axes) there is no
    relation; otherwise each shrunk component is divided by the length of the *unshrunk* offset and
    a relation holds where it passes 0.5 strictly: ``dx < -0.5`` left of, ``dx > 0.5`` right of,
    ``dy < -0.5`` above, ``dy > 0.5`` below (image y grows downwards).

    >>> sorted(relative_position((0, 0, 10, 10), (20, 0, 30, 10)))
    ['left of']
    """
    a = np.asarray(box_a, dtype=np.float64)[:4].reshape(2, 2)
    b = np.asarray(box_b, dtype=np.float64)[:4].reshape(2, 2)
    offset = a.mean(0) - b.mean(0)
    dims = np.abs(a[1] - a[0]) + np.abs(b[1] - b[0])
    revised = np.maximum(np.abs(offset) - threshold * dims, 0.0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


def object_mask(obj: ShapeObject, size: int, grid: int = DEFAULT_GRID) -> np.ndarray:
    """Boolean ``size x size`` mask of the pixels the object covers (pixel centres inside)."""
    cell = size / grid
    cx, cy = (obj.col + 0.5) * cell, (obj.row + 0.5) * cell
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dx, dy = xs - cx, ys - cy
    if obj.shape == "circle":
        r = _CIRCLE_RADIUS * cell
        return dx * dx + dy * dy <= r * r
    if obj.shape == "square":
        h = _SQUARE_HALF * cell
        return (np.abs(dx) <= h) & (np.abs(dy) <= h)
    # upward triangle: apex at top centre, base at the bottom; height == base
    h = _TRIANGLE_HALF * cell
    top, bottom = cy - h, cy + h
    frac = (dy + h) / (2 * h)  # 0 at apex, 1 at base
    return (ys >= top) & (ys <= bottom) & (np.abs(dx) <= h * frac)


def render(scene: Scene, size: int = DEFAULT_SIZE) -> np.ndarray:
    """Render ``scene`` to an ``(size, size, 3)`` uint8 RGB array.

    >>> img = render(Scene((ShapeObject("circle", "red", 0, 0),)))
    >>> img.shape, img.dtype
    ((32, 32, 3), dtype('uint8'))
    """
    if size < 4 * scene.grid:
        raise TmpbenchError(f"size {size} is too small for a {scene.grid}x{scene.grid} grid; use size >= {4 * scene.grid}")
    img = np.empty((size, size, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    for obj in scene.objects:
        img[object_mask(obj, size, scene.grid)] = COLORS[obj.color]
    return img


def cell_name(row: int, col: int, grid: int = DEFAULT_GRID) -> str:
    """Human phrase for a cell, e.g. ``top left`` (2x2) or ``middle center`` (3x3)."""
    rows = {2: ("top", "bottom"), 3: ("top", "middle", "bottom")}.get(grid)
    cols = {2: ("left", "right"), 3: ("left", "center", "right")}.get(grid)
    if rows is None or cols is None:
        return f"row {row} column {col}"
    return f"{rows[row]} {cols[col]}"


def parse_cell_name(text: str, grid: int = DEFAULT_GRID) -> tuple[int, int]:
    for r in range(grid):
        for c in range(grid):
            if cell_name(r, c, grid) == text:
                return (r, c)
    raise TmpbenchError(f"unknown cell {text!r} for a {grid}x{grid} grid")
