"""run_benchmark end to end on tiny random-init models: schema, per-sample rows, resume, dispatch."""

import json

import numpy as np
import pytest

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.run import RunConfig, load_results, run_benchmark, validate_results


def cfg(tmp_path, pipe, **kw):
    base = dict(
        suite="shapes-t2i", model="tiny-dit", model_path=str(pipe), limit=6, steps=2, batch_size=4, out=tmp_path / "run",
        progress=False, argv=["test"],
    )
    base.update(kw)
    return RunConfig(**base)


def test_t2i_run_writes_valid_results_and_resumes_identically(tmp_path, tiny_pipe_dir):
    res = run_benchmark(cfg(tmp_path, tiny_pipe_dir))
    out = tmp_path / "run"
    assert load_results(out) == res
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and [r["index"] for r in rows] == list(range(6))
    assert all((out / r["image"]).is_file() for r in rows)
    # geneval = mean over tags of per-tag accuracy of the per-sample values
    by_tag = {}
    for r in rows:
        by_tag.setdefault(r["category"], []).append(r["metrics"]["geneval"])
    assert res["metrics"]["geneval"]["value"] == pytest.approx(np.mean([np.mean(v) for v in by_tag.values()]))
    fid = res["metrics"]["fid"]
    assert fid["value"] > 0 and fid["ci95"] is None and "biased upward" in fid["details"]["ci_note"]
    low, high = fid["details"]["bootstrap_2.5_97.5_biased"]
    assert low <= high
    assert res["scorers"]["fid"]["weights_sha256"] == res["scorers"]["fid"]["settings"]["weights_sha256"]
    assert res["metrics"]["clipscore"].startswith("not scored: ")  # no CLIP weights offline
    assert res["generation"]["generated_now"] == 6 and res["generation"]["resumed"] == 0
    eff = res["efficiency"]
    assert eff["params"] == res["model"]["achieved_params"] > 0 and eff["flops_per_call"] > 0 and eff["latency_per_image_s"] > 0
    # same command again: nothing regenerated, identical scores
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.png")}
    again = run_benchmark(cfg(tmp_path, tiny_pipe_dir))
    assert again["generation"]["generated_now"] == 0 and again["generation"]["resumed"] == 6
    assert again["metrics"] == res["metrics"]
    assert {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.png")} == mtimes


def test_resuming_with_other_settings_is_refused(tmp_path, tiny_pipe_dir):
    run_benchmark(cfg(tmp_path, tiny_pipe_dir, limit=2, metrics="geneval"))
    with pytest.raises(TmpbenchError, match=r"holds a run with steps=2, not 3; resume with the same settings"):
        run_benchmark(cfg(tmp_path, tiny_pipe_dir, limit=2, metrics="geneval", steps=3))


def test_edit_suite_scores_success_and_preservation(tmp_path, tiny_pipe_dir):
    res = run_benchmark(cfg(tmp_path, tiny_pipe_dir, suite="shapes-edit", limit=5, seeds=2))
    assert set(res["metrics"]) == {"edit_success", "preservation_psnr", "preservation_l1"}
    assert res["generation"]["samples"] == 10
    psnr = res["metrics"]["preservation_psnr"]
    assert 0 < psnr["value"] <= 100 and psnr["higher_is_better"] and not res["metrics"]["preservation_l1"]["higher_is_better"]
    assert set(res["metrics"]["edit_success"]["by_category"]) == {"recolor", "remove", "add", "move", "replace"}


def test_bad_metric_requests_fail_before_loading(tmp_path, tiny_pipe_dir):
    with pytest.raises(TmpbenchError, match="metric 'edit_success' scores edit suites; suite 'shapes-t2i' is t2i"):
        run_benchmark(cfg(tmp_path, tiny_pipe_dir, metrics="edit_success"))
    with pytest.raises(TmpbenchError, match="compares a pruned model with its teacher"):
        run_benchmark(cfg(tmp_path, tiny_pipe_dir, metrics="psnr_teacher"))
    from tmpbench.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="unknown feature mode 'bogus'"):
        run_benchmark(cfg(tmp_path, tiny_pipe_dir, metrics="fid:bogus"))


def test_pruned_run_records_budget_and_fidelity_to_teacher(tmp_path, tiny_pipe_dir):
    import importlib.util

    if importlib.util.find_spec("tmpbench.pruning.cache") is None:
        with pytest.raises(TmpbenchError, match=r"names a pruned model, but the prune runner .* is not in this checkout yet"):
            run_benchmark(cfg(tmp_path, tiny_pipe_dir, model="tiny-dit-10%", metrics="geneval"))
        return
    from tmpbench.metrics.fidelity import lpips_backbone_path

    metrics = "geneval,psnr_teacher,ssim_teacher,lpips_teacher"
    res = run_benchmark(cfg(tmp_path, tiny_pipe_dir, model="tiny-dit-10%", pruner="magnitude", limit=2, metrics=metrics))
    m = res["model"]
    assert m["budget"] == "10%" and m["pruner"] == "magnitude" and m["prune_cache_key"]
    assert m["achieved_params"] < m["original_params"] and m["requested_params"] == round(m["original_params"] * 0.9)
    assert res["generation"]["teacher_generated_now"] == 2
    assert (tmp_path / "run" / "teacher" / "00000" / "samples" / "0000.png").is_file()
    ssim = res["metrics"]["ssim_teacher"]
    assert -1 <= ssim["value"] <= 1 and ssim["n"] == 2
    if not lpips_backbone_path().is_file():
        assert res["metrics"]["lpips_teacher"].startswith("not scored: LPIPS")


ONEIG_HEADER = "category,id,prompt_en,type,prompt_length,class\n"


class FakeVQA:
    """Deterministic judge: 'yes' to questions containing 'red', else 'no'; questions from code."""

    def answer(self, images, question):
        return ["red" in question for _ in images]

    def questions(self, item):
        return {1: "is there a red circle?", 2: "is the circle big?", 3: "is it red?"}, {1: [0], 2: [1], 3: [2]}

    def identity(self):
        return {"name": "fake-vqa"}


def test_oneig_grids_and_judged_dimensions(tmp_path, tiny_pipe_dir):
    csv = tmp_path / "OneIG-Bench.csv"
    rows = "".join(f"General_Object,{i:03d},a red circle,x,short,c\n" for i in range(2)) + "Portrait,000,a blue square,x,short,c\n"
    csv.write_text(ONEIG_HEADER + rows)
    res = run_benchmark(
        cfg(tmp_path, tiny_pipe_dir, suite="oneig", source=str(csv), limit=None,
            metrics="oneig_alignment,oneig_text,oneig_diversity,clipscore", judges={"oneig_alignment": FakeVQA()})
    )
    out = tmp_path / "run" / "images"
    grids = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.webp"))
    assert grids == ["General_Object/tiny-dit/000.webp", "General_Object/tiny-dit/001.webp", "Portrait/tiny-dit/000.webp"]
    from PIL import Image

    assert Image.open(out / grids[0]).size == (64, 64)
    # q1 yes, q2 no, q3 zeroed through its dependency on q2: 1/3 for every cell
    assert res["metrics"]["oneig_alignment"]["value"] == pytest.approx(1 / 3)
    assert res["metrics"]["oneig_alignment"]["n"] == 12
    for dim in ("oneig_text", "oneig_diversity", "clipscore"):
        assert res["metrics"][dim].startswith("not scored: "), dim
    assert "TMPBENCH_ONEIG_VQA_JUDGE" in res["metrics"]["oneig_text"]
    with pytest.raises(TmpbenchError, match=r"OneIG suites lay out 2x2 grids: pass --seeds 4"):
        run_benchmark(cfg(tmp_path, tiny_pipe_dir, suite="oneig", source=str(csv), seeds=2, out=tmp_path / "other"))


def test_validate_results_names_the_bad_key(tmp_path, tiny_pipe_dir):
    res = run_benchmark(cfg(tmp_path, tiny_pipe_dir, limit=2, metrics="geneval,clipscore"))
    validate_results(res)
    broken = json.loads(json.dumps(res))
    del broken["suite"]["hash"]
    with pytest.raises(DataFormatError, match="suite lacks key 'hash'"):
        validate_results(broken)
    broken = json.loads(json.dumps(res))
    broken["metrics"]["clipscore"] = "0.5"
    with pytest.raises(DataFormatError, match="only 'not scored: <reason>' is allowed"):
        validate_results(broken)
    broken = json.loads(json.dumps(res))
    broken["model"]["achieved_params"] = "many"
    with pytest.raises(DataFormatError, match="model.achieved_params"):
        validate_results(broken)
    broken = json.loads(json.dumps(res))
    broken["metrics"]["geneval"]["extra"] = 1
    with pytest.raises(DataFormatError, match="metrics.geneval has unknown key 'extra'"):
        validate_results(broken)


def test_batch_size_defaults_to_the_model_entry_and_a_resume_keeps_the_run_batch(tmp_path, tiny_pipe_dir):
    from tmpbench.catalog import MODELS
    from tmpbench.run.pipeline import prepare

    default = MODELS.get("tiny-dit").default_batch_size
    res = run_benchmark(cfg(tmp_path, tiny_pipe_dir, limit=2, metrics="geneval", batch_size=None))
    assert res["generation"]["batch_size"] == default
    assert json.loads((tmp_path / "run" / "run.json").read_text())["batch_size"] == default
    # a folder made with another batch size resumes with it when --batch-size is not given
    old = cfg(tmp_path, tiny_pipe_dir, limit=2, metrics="geneval", batch_size=4, out=tmp_path / "old")
    run_benchmark(old)
    assert prepare(cfg(tmp_path, tiny_pipe_dir, batch_size=None, out=tmp_path / "old")).batch_size == 4
    again = run_benchmark(cfg(tmp_path, tiny_pipe_dir, limit=2, metrics="geneval", batch_size=None, out=tmp_path / "old"))
    assert again["generation"]["batch_size"] == 4 and again["generation"]["resumed"] == 2
    with pytest.raises(TmpbenchError, match="--batch-size must be at least 1, got 0"):
        prepare(cfg(tmp_path, tiny_pipe_dir, batch_size=0, out=tmp_path / "new"))
