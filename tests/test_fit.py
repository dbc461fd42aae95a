"""`tmpbench fit` on the tiny references: weight bytes exactly those of the loaded or pruned modules; one-line errors."""

from __future__ import annotations

import pytest

from tmpbench.errors import TmpbenchError
from tmpbench.fit import fit_report, resolve_modules
from tmpbench.loading import load_model
from tmpbench.models import memory
from tmpbench.pruning.io import save_pruned
from tmpbench.pruning.recipes import CalibrationSpec
from tmpbench.pruning.runner import prune_generator


def param_bytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


@pytest.fixture(scope="module")
def pruned_dirs(tmp_path_factory):
    out = {}
    for name in ("tiny-dit", "tiny-moe"):
        result = prune_generator(load_model(name), "magnitude", "30%", progress=False,
                                 calibration=CalibrationSpec(n_prompts=1, steps=1, size=32))
        out[name] = save_pruned(result, tmp_path_factory.mktemp(name) / "pruned")
    return out


@pytest.mark.parametrize("name", ["tiny-dit", "tiny-moe"])
def test_loaded_weight_bytes_are_exact(name):
    report = fit_report(name, "rtx4090", 32, load=True)
    gen = load_model(name)
    est = report["estimate"]
    assert sum(row["params"] for row in est["denoiser"].values()) == param_bytes(gen.denoiser)
    assert sum(row["buffers"] for row in est["denoiser"].values()) == sum(b.numel() * b.element_size()
                                                                          for b in gen.denoiser.buffers())
    assert est["components"]["text_encoder"] == memory.total_bytes(memory.module_bytes(gen.pipe.text_encoder))
    assert est["components"]["vae"] == memory.total_bytes(memory.module_bytes(gen.pipe.vae))


@pytest.mark.parametrize("name", ["tiny-dit", "tiny-moe"])
def test_pruned_weight_bytes_are_exact(name, pruned_dirs):
    loaded = load_model(str(pruned_dirs[name]))
    report = fit_report(name, "rtx4090", 32, plan_dir=pruned_dirs[name], load=True)
    got = report["estimate"]["denoiser"]
    assert sum(row["params"] for row in got.values()) == param_bytes(loaded.denoiser)
    assert param_bytes(loaded.denoiser) < param_bytes(load_model(name).denoiser)
    # replaying the folder's plan on the meta-built base gives the same shapes (float32 here: 4 bytes a parameter)
    meta = resolve_modules(name, pruned_dirs[name], dtype="fp32")["denoiser"]
    assert param_bytes(meta) == 4 * sum(p.numel() for p in loaded.denoiser.parameters())


def test_moe_gets_an_expert_strategy_and_dense_does_not():
    moe = {v["strategy"] for v in fit_report("tiny-moe", "h100", 32)["verdicts"]}
    dense = {v["strategy"] for v in fit_report("tiny-dit", "h100", 32)["verdicts"]}
    assert moe == {"none", "model", "group", "expert"} and dense == {"none", "model", "group"}


def test_a_plan_made_for_another_model_is_refused(pruned_dirs):
    with pytest.raises(TmpbenchError, match=r"^--plan '.*' was made for model 'tiny-dit', not 'tiny-moe'; pass --model tiny-dit$"):
        fit_report("tiny-moe", "rtx4090", 32, plan_dir=pruned_dirs["tiny-dit"])


def test_bad_inputs_are_one_line(tmp_path):
    with pytest.raises(TmpbenchError, match=r"^unknown --gpu 'rtx4080'; did you mean 'rtx4090'\?"):
        fit_report("tiny-dit", "rtx4080", 32)
    with pytest.raises(TmpbenchError, match=r"is not a pruned model folder; write one with `tmpbench prune`$"):
        fit_report("tiny-dit", "h100", 32, plan_dir=tmp_path)
    with pytest.raises(TmpbenchError, match=r"^--size 30 must be a positive multiple of 16$"):
        fit_report("tiny-dit", "h100", 30)


def test_the_verdict_says_how_tmpbench_run_applies_the_strategy():
    """The cheapest fitting strategy is followed by the `run --offload` flag that applies it
    (tests/run/test_offload_run.py); nothing when no offload is needed."""
    from tmpbench.fit import format_report
    from tmpbench.models.base import OFFLOADS

    report = fit_report("tiny-moe", "h100", 32)
    by = {v["strategy"]: v for v in report["verdicts"]}
    assert set(by) == set(OFFLOADS)
    for s in ("model", "group", "expert"):
        assert f"  with tmpbench run: --size 32 --offload {s} (" in format_report({**report, "cheapest": by[s]}).splitlines()[-1]
    assert format_report({**report, "cheapest": by["none"]}).splitlines()[-1].startswith("cheapest strategy that fits: none")
