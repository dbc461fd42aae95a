"""The prune runner: budgets land, errors are one line, calibration/recovery identical across pruners."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tmpbench.errors import TmpbenchError
from tmpbench.models.reference import tiny_zimage as tz
from tmpbench.models.zimage import ZImageGenerator
from tmpbench.pruning.plan import Decision, Plan
from tmpbench.pruning.runner import (
    CalibrationSpec,
    RecoveryRecipe,
    apply,
    check_identical,
    get_or_prune,
    planned_size,
    prune_all,
    prune_generator,
    pruned_cache_key,
    unit_tree,
)
from tmpbench.catalog import PRUNERS

MOE = {"num_experts": 4, "moe_topk": 2, "moe_intermediate_size": 16, "num_shared_expert": 1}
SPEC = CalibrationSpec(n_prompts=2, steps=2, size=32)


def ensure_pruners() -> None:
    """The strategies' pruners, registered here until tmpbench/catalog.py lists them."""
    for name, target in (("random", "pruners.random_pruner:RandomPruner"),
                         ("magnitude", "pruners.magnitude:MagnitudePruner"),
                         ("expert-frequency", "pruners.expert_frequency:ExpertFrequencyPruner")):
        if name not in PRUNERS:
            PRUNERS.register_lazy(name, target)


def tiny_generator(moe: bool = False, seed: int = 0) -> ZImageGenerator:
    cfg = tz.TinyZImageConfig(dim=32, n_layers=2, n_refiner_layers=1, n_heads=2, text_hidden=16, text_layers=2,
                              moe=MOE if moe else None, seed=seed)
    pipe = tz.make_pipeline(tz.build_components(cfg))
    name = "tiny-moe" if moe else "tiny-dit"
    return ZImageGenerator(pipe, name=name, model=name, edit_fn=tz.edit_in_sequence, max_sequence_length=24,
                           save_fn=lambda p, d: tz.save_pipeline(p, d, cfg, dtype=torch.float32))


@pytest.fixture(scope="module")
def dense():
    ensure_pruners()
    return tiny_generator()


def test_prune_lands_on_budget_and_generates(dense):
    before = sum(p.numel() for p in dense.denoiser.parameters())
    result = prune_generator(dense, "random", "10%", calibration=SPEC, progress=False)
    pruned = result.generator.denoiser
    achieved = sum(p.numel() for p in pruned.parameters())
    assert result.budget_report.ok
    assert result.achieved_params == achieved
    assert abs(achieved - 0.9 * before) / (0.9 * before) <= 0.005
    assert sum(p.numel() for p in dense.denoiser.parameters()) == before  # the original is untouched
    images = result.generator.generate(["a photo of a circle"], [0], 2, 1.0, 32)
    assert images[0].size == (32, 32)
    assert result.calibration_identity["hash"] == SPEC.resolved(2, 32, 1.0).hash
    assert result.recovery_identity["steps"] == 0


def test_planned_size_matches_surgery(dense):
    model = dense.denoiser
    tree = unit_tree(model)
    plan = Plan(model={"class": tree.model_class}, budget={}, pruner="hand", decisions=[
        Decision("layers.1", "drop_block"),
        Decision("layers.0.attention", "prune_heads", keep=[1]),
        Decision("noise_refiner.0.feed_forward", "prune_channels", keep=list(range(0, 85, 2))),
    ])
    pruned = apply(model, plan)
    assert planned_size(tree, plan) == sum(p.numel() for p in pruned.parameters())
    assert planned_size(tree, plan, "flops") == unit_tree(pruned).flops


@pytest.mark.parametrize("budget,match", [
    ("100%", "strictly between 0% and 100%"),
    ("5k", "smallest feasible model keeps"),
    ("10b", "not below the model's"),
    ("latency:20%", "latency budget"),
])
def test_impossible_budgets_are_one_line(dense, budget, match):
    with pytest.raises(TmpbenchError, match=match) as err:
        prune_generator(dense, "random", budget, calibration=SPEC, progress=False)
    assert "\n" not in str(err.value)


def test_unknown_pruner_and_wrong_family(dense):
    with pytest.raises(TmpbenchError, match="did you mean 'random'"):
        prune_generator(dense, "randon", "10%", calibration=SPEC)
    with pytest.raises(TmpbenchError, match="MoE|moe"):
        prune_generator(dense, "expert-frequency", "10%", calibration=SPEC)


def test_policy_not_admitted_is_refused(dense):
    class Bad:
        name, families, needs_calibration = "bad", frozenset({"dit"}), False

        def __init__(self, seed=0):
            pass

        def plan(self, model, tree, budget, calibration):
            return Plan(model={"class": tree.model_class}, budget=budget.to_dict(), pruner="bad",
                        decisions=[Decision("noise_refiner.0", "drop_block")])

    if "test-bad-policy" not in PRUNERS:
        PRUNERS.add("test-bad-policy", Bad)
    with pytest.raises(TmpbenchError, match="'drop_block' is not admitted at 'noise_refiner.0'"):
        prune_generator(dense, "test-bad-policy", "10%", calibration=SPEC)


def test_sweep_shares_one_calibration_and_recipe(dense):
    results = prune_all(dense, ["random", "magnitude"], ["5%", "10%"], calibration=SPEC,
                        recovery=RecoveryRecipe(steps=0), progress=False)
    assert len(results) == 4
    assert len({r.calibration_identity["hash"] for r in results}) == 1
    assert len({r.recovery_identity["hash"] for r in results}) == 1
    assert all(r.budget_report.ok for r in results)
    other = prune_generator(dense, "random", "5%", calibration=CalibrationSpec(n_prompts=3, steps=2, size=32))
    with pytest.raises(TmpbenchError, match="different calibration settings"):
        check_identical([results[0], other])


def test_moe_model_prunes(dense):
    moe = tiny_generator(moe=True)
    result = prune_generator(moe, "random", "5%", calibration=SPEC, progress=False)
    assert result.budget_report.ok
    assert result.generator.generate(["a photo of a circle"], [1], 2, 1.0, 32)[0].size == (32, 32)


def test_cache_key_covers_every_setting():
    base = dict(spec_text="tiny-dit", pruner="random", budget="10%", pruner_settings={}, calibration_spec=SPEC,
                recovery_recipe=RecoveryRecipe(), base_model_hash="abc")
    key = pruned_cache_key(**base)
    for change in ({"budget": "20%"}, {"pruner_settings": {"x": 1}}, {"recovery_recipe": RecoveryRecipe(lr=1e-3)},
                   {"calibration_spec": CalibrationSpec(n_prompts=3)}, {"base_model_hash": "abd"}):
        assert pruned_cache_key(**{**base, **change}) != key
    assert pruned_cache_key(**base) == key


def test_get_or_prune_caches(dense, tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    dense.save(ref)
    monkeypatch.setenv("TMPBENCH_TINY_DIT_PATH", str(ref))
    gen1, info1 = get_or_prune("tiny-dit-10%", pruner="random", cache_dir=tmp_path / "cache", progress=False,
                               calibration=SPEC)
    gen2, info2 = get_or_prune("tiny-dit-10%", pruner="random", cache_dir=tmp_path / "cache", progress=False,
                               calibration=SPEC)
    assert (info1["cached"], info2["cached"]) == (False, True)
    assert info1["cache_key"] == info2["cache_key"]
    a = np.asarray(gen1.generate(["a photo of a circle"], [3], 2, 1.0, 32)[0])
    b = np.asarray(gen2.generate(["a photo of a circle"], [3], 2, 1.0, 32)[0])
    assert np.array_equal(a, b)


def test_spec_validation():
    with pytest.raises(TmpbenchError, match="at least 1 prompt"):
        CalibrationSpec(n_prompts=0)
    with pytest.raises(TmpbenchError, match="2 seeds for 3 prompts"):
        CalibrationSpec(n_prompts=3, seeds=(1, 2))
    with pytest.raises(TmpbenchError, match="disagrees"):
        prune_generator(None, "random", "10%", recover_steps=3, recovery=RecoveryRecipe(steps=2))


def test_apply_survives_tensors_cached_with_grad(dense):
    model = dense.denoiser
    weight = model.layers[0].attention.to_q.weight
    model.layers[0].cached_loss = (weight * 2).sum()  # as an MoE block's aux_loss after a Taylor scorer
    plan = Plan(model={"class": "ZImageTransformer2DModel"}, budget={}, pruner="hand",
                decisions=[Decision("layers.1", "drop_block")])
    try:
        pruned = apply(model, plan)
        assert pruned.layers[0].cached_loss.grad_fn is None
    finally:
        del model.layers[0].cached_loss
