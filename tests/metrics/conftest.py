"""Shared fixtures for the metrics tests: ShapesWorld renders and image folders under tmp_path."""

import numpy as np
import pytest

from tmpbench.shapes.grammar import balanced_records, sample_scene
from tmpbench.shapes.world import render
from tmpbench.suites.layout import write_item


def shapes_renders(seed: int, n_per_tag: int, size: int = 32) -> list[np.ndarray]:
    """Ground-truth renders of ``balanced_records(n_per_tag, seed)`` (6 tags -> 6 * n_per_tag images)."""
    rng = np.random.default_rng(seed)
    return [render(sample_scene(rec, rng), size) for rec in balanced_records(n_per_tag, seed)]


def write_geneval(root, images, prompt="a photo of a shape"):
    for i, img in enumerate(images):
        write_item(root, i, {"prompt": prompt, "tag": "t", "include": []}, [img])
    return root


def write_flat(root, images):
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(root / f"{i:05d}.png")
    return root


@pytest.fixture
def renders():
    """``renders(seed, n_per_tag, size=32)`` -> ground-truth ShapesWorld images."""
    return shapes_renders


@pytest.fixture
def image_folder():
    """``image_folder(root, images, layout="geneval"|"flat")`` writes images and returns ``root``."""

    def write(root, images, layout="geneval"):
        return write_geneval(root, images) if layout == "geneval" else write_flat(root, images)

    return write


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Feature caches go under tmp_path."""
    monkeypatch.setenv("TMPBENCH_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def no_weight_env(monkeypatch):
    """Hide weights configured through the environment (offline-behaviour tests)."""
    for var in ("TMPBENCH_SHAPES_FEATURES", "TMPBENCH_INCEPTION_WEIGHTS", "TMPBENCH_CLIP_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def run_cli(capsys):
    """Run ``tmpbench ARGS...`` in-process: ``(exit code, stdout, stderr)``."""
    import tmpbench.cli as cli

    def run(*args: str) -> tuple[int, str, str]:
        try:
            cli.main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
