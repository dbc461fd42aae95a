"""Comparison tables: values and CIs from samples.jsonl, budgets, formats, refusing incomparable runs."""

import math

import pytest

from tmpbench.errors import TmpbenchError
from tmpbench.report.stats import bootstrap_ci
from tmpbench.report.tables import (
    check_comparable,
    compare_runs,
    comparison_frame,
    comparison_table,
    load_run,
    render,
)


def test_table_values_cis_and_budgets(small_sweep):
    runs = [load_run(p) for p in small_sweep.values()]
    wide = comparison_table(runs, numeric=True)
    assert list(wide["pruner"]) == ["teacher", "tmp", "random", "tmp", "random"]  # teacher first, TMP first per budget
    tmp25 = wide.iloc[1]
    assert math.isclose(tmp25["requested_removed"], 0.25)
    assert math.isclose(tmp25["achieved_removed"], 0.249)
    assert math.isclose(tmp25["budget_error"], 1 / 750)
    # the CI is recomputed from samples.jsonl with the GenEval estimator (mean of category means)
    run = load_run(small_sweep["tmp25"])
    cats = [r["category"] for r in run.samples]
    point, ci = bootstrap_ci([r["metrics"]["geneval"] for r in run.samples], cats, True)
    assert math.isclose(tmp25["geneval"], point) and [tmp25["geneval_ci_low"], tmp25["geneval_ci_high"]] == ci
    assert run.metric_summary("geneval")["ci_source"] == "samples.jsonl"
    # set-level FID keeps the run's own interval; unscored metrics stay empty
    assert run.metric_summary("fid")["ci95"] == [110.0, 130.0]
    assert wide.iloc[1]["clipscore"] is None


def test_text_table_shows_requested_beside_achieved(small_sweep):
    runs = [load_run(p) for p in small_sweep.values()]
    table = comparison_table(runs)
    row = table[(table.pruner == "random") & table.requested.str.startswith("50%")].iloc[0]
    assert row["requested"] == "50% (500)" and row["achieved"] == "50.10% removed" and row["vs target"] == "-0.20%"
    assert row["psnr_teacher"].startswith("18.000")
    assert table.iloc[0]["clipscore"] == "n/a"


def test_formats(small_sweep):
    runs, md = compare_runs(list(small_sweep.values()), "md")
    assert md.splitlines()[0].startswith("| model") and "tmp" in md and "[" in md
    _, csv = compare_runs(list(small_sweep.values()), "csv")
    assert csv.splitlines()[0].startswith("model,pruner,requested_removed,achieved_removed")
    _, tex = compare_runs(list(small_sweep.values()), "latex")
    assert "\\begin{tabular}" in tex and "psnr\\_teacher" in tex
    _, html = compare_runs(list(small_sweep.values()), "html")
    assert 'class="dataframe tmpbench-table"' in html
    with pytest.raises(TmpbenchError, match="unknown table format 'xls'; use one of md, csv, latex, html"):
        render(comparison_table(runs), "xls")


def test_long_frame_has_every_metric(small_sweep):
    df = comparison_frame([load_run(small_sweep["tmp25"])])
    assert set(df.metric) == {"geneval", "fid", "clipscore", "psnr_teacher"}
    assert df[df.metric == "clipscore"].iloc[0]["not_scored"].startswith("not scored")


def test_refuses_mismatched_suites_and_seeds(make_run, small_sweep):
    other_suite = make_run("other-suite", [1] * 20, suite_hash="b" * 64)
    with pytest.raises(TmpbenchError, match=r"runs are not comparable: .* hash aaaaaaaaaaaa\) but .* hash bbbbbbbbbbbb\)"):
        compare_runs([small_sweep["teacher"], other_suite])
    other_seeds = make_run("other-seeds", [1] * 20, seed_offset=7)
    with pytest.raises(TmpbenchError, match="used different seeds"):
        check_comparable([load_run(small_sweep["teacher"]), load_run(other_seeds)])
    with pytest.raises(TmpbenchError, match="does not exist"):
        load_run(small_sweep["teacher"].parent / "nope")
    with pytest.raises(TmpbenchError, match="metric 'lpips' is in none of the runs"):
        compare_runs([small_sweep["teacher"]], metrics=["lpips"])


def test_table_recomputes_the_ci_with_the_recorded_aggregation(make_run):
    import json

    from tmpbench.report.tables import load_run

    values = [1, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1]  # categories of unequal mean
    run = make_run("r", values)
    res = json.loads((run / "results.json").read_text())
    assert load_run(run).metric_summary("geneval")["aggregation"] == "category_mean"  # legacy file: GenEval's rule
    # the same samples recorded as a plain mean: the table follows the record, not a guess
    res["metrics"]["geneval"]["value"] = sum(values) / len(values)
    res["metrics"]["geneval"]["aggregation"] = "mean"
    (run / "results.json").write_text(json.dumps(res))
    summary = load_run(run).metric_summary("geneval")
    assert summary["aggregation"] == "mean" and summary["ci_source"] == "samples.jsonl"
    assert summary["value"] == pytest.approx(sum(values) / len(values))


def test_compare_refuses_runs_that_evaluate_their_calibration_or_recovery_items(make_run):
    from tmpbench.report.tables import compare_runs

    teacher = make_run("teacher", [1] * 8)
    clean = make_run("tmp-clean", [1] * 8, pruner="tmp", budget="50%", achieved=500, calibration_ids=["00100"],
                     recovery_ids=["00101"])
    runs, _ = compare_runs([teacher, clean])
    assert len(runs) == 2
    leaky = make_run("tmp-leaky", [1] * 8, pruner="tmp", budget="50%", achieved=500, calibration_ids=["00100", "00003"])
    with pytest.raises(TmpbenchError, match=r"^compare: .*tmp-leaky evaluated 1 item\(s\) of shapes-t2i that its model's "
                                            r"calibration used \(first: '00003'\); evaluate on the test split"):
        compare_runs([teacher, leaky])
    rec = make_run("tmp-rec", [1] * 8, pruner="tmp", budget="50%", achieved=500, recovery_ids=["00005"])
    with pytest.raises(TmpbenchError, match="that its model's recovery used"):
        compare_runs([teacher, rec])


def test_compare_takes_the_split_the_runs_were_evaluated_on(make_run):
    from tmpbench.report.tables import compare_runs

    legacy = [make_run("teacher", [1] * 8, split=None), make_run("tmp", [1] * 8, pruner="tmp", budget="50%", split=None)]
    with pytest.raises(TmpbenchError, match=r"^compare: .*teacher was evaluated on split 'all', not 'test'; pass --split all"):
        compare_runs(legacy)
    assert len(compare_runs(legacy, split="all")[0]) == 2
    with pytest.raises(TmpbenchError, match=r"^--split 'val': suites have splits calib, dev, test \(or all\)$"):
        compare_runs(legacy, split="val")
