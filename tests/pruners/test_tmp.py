"""TMP: lands on the budget with measured (calibrated) and data-free costs; knobs do what they say."""

import pytest
from pruner_checks import generate_with, plan_and_apply

from tmpbench.catalog import PRUNERS
from tmpbench.errors import TmpbenchError
from tmpbench.pruning import Budget

FAST = {"chunks": 4, "max_calib_inputs": 1, "rescore_every": 50}


@pytest.mark.parametrize("budget", ["25%", "50%"])
def test_tmp_measured_lands_on_moe(moe, budget):
    plan, pruned = plan_and_apply(moe, "tmp", budget, **FAST)
    search = plan.settings["search"]
    assert search["evaluator"] == "masked_output_error" and search["evaluations"] > 0
    assert plan.calibration["n_inputs"] == 2
    generate_with(moe, pruned)


def test_tmp_measured_lands_on_dense(dense):
    plan, pruned = plan_and_apply(dense, "tmp", "50%", **FAST)
    assert plan.settings["search"]["evaluator"] == "masked_output_error"
    assert not {d.policy for d in plan.decisions} & {"prune_experts", "merge_experts"}
    generate_with(dense, pruned)


@pytest.mark.parametrize("budget", ["25%", "50%"])
def test_tmp_data_free_lands_on_dense(dense, budget):
    plan, _ = plan_and_apply(dense, "tmp", budget, calibration=None)
    assert plan.settings["search"]["evaluator"] == "data_free_proxy"
    assert plan.settings["search"]["unit_scorer"] == "weight_magnitude"


def test_tree_depth_1_only_touches_blocks(dense):
    # a target reachable by block policies alone: the size after dropping one block
    block = dense.tree["layers.2"]
    budget = str(dense.tree.params - block.params)
    plan, _ = plan_and_apply(dense, "tmp", budget, tree_depth=1, **FAST)
    assert plan.decisions and {d.policy for d in plan.decisions} <= {"drop_block", "linear_replace"}


def test_tree_depth_1_refuses_an_unreachable_target_in_one_line(dense):
    with pytest.raises(TmpbenchError, match=r"tree_depth=1 \(blocks only\) cannot land budget '1%'.*nearest size"):
        PRUNERS.get("tmp")(tree_depth=1).plan(dense.model, dense.tree, Budget.parse("1%"), None)


def test_policy_mix_restricts_policies(dense):
    plan, _ = plan_and_apply(dense, "tmp", "25%", calibration=None, policy_mix=["prune_heads", "prune_channels"])
    assert {d.policy for d in plan.decisions} <= {"prune_heads", "prune_channels"}
    plan, _ = plan_and_apply(dense, "tmp", "25%", calibration=None, policy_mix={"prune_channels": 1.0})
    assert {d.policy for d in plan.decisions} == {"prune_channels"}


def test_merge_experts_policy_plans_merges(moe):
    # channels (dense FFNs and routed experts) at a high prior, so the search reaches for merges
    mix = {"merge_experts": 1.0, "prune_channels": 100.0, "prune_heads": 1.0}
    plan, pruned = plan_and_apply(moe, "tmp", "25%", policy_mix=mix, **FAST)
    merges = [d for d in plan.decisions if d.policy == "merge_experts"]
    assert merges
    for d in merges:
        assert sorted(i for g in d.groups for i in g) == list(range(8)) and len(d.groups) >= 2
    generate_with(moe, pruned)


def test_policy_not_admitted_is_one_line_error(dense):
    with pytest.raises(TmpbenchError, match=r"policy 'prune_experts' is not admitted by ZImageTransformer2DModel \(a dense DiT\)"):
        PRUNERS.get("tmp")(policy_mix=["prune_experts"]).plan(dense.model, dense.tree, Budget.parse("25%"), None)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"tree_depth": 7}, r"tree_depth=7 must be 1 \(blocks\)"),
        ({"policy_mix": ["drop_blocks"]}, r"unknown policy 'drop_blocks' in policy_mix; did you mean 'drop_block'"),
        ({"policy_mix": {"prune_heads": -1}}, r"prior of 'prune_heads' in policy_mix must be a positive number"),
        ({"tree_depth": 1, "policy_mix": ["prune_heads"]}, r"no policy usable at tree_depth=1"),
        ({"chunks": 0}, r"chunks=0 must be an integer >= 1"),
        ({"width_probes": 0}, r"width_probes=0 must be an integer >= 1"),
        ({"width_savings": "exact"}, r"width_savings=.exact.; use .sum."),
        ({"timestep_weighting": "late"}, r"timestep_weighting='late'"),
        ({"depth": 2}, r"pruner 'tmp' has no setting 'depth'"),
    ],
)
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(TmpbenchError, match=message):
        PRUNERS.get("tmp")(**settings)


def test_tmp_is_deterministic(dense):
    a, _ = plan_and_apply(dense, "tmp", "25%", calibration=None)
    b, _ = plan_and_apply(dense, "tmp", "25%", calibration=None)
    a.settings["search"].pop("seconds"), b.settings["search"].pop("seconds")
    assert a.to_json() == b.to_json()


def test_tmp_plans_full_size_zimage_on_meta():
    from tmpbench.models.counting import build_meta
    from tmpbench.pruning import build_unit_tree, check_achieved

    model = build_meta("zimage")
    tree = build_unit_tree(model)
    plan = PRUNERS.get("tmp")().plan(model, tree, Budget.parse("4b"), None)
    report = check_achieved(tree.params, plan.achieved_params, Budget.parse("4b"))
    assert report.ok and abs(plan.achieved_params - 4e9) <= 0.005 * 4e9
    assert plan.settings["search"]["unit_scorer"] == "index_order (meta)"


def test_policy_mix_is_honoured_by_the_landing_step():
    """The final landing may only use policies the mix allows (it once trimmed channels for a
    depth-only mix, which made the policy-mix ablation compare mixed variants)."""
    from tmpbench.errors import TmpbenchError
    from tmpbench.loading import load_model
    from tmpbench.pruning.runner import plan_model

    model = load_model("tiny-dit").denoiser
    depth = plan_model(model, "tmp", "50%", pruner_settings={"policy_mix": ["drop_block", "linear_replace"]})
    assert {d.policy for d in depth.plan.decisions} <= {"drop_block", "linear_replace"}
    width = plan_model(model, "tmp", "25%", pruner_settings={"policy_mix": ["prune_heads", "prune_channels"]})
    assert {d.policy for d in width.plan.decisions} <= {"prune_heads", "prune_channels"}
    with pytest.raises(TmpbenchError, match=r"policy_mix \['drop_block', 'linear_replace'\] cannot land budget '25%'"):
        plan_model(model, "tmp", "25%", pruner_settings={"policy_mix": ["drop_block", "linear_replace"]})


def test_tree_depths_are_nested(dense):
    """Each tree depth offers every action of the depths above it (so a depth ablation adds one level)."""
    from pruners.allocate import Allocation
    from pruners.tmp import parse_policy_mix
    from pruners.tmp_search import DEPTH_POLICIES
    from pruners.tmp_search import FlatSearch as _Search
    from pruners.tmp_search import ProxyEvaluator as _ProxyEvaluator

    def actions(depth):
        alloc = Allocation(dense.tree, Budget.parse("50%"))
        search = _Search(alloc, _ProxyEvaluator(alloc), DEPTH_POLICIES[depth], parse_policy_mix(None), depth, 8, 8)
        return {a for a, _ in search.candidates()}

    one, two, three = actions(1), actions(2), actions(3)
    assert one and one < two < three
    assert all(a.whole for a in two - one) and any(not a.whole for a in three)
