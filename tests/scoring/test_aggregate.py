"""From per-sample values to reported numbers: the bootstrap, MetricResult entries and their recorded aggregation."""

import json

import numpy as np
import pytest

from tmpbench.errors import DataFormatError
from tmpbench.run.results import load_results, metric_aggregation, validate_results
from tmpbench.scoring.aggregate import aggregate, bootstrap_ci


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


def test_aggregate_records_its_estimator():
    rows = [{"category": c, "metrics": {"m": v}} for c, v in [("a", 1.0), ("a", 1.0), ("a", 1.0), ("b", 0.0)]]
    plain = aggregate("m", rows, higher_is_better=True)
    by_cat = aggregate("m", rows, higher_is_better=True, aggregation="category_mean")
    assert (plain["value"], plain["aggregation"]) == (pytest.approx(0.75), "mean")
    assert (by_cat["value"], by_cat["aggregation"]) == (pytest.approx(0.5), "category_mean")
    with pytest.raises(ValueError, match="aggregation 'set' is not a per-sample estimator"):
        aggregate("m", rows, higher_is_better=True, aggregation="set")


# ------------------------------------------------------------------------------------------------
# results.json: the recorded aggregation, and files written before the key existed
UNBALANCED = [1, 1, 0, 0, 1, 0]  # categories cycle over 4 (sizes 2, 2, 1, 1): mean 0.5, mean of category means 0.375


def test_schema_validates_the_aggregation_and_keeps_old_files_loadable(make_run):
    run = make_run("old", UNBALANCED)  # synthetic results written without the key, as before it existed
    results = load_results(run)
    assert "aggregation" not in results["metrics"]["geneval"]
    assert metric_aggregation("geneval", results["metrics"]["geneval"]) == "category_mean"  # what run/score.py did
    assert metric_aggregation("fid", results["metrics"]["fid"]) == "set"
    assert metric_aggregation("psnr_teacher", {}) == "mean"
    results["metrics"]["geneval"]["aggregation"] = "median"
    with pytest.raises(DataFormatError, match=r"metrics.geneval.aggregation = 'median' is not of type"):
        validate_results(results)


def _record(run, aggregation: str) -> None:
    path = run / "results.json"
    results = json.loads(path.read_text())
    results["metrics"]["geneval"]["aggregation"] = aggregation
    validate_results(results)
    path.write_text(json.dumps(results))


def test_ablation_scores_with_the_recorded_estimator(make_run):
    """ablate.score once asked a dict of strings for `category_mean` and always took the plain mean."""
    from tmpbench.report.paired import score
    from tmpbench.report.tables import load_run

    run = make_run("r", UNBALANCED)
    recorded = load_run(run).results["metrics"]["geneval"]["value"]
    assert recorded == pytest.approx(0.375)
    _record(run, "category_mean")
    point, ci, n = score(load_run(run), "geneval")
    assert point == recorded and n == 6  # the run's own value, not the plain mean 0.5
    categories = [r["category"] for r in load_run(run).samples]
    assert (point, ci) == bootstrap_ci(UNBALANCED, categories, category_mean=True)
    _record(run, "mean")  # what the file says wins over what the metric is usually
    assert score(load_run(run), "geneval")[0] == pytest.approx(0.5)


def test_ablation_reads_old_files_with_the_estimator_they_were_made_with(make_run):
    from tmpbench.report.paired import score
    from tmpbench.report.tables import load_run

    run = load_run(make_run("old", UNBALANCED))
    assert score(run, "geneval")[0] == pytest.approx(run.results["metrics"]["geneval"]["value"]) == pytest.approx(0.375)
