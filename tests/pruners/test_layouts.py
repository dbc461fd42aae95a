"""Every layout gets TMP's measured search, the weight scorers and the same predicted = measured check.

The HunyuanImage-3.0 decoder layout is exercised on the seeded HunYuanMoEV1 stand-in with a synthetic
calibration (token ids; the stand-in has no image pipeline). Its masks sit where the layout says
(``o_proj`` per KV group, ``down_proj`` per channel, ``gate.wg`` per expert), and the physically
pruned decoder gives the error the search predicted.
"""

import pytest
import torch
from torch import nn

from pruners.importance import weight_magnitude
from tmpbench.catalog import PRUNERS
from tmpbench.errors import TmpbenchError
from tmpbench.models.hunyuan import build_hunyuan_moe_standin
from tmpbench.pruning import Budget
from tmpbench.pruning.calibration import Calibration, fit_linear_maps
from tmpbench.pruning.families import apply, layout, unit_tree
from tmpbench.pruning.layouts import HUNYUAN_DECODER, ZIMAGE_DIT
from tmpbench.pruning.runner import check_prediction

FAST = {"chunks": 4, "max_calib_inputs": 3}
MERGE_MIX = {"policy_mix": {"merge_experts": 1.0, "prune_channels": 10.0, "prune_heads": 1.0}, "search": "flat"}
TREE_MERGE = {"policy_mix": ["merge_experts", "prune_heads"]}  # the tree search, merges as its expert policy


@pytest.fixture(scope="module")
def hy():
    model = build_hunyuan_moe_standin()
    gen = torch.Generator().manual_seed(0)
    inputs = [((), {"input_ids": torch.randint(0, 256, (1, 12), generator=gen)}) for _ in range(3)]
    return model, unit_tree(model), Calibration({"kind": "synthetic token ids", "n_inputs": 3}, inputs, [float("nan")] * 3)


def plan_prune_check(model, tree, calib, budget, **settings):
    plan = PRUNERS.get("tmp")(**FAST, **settings).plan(model, tree, Budget.parse(budget), calib)
    pruned = apply(model, plan, linear_maps=fit_linear_maps(model, plan, calib))
    check_prediction(plan, model, pruned, calib)
    return plan, pruned


def test_layouts_are_picked_by_structure(hy, dense):
    assert layout(hy[0]) is HUNYUAN_DECODER and layout(dense.model) is ZIMAGE_DIT
    with pytest.raises(TmpbenchError, match=r"Linear has no known layout .*one new file in tmpbench/pruning/layouts/"):
        layout(nn.Linear(2, 2))


@pytest.mark.parametrize("budget, settings", [("20%", {}), ("30%", {}), ("30%", MERGE_MIX), ("20%", TREE_MERGE)])
def test_measured_tmp_on_the_decoder_layout(hy, budget, settings):
    model, tree, calib = hy
    plan, pruned = plan_prune_check(model, tree, calib, budget, **settings)
    search = plan.settings["search"]
    assert search["evaluator"] == "masked_output_error" and search["unit_scorer"] == "activation+reap"
    assert abs(plan.achieved_params - Budget.parse(budget).target(tree.params)) <= 0.005 * Budget.parse(budget).target(tree.params)
    assert sum(p.numel() for p in pruned.parameters()) == plan.achieved_params
    assert search["prediction_gap"] <= 0.01, (search["predicted_error"], search["measured_error"])
    if settings:
        assert "merge_experts" in {d.policy for d in plan.decisions}


def test_block_drop_on_the_decoder_layout(hy):
    model, tree, calib = hy
    budget = str(tree.params - tree["model.layers.1"].params)
    plan, _ = plan_prune_check(model, tree, calib, budget, tree_depth=1)
    assert {d.policy for d in plan.decisions} <= {"drop_block", "linear_replace"} and plan.decisions
    assert plan.settings["search"]["prediction_gap"] <= 0.01


def test_weight_scores_read_the_layout(hy):
    """A KV group's weight norm covers its query heads' q rows, its k and v rows and its o_proj columns."""
    model, tree, _ = hy
    scores = weight_magnitude(model, tree)
    attn = model.model.layers[0].self_attn
    heads, kv, hd = 4, 2, 8
    group = heads // kv
    want = []
    for g in range(kv):
        q = attn.q_proj.weight[g * group * hd:(g + 1) * group * hd]
        k, v = attn.k_proj.weight[g * hd:(g + 1) * hd], attn.v_proj.weight[g * hd:(g + 1) * hd]
        o = attn.o_proj.weight[:, g * group * hd:(g + 1) * group * hd]
        want.append(sum(float((t.detach().float() ** 2).sum()) for t in (q, k, v, o)) ** 0.5)
    assert scores["model.layers.0.self_attn#heads"].tolist() == pytest.approx(want, rel=1e-5)
    plan = PRUNERS.get("magnitude")().plan(model, tree, Budget.parse("20%"), None)
    # a data-free pruner plans the loaded decoder from those weight norms, and lands
    assert plan.settings["scorer"] == "weight_magnitude" and plan.decisions
    assert abs(plan.settings["allocation"]["relative_error"]) <= 0.005


@pytest.mark.parametrize("name", [n for n in PRUNERS.names() if n != "taylor"])
@pytest.mark.parametrize("budget", ["20%", "30%"])
def test_every_pruner_plans_and_cuts_the_decoder(hy, name, budget):
    """Calibrated where the pruner uses data; the cut decoder runs and lands on the budget."""
    model, tree, calib = hy
    plan = PRUNERS.get(name)().plan(model, tree, Budget.parse(budget), calib)
    pruned = apply(model, plan, linear_maps=fit_linear_maps(model, plan, calib))
    target = Budget.parse(budget).target(tree.params)
    assert abs(sum(p.numel() for p in pruned.parameters()) - target) <= 0.005 * target
    assert torch.isfinite(pruned(**calib.inputs[0][1]).logits).all()


def test_taylor_on_the_decoder_says_what_to_use(hy):
    """Taylor's first-order score needs the diffusion loss of a Z-Image call; on a decoder it says so in one line."""
    model, tree, calib = hy
    why = r"^taylor's flow-matching loss needs the noisy latents and timestep an image pipeline .*no loss to differentiate"
    with pytest.raises(TmpbenchError, match=why + r": use the taylor pruner with method='activation' for this model$"):
        PRUNERS.get("taylor")().plan(model, tree, Budget.parse("20%"), calib)
