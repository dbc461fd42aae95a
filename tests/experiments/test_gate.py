"""The regression gate: fails on an injected regression, passes on an unchanged rerun, refuses bad input."""

import json
import shutil

import pytest

from tmpbench.errors import TmpbenchError
from tmpbench.experiments.gate import gate_runs, load_baseline, parse_max_drop, write_baseline


def test_baseline_file_is_compact_and_keyed(small_sweep, tmp_path):
    path = write_baseline([small_sweep["tmp25"], small_sweep["tmp50"]], tmp_path / "reports" / "tmp.json")
    data = load_baseline(path)
    assert data["suite"]["hash"] == "a" * 64 and data["seeds"]["seeds_per_item"] == 1
    assert [(r["pruner"], r["budget"]) for r in data["runs"]] == [("tmp", "25%"), ("tmp", "50%")]
    geneval = data["runs"][0]["metrics"]["geneval"]
    assert geneval["binary"] is True and geneval["values"]["00003#1003"] == 0.0 and len(geneval["values"]) == 20
    assert data["runs"][0]["metrics"]["psnr_teacher"]["binary"] is False
    assert "fid" not in data["runs"][0]["metrics"]  # set-level: no per-prompt values to pair


def test_gate_fails_on_regression_and_passes_on_rerun(small_sweep, tmp_path):
    baseline = write_baseline([small_sweep["tmp25"], small_sweep["tmp50"]], tmp_path / "tmp.json")
    # injected regression: the random pruner's runs as candidates against TMP's baseline
    report = gate_runs(baseline, [small_sweep["rnd25"], small_sweep["rnd50"]])
    assert report.failed
    rows = {(r.budget, r.metric): r for r in report.rows}
    g25 = rows[("25%", "geneval")]
    assert g25.test == "McNemar exact" and g25.regressed and g25.candidate_pruner == "random"
    assert g25.detail == "lost 13 / gained 0" and g25.p_worse == pytest.approx(2**-13)
    assert rows[("25%", "psnr_teacher")].test == "paired bootstrap" and rows[("25%", "psnr_teacher")].regressed
    text = report.table()
    assert "REGRESSED" in text and text.splitlines()[-1].startswith("FAIL: ")
    # an unchanged rerun (a copy of the same folders) passes
    rerun = tmp_path / "rerun"
    shutil.copytree(small_sweep["tmp25"], rerun / "tmp-25pct")
    shutil.copytree(small_sweep["tmp50"], rerun / "tmp-50pct")
    ok = gate_runs(baseline, [rerun / "tmp-25pct", rerun / "tmp-50pct"])
    assert not ok.failed and all(r.drop == 0 for r in ok.rows)
    assert ok.table().splitlines()[-1].startswith("PASS")


def test_tolerance_lets_a_small_drop_through(small_sweep, tmp_path):
    baseline = write_baseline([small_sweep["tmp25"]], tmp_path / "tmp.json")
    report = gate_runs(baseline, [small_sweep["rnd25"]], ["geneval=0.9", "psnr_teacher=20"])
    assert not report.failed
    assert {r.tolerance for r in report.rows} == {0.9, 20.0}


def test_gate_refusals(small_sweep, make_run, tmp_path):
    baseline = write_baseline([small_sweep["tmp25"]], tmp_path / "tmp.json")
    with pytest.raises(TmpbenchError, match=r"baseline file '.*missing.json' not found; write one with `tmpbench gate --write-baseline"):
        gate_runs(tmp_path / "missing.json", [small_sweep["rnd25"]])
    unknown = "--max-drop names unknown metric 'clip'; the baseline has per-sample metrics geneval, psnr_teacher"
    with pytest.raises(TmpbenchError, match=unknown):
        gate_runs(baseline, [small_sweep["rnd25"]], ["clip=0.1"])
    with pytest.raises(TmpbenchError, match=r"--max-drop 'geneval' must look like METRIC=VALUE"):
        parse_max_drop(["geneval"])
    with pytest.raises(TmpbenchError, match="--max-drop 'geneval=-1' must look like"):
        parse_max_drop(["geneval=-1"])
    other_suite = make_run("o", [1] * 20, pruner="tmp", budget="25%", suite_hash="c" * 64)
    with pytest.raises(TmpbenchError, match="is not comparable with the baseline: suite shapes-t2i .* hash cccccccccccc"):
        gate_runs(baseline, [other_suite])
    other_seeds = make_run("s", [1] * 20, pruner="tmp", budget="25%", seed_offset=3)
    with pytest.raises(TmpbenchError, match="not comparable with the baseline: different seeds"):
        gate_runs(baseline, [other_seeds])
    with pytest.raises(TmpbenchError, match=r"the baseline has no run of tiny-dit at budget 50% \(it has tiny-dit @ 25%\)"):
        gate_runs(baseline, [small_sweep["rnd50"]])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something"}))
    with pytest.raises(TmpbenchError, match="is not a tmpbench gate baseline"):
        gate_runs(bad, [small_sweep["rnd25"]])


def test_gate_refuses_leaky_runs_and_other_splits(small_sweep, make_run, tmp_path):
    baseline = write_baseline([small_sweep["tmp25"]], tmp_path / "tmp.json")
    assert load_baseline(baseline)["suite"]["split"] == "test"
    leaky = make_run("leaky", [1] * 20, pruner="tmp", budget="25%", achieved=751, recovery_ids=["00007"])
    with pytest.raises(TmpbenchError, match=r"^gate: .*leaky evaluated 1 item\(s\) of shapes-t2i that its model's recovery used"):
        gate_runs(baseline, [leaky])
    with pytest.raises(TmpbenchError, match=r"^gate --write-baseline: .*leaky evaluated 1 item"):
        write_baseline([leaky], tmp_path / "leaky.json")
    dev = make_run("dev", [1] * 20, pruner="tmp", budget="25%", achieved=751, split="dev")
    with pytest.raises(TmpbenchError, match=r"^gate: .*dev was evaluated on split 'dev', not 'test'; pass --split dev"):
        gate_runs(baseline, [dev])
    with pytest.raises(TmpbenchError, match=r"^gate: the baseline was evaluated on split 'test', not 'dev'"):
        gate_runs(baseline, [dev], split="dev")
