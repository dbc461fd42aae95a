"""benchmarks/fullsize_hy3_cpu.py: the per-layer replay on a tiny HunyuanImage-3.0-layout config (--dry-run).

The dry run takes every path of the full-width run (the plan on meta, the non-layer part, K layers at a time:
materialise, forward, surgery, save, reload, forward, free; a dropped and a linear-mapped layer at 75%) on a
0.3M-parameter model in a few seconds. These tests check that every layer reloads to the plan's count, that
the per-layer counts add up to the plan's, and the grouping and extrapolation arithmetic.
"""

import json
import math
import re
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def script(load_benchmark):
    return load_benchmark("fullsize_hy3_cpu")


def _record(path: Path) -> dict:
    blob = re.search(r"<!-- (\{.*\}) -->", path.read_text()).group(1)
    return json.loads(blob)["records"][0]


def test_groups_spread_over_the_depth_with_the_ends_included(script):
    assert script.select_groups(32, 3, 1) == [[0], [16], [31]]
    assert script.select_groups(32, 4, 2) == [[0, 1], [30, 31]]
    assert script.select_groups(32, 5, 2) == [[0, 1], [16, 17], [31]]  # 27 spare layers: gaps of 14 and 13
    assert script.select_groups(4, 4, 2) == [[0, 1], [2, 3]]
    assert script.select_groups(32, 1, 4) == [[0]]
    with pytest.raises(ValueError, match=r"--layers 33: choose 1\.\.32"):
        script.select_groups(32, 33, 1)
    with pytest.raises(ValueError, match="--layers-at-once 0: choose at least 1"):
        script.select_groups(32, 3, 0)


def test_extrapolation_fits_the_kept_stages_to_planned_size(script):
    seconds = {s: 1.0 for s in script.STAGES}
    rows = [{"planned_params": 100, "seconds": seconds}, {"planned_params": 300, "seconds": {**seconds, "save": 3.0}}]
    ex = script.extrapolate(rows, [100, 300, 0, 200], dropped={2}, once_seconds=10.0)
    assert ex["layers_kept"] == 3 and ex["measured_layers"] == 2
    assert ex["mean_x_layers"]["stages_s"]["save"] == 6.0  # mean 2 s x 3 kept layers
    assert ex["size_fitted"]["stages_s"]["save"] == 6.0  # 0.01 s per param, no intercept: 1 + 3 + 2 s
    assert ex["size_fitted"]["stages_s"]["materialise"] == 3.0  # full width: 1 s x 3 layers
    assert ex["size_fitted"]["stages_s"]["surgery"] == 3.0  # the same 1 s at both sizes: a constant
    assert ex["fits"]["save"] == {"a_s": 0.0, "b_s_per_gparam": 1e7}
    # an intercept: 2 s at 100 and 4 s at 300 params is 1 s + 0.01 s per param; a negative prediction counts 0
    rows[0]["seconds"]["reload"], rows[1]["seconds"]["reload"] = 2.0, 4.0
    assert script.extrapolate(rows, [100, 300, 200], set(), 0.0)["size_fitted"]["stages_s"]["reload"] == 9.0
    rows[0]["seconds"]["reload"], rows[1]["seconds"]["reload"] = 0.5, 2.5
    assert script.extrapolate(rows, [100, 300, 20], set(), 0.0)["size_fitted"]["stages_s"]["reload"] == 3.0
    assert ex["mean_x_layers"]["total_s"] == pytest.approx(10.0 + 3 * (6 * 1.0 + 2.0))
    with pytest.raises(ValueError, match="no measured layer"):
        script.extrapolate([], [0], {0}, 1.0)


def test_dry_run_replays_each_layer_to_the_plans_count(script, on_path, tmp_path, capsys):
    out = tmp_path / "hy3.md"
    rc = script.main(["--dry-run", "--budget", "75%", "--layers", "4", "--layers-at-once", "2", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    rec = _record(out)
    assert rec["model"] == "hunyuanimage3-tiny" and rec["groups_layers"] == [[0, 1], [2, 3]]
    assert rec["tokens"] == (64 // 16) ** 2 + 128 and rec["experts_implementation"] == "eager"
    # at 75% the proxy drops layer 1 and maps layer 2 linearly: both block paths are taken
    by_layer = {r["layer"]: r for r in rec["rows"]}
    assert sorted(by_layer) == [0, 1, 2, 3]
    assert by_layer[1]["dropped"] and by_layer[1]["decisions"] == ["drop_block"]
    assert by_layer[2]["kept_experts"] == "linear map" and by_layer[2]["planned_params"] == 64 * 64 + 64
    for r in rec["rows"]:
        assert r["equals_plan"], r
        if not r.get("dropped"):
            assert r["surgery_params"] == r["reloaded_params"] == r["planned_params"] and r["finite"]
            assert set(r["seconds"]) == set(script.STAGES) and r["file_bytes"] > 0
    # the per-layer counts are the plan's own: they add up to what it landed
    planned = rec["plan"]["planned_per_layer"]
    assert [by_layer[i]["planned_params"] for i in range(4)] == planned
    assert sum(planned) + rec["params_non_layer"] == rec["plan"]["achieved_params"]
    assert rec["non_layer"]["equals_plan"] and rec["all_equal_plan"] and rec["all_finite"]
    # memory: one row per group, the group's own peak never below what stays after its free
    assert [g["layers"] for g in rec["groups"]] == [[0, 1], [2, 3]]
    assert all(g["peak_gib"] >= g["rss_after_free_gib"] > 0 for g in rec["groups"])
    ex = rec["extrapolation"]
    assert ex["layers"] == 4 and ex["layers_kept"] == 3 and ex["measured_layers"] == 3
    for key in ("mean_x_layers", "size_fitted"):
        assert math.isfinite(ex[key]["total_s"]) and ex[key]["total_s"] >= ex["once_s"] >= 0  # once_s rounds to 0 on a fast machine
    text = out.read_text()
    assert "| 1 | dropped | 0 |" in text and "How extrapolated" in text and "**whole model**" in text


def test_too_many_layers_is_one_line_of_error_and_leaves_no_files(script, on_path, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the run's temporary folder goes
    assert script.main(["--dry-run", "--layers", "5"]) == 2
    assert "error: --layers 5: choose 1..4 (the model has 4 decoder layers)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
