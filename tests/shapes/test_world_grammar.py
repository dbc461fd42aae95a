import numpy as np
import pytest

from tmpbench.errors import TmpbenchError
from tmpbench.shapes.edits import EDIT_TYPES, EditCase, balanced_edits, make_edit, region_mask
from tmpbench.shapes.grammar import TAGS, balanced_records, enumerate_prompts, sample_scene
from tmpbench.shapes.world import COLORS, SHAPES, Scene, ShapeObject, cell_box, relative_position, render


def test_vocabulary_sizes():
    assert len(SHAPES) >= 3 and len(COLORS) >= 6


def test_render_is_deterministic_and_sized():
    scene = Scene((ShapeObject("square", "green", 1, 1), ShapeObject("circle", "red", 0, 0)))
    a, b = render(scene, 32), render(scene, 32)
    assert np.array_equal(a, b)
    assert render(scene, 512).shape == (512, 512, 3)
    assert tuple(a[24, 24]) == COLORS["green"] and tuple(a[0, 31]) == (0, 0, 0)


def test_scene_rejects_shared_cell_and_out_of_grid():
    with pytest.raises(TmpbenchError, match="share a cell"):
        Scene((ShapeObject("square", "red", 0, 0), ShapeObject("circle", "blue", 0, 0)))
    with pytest.raises(TmpbenchError, match="outside the 2x2 grid"):
        Scene((ShapeObject("square", "red", 2, 0),))
    with pytest.raises(TmpbenchError, match="unknown shape 'hexagon'"):
        ShapeObject("hexagon", "red", 0, 0)


def test_records_are_balanced_and_in_geneval_format():
    recs = balanced_records(100, seed=0)
    assert len(recs) == 600
    assert {t: sum(r["tag"] == t for r in recs) for t in TAGS} == {t: 100 for t in TAGS}
    for r in recs:
        assert set(r) <= {"tag", "prompt", "include", "exclude"}
        for req in r["include"]:
            assert set(req) <= {"class", "count", "color", "position"}


@pytest.mark.parametrize("grid", [2, 3])
def test_sampled_scenes_satisfy_their_records(grid):
    rng = np.random.default_rng(1)
    for tag in TAGS:
        for rec in enumerate_prompts(tag, grid)[:40]:
            scene = sample_scene(rec, rng, grid)
            counts = {}
            for o in scene.objects:
                counts[o.shape] = counts.get(o.shape, 0) + 1
            for req in rec["include"]:
                assert counts.get(req["class"], 0) == req["count"]
                if "color" in req:
                    assert any(o.color == req["color"] and o.shape == req["class"] for o in scene.objects)
                if "position" in req:  # GenEval's rule on the cells
                    rel, idx = req["position"]
                    a = next(o for o in scene.objects if o.shape == req["class"])
                    b = next(o for o in scene.objects if o.shape == rec["include"][idx]["class"])
                    assert rel in relative_position(cell_box(*a.cell, grid), cell_box(*b.cell, grid))


def test_edits_cover_all_types_and_round_trip():
    cases = balanced_edits(10, seed=3)
    assert [c.tag for c in cases[::10]] == list(EDIT_TYPES)
    for c in cases:
        assert EditCase.from_dict(c.to_dict()) == c
        assert c.source != c.target
        # nothing changes outside the edited region
        mask = region_mask(c.region_cells, 32, c.source.grid)
        assert np.array_equal(render(c.source)[~mask], render(c.target)[~mask])


def test_unknown_edit_type():
    with pytest.raises(TmpbenchError, match="unknown edit type 'rotate'"):
        make_edit("rotate", np.random.default_rng(0))
