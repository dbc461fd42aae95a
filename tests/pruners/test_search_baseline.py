"""The compute-matched baseline (best-of-n): lands, keeps to its forward budget, is seeded, and the
error it records for its best plan is what surgery delivers on the same calibration inputs."""

import copy

import pytest
from pruner_checks import plan_and_apply

from tmpbench.catalog import PRUNERS
from tmpbench.errors import TmpbenchError
from tmpbench.pruning import Budget
from tmpbench.pruning.runner import check_prediction

FEW = {"n_plans": 4, "forward_budget": None}


@pytest.mark.parametrize("case_name", ["dense", "moe"])
@pytest.mark.parametrize("budget", ["25%", "50%"])
def test_best_plan_lands_and_its_error_is_what_surgery_delivers(request, case_name, budget):
    case = request.getfixturevalue(case_name)
    plan, pruned = plan_and_apply(case, "best-of-n", budget, **FEW)  # counted params meet the budget within 0.5%
    search = plan.settings["search"]
    assert search["evaluator"] == "masked_output_error" and search["plans_tried"] == 4
    assert search["calib_inputs"] == len(case.calib)
    assert 0 < search["best_error"] <= search["median_error"]
    assert search["best_error"] <= search["uniform_error"]  # plan 0, the uniform anchor, is among the candidates
    # the pruned model, scored on the search's inputs against the teacher, gives the recorded best error
    check_prediction(plan, case.model, pruned, case.calib)
    assert search["measured_error"] == pytest.approx(search["best_error"], rel=1e-4)
    assert {d.policy for d in plan.decisions} & {"prune_heads", "prune_channels", "prune_experts", "merge_experts"}


def test_uniform_anchor_is_one_share_of_every_group(dense):
    plan, _ = plan_and_apply(dense, "best-of-n", "25%", n_plans=1, forward_budget=None)
    assert {d.policy for d in plan.decisions} == {"prune_heads", "prune_channels"}
    shares = [1 - len(d.keep) / d.original_count for d in plan.decisions if d.policy == "prune_channels"]
    assert max(shares) - min(shares) < 0.1  # one share, up to the landing's single units
    assert plan.settings["search"]["best_error"] == plan.settings["search"]["uniform_error"]


def test_forward_budget_is_spent_and_not_exceeded_by_more_than_one_plan(moe):
    n = len(moe.calib)
    probe = PRUNERS.get("best-of-n")(n_plans=1, forward_budget=None).plan(moe.model, moe.tree, Budget.parse("25%"), moe.calib)
    one = probe.settings["search"]["forward_equivalents"]  # fixed passes + one plan
    budget = one + 5 * n
    plan = PRUNERS.get("best-of-n")(forward_budget=budget).plan(moe.model, moe.tree, Budget.parse("25%"), moe.calib)
    search = plan.settings["search"]
    assert search["forward_budget"] == budget and search["forward_budget_source"] == "setting"
    assert budget <= search["forward_equivalents"] <= budget + n  # a plan costs at most one forward per input
    assert search["plans_tried"] >= 6
    capped = PRUNERS.get("best-of-n")(forward_budget=budget, n_plans=3).plan(moe.model, moe.tree, Budget.parse("25%"), moe.calib)
    assert capped.settings["search"]["plans_tried"] == 3 and capped.settings["search"]["forward_equivalents"] < budget


def test_default_budget_is_tmps_estimate(dense):
    from pruners.tmp import TMPPruner

    plan = PRUNERS.get("best-of-n")(n_plans=2).plan(dense.model, dense.tree, Budget.parse("25%"), dense.calib)
    search = plan.settings["search"]
    want = TMPPruner().estimate(dense.tree, Budget.parse("25%"), len(dense.calib))["forward_equivalents"]
    assert search["forward_budget_source"] == "tmp_estimate" and search["forward_budget"] == want


def test_deterministic_per_seed(dense):
    def run(seed):
        plan = PRUNERS.get("best-of-n")(seed=seed, **FEW).plan(dense.model, dense.tree, Budget.parse("50%"), dense.calib)
        plan.settings["search"].pop("seconds")
        return plan

    a, b, c = run(0), run(0), run(1)
    assert a.to_json() == b.to_json()
    assert a.decisions != c.decisions


def test_refuses_a_meta_model_and_missing_calibration(dense):
    meta = copy.deepcopy(dense.model).to("meta")
    pruner = PRUNERS.get("best-of-n")(**FEW)
    with pytest.raises(TmpbenchError, match=r"^pruner 'best-of-n' measures every plan on calibration data and a meta model "
                                            r"has no weights; run it on a loaded model[^\n]*$"):
        pruner.plan(meta, dense.tree, Budget.parse("25%"), dense.calib)
    with pytest.raises(TmpbenchError, match=r"^pruner 'best-of-n' scores with calibration data and none was given[^\n]*$"):
        pruner.plan(meta, dense.tree, Budget.parse("25%"), None)


@pytest.mark.parametrize("settings, message", [
    ({"forward_budget": None, "n_plans": None}, r"forward_budget and n_plans are both None; set one of them"),
    ({"forward_budget": -1}, r"forward_budget=-1 must be a positive number"),
    ({"forward_budget": "lots"}, r"forward_budget='lots' must be a positive number"),
    ({"n_plans": 0}, r"n_plans=0 must be an integer >= 1 or None"),
    ({"spread": -0.5}, r"spread=-0.5 must be a number >= 0"),
    ({"timestep_weighting": "late"}, r"timestep_weighting='late'; use one of"),
])
def test_bad_settings_are_one_line(settings, message):
    with pytest.raises(TmpbenchError, match=r"^pruner 'best-of-n': " + message + r"[^\n]*$"):
        PRUNERS.get("best-of-n")(**settings)
