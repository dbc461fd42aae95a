"""benchmarks/gpu_check.py: the dry run takes every code path of the GPU check on the CPU.

The dry run plans tiny-dit and a tiny HunYuanMoEV1 on the meta device, materialises them with
random weights, measures (on the CPU: parameter bytes + RSS growth, not CUDA memory) and writes the
JSON and the Markdown. These tests check their structure, that every predicted and measured field
is there and finite, and that the predictions are ``tmpbench fit``'s and ``plan --estimate``'s own.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tmpbench.fit import fit_report
from tmpbench.models.counting import build_meta
from tmpbench.pruning.estimate import estimate_plan

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)


def _finite(row: dict, *keys: str) -> None:
    for key in keys:
        assert isinstance(row.get(key), (int, float)) and math.isfinite(row[key]), (key, row.get(key))


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    proc = _run("--dry-run", "--threads", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / "dry-run.json").read_text()), (out / "dry-run.md").read_text()


def test_dry_run_report_records_where_it_ran(dry_run):
    report, _ = dry_run
    assert report["schema"] == "tmpbench-gpu-check/1" and report["mode"] == "dry-run"
    assert report["command"].startswith("python benchmarks/gpu_check.py --dry-run")
    assert report["device"]["type"] == "cpu" and report["device"]["name"]
    assert {"python", "torch", "diffusers", "transformers", "tmpbench"} <= set(report["versions"])
    assert list(report["parts"]) == ["zimage", "hunyuanimage3", "plan-time"]
    assert all(p["status"] == "ok" for p in report["parts"].values()), {k: p.get("reason") for k, p in report["parts"].items()}


def test_zimage_rows_compare_with_fit_and_the_unit_tree(dry_run):
    report, _ = dry_run
    rows = report["parts"]["zimage"]["rows"]
    assert [(r["variant"], r["size"]) for r in rows] == [
        (v, s) for v in ("teacher", "teacher-group-offload", "tmp-35%", "tmp-35%-round8") for s in (64, 128)]
    for r in rows:
        _finite(r, "predicted_bytes", "measured_bytes", "memory_ratio", "activation_ratio", "latency_s", "fit_none_peak_bytes")
        if "offload" not in r:  # the sampling loop runs on the resident models
            _finite(r, "loop_s")
        assert r["memory_source"].startswith("cpu:")  # no CUDA memory on a CPU, and the row says so
        if r["variant"] == "teacher-group-offload":  # run --offload group's diffusers group offloading
            _finite(r, "offload_slowdown", "fit_group_peak_bytes")
            est = fit_report("tiny-dit", "h100", r["size"])["estimate"]
            assert r["predicted_bytes"] == (est["denoiser_bytes"] - est["blocks"] + 2 * est["largest_block"]
                                            + est["activations"] + est["kv_cache"])
            assert r["params"] == rows[0]["params"]
        elif r["variant"] != "teacher":
            _finite(r, "flops_ratio", "latency_ratio", "lat_over_flops")
            assert 0 < r["flops_ratio"] < 1 and r["params"] < rows[0]["params"]
    # the prediction is tmpbench fit's own for the same spec and size: denoiser weights + activations
    for spec, variant in (("tiny-dit", "teacher"), ("tiny-dit-35%", "tmp-35%")):
        for size in (64, 128):
            est = fit_report(spec, "h100", size)["estimate"]
            row = next(r for r in rows if r["variant"] == variant and r["size"] == size)
            assert row["predicted_bytes"] == est["denoiser_bytes"] + est["activations"] + est["kv_cache"]
            assert row["tokens"] == est["tokens"] and row["fit_none_peak_bytes"] == fit_report(spec, "h100", size)[
                "verdicts"][0]["peak_bytes"]


def test_hunyuan_and_plan_time_rows(dry_run):
    report, _ = dry_run
    hy, streamed = report["parts"]["hunyuanimage3"]["rows"]
    _finite(hy, "predicted_bytes", "measured_bytes", "memory_ratio", "activation_ratio", "kv_cache_bytes", "latency_s")
    assert hy["batch"] == 2 and hy["kv_cache_bytes"] > 0  # CFG batch and the decoder's KV cache, as fit assumes
    # the same forward under run --offload expert: every MoE block's experts streamed, against fit's expert floor
    assert streamed["variant"] == "tmp-50%-expert-offload" and streamed["offload"] == "expert"
    _finite(streamed, "predicted_bytes", "measured_bytes", "latency_s", "offload_slowdown", "fit_expert_peak_bytes")
    assert streamed["placement"]["streamed_blocks"] == streamed["placement"]["moe_blocks"] == 2
    # fit's floor: the weights but the routed experts, two layers' experts (here both layers: as much as
    # the resident row's weights), and the same activations and KV cache
    assert streamed["predicted_bytes"] - streamed["denoiser_weight_bytes"] == hy["activation_bytes"] + hy["kv_cache_bytes"]
    assert streamed["denoiser_weight_bytes"] >= hy["denoiser_weight_bytes"]
    (plan,) = report["parts"]["plan-time"]["rows"]
    _finite(plan, "predicted_s", "measured_s", "time_ratio", "predicted_evaluations", "measured_evaluations",
            "predicted_forward_equivalents", "measured_forward_equivalents")
    assert plan["calib_inputs"] == 4 and "meets the budget" in plan["budget_check"]
    est = estimate_plan(build_meta("tiny-dit"), "tmp", "35%", n_prompts=2, steps=2, size=64, guidance=0.0,
                        pruner_settings={"chunks": 4, "max_calib_inputs": 2})
    assert plan["predicted_evaluations"] == est["evaluations"]
    assert plan["predicted_forward_equivalents"] == est["forward_equivalents"]


def test_dry_run_markdown_has_a_table_per_part(dry_run):
    _, text = dry_run
    for heading in ("## zimage: ok", "## hunyuanimage3: ok", "## plan-time: ok"):
        assert heading in text
    assert text.count("| variant | size | params |") == 2 and "| model | budget | calibration |" in text
    assert "not comparable with the prediction" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU this would run the full check")
def test_without_a_gpu_every_part_is_skipped_with_the_reason(tmp_path):
    proc = _run("--parts", "zimage,plan-time", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert {k: (p["status"], p["rows"]) for k, p in report["parts"].items()} == {
        "zimage": ("skipped", []), "plan-time": ("skipped", [])}
    assert report["parts"]["zimage"]["reason"].startswith("no CUDA device")
    assert "## zimage: skipped (no CUDA device" in (tmp_path / "gpu-check.md").read_text()


def test_unknown_part_is_a_usage_error(tmp_path):
    proc = _run("--parts", "zimage,flux", "--out", str(tmp_path))
    assert proc.returncode == 2 and "--parts 'zimage,flux': choose from zimage, hunyuanimage3, plan-time" in proc.stderr
