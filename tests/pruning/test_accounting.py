"""The one size arithmetic: a Plan's planned size, the Allocation's running size and the cut model's
count agree exactly, in parameters and FLOPs, for every policy (dense and MoE)."""

from __future__ import annotations

import pytest
import torch
from tiny_generators import tiny_generator

from pruners.allocate import Allocation
from tmpbench.catalog import PRUNERS
from tmpbench.pruning.accounting import (
    block_saving,
    count_params,
    linear_map_flops,
    linear_map_params,
    measured_size,
    merge_bias_params,
    planned_size,
    unit_saving,
)
from tmpbench.pruning.budget import Budget
from tmpbench.pruning.families import apply, unit_tree
from tmpbench.pruning.plan import Decision, Plan


@pytest.fixture(scope="module")
def dense():
    return tiny_generator().denoiser


@pytest.fixture(scope="module")
def moe():
    return tiny_generator(moe=True).denoiser


def hand_plan(tree, *decisions) -> Plan:
    return Plan(model={"class": tree.model_class}, budget={}, pruner="hand", decisions=list(decisions))


def assert_exact(model, plan, maps=None):
    """planned_size == what surgery leaves, in parameters and in FLOPs."""
    tree = unit_tree(model)
    pruned = apply(model, plan, linear_maps=maps)
    assert planned_size(tree, plan) == count_params(pruned) == measured_size(pruned, "params", None)
    assert planned_size(tree, plan, "flops") == unit_tree(pruned).flops == measured_size(pruned, "flops", None)
    return pruned


def test_primitives():
    assert linear_map_params(32) == 32 * 32 + 32 and linear_map_flops(32, 10) == 2.0 * 10 * 32 * 32
    assert block_saving("params", "drop_block", params=500, flops=9.0, dim=32, tokens=10) == 500.0
    assert block_saving("flops", "linear_replace", params=5000, flops=1e6, dim=32, tokens=10) == 1e6 - 20480.0
    assert block_saving("params", None, params=500, flops=9.0, dim=32, tokens=10) == 0.0
    assert unit_saving("params", 3, unit_params=40, unit_flops=7.0) == 120.0
    assert unit_saving("flops", 3, unit_params=40, unit_flops=7.0, experts=4, kept_experts=1) == 21.0
    # routed-expert channels: 3 channels x (40 // 4 per expert) x 2 experts left
    assert unit_saving("params", 3, unit_params=40, unit_flops=7.0, experts=4, kept_experts=2) == 60.0
    assert merge_bias_params(3, router_bias=False) == 3
    assert merge_bias_params(3, router_bias=True) == merge_bias_params(3, False, "max") == 0


def test_dense_policies_are_exact(dense):
    tree = unit_tree(dense)
    assert_exact(dense, hand_plan(tree, Decision("layers.1.attention", "prune_heads", keep=[1]),
                                  Decision("noise_refiner.0.feed_forward", "prune_channels", keep=list(range(0, 85, 2)))))
    assert_exact(dense, hand_plan(tree, Decision("layers.1", "drop_block"), Decision("layers.0.attention", "prune_heads", keep=[0])))


LINEAR = {"layers.0": (torch.eye(32) * 0.5, torch.zeros(32))}


def test_linear_replace_params_are_exact(dense):
    tree = unit_tree(dense)
    plan = hand_plan(tree, Decision("layers.0", "linear_replace", linear={"fit": "hand"}),
                     Decision("layers.1.feed_forward", "prune_channels", keep=[1, 5, 7, 30]))
    assert planned_size(tree, plan) == count_params(apply(dense, plan, linear_maps=LINEAR))


def test_linear_replace_flops_are_exact(dense):
    tree = unit_tree(dense)
    plan = hand_plan(tree, Decision("layers.0", "linear_replace", linear={"fit": "hand"}))
    assert planned_size(tree, plan, "flops") == measured_size(apply(dense, plan, linear_maps=LINEAR), "flops", None)


def test_moe_policies_are_exact(moe):
    tree = unit_tree(moe)
    channels = [e * 16 + c for e in range(4) for c in sorted({(3 * e + 5 * k) % 16 for k in range(5)})]
    assert_exact(moe, hand_plan(tree,
                                Decision("layers.0.feed_forward", "prune_experts", keep=[0, 2, 3]),
                                Decision("layers.0.feed_forward.experts", "prune_channels", keep=channels),
                                Decision("layers.1.feed_forward", "merge_experts", groups=[[0, 3], [1], [2]]),
                                Decision("layers.1.feed_forward.shared_mlp", "prune_channels", keep=[0, 2, 4, 6])))


def test_a_router_with_a_bias_gains_none_from_a_merge(moe):
    """An "lse" merge adds a router bias only where there is none: merge a model twice and the
    second merge's plan counts no new bias (the tree records router_bias)."""
    once = apply(moe, hand_plan(unit_tree(moe), Decision("layers.1.feed_forward", "merge_experts", groups=[[0, 3], [1], [2]])))
    tree = unit_tree(once)
    assert tree["layers.1.feed_forward"].constraints["router_bias"] is True
    assert tree["layers.0.feed_forward"].constraints["router_bias"] is False
    assert_exact(once, hand_plan(tree, Decision("layers.1.feed_forward", "merge_experts", groups=[[0, 2], [1]]),
                                 Decision("layers.0.feed_forward", "merge_experts", groups=[[0], [1, 2, 3]])))


@pytest.mark.parametrize("pruner, budget", [("random", "8%"), ("magnitude", "5%"), ("late-drop", "10%"), ("tmp", "10%")])
@pytest.mark.parametrize("which", ["dense", "moe"])
def test_allocation_and_planned_size_agree_on_real_plans(request, which, pruner, budget):
    """What a strategy's Allocation counted (plan.achieved_params) is what planned_size counts and
    what surgery leaves."""
    model = request.getfixturevalue(which)
    tree = unit_tree(model)
    plan = PRUNERS.get(pruner)(seed=0).plan(model, tree, Budget.parse(budget), None)
    assert plan.achieved_params == planned_size(tree, plan)
    assert plan.achieved_flops == planned_size(tree, plan, "flops")
    # a data-free plan may map a block linearly; any fitted map has the same size (identity here)
    maps = {d.path: (torch.eye(tree[d.path].constraints["dim"]), torch.zeros(tree[d.path].constraints["dim"]))
            for d in plan.decisions if d.policy == "linear_replace"}
    assert_exact(model, plan, maps or None)


def test_allocation_counts_linked_experts_and_channels_exactly(moe):
    """Experts and their routed-expert channels of one MoE: the Allocation's incremental deltas add
    up to the same size planned_size and surgery give, whichever order the edits come in."""
    tree = unit_tree(moe)
    alloc = Allocation(tree, Budget.parse("10%"))
    experts, channels = alloc.groups["layers.0.feed_forward#experts"], alloc.groups["layers.0.feed_forward.experts#channels"]
    size = alloc.size()
    for group, n in ((channels, 5), (experts, 1), (channels, 3), (experts, 1)):
        delta = group.delta(n)
        group.removed += n
        size -= delta
        assert alloc.size() == size
    plan = alloc.to_plan(moe, "hand", {})
    assert alloc.size() == plan.achieved_params == planned_size(tree, plan)
    assert alloc.size("flops") == planned_size(tree, plan, "flops")
    assert_exact(moe, plan)
    # merging instead of pruning: the merged router's bias is counted; merged experts keep their width
    # (a merge averages channel j of its members), so the channels of that MoE are locked
    channels.removed, experts.removed, experts.merge = 0, 2, True
    assert channels.merge_locked and channels.step_down() is None
    plan = alloc.to_plan(moe, "hand", {})
    assert alloc.size() == plan.achieved_params == planned_size(tree, plan)
    assert_exact(moe, plan)
