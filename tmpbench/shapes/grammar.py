"""Caption grammar for ShapesWorld, in GenEval's metadata format.

Every caption is a GenEval record: ``{"tag", "prompt", "include": [...], "exclude": [...]}`` where
each requirement is ``{"class", "count", "color"?, "position"?: [relation, index]}``. The same scorer
therefore reads ShapesWorld and real GenEval metadata. Prompts follow GenEval's phrasing exactly
(``a photo of a red circle``, ``a photo of three squares``, ``a photo of a circle left of a square``).

:func:`enumerate_prompts` lists every distinct caption per tag; :func:`sample_scene` draws a scene that
satisfies a caption (the ground truth), deterministically from a ``numpy`` generator.
"""

from __future__ import annotations

import itertools

import numpy as np

from tmpbench.errors import TmpbenchError
from tmpbench.shapes.world import COLORS, DEFAULT_GRID, SHAPES, Scene, ShapeObject, cell_box, relative_position

TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}


def _plural(cls: str) -> str:
    return cls + "s"


def counting_range(grid: int = DEFAULT_GRID) -> range:
    """Counts used by the counting tag: 2 up to min(4, cells) as in GenEval."""
    return range(2, min(4, grid * grid) + 1)


def enumerate_prompts(tag: str, grid: int = DEFAULT_GRID) -> list[dict]:
    """All distinct GenEval-format records of ``tag`` in a fixed order."""
    out: list[dict] = []
    colors = list(COLORS)
    if tag == "single_object":
        for s in SHAPES:
            out.append({"tag": tag, "include": [{"class": s, "count": 1}], "prompt": f"a photo of a {s}"})
    elif tag == "two_object":
        for a, b in itertools.permutations(SHAPES, 2):
            out.append(
                {
                    "tag": tag,
                    "include": [{"class": a, "count": 1}, {"class": b, "count": 1}],
                    "prompt": f"a photo of a {a} and a {b}",
                }
            )
    elif tag == "counting":
        for s in SHAPES:
            for n in counting_range(grid):
                out.append(
                    {
                        "tag": tag,
                        "include": [{"class": s, "count": n}],
                        "exclude": [{"class": s, "count": n + 1}],
                        "prompt": f"a photo of {NUMBER_WORDS[n]} {_plural(s)}",
                    }
                )
    elif tag == "colors":
        for s in SHAPES:
            for c in colors:
                out.append(
                    {"tag": tag, "include": [{"class": s, "count": 1, "color": c}], "prompt": f"a photo of a {c} {s}"}
                )
    elif tag == "position":
        if grid < 2:
            return out
        for a, b in itertools.permutations(SHAPES, 2):  # "a photo of a <b> <rel> a <a>"
            for rel in RELATIONS:
                out.append(
                    {
                        "tag": tag,
                        "include": [{"class": a, "count": 1}, {"class": b, "count": 1, "position": [rel, 0]}],
                        "prompt": f"a photo of a {b} {rel} a {a}",
                    }
                )
    elif tag == "color_attr":
        for a, b in itertools.permutations(SHAPES, 2):
            for ca, cb in itertools.permutations(colors, 2):
                out.append(
                    {
                        "tag": tag,
                        "include": [{"class": a, "count": 1, "color": ca}, {"class": b, "count": 1, "color": cb}],
                        "prompt": f"a photo of a {ca} {a} and a {cb} {b}",
                    }
                )
    else:
        raise TmpbenchError(f"unknown tag {tag!r}; GenEval tags are {', '.join(TAGS)}")
    return out


def _relation_ok(rel: str, obj: tuple[int, int], target: tuple[int, int], grid: int) -> bool:
    """Whether ``obj``'s cell stands in ``rel`` to ``target``'s cell under GenEval's position rule.

    Whole-cell boxes are used: they are larger than any object in them, so GenEval's threshold
    shrink is conservative and the rendered objects satisfy the relation too.
    """
    return rel in relative_position(cell_box(*obj, grid), cell_box(*target, grid))


def sample_scene(record: dict, rng: np.random.Generator, grid: int = DEFAULT_GRID) -> Scene:
    """Draw a scene with exactly the included objects, satisfying every requirement of ``record``.

    Unspecified colours are drawn at random; cells are drawn at random among those satisfying any
    position requirement. Raises TmpbenchError if the record needs more objects than cells.
    """
    reqs = record["include"]
    n_total = sum(int(r["count"]) for r in reqs)
    cells = [(r, c) for r in range(grid) for c in range(grid)]
    if n_total > len(cells):
        raise TmpbenchError(f"{record['prompt']!r} needs {n_total} objects but a {grid}x{grid} grid has {len(cells)} cells")
    colors = list(COLORS)
    for _ in range(1000):
        order = rng.permutation(len(cells))
        placed: list[list[ShapeObject]] = []
        k = 0
        ok = True
        for req in reqs:
            group = []
            for _i in range(int(req["count"])):
                row, col = cells[order[k]]
                k += 1
                color = req.get("color") or colors[int(rng.integers(len(colors)))]
                group.append(ShapeObject(req["class"], color, row, col))
            if "position" in req:
                rel, idx = req["position"]
                ok = all(_relation_ok(rel, o.cell, t.cell, grid) for o in group for t in placed[idx])
            placed.append(group)
            if not ok:
                break
        if ok:
            return Scene(tuple(o for g in placed for o in g), grid=grid)
    raise TmpbenchError(f"could not place {record['prompt']!r} on a {grid}x{grid} grid")


def balanced_records(n_per_tag: int, seed: int, grid: int = DEFAULT_GRID) -> list[dict]:
    """``n_per_tag`` records per tag: every distinct prompt cycles evenly, shuffled by ``seed``."""
    rng = np.random.default_rng(seed)
    out: list[dict] = []
    for tag in TAGS:
        pool = enumerate_prompts(tag, grid)
        if not pool:
            continue
        reps = -(-n_per_tag // len(pool))
        picks: list[dict] = []
        for _ in range(reps):
            picks.extend(pool[i] for i in rng.permutation(len(pool)))
        out.extend(picks[:n_per_tag])
    return out
