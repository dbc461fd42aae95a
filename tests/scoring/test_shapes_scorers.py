"""ShapesWorld scoring: PSNR/L1, one-image verdicts, and the scorers of `tmpbench run` / `tmpbench score`."""

import math

import numpy as np
import pytest

from tmpbench.scoring.base import SampleView
from tmpbench.scoring.engine import score_samples, summarise
from tmpbench.scoring.shapes import (
    PSNR_CAP,
    ShapesEditSuccess,
    ShapesGenEval,
    ShapesPreservationL1,
    ShapesPreservationPSNR,
    l1,
    psnr,
    score_edit_image,
)
from tmpbench.shapes.edits import EditCase
from tmpbench.shapes.world import COLORS, Scene, ShapeObject, render
from tmpbench.suites.core import SuiteItem

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


def _views(items):
    """SampleViews of ``[(metadata, [images])]``, one suite item per entry (category = the record's tag)."""
    views = []
    for i, (meta, images) in enumerate(items):
        item = SuiteItem(i, f"{i:05d}", meta.get("tag", "edit"), meta["prompt"], meta, seed=i)
        views += [SampleView(item, n, None, im) for n, im in enumerate(images)]
    return views


def _rows(views, values, names):
    return [
        {"category": v.item.category, "metrics": {k: x for k, x in vals.items() if k in names},
         "extras": {k: x for k, x in vals.items() if k not in names}}
        for v, vals in zip(views, values)
    ]


def test_geneval_scorer_scores_renders_reports_reasons_and_averages_tags():
    red = render(Scene((ShapeObject("circle", "red", 0, 1),)), 32)
    blue = render(Scene((ShapeObject("circle", "blue", 0, 1),)), 32)
    good_pos = render(Scene((ShapeObject("square", "green", 1, 0), ShapeObject("triangle", "red", 1, 1))), 32)
    bad_pos = render(Scene((ShapeObject("square", "green", 1, 1), ShapeObject("triangle", "red", 1, 0))), 32)
    views = _views([(RED_CIRCLE, [red, blue]), (SQUARE_LEFT, [good_pos, bad_pos, good_pos])])
    scorer = ShapesGenEval()
    values, skipped, _ = score_samples({"geneval": scorer}, views)
    assert skipped == {}
    assert [v["geneval"] for v in values] == [1.0, 0.0, 1.0, 0.0, 1.0]
    assert values[1]["geneval_reason"] == "expected red circle>=1, found 0 red; and 1 blue"
    assert values[3]["geneval_reason"] == "expected square left of target, found right of target"
    res = summarise("geneval", scorer, _rows(views, values, {"geneval"}))
    assert res["by_category"] == {"colors": 0.5, "position": pytest.approx(2 / 3)}
    # GenEval's overall is the mean over tags (7/12), not over images (3/5), and the result says so
    assert res["value"] == pytest.approx((0.5 + 2 / 3) / 2) and res["aggregation"] == "category_mean"


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


def test_edit_scorers_by_type_with_reasons_and_target_extras():
    meta = [{**c.to_dict(), "prompt": c.instruction, "grid": 2, "size": 32} for c in (RECOLOR, REMOVE)]
    views = _views([(meta[0], [render(RECOLOR.target, 32), render(SOURCE, 32)]), (meta[1], [render(REMOVE.target, 64)])])
    scorers = {
        "edit_success": ShapesEditSuccess(), "preservation_psnr": ShapesPreservationPSNR(), "preservation_l1": ShapesPreservationL1()
    }
    values, skipped, _ = score_samples(scorers, views)
    assert skipped == {}
    assert [v["edit_success"] for v in values] == [1.0, 0.0, 1.0]
    assert values[1]["edit_reason"].startswith("expected green circle@(0,0)") and values[0]["edit_reason"] == ""
    assert [v["psnr_target"] for v in values] == [100.0, 100.0, 100.0] and values[2]["l1_target"] == 0.0
    rows = _rows(views, values, set(scorers))
    success = summarise("edit_success", scorers["edit_success"], rows)
    assert success["by_category"] == {"recolor": 0.5, "remove": 1.0}
    assert success["value"] == 0.75 and success["aggregation"] == "category_mean"  # mean over edit types
    l1_res = summarise("preservation_l1", scorers["preservation_l1"], rows)
    assert l1_res["aggregation"] == "mean" and l1_res["higher_is_better"] is False and l1_res["value"] == 0.0


def test_edit_scorer_refuses_a_non_square_image_as_not_scored():
    meta = {**RECOLOR.to_dict(), "prompt": RECOLOR.instruction, "grid": 2, "size": 32}
    _, skipped, _ = score_samples({"edit_success": ShapesEditSuccess()}, _views([(meta, [np.zeros((32, 48, 3), np.uint8)])]))
    assert skipped == {"edit_success": "not scored: edited image is 48x32; ShapesWorld renders are square"}
