import math

import numpy as np
import pytest

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.suites.layout import read_folder, write_item
from tmpbench.scoring.shapes_scoring import (
    PSNR_CAP,
    l1,
    psnr,
    score_edit_folder,
    score_edit_image,
    score_t2i_folder,
)
from tmpbench.shapes.edits import EditCase
from tmpbench.shapes.world import COLORS, Scene, ShapeObject, render

RED_CIRCLE = {"tag": "colors", "prompt": "a photo of a red circle", "include": [{"class": "circle", "count": 1, "color": "red"}]}
SQUARE_LEFT = {
    "tag": "position",
    "prompt": "a photo of a square left of a triangle",
    "include": [{"class": "triangle", "count": 1}, {"class": "square", "count": 1, "position": ["left of", 0]}],
}


# --- pure metrics --------------------------------------------------------------------------------


def test_psnr_cap_and_values():
    a = np.zeros((8, 8, 3), np.uint8)
    assert psnr(a, a) == PSNR_CAP == 100.0
    b = a + 1  # MSE 1 -> 20 log10(255) dB
    assert psnr(a, b) == pytest.approx(20 * math.log10(255), abs=1e-9)
    assert l1(a, b) == pytest.approx(1 / 255)
    mask = np.zeros((8, 8), bool)
    mask[:4] = True
    c = a.copy()
    c[4:] = 200  # differences only outside the mask
    assert psnr(a, c, mask) == 100.0 and l1(a, c, mask) == 0.0
    assert psnr(a, c) < 20
    assert math.isnan(psnr(a, c, np.zeros((8, 8), bool)))


def test_metric_shape_errors():
    with pytest.raises(ValueError, match=r"images differ in shape"):
        psnr(np.zeros((4, 4, 3)), np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match=r"mask shape \(2, 2\) does not match"):
        l1(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), np.ones((2, 2), bool))


# --- text-to-image -------------------------------------------------------------------------------


def _folders(tmp_path, items):
    for i, (meta, images) in enumerate(items):
        write_item(tmp_path, i, meta, images)
    return read_folder(tmp_path)


def test_t2i_folder_scores_renders_and_reports_reasons(tmp_path):
    red = render(Scene((ShapeObject("circle", "red", 0, 1),)), 32)
    blue = render(Scene((ShapeObject("circle", "blue", 0, 1),)), 32)
    good_pos = render(Scene((ShapeObject("square", "green", 1, 0), ShapeObject("triangle", "red", 1, 1))), 32)
    bad_pos = render(Scene((ShapeObject("square", "green", 1, 1), ShapeObject("triangle", "red", 1, 0))), 32)
    res = score_t2i_folder(_folders(tmp_path, [(RED_CIRCLE, [red, blue]), (SQUARE_LEFT, [good_pos, bad_pos])]))
    assert res["kind"] == "t2i"
    assert [s["correct"] for s in res["samples"]] == [True, False, True, False]
    assert res["samples"][1]["reason"] == "expected red circle>=1, found 0 red; and 1 blue"
    assert res["samples"][3]["reason"] == "expected square left of target, found right of target"
    assert res["by_category"] == {"colors": 0.5, "position": 0.5}
    assert res["overall"] == 0.5
    assert res["samples"][0]["details"]["circle"][0][4] == "red"


def test_t2i_refuses_real_photo_classes(tmp_path):
    dog = {"tag": "single_object", "prompt": "a photo of a dog", "include": [{"class": "dog", "count": 1}]}
    folders = _folders(tmp_path, [(dog, [np.zeros((32, 32, 3), np.uint8)])])
    with pytest.raises(TmpbenchError, match="asks for dog.*open-vocabulary detector"):
        score_t2i_folder(folders)


def test_t2i_refuses_edit_metadata(tmp_path):
    folders = _folders(tmp_path, [({"instruction": "remove it"}, [np.zeros((32, 32, 3), np.uint8)])])
    with pytest.raises(DataFormatError, match="item 00000: metadata is not a GenEval record"):
        score_t2i_folder(folders)


# --- editing -------------------------------------------------------------------------------------

SOURCE = Scene((ShapeObject("circle", "red", 0, 0), ShapeObject("square", "blue", 1, 1)))
RECOLOR = EditCase(
    tag="recolor",
    instruction="make the red circle green",
    source=SOURCE,
    target=Scene((ShapeObject("circle", "green", 0, 0), ShapeObject("square", "blue", 1, 1))),
    region_cells=((0, 0),),
)
REMOVE = EditCase(
    tag="remove",
    instruction="remove the blue square",
    source=SOURCE,
    target=Scene((ShapeObject("circle", "red", 0, 0),)),
    region_cells=((1, 1),),
)


def test_edit_target_succeeds_with_capped_psnr():
    res = score_edit_image(render(RECOLOR.target, 32), RECOLOR)
    assert res == {
        "correct": True,
        "reason": "",
        "psnr_source": 100.0,
        "psnr_target": 100.0,
        "l1_source": 0.0,
        "l1_target": 0.0,
    }


def test_unedited_source_fails_but_preserves():
    res = score_edit_image(render(SOURCE, 32), RECOLOR)
    assert res["correct"] is False
    assert res["reason"] == "expected green circle@(0,0), blue square@(1,1); found red circle@(0,0), blue square@(1,1)"
    assert res["psnr_source"] == 100.0  # nothing changed outside the edited cell


def test_damage_outside_the_region_lowers_preservation():
    img = render(REMOVE.target, 32).copy()
    img[0:16, 16:32] = 10  # paint the untouched top-right cell dark grey: 256 px x 3 channels off by 10
    res = score_edit_image(img, REMOVE)
    assert res["correct"] is True  # grey is background to the detector
    outside = 32 * 32 - 16 * 16
    mse = 100 * (16 * 16) / outside
    assert res["psnr_source"] == pytest.approx(10 * math.log10(255**2 / mse))
    assert res["l1_target"] == pytest.approx(10 * 16 * 16 / outside / 255)


def test_edit_conflict_is_a_failure_with_reason():
    img = np.zeros((64, 64, 3), np.uint8)
    img[2:12, 2:12] = COLORS["red"]
    img[18:28, 18:28] = COLORS["blue"]
    res = score_edit_image(img, REMOVE)
    assert res["correct"] is False and "holds two objects" in res["reason"]


def test_edit_folder_by_type_and_overall(tmp_path):
    meta = [{**c.to_dict(), "prompt": c.instruction, "grid": 2, "size": 32} for c in (RECOLOR, REMOVE)]
    folders = _folders(
        tmp_path,
        [(meta[0], [render(RECOLOR.target, 32), render(SOURCE, 32)]), (meta[1], [render(REMOVE.target, 64)])],
    )
    res = score_edit_folder(folders)
    assert res["kind"] == "edit"
    assert res["by_category"] == {"recolor": 0.5, "remove": 1.0}
    assert res["overall"] == 0.75
    assert res["preservation"]["overall"]["psnr_target"] == 100.0
    assert res["preservation"]["by_category"]["remove"]["l1_source"] == 0.0
    with pytest.raises(DataFormatError, match=r"is 64x64, expected 32x32"):
        score_edit_folder(folders, size=32)


def test_edit_refuses_t2i_metadata(tmp_path):
    folders = _folders(tmp_path, [(RED_CIRCLE, [np.zeros((32, 32, 3), np.uint8)])])
    with pytest.raises(DataFormatError, match="item 00000: metadata is not an edit case"):
        score_edit_folder(folders)
