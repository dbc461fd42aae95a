"""Pure maths of the run: bootstrap CIs, metric-list parsing, OneIG judge formulas, seeds and groups."""

import numpy as np
import pytest

from tmpbench.errors import TmpbenchError, UnknownNameError
from tmpbench.run import judges
from tmpbench.run.generate import make_grid, plan_groups, sample_seed, shard_groups, split_grid
from tmpbench.run.score import aggregate, bootstrap_ci, parse_metric_list


def test_bootstrap_constant_values_have_a_point_interval():
    value, ci = bootstrap_ci([1.0] * 10)
    assert value == 1.0 and ci == [1.0, 1.0]


def test_bootstrap_category_mean_differs_from_sample_mean():
    values = [1.0, 1.0, 1.0, 0.0]
    cats = ["a", "a", "a", "b"]
    assert bootstrap_ci(values, cats)[0] == pytest.approx(0.75)
    assert bootstrap_ci(values, cats, category_mean=True)[0] == pytest.approx(0.5)


def test_bootstrap_interval_brackets_the_mean_and_is_seeded():
    rng = np.random.default_rng(1)
    v = rng.normal(size=200)
    value, ci = bootstrap_ci(v)
    assert ci[0] < value < ci[1]
    assert ci[1] - ci[0] == pytest.approx(2 * 1.96 * v.std() / np.sqrt(200), rel=0.2)
    assert bootstrap_ci(v) == (value, ci)


def test_bootstrap_drops_nan_and_single_value_has_no_interval():
    assert bootstrap_ci([np.nan, 2.0]) == (2.0, None)


def test_aggregate_by_category_and_nones():
    rows = [{"category": c, "metrics": {"m": v}} for c, v in [("a", 1.0), ("a", 0.0), ("b", None), ("b", 1.0)]]
    agg = aggregate("m", rows, higher_is_better=True)
    assert agg["by_category"] == {"a": 0.5, "b": 1.0}
    assert agg["n"] == 3 and agg["value"] == pytest.approx(2 / 3)


def test_parse_metric_list():
    assert parse_metric_list("geneval, fid:inception") == [("geneval", None), ("fid", "inception")]
    with pytest.raises(UnknownNameError, match="unknown metric 'genevl'; did you mean 'geneval'"):
        parse_metric_list("genevl")
    with pytest.raises(TmpbenchError, match="takes no mode"):
        parse_metric_list("geneval:x")


def test_alignment_dependencies_zero_children_of_a_no():
    deps = {1: [0], 2: [1], 3: [1, 2], 4: [0]}
    assert judges.alignment_score({1: 1.0, 2: 1.0, 3: 1.0, 4: 0.0}, deps) == 0.75
    assert judges.alignment_score({1: 0.0, 2: 1.0, 3: 1.0, 4: 1.0}, deps) == 0.25
    assert judges.alignment_score({1: 1.0, 2: 0.0, 3: 1.0, 4: 1.0}, deps) == 0.5


def test_text_score_formula_and_parts():
    assert judges.levenshtein("kitten", "sitting") == 3
    assert judges.levenshtein("", "abc") == 3
    assert judges.word_matches("open the the door", "the door open") == (3, 4)
    assert judges.text_score(10.0, 0.5, 0.5, 100) == pytest.approx(1 - 10 * 0.25 / 100)
    assert judges.text_score(500.0, 0.0, 0.0, 50) == 0.0


def test_mean_pairwise_distance():
    e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert judges.mean_pairwise_distance(e) == pytest.approx((1 + 0 + 1) / 3)


def test_sample_seeds_groups_and_shards():
    assert sample_seed(5, 0) == 5 and sample_seed(5, 1) == 5 + 1_000_003
    assert sample_seed(2**31 - 1, 1) < 2**31
    groups = plan_groups(10, seeds=2, batch_size=4)
    assert groups == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    parts = [shard_groups(groups, r, 2) for r in range(2)]
    assert parts == [[0, 2, 4], [1, 3]]
    with pytest.raises(TmpbenchError, match="--batch-size must be at least 1"):
        plan_groups(3, 1, 0)


def test_grid_round_trip():
    from PIL import Image

    cells = [Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)) for k in range(4)]
    back = split_grid(np.asarray(make_grid(cells)))
    assert [int(c[0, 0, 0]) for c in back] == [0, 40, 80, 120]
