"""The prune runner: budgets land, errors are one line, calibration/recovery identical across pruners."""

from __future__ import annotations

import pytest
from tiny_generators import tiny_generator

from tmpbench.catalog import PRUNERS
from tmpbench.errors import TmpbenchError
from tmpbench.pruning.plan import Decision, Plan
from tmpbench.pruning.recipes import CalibrationSpec, RecoveryRecipe
from tmpbench.pruning.runner import check_identical, plan_model, prune_all, prune_generator

SPEC = CalibrationSpec(n_prompts=2, steps=2, size=32)


@pytest.fixture(scope="module")
def dense():
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


def test_recover_steps_must_agree_with_the_recipe():
    with pytest.raises(TmpbenchError, match="recover_steps=3 disagrees with the recovery recipe's steps=2; give one"):
        prune_generator(None, "random", "10%", recover_steps=3, recovery=RecoveryRecipe(steps=2))


def test_plan_model_records_the_planned_sizes(dense):
    from tmpbench.pruning.accounting import count_params
    from tmpbench.pruning.families import apply

    outcome = plan_model(dense.denoiser, "magnitude", "5%", model_name="tiny-dit")
    plan = outcome.plan
    assert outcome.report.ok and plan.model["name"] == "tiny-dit" and plan.budget["text"] == "5%"
    assert plan.original_params == outcome.tree.params == count_params(dense.denoiser)
    assert plan.achieved_params == outcome.achieved == count_params(apply(dense.denoiser, plan))
    assert plan.achieved_flops < plan.original_flops == outcome.tree.flops
    data = outcome.to_dict()
    assert data["requested"] == {"budget": "5%", "kind": "params", "target": outcome.target, "original": outcome.original}
    assert len(data["decisions"]) == len(plan.decisions)


def test_rounding_allowance_reads_the_pruners_landing_report():
    """Pruners record round_to in settings["allocation"]; the runner's budget check applies it from there."""
    from tiny_generators import tiny_generator

    from tmpbench.pruning import Budget
    from tmpbench.pruning.families import unit_tree
    from tmpbench.pruning.runner import _check

    tree = unit_tree(tiny_generator().denoiser)
    budget = Budget.parse("10%")
    target = budget.target(tree.params)
    step = tree.width_step(32, "params")
    assert step / target > 0.008  # one rounding step is wider than the plain 0.5% tolerance here
    achieved = target + 0.8 * step  # the nearest feasible size under rounding, 0.8 steps away
    rounded = Plan(model={"class": tree.model_class}, budget=budget.to_dict(), pruner="magnitude",
                   settings={"allocation": {"rounding_multiple": 32}})
    report = _check(tree.params, achieved, budget, rounded, tree)
    assert report.ok and report.rounded and report.rounding_multiple == 32
    plain = Plan(model={"class": tree.model_class}, budget=budget.to_dict(), pruner="magnitude")
    assert not _check(tree.params, achieved, budget, plain, tree).ok
