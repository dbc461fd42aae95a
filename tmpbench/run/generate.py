"""Batched, seeded, resumable generation of a suite's images in the suite's native layout.

Layouts (:func:`layout_for`):

* ``geneval`` -- ShapesWorld, GenEval and the edit suites: ``DIR/<index:05d>/metadata.jsonl`` +
  ``samples/<n:04d>.png`` (:mod:`tmpbench.suites.layout`), one PNG per seed; edit suites hold the edited
  outputs.
* ``oneig`` -- OneIG-Bench: one 2x2 grid per prompt, ``DIR/<category>/<model>/<id>.webp`` (lossless
  WebP), cells in reading order = seeds 0..3, as OneIG's scripts split them.

Seeds. Sample ``n`` of an item uses :func:`sample_seed` of the item's suite seed, so an image
depends only on (model, prompt, item seed, n, steps, guidance, size) -- never on ``--limit``, the
batch it lands in or the process that made it.

Batches. Items are cut into fixed *groups* of ``max(1, batch_size // seeds)`` consecutive items
(one generator call each); ``batch_size`` defaults to the model entry's ``default_batch_size`` (64
for the 32 px references, whose images cost a few GFLOPs each; ``benchmarks/generation_speed.py``).
Groups, not images, are the unit of sharding and of resumption: a group whose every item is on disk
is skipped; otherwise the whole group is generated again (so every image is always computed in the
same batch) and only the missing or damaged samples are written (a sample is done only when its
file decodes completely at the expected size and mode). Each file is
written to a temporary name and renamed, so ``kill -9`` never leaves a truncated image under its
final name; an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from tmpbench.errors import TmpbenchError
from tmpbench.suites.core import Suite, SuiteItem, edit_source
from tmpbench.suites.layout import image_problem, item_dir, load_image, sample_path

SEED_STRIDE = 1_000_003
SEED_RULE = f"seed of sample n = (item.seed + {SEED_STRIDE} * n) mod 2**31"
ONEIG_GRID_SEEDS = 4  # OneIG lays 4 seeds out as a 2x2 grid


def sample_seed(item_seed: int, n: int) -> int:
    """The generation seed of sample ``n`` of an item whose suite seed is ``item_seed``."""
    return (int(item_seed) + SEED_STRIDE * int(n)) % (2**31)


def layout_for(suite: Suite) -> str:
    """The on-disk layout the suite's YAML names (``layout``): ``"oneig"`` (2x2 grids) or ``"geneval"``."""
    return suite.layout


def model_dir_name(spec: str) -> str:
    """A folder name for a model spec (``tiny-dit-50%`` -> ``tiny-dit-50pct``; paths -> last part)."""
    text = str(spec).rstrip("/").replace("%", "pct")
    if "/" in text or os.sep in text:
        text = Path(text).name or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text) or "model"


def _atomic_save(image: Image.Image, path: Path, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    image.save(tmp, **kwargs)
    os.replace(tmp, path)


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def make_grid(images: Sequence[Image.Image]) -> Image.Image:
    """Four equal images -> one 2x2 grid (reading order)."""
    if len(images) != ONEIG_GRID_SEEDS:
        raise TmpbenchError(f"a OneIG grid holds {ONEIG_GRID_SEEDS} images, got {len(images)}")
    w, h = images[0].size
    grid = Image.new("RGB", (2 * w, 2 * h))
    for k, im in enumerate(images):
        grid.paste(im.convert("RGB"), ((k % 2) * w, (k // 2) * h))
    return grid


def split_grid(grid: np.ndarray) -> list[np.ndarray]:
    """A 2x2 grid (H, W, 3) -> its four cells in reading order."""
    h, w = grid.shape[0] // 2, grid.shape[1] // 2
    return [grid[r * h : (r + 1) * h, c * w : (c + 1) * w] for r in range(2) for c in range(2)]


# ------------------------------------------------------------------------------------------------
# layouts
@dataclass(frozen=True)
class OutputLayout:
    """Where an item's outputs live and how they are written and read back."""

    kind: str  # "geneval" | "oneig"
    root: Path
    seeds: int
    model_dir: str = "model"

    def __post_init__(self) -> None:
        if self.kind not in ("geneval", "oneig"):
            raise TmpbenchError(f"unknown layout {self.kind!r}; use geneval or oneig")
        if self.seeds < 1:
            raise TmpbenchError(f"--seeds must be at least 1, got {self.seeds}")
        if self.kind == "oneig" and self.seeds != ONEIG_GRID_SEEDS:
            raise TmpbenchError(f"OneIG suites lay out 2x2 grids: pass --seeds {ONEIG_GRID_SEEDS} (got {self.seeds})")

    def grid_path(self, item: SuiteItem) -> Path:
        return self.root / model_safe(item.category) / self.model_dir / f"{model_safe(item.id)}.webp"

    def files(self, item: SuiteItem) -> list[Path]:
        """Every file an item owns (its completion test)."""
        if self.kind == "oneig":
            return [self.grid_path(item)]
        return [sample_path(self.root, item.index, n) for n in range(self.seeds)] + [item_dir(self.root, item.index) / "metadata.jsonl"]

    def sample_location(self, item: SuiteItem, n: int) -> tuple[Path, int | None]:
        """``(file, grid cell or None)`` of sample ``n``."""
        if self.kind == "oneig":
            return self.grid_path(item), n
        return sample_path(self.root, item.index, n), None

    def is_complete(self, item: SuiteItem) -> bool:
        return all(p.is_file() for p in self.files(item))

    def unusable(self, item: SuiteItem, size: int) -> tuple[list[int], list[str]]:
        """``(sample numbers to (re)generate, problems of files that exist but are damaged)``.

        A sample counts as done only when its file decodes completely as an RGB image of the expected
        size (``size`` x ``size``; a OneIG grid ``2*size`` square) and, in the GenEval layout, its
        item's ``metadata.jsonl`` holds the item's metadata (written last, it marks the item finished).
        """
        every = list(range(self.seeds))
        if self.kind == "oneig":
            path = self.grid_path(item)
            problem = image_problem(path, (2 * size, 2 * size), "RGB") if path.exists() else "missing"
            return ([], []) if problem is None else (every, [] if problem == "missing" else [problem] * self.seeds)
        meta = item_dir(self.root, item.index) / "metadata.jsonl"
        if not meta.exists():
            return every, []  # never finished: redo the whole item, as before
        try:
            # compared as text, as written (NaN-safe)
            finished = json.dumps(json.loads(meta.read_bytes()), sort_keys=True) == json.dumps(item.metadata, sort_keys=True)
        except (ValueError, UnicodeDecodeError):
            finished = False
        if not finished:
            return every, [f"{meta} does not hold this item's metadata"] * self.seeds
        bad, problems = [], []
        for n in every:
            path = sample_path(self.root, item.index, n)
            problem = image_problem(path, (size, size), "RGB")
            if problem is not None:
                bad.append(n)
                if path.exists():
                    problems.append(problem)
        return bad, problems

    def write(self, item: SuiteItem, images: Sequence[Image.Image], only: Sequence[int] | None = None) -> None:
        """Write an item's outputs (in the GenEval layout only samples ``only``, when given)."""
        if self.kind == "oneig":
            _atomic_save(make_grid(images), self.grid_path(item), format="WEBP", lossless=True, quality=100, method=4)
            return
        for n, im in enumerate(images):
            if only is None or n in only:
                _atomic_save(im.convert("RGB"), sample_path(self.root, item.index, n), format="PNG")
        # metadata last: its presence (with every sample) marks the item complete
        _atomic_text(item_dir(self.root, item.index) / "metadata.jsonl", json.dumps(item.metadata, sort_keys=True) + "\n")

    def read(self, item: SuiteItem) -> list[np.ndarray]:
        """The item's samples as RGB uint8 arrays, in seed order."""
        if self.kind == "oneig":
            return split_grid(load_image(self.grid_path(item)))
        return [load_image(sample_path(self.root, item.index, n)) for n in range(self.seeds)]


def model_safe(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", str(text), flags=re.UNICODE) or "_"


# ------------------------------------------------------------------------------------------------
# groups and generation
def plan_groups(n_items: int, seeds: int, batch_size: int) -> list[list[int]]:
    """Fixed groups of consecutive item positions, ``max(1, batch_size // seeds)`` items each."""
    if batch_size < 1:
        raise TmpbenchError(f"--batch-size must be at least 1, got {batch_size}")
    per = max(1, batch_size // max(1, seeds))
    return [list(range(i, min(i + per, n_items))) for i in range(0, n_items, per)]


def shard_groups(groups: list[list[int]], rank: int, world: int) -> list[int]:
    """Group numbers process ``rank`` of ``world`` generates: ``g % world == rank``."""
    return [g for g in range(len(groups)) if g % world == rank]


@dataclass
class GenerationReport:
    """What one process did: counts, per-call timings and the groups it owned."""

    generated: int = 0  # samples generated (and written) now
    resumed: int = 0  # samples found complete on disk
    damaged: list[str] = field(default_factory=list)  # one problem per sample regenerated because its file was damaged
    call_times: list[tuple[float, int]] = field(default_factory=list)  # (seconds, images) per generator call
    seconds: float = 0.0


def generate_suite(
    generator,
    suite: Suite,
    layout: OutputLayout,
    *,
    steps: int,
    guidance: float,
    size: int,
    batch_size: int,
    rank: int = 0,
    world: int = 1,
    progress: bool = True,
    desc: str = "generate",
    after_group: Callable[[int], None] | None = None,
) -> GenerationReport:
    """Generate the samples of every group this process owns that are not yet on disk."""
    import torch
    from tqdm.auto import tqdm

    if suite.kind == "edit" and not getattr(generator, "supports_edit", False):
        raise TmpbenchError(f"model {generator.name!r} cannot edit images; suite {suite.name!r} is an edit suite")
    groups = plan_groups(len(suite.items), layout.seeds, batch_size)
    mine = shard_groups(groups, rank, world)
    report = GenerationReport()
    todo = []
    for g in mine:
        items = [suite.items[i] for i in groups[g]]
        missing = {}  # id(item) -> sample numbers to write
        for it in items:
            bad, problems = layout.unusable(it, size)
            report.resumed += layout.seeds - len(bad)
            report.damaged.extend(problems)
            if bad:
                missing[id(it)] = bad
        if missing:
            todo.append((g, items, missing))
    t0 = time.perf_counter()
    bar = tqdm(total=sum(len(t[1]) * layout.seeds for t in todo), desc=desc, unit="img", disable=not progress, leave=False)
    for g, items, missing in todo:
        prompts = [it.prompt for it in items for _ in range(layout.seeds)]
        seeds = [sample_seed(it.seed, n) for it in items for n in range(layout.seeds)]
        tc = time.perf_counter()
        with torch.no_grad():
            if suite.kind == "edit":
                sources = [edit_source(suite, it, size) for it in items for _ in range(layout.seeds)]
                images = generator.edit(sources, prompts, seeds, steps, guidance, size)
            else:
                images = generator.generate(prompts, seeds, steps, guidance, size)
        report.call_times.append((time.perf_counter() - tc, len(images)))
        if len(images) != len(prompts):
            raise TmpbenchError(f"model {generator.name!r} returned {len(images)} images for {len(prompts)} prompts")
        for j, it in enumerate(items):
            if id(it) in missing:  # complete items (and good samples) of a regenerated group stay untouched
                layout.write(it, images[j * layout.seeds : (j + 1) * layout.seeds], only=missing[id(it)])
                report.generated += len(missing[id(it)])
        bar.update(len(images))
        if after_group is not None:
            after_group(g)
    bar.close()
    report.seconds = time.perf_counter() - t0
    return report


def check_complete(suite: Suite, layout: OutputLayout) -> None:
    """Raise one line naming the first item whose outputs are missing (after every process finished)."""
    for item in suite.items:
        if not layout.is_complete(item):
            missing = next(p for p in layout.files(item) if not p.is_file())
            raise TmpbenchError(f"outputs of item {item.index} ({item.id}) are missing ({missing}); rerun to resume")
