"""`tmpbench score` and `tmpbench fid` refuse a damaged image with one line naming the file (exit 2)."""

import numpy as np
import pytest

from tmpbench.shapes.render import render_ground_truth
from tmpbench.suites.core import load_suite
from tmpbench.suites.layout import sample_path, write_item


def ground_truth(root, limit=6):
    suite = load_suite("shapes-t2i", limit=limit)
    for item in suite.items:
        write_item(root, item.index, item.metadata, [render_ground_truth(suite.kind, item.metadata, item.seed)])
    return root


def cut_to_10(b):
    return b[:10]


def cut_half(b):
    return b[: len(b) // 2]


def drop_last_byte(b):
    return b[:-1]


def flip_a_byte(b):
    return b[: len(b) // 3] + bytes([b[len(b) // 3] ^ 0xFF]) + b[len(b) // 3 + 1:]


def random_bytes(b):
    return np.random.default_rng(0).integers(0, 256, len(b), dtype=np.uint8).tobytes()


DAMAGES = [cut_to_10, cut_half, drop_last_byte, flip_a_byte, random_bytes, lambda b: b""]


def one_line_naming(code, err, path):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"error: image {path} is damaged ("), err
    assert "regenerate it" in lines[0]


@pytest.mark.parametrize("damage", DAMAGES, ids=["10-bytes", "half", "last-byte", "flipped-byte", "random", "empty"])
def test_score_refuses_a_damaged_image(tmp_path, cli, damage):
    ground_truth(tmp_path)
    bad = sample_path(tmp_path, 3, 0)
    bad.write_bytes(damage(bad.read_bytes()))
    code, _, err = cli("score", "--suite", "shapes-t2i", "--images", str(tmp_path), "--limit", "6")
    one_line_naming(code, err, bad)


@pytest.mark.parametrize("damage", DAMAGES, ids=["10-bytes", "half", "last-byte", "flipped-byte", "random", "empty"])
@pytest.mark.parametrize("layout", ["geneval", "flat"])
def test_fid_refuses_a_damaged_image(tmp_path, cli, monkeypatch, damage, layout):
    monkeypatch.setenv("TMPBENCH_CACHE_DIR", str(tmp_path / "cache"))
    ref = ground_truth(tmp_path / "ref")
    other = ground_truth(tmp_path / "other")
    if layout == "flat":
        flat = tmp_path / "flat"
        flat.mkdir()
        for i, p in enumerate(sorted(other.rglob("*.png"))):
            (flat / f"{i:05d}.png").write_bytes(p.read_bytes())
        other, bad = flat, flat / "00002.png"
    else:
        bad = sample_path(other, 2, 0)
    code, _, err = cli("fid", str(ref), str(other), "--kid-subsets", "2")  # undamaged: fills the feature cache
    assert code == 0, err
    bad.write_bytes(damage(bad.read_bytes()))
    code, _, err = cli("fid", str(ref), str(other), "--kid-subsets", "2")
    one_line_naming(code, err, bad)
