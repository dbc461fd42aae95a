"""`tmpbench sweep` end to end on a tiny random-init tiny-dit: one folder per run, shared identities, reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tmpbench.errors import TmpbenchError
from tmpbench.experiments.ablate import axis_variants
from tmpbench.experiments.sweep import SweepConfig, Variant, parse_budgets, run_fields_supported, run_sweep


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    import torch

    from tmpbench.models.reference import tiny_zimage as tz

    d = tmp_path_factory.mktemp("tinydit")
    cfg = tz.TinyZImageConfig(dim=32, n_layers=2, n_refiner_layers=1, n_heads=2, text_hidden=16, text_layers=2)
    tz.save_pipeline(tz.make_pipeline(tz.build_components(cfg)), d, cfg, dtype=torch.float32)
    return d


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def config(tiny_dir: Path, out: Path, **kw) -> SweepConfig:
    base = dict(model="tiny-dit", suite="shapes-t2i", variants=[Variant("random", "random"), Variant("magnitude", "magnitude")],
                budgets=["5%"], out=out, limit=3, steps=2, model_path=str(tiny_dir), metrics="geneval", progress=False)
    base.update(kw)
    return SweepConfig(**base)


def test_sweep_runs_every_pruner_once_and_reuses(tiny_dir, tmp_path):
    cfg = config(tiny_dir, tmp_path / "sweep")
    first = run_sweep(cfg)
    assert [r["dir"] for r in first["runs"]] == ["teacher", "random-5pct", "magnitude-5pct"]
    assert not any(r["reused"] for r in first["runs"])
    manifest = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    for name in ("random-5pct", "magnitude-5pct"):
        res = json.loads((tmp_path / "sweep" / name / "results.json").read_text())
        assert res["suite"]["hash"] == manifest["suite_hash"] and res["suite"]["items"] == 3
        assert res["model"]["budget"] == "5%"
        got = res["model"]["calibration"] or res["model"]["prune_info"]["calibration"]
        assert got["hash"] == manifest["calibration"]["hash"]  # the one shared calibration spec
        achieved = res["model"]["achieved_params"] / res["model"]["original_params"]
        assert abs(achieved - 0.95) / 0.95 <= 0.005
        # the teacher's images come from the sweep's teacher run, not a second generation per run
        assert res["generation"]["seeds_per_item"] == 2 and res["generation"]["teacher_generated_now"] == 0
        assert not (tmp_path / "sweep" / name / "teacher").exists()
    html = Path(first["report"]["report"]).read_text()
    assert 'id="grids"' in html and "random @ 5%" in html and html.count("<img") == 3 * 3 * 2
    again = run_sweep(cfg)
    assert all(r["reused"] for r in again["runs"])


def test_recovery_curve_runs_one_folder_per_step_count(tiny_dir, tmp_path):
    cfg = config(tiny_dir, tmp_path / "curve", variants=[Variant("random", "random")], recover_steps=(0, 2))
    manifest = run_sweep(cfg)
    assert [(r["dir"], r.get("recover_steps")) for r in manifest["runs"]] == [
        ("teacher", 0), ("random-5pct", 0), ("random-5pct-r2", 2)]
    recs = {}
    for name in ("random-5pct", "random-5pct-r2"):
        res = json.loads((tmp_path / "curve" / name / "results.json").read_text())
        recs[name] = res["model"]["recovery"] or res["model"]["prune_info"]["recovery"]
    assert recs["random-5pct"]["steps"] == 0 and recs["random-5pct-r2"]["steps"] == 2
    assert recs["random-5pct"]["hash"] != recs["random-5pct-r2"]["hash"]
    # the same plan: the recipes differ in their step count only
    # items and held-out losses are recorded only when recovery trains
    ignore = ("steps", "hash", "item_ids", "held_out_item_ids", "held_out_before", "held_out_after", "held_out_split")
    assert {k: v for k, v in recs["random-5pct"].items() if k not in ignore} == \
        {k: v for k, v in recs["random-5pct-r2"].items() if k not in ignore}
    assert manifest["recover_steps"] == [0, 2]
    # the recovered run starts from the unrecovered run's plan (cached) and carries its planning cost
    costs = {n: json.loads((tmp_path / "curve" / n / "results.json").read_text())["model"]["pruning_cost"]
             for n in ("random-5pct", "random-5pct-r2")}
    assert costs["random-5pct-r2"]["planning"].get("reused") is True and not costs["random-5pct"]["planning"].get("reused")
    assert costs["random-5pct-r2"]["recovery"]["backward_passes"] > 0 == costs["random-5pct"]["recovery"]["backward_passes"]
    plans = sorted((tmp_path / "curve" / "pruned-cache").glob("*/plan.json"))
    assert len(plans) == 2 and len({json.dumps(json.loads(f.read_text())["decisions"]) for f in plans}) == 1
    # the report's recovery table: one row per (pruner, budget), a column per length, the dev loss after recovery
    assert recs["random-5pct-r2"]["held_out_split"] == "dev"
    text = Path(manifest["report"]["recovery_md"]).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| tiny-dit | random"))
    assert "geneval @ 0" in text and "geneval @ 2" in text and f"{recs['random-5pct-r2']['held_out_after']:.4f}" in row
    assert f"{recs['random-5pct-r2']['held_out_before']:.4f}" in row  # the unrecovered model's dev loss, at 0 steps


def test_recover_steps_and_seeds_refusals(tiny_dir, tmp_path):
    from tmpbench.experiments.sweep import parse_recover_steps

    assert parse_recover_steps("0,20,100,400") == (0, 20, 100, 400)
    with pytest.raises(TmpbenchError, match="'x' is not a whole number of steps"):
        parse_recover_steps("0,x")
    with pytest.raises(TmpbenchError, match="lists '20' twice"):
        parse_recover_steps("20,20")
    with pytest.raises(TmpbenchError, match="steps must be 0 or more"):
        parse_recover_steps("-1")
    with pytest.raises(TmpbenchError, match=r"--seeds 1: a sweep's paired tests between pruners need at least 2 samples"):
        run_sweep(config(tiny_dir, tmp_path / "one", seeds=1))
    assert config(tiny_dir, tmp_path, seeds=None).seeds == 2


def test_a_run_refuses_teacher_images_made_differently(tiny_dir, tmp_path):
    from tmpbench.run.pipeline import RunConfig, run_benchmark

    cfg = config(tiny_dir, tmp_path / "sw", variants=[Variant("random", "random")])
    run_sweep(cfg)
    with pytest.raises(TmpbenchError, match=r"teacher images .*: steps 2 differs from this run's 3"):
        run_benchmark(RunConfig(suite="shapes-t2i", model="tiny-dit-5%", pruner="random", out=tmp_path / "r", limit=3, steps=3,
                                seeds=2, model_path=str(tiny_dir), metrics="geneval", progress=False,
                                teacher_images=tmp_path / "sw" / "teacher" / "images"))
    with pytest.raises(TmpbenchError, match=r"teacher images .*: no readable run.json beside them"):
        run_benchmark(RunConfig(suite="shapes-t2i", model="tiny-dit-5%", pruner="random", out=tmp_path / "r2", limit=3, steps=2,
                                seeds=2, model_path=str(tiny_dir), metrics="geneval", progress=False,
                                teacher_images=tmp_path / "nowhere" / "images"))


def test_sweep_records_a_budget_miss_and_goes_on(tiny_dir, tmp_path):
    from tmpbench.errors import BudgetMissError

    cfg = config(tiny_dir, tmp_path / "sweep", variants=[Variant("magnitude", "magnitude")], budgets=["14%"])
    manifest = run_sweep(cfg)
    teacher, miss = manifest["runs"]
    assert teacher["dir"] == "teacher" and "error" not in teacher
    assert miss["variant"] == "magnitude" and "cannot land budget '14%'" in miss["error"]
    assert miss["nearest"] > miss["target"] and miss["relative_error"] > 0.005
    assert not (tmp_path / "sweep" / miss["dir"] / "results.json").exists()  # a miss writes no results
    with pytest.raises(BudgetMissError, match="nearest size it reaches"):
        run_sweep(config(tiny_dir, tmp_path / "strict", variants=[Variant("magnitude", "magnitude")], budgets=["14%"],
                         record_misses=False, teacher=False))


def test_sweep_validates_before_loading(tiny_dir, tmp_path):
    with pytest.raises(TmpbenchError, match="sweep --model 'tiny-dit-50%' must be a registered unpruned model name"):
        run_sweep(config(tiny_dir, tmp_path, model="tiny-dit-50%"))
    with pytest.raises(TmpbenchError, match="did you mean 'random'"):
        run_sweep(config(tiny_dir, tmp_path, variants=[Variant("randm", "randm")]))
    with pytest.raises(TmpbenchError, match="give budgets as shares removed"):
        run_sweep(config(tiny_dir, tmp_path, budgets=["300k"]))
    with pytest.raises(TmpbenchError, match="--budgets lists '5%' twice"):
        parse_budgets("5%,5%")
    if not run_fields_supported():
        with pytest.raises(TmpbenchError, match="RunConfig cannot pass pruner settings of 'tmp-depth1'"):
            run_sweep(config(tiny_dir, tmp_path, variants=axis_variants("tree-depth", moe=False)))


def test_axis_variants():
    assert [v.settings for v in axis_variants("tree-depth", False)] == [{"tree_depth": 1}, {"tree_depth": 2}, {"search": "flat"},
                                                                         {"tree_depth": 3}]
    assert [v.name for v in axis_variants("policy-mix", False)] == ["depth-only", "width-only", "mixed"]
    assert [v.name for v in axis_variants("policy-mix", True)] == ["depth-only", "width-only", "experts-only", "mixed"]
    assert axis_variants("policy-mix", True)[2].settings == {"policy_mix": ["prune_experts", "merge_experts"]}
    # search-cost: the screened search with and without the refine pass, local probes, the default search last
    # (the reference)
    assert [v.settings for v in axis_variants("search-cost", False)] == [{"screen_inputs": 4, "refine": 0},
                                                                          {"screen_inputs": 4},
                                                                          {"local_probes": True}, {}]
    with pytest.raises(TmpbenchError, match="unknown ablation axis 'width'"):
        axis_variants("width", False)


@pytest.mark.skipif(not run_fields_supported(), reason="tmpbench.run.pipeline.RunConfig does not forward pruner settings yet")
def test_tree_depth_ablation_table(tiny_dir, tmp_path):
    from tmpbench.experiments.ablate import run_ablation

    base = config(tiny_dir, tmp_path / "abl", variants=[], budgets=["5%"], metrics="geneval,psnr_teacher")
    result = run_ablation("tree-depth", base, "5%")
    table = result["table"]
    assert list(table["variant"]) == ["teacher (unpruned)", "tmp-depth1", "tmp-depth2", "tmp-flat", "tmp-depth3"]
    # each plan's calibration error, read from its pruned folder (what the search minimised, measured after surgery)
    assert all(float(e) >= 0 for e in table["calib error"][1:])
    # a fidelity metric has no teacher value: the teacher row says so instead of refusing the table (same runs, reused)
    psnr = run_ablation("tree-depth", base, "5%", metric="psnr_teacher")["table"]
    assert psnr["psnr_teacher"][0] == "n/a" and psnr["psnr_teacher"][1] != "n/a"
    assert result["metric"] == "geneval" and (tmp_path / "abl" / "table.md").read_text().startswith("Ablation 'tree-depth'")


@pytest.mark.skipif(not run_fields_supported(), reason="tmpbench.run.pipeline.RunConfig does not forward pruner settings yet")
def test_arch_transfer_regret_table(tiny_dir, tmp_path):
    """Two random-init architectures (dense and MoE), a 2-setting grid tuned on dev; regret rows are paired
    against the own pick, equal picks are the same run."""
    import torch

    from tmpbench.experiments.ablate import run_ablation
    from tmpbench.models.reference import tiny_zimage as tz

    moe = {"num_experts": 4, "moe_topk": 2, "moe_intermediate_size": 8, "num_shared_expert": 1}
    cfg = tz.TinyZImageConfig(dim=32, n_layers=2, n_refiner_layers=1, n_heads=2, text_hidden=16, text_layers=2, moe=moe)
    tz.save_pipeline(tz.make_pipeline(tz.build_components(cfg)), tmp_path / "moe", cfg, dtype=torch.float32)
    base = config(tiny_dir, tmp_path / "abl", variants=[], budgets=["5%"], metrics="geneval,psnr_teacher")
    grid = [{}, {"chunks": 4}]
    # the same registered model under three names is refused; distinct names with their own weights are what a user passes
    with pytest.raises(TmpbenchError, match="needs different architectures"):
        run_ablation("arch-transfer", base, "5%", other="tiny-dit", grid=grid)
    result = run_ablation("arch-transfer", base, "5%", metric="psnr_teacher", other="tiny-moe", other_path=str(tmp_path / "moe"),
                          grid=grid)
    table, picked = result["table"], result["picked"]
    assert set(picked) == {"tiny-dit", "tiny-moe"} and all(p["split"] == "dev" for p in picked.values())
    for model, rows in table.groupby("target"):
        labels = list(rows["settings from"])
        assert labels[0] == f"own pick ({model})" and rows["regret [95% CI]"].iloc[0] == "0 (same setting)"
        assert any(lbl.startswith("transferred from") for lbl in labels) and "TMP default settings" in labels
        assert any(lbl.startswith("random grid setting") for lbl in labels)
        for _, row in rows.iterrows():  # a row with the own pick's variant is the same run: regret 0, no test
            same = row["variant"] == picked[model]["variant"]
            assert (row["regret [95% CI]"] == "0 (same setting)") == same and (row["p (Holm)"] == "") == same
    # the test runs reuse the plans made while tuning (one pruned-model cache per architecture)
    for model in picked:
        assert len(list((tmp_path / "abl" / model / "pruned-cache").glob("*/plan.json"))) == 2
    assert "Regret = Q_B(own pick) - Q_B(setting)" in result["markdown"] and "tmp-g1 = {\"chunks\": 4}" in result["markdown"]


def test_a_sweep_on_another_calibration_draw_calibrates_every_run_on_it(tmp_path):
    """``--calib-draw K`` reaches the one CalibrationSpec every run of the sweep gets; draw 0 is the spec
    sweeps had before draws existed (same hash, so cached plans stay valid)."""
    from tmpbench.experiments.sweep import shared_objects
    from tmpbench.pruning.recipes import default_calibration

    base = SweepConfig(model="tiny-dit", suite="shapes-t2i", variants=[Variant("tmp", "tmp")], budgets=["25%"], out=tmp_path)
    first, _ = shared_objects(base)
    other, _ = shared_objects(SweepConfig(**{**base.__dict__, "calib_draw": 1}))
    assert first.hash == default_calibration("tiny-dit").hash and other.draw == 1 and other.hash != first.hash
    assert not set(first.item_ids()["shapes-t2i"]) & set(other.item_ids()["shapes-t2i"])


def test_an_offloaded_sweep_makes_the_same_images_and_records_its_offload(tiny_dir, tmp_path):
    """``sweep --offload group`` reaches every run (teacher and pruned); images and scores are those of the
    plain sweep, the recorded efficiency names the strategy; a bad strategy fails before anything loads."""
    import numpy as np
    from PIL import Image

    runs = {}
    for offload in ("none", "group"):
        out = tmp_path / offload
        run_sweep(config(tiny_dir, out, variants=[Variant("random", "random")], offload=offload))
        runs[offload] = out
    for name in ("teacher", "random-5pct"):
        res = {k: json.loads((out / name / "results.json").read_text()) for k, out in runs.items()}
        assert res["group"]["efficiency"]["offload"] == "group" and res["none"]["efficiency"]["offload"] == "none"
        assert res["group"]["metrics"]["geneval"]["value"] == res["none"]["metrics"]["geneval"]["value"]
        pngs = sorted(p.relative_to(runs["none"]) for p in (runs["none"] / name).rglob("*.png"))
        assert pngs and all(np.array_equal(np.asarray(Image.open(runs["none"] / p)), np.asarray(Image.open(runs["group"] / p)))
                            for p in pngs)
    with pytest.raises(TmpbenchError, match=r"^unknown --offload 'groups'; did you mean 'group'"):
        run_sweep(config(tiny_dir, tmp_path / "bad", offload="groups"))
