from types import SimpleNamespace

import pytest

from tmpbench.scoring.geneval.rule import (
    POSITION_THRESHOLD,
    DetectedObject,
    evaluate,
    group_by_class,
    relative_position,
    summarize,
)


def box(x0, y0, w=10, h=10):
    return (x0, y0, x0 + w, y0 + h)


# --- relative_position ---------------------------------------------------------------------------


def test_threshold_is_genevals_default():
    assert POSITION_THRESHOLD == 0.1


@pytest.mark.parametrize(
    "a, b, expected",
    [
        (box(0, 0), box(20, 0), {"left of"}),
        (box(20, 0), box(0, 0), {"right of"}),
        (box(0, 0), box(0, 20), {"above"}),  # image y grows downwards
        (box(0, 20), box(0, 0), {"below"}),
        (box(0, 0), box(20, 20), {"left of", "above"}),  # 45 degrees: both (0.6 > 0.5)
        (box(0, 0), box(0, 0), set()),  # same place
    ],
)
def test_relations(a, b, expected):
    assert relative_position(a, b) == expected


def test_threshold_edge_is_strict():
    # dims sum 20 on x: the offset shrinks by 2. Offset 4 -> 2/4 = 0.5 exactly: not "> 0.5"
    assert relative_position(box(4, 0), box(0, 0)) == set()
    assert relative_position(box(4.4, 0), box(0, 0)) == {"right of"}  # 2.4/4.4 = 0.545


def test_offset_within_threshold_is_no_relation():
    # offset 1.5 < 0.1 * (10 + 10): shrinks to 0 on x; y offset 0 -> empty set
    assert relative_position(box(1.5, 0), box(0, 0)) == set()


def test_shrunk_offset_is_divided_by_the_unshrunk_norm():
    # offset (30, 25), dims 10+10 each axis -> shrunk (28, 23) / |(30, 25)| = (0.717, 0.589): both
    assert relative_position(box(30, 25), box(0, 0)) == {"right of", "below"}
    # offset (30, 12) -> shrunk (28, 10) / 32.3 = (0.867, 0.309): only right of
    assert relative_position(box(30, 12), box(0, 0)) == {"right of"}


def test_threshold_scales_with_box_size():
    # the same centre offset (12, 0) relates small boxes but not large ones
    assert relative_position(box(12, 0, 4, 4), box(0, 0, 4, 4)) == {"right of"}
    assert relative_position((-24, -30, 48, 30), (-36, -30, 36, 30)) == set()  # dims 72 + 72: shrink 14.4 > 12


# --- evaluate ------------------------------------------------------------------------------------

TWO_CIRCLES = {"tag": "counting", "include": [{"class": "circle", "count": 2}], "exclude": [{"class": "circle", "count": 3}]}


def objs(**groups):
    return {cls: [DetectedObject(b, c) for b, c in items] for cls, items in groups.items()}


def test_counting_include_and_exclude():
    two = objs(circle=[(box(0, 0), "red"), (box(20, 0), "red")])
    assert evaluate(two, TWO_CIRCLES) == (True, "")
    one = objs(circle=[(box(0, 0), "red")])
    assert evaluate(one, TWO_CIRCLES) == (False, "expected circle>=2, found 1")
    three = objs(circle=[(box(0, 0), "red"), (box(20, 0), "red"), (box(0, 20), "red")])
    assert evaluate(three, TWO_CIRCLES) == (False, "expected circle<3, found 3")


def test_missing_class_and_extra_classes():
    rec = {"tag": "single_object", "include": [{"class": "square", "count": 1}]}
    assert evaluate({}, rec) == (False, "expected square>=1, found 0")
    # other classes do not matter without an exclude clause
    assert evaluate(objs(square=[(box(0, 0), "red")], circle=[(box(20, 0), "blue")]), rec) == (True, "")


def test_colour_mismatch_reason():
    rec = {"tag": "colors", "include": [{"class": "circle", "count": 1, "color": "red"}]}
    assert evaluate(objs(circle=[(box(0, 0), "red")]), rec) == (True, "")
    ok, reason = evaluate(objs(circle=[(box(0, 0), "blue")]), rec)
    assert not ok
    assert reason == "expected red circle>=1, found 0 red; and 1 blue"


def test_colour_checks_only_the_first_count_objects():
    # GenEval looks at the `count` most confident objects: a red circle ranked second does not help
    rec = {"tag": "colors", "include": [{"class": "circle", "count": 1, "color": "red"}]}
    ok, reason = evaluate(objs(circle=[(box(0, 0), "blue"), (box(20, 0), "red")]), rec)
    assert not ok and reason.startswith("expected red circle>=1, found 0 red")


def test_position_against_matched_group():
    rec = {
        "tag": "position",
        "include": [{"class": "triangle", "count": 1}, {"class": "square", "count": 1, "position": ["right of", 0]}],
    }
    assert evaluate(objs(triangle=[(box(0, 0), "red")], square=[(box(20, 0), "blue")]), rec) == (True, "")
    ok, reason = evaluate(objs(triangle=[(box(20, 0), "red")], square=[(box(0, 0), "blue")]), rec)
    assert (ok, reason) == (False, "expected square right of target, found left of target")
    ok, reason = evaluate(objs(triangle=[(box(0, 0), "red")], square=[(box(0, 0), "blue")]), rec)
    assert (ok, reason) == (False, "expected square right of target, found  target")  # GenEval's own text
    ok, reason = evaluate(objs(triangle=[(box(20, 20), "red")], square=[(box(0, 0), "blue")]), rec)
    assert (ok, reason) == (False, "expected square right of target, found above and left of target")


def test_position_without_target():
    rec = {
        "tag": "position",
        "include": [
            {"class": "triangle", "count": 1, "color": "green"},
            {"class": "square", "count": 1, "position": ["above", 0]},
        ],
    }
    ok, reason = evaluate(objs(triangle=[(box(0, 20), "red")], square=[(box(0, 0), "blue")]), rec)
    assert not ok
    assert reason.splitlines() == [
        "expected green triangle>=1, found 0 green; and 1 red",
        "no target for square to be above",
    ]


def test_works_with_any_object_with_bbox_and_color():
    det = SimpleNamespace(bbox=(0, 0, 4, 4), color="purple", shape="circle", score=0.9)
    rec = {"tag": "colors", "include": [{"class": "circle", "count": 1, "color": "purple"}]}
    assert evaluate(group_by_class([det]), rec) == (True, "")


# --- grouping and summary ------------------------------------------------------------------------


def test_group_by_class_sorts_by_score_and_caps():
    dets = [SimpleNamespace(shape="circle", score=s, bbox=(0, 0, 1, 1), color="red") for s in (0.2, 0.9, 0.5)]
    groups = group_by_class(dets, max_objects=2)
    assert [d.score for d in groups["circle"]] == [0.9, 0.5]


def test_summary_overall_is_mean_over_tags_not_images():
    rows = [{"tag": "a", "correct": True}] + [{"tag": "b", "correct": c} for c in (False, False, True, False)]
    s = summarize(rows)
    assert s["by_category"] == {"a": 1.0, "b": 0.25}
    assert s["overall"] == pytest.approx(0.625)
    assert s["correct_images"] == pytest.approx(0.4)
    assert s["counts"] == {"a": [1, 1], "b": [1, 4]}
    assert list(s["by_category"]) == ["a", "b"]
