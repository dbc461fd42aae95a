"""OneIG-Bench's formulas: alignment dependencies, the text score, cells, style and reasoning scores, diversity."""

import numpy as np
import pytest
import torch
from PIL import Image

from tmpbench.scoring.oneig import maths


def _image(seed: int, size: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def _jpeg_via_file(image: np.ndarray, tmp_path) -> Image.Image:
    """What OneIG's split_mxn_grid hands its encoders: the cell saved as .jpg and opened again."""
    path = tmp_path / "cell.jpg"
    Image.fromarray(image).save(path)
    return Image.open(path).convert("RGB")


def test_alignment_dependencies_zero_children_of_a_no():
    deps = {1: [0], 2: [1], 3: [1, 2], 4: [0]}
    assert maths.alignment_score({1: 1.0, 2: 1.0, 3: 1.0, 4: 0.0}, deps) == 0.75
    assert maths.alignment_score({1: 0.0, 2: 1.0, 3: 1.0, 4: 1.0}, deps) == 0.25
    assert maths.alignment_score({1: 1.0, 2: 0.0, 3: 1.0, 4: 1.0}, deps) == 0.5


def test_text_score_formula_and_parts():
    assert maths.levenshtein("kitten", "sitting") == 3
    assert maths.levenshtein("", "abc") == 3
    assert maths.word_matches("open the the door", "the door open") == (3, 4)
    assert maths.text_score(10.0, 0.5, 0.5, 100) == pytest.approx(1 - 10 * 0.25 / 100)
    assert maths.text_score(500.0, 0.0, 0.0, 50) == 0.0


def test_mean_pairwise_distance():
    e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert maths.mean_pairwise_distance(e) == pytest.approx((1 + 0 + 1) / 3)


def test_oneig_cell_drops_black_and_matches_a_jpeg_file_round_trip(tmp_path):
    assert maths.oneig_cell(np.zeros((8, 8, 3), np.uint8)) is None
    img = _image(0)
    assert np.array_equal(np.asarray(maths.oneig_cell(img).convert("RGB")), np.asarray(_jpeg_via_file(img, tmp_path)))
    assert np.array_equal(np.asarray(maths.oneig_cell(img, jpeg=False)), img)
    with pytest.raises(ValueError, match="uint8"):
        maths.oneig_cell(img.astype(np.float32))


def test_style_cell_score_clips_each_encoder_at_zero_and_averages():
    csd_e, se_e = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    csd_r = torch.tensor([[0.6, 0.8], [-1.0, 0.0], [0.2, 0.0]], dtype=torch.float64)
    se_r = torch.tensor([[0.0, -0.5, 0.0], [0.0, -0.1, 1.0]])  # best match is negative -> 0
    assert maths.style_cell_score(csd_e, csd_r, se_e, se_r) == pytest.approx((0.6 + 0.0) / 2, abs=1e-12)
    assert maths.style_key("Chinese ink painting") == "chinese_ink_painting"
    assert maths.style_key("3d rendering") == "3d_rendering"
    assert maths.style_key("") is None and maths.style_key("nan") is None


def test_reasoning_cell_score_is_plain_cosine():
    assert maths.reasoning_cell_score([1.0, 1.0], [1.0, 0.0]) == pytest.approx(2**-0.5, abs=1e-12)
    assert maths.reasoning_cell_score([1.0, 0.0], [-2.0, 0.0]) == pytest.approx(-1.0)  # no clipping


def test_every_real_anime_class_maps_to_a_oneig_style_key(shared_data):
    import csv

    # style_list of OneIG's scripts/style/style_score.py: the keys of CSD_embed.pt and SE_embed.pt
    styles = {"abstract_expressionism", "art_nouveau", "baroque", "chinese_ink_painting", "cubism", "fauvism", "impressionism",
              "line_art", "minimalism", "pointillism", "pop_art", "rococo", "ukiyo-e", "clay", "crayon", "graffiti", "lego", "comic",
              "pencil_sketch", "stone_sculpture", "watercolor", "celluloid", "chibi", "cyberpunk", "ghibli", "impasto", "pixar",
              "pixel_art", "3d_rendering"}
    for name in ("OneIG-Bench.csv", "OneIG-Bench-ZH.csv"):
        with open(shared_data / "oneig" / name, encoding="utf-8-sig", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["category"] == "Anime_Stylization"]
        keys = [maths.style_key(r["class"]) for r in rows]
        assert {k for k in keys if k is not None} == styles
        assert sum(k is None for k in keys) == 131  # prompts OneIG skips (no class)
