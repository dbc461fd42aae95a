"""The baselines score what they say they score: checked against values computed by hand.

* expert pruners close their gap with a width trim in weight-norm order (heads and each routed
  expert's own channels), not index order;
* taylor's default is Molchanov et al.'s group score ``(sum_{w in unit} w * g)^2`` with ``g`` the
  loss gradient summed over the calibration set; ``taylor-abs`` is ``sum_calls sum_w |w * g_call|``;
* random prunes the magnitude baseline's unit kinds (heads, channels) unless told otherwise.
"""

import copy

import pytest
import torch
from pruner_checks import plan_and_apply

from pruners.importance import flow_matching_loss, taylor_importance
from tmpbench.pruning import build_unit_tree

HEAD_LEVELS = [0.02, 0.03, 0.01, 0.04]  # head h's every weight: norm order 2 < 0 < 1 < 3


def channel_level(e: int, c: int) -> float:
    """Routed expert ``e``'s channel ``c`` weight level: a different permutation of 1..128 per expert."""
    return 1e-3 * (1 + (5 * c + 16 * e + 7) % 128)


class Shaped:
    """The MoE case with layer 0's heads and routed-expert channels set to constant levels."""

    def __init__(self, case):
        self.gen, self.calib = case.gen, case.calib
        self.model = copy.deepcopy(case.model)
        block = self.model.layers[0]
        attn, moe = block.attention, block.feed_forward
        hd = attn.to_q.out_features // len(HEAD_LEVELS)
        with torch.no_grad():
            for h, level in enumerate(HEAD_LEVELS):
                for lin in (attn.to_q, attn.to_k, attn.to_v):
                    lin.weight[h * hd:(h + 1) * hd] = level
                attn.to_out[0].weight[:, h * hd:(h + 1) * hd] = level
            width = moe.experts[0].down_proj.in_features
            for e, expert in enumerate(moe.experts):
                for c in range(width):
                    expert.gate_and_up_proj.weight[[c, width + c]] = channel_level(e, c)
                    expert.down_proj.weight[:, c] = channel_level(e, c)
        self.tree = build_unit_tree(self.model, size=32)


@pytest.mark.parametrize("pruner", ["expert-frequency", "reap"])
def test_expert_pruners_trim_widths_by_weight_norm(moe, pruner):
    case = Shaped(moe)
    plan, _ = plan_and_apply(case, pruner, "50%")  # experts alone stop at top-k: the trim closes the gap
    assert plan.settings["width_trim"] is True and plan.settings["trim_scorer"] == "weight_magnitude"
    by_path = {d.path: d for d in plan.decisions}
    # one head of four goes: the smallest is head 2 (index order would have removed head 0)
    assert by_path["layers.0.attention"].keep == [0, 1, 3]
    # routed experts: each expert keeps its own largest channels, by the levels set above
    d = by_path["layers.0.feed_forward.experts"]
    width = 128
    kept = len(d.keep) // 8
    assert 0 < kept < width
    for e in range(8):
        expected = sorted(c for c in range(width) if (5 * c + 16 * e + 7) % 128 >= 128 - kept)
        assert [i % width for i in d.keep if i // width == e] == expected, e


LAYER1 = ["feed_forward.w1", "feed_forward.w2", "feed_forward.w3", "attention.to_q", "attention.to_k",
          "attention.to_v", "attention.to_out.0"]


def _layer1_weights(model):
    return [model.layers[1].get_submodule(name).weight for name in LAYER1]


def _unit_sums(terms):
    """Layer 1's per-unit sums of elementwise ``terms`` (one tensor per weight of LAYER1), by hand:
    FFN channel c owns w1 row c, w3 row c and w2 column c; head h owns rows h*hd..(h+1)*hd of
    to_q/to_k/to_v and the same columns of to_out[0]."""
    w1, w2, w3, q, k, v, o = terms
    channels = w1.sum(1) + w3.sum(1) + w2.sum(0)
    heads = (q.sum(1) + k.sum(1) + v.sum(1) + o.sum(0)).reshape(4, -1).sum(1)
    return channels.detach(), heads.detach()


def test_taylor_default_is_the_squared_sum_of_first_order_terms(dense):
    model, calib = dense.model, dense.calib
    assert len(calib) >= 2  # the gradient is summed across calls before the square
    gen = torch.Generator().manual_seed(0)
    total = sum(flow_matching_loss(model, calib, i, gen) for i in range(len(calib)))
    weights = _layer1_weights(model)
    grads = torch.autograd.grad(total, weights)
    channels, heads = _unit_sums([w * g for w, g in zip(weights, grads)])

    scores = taylor_importance(model, dense.tree, calib, seed=0)
    torch.testing.assert_close(scores["layers.1.feed_forward#channels"], channels.pow(2), rtol=1e-4, atol=1e-12)
    torch.testing.assert_close(scores["layers.1.attention#heads"], heads.pow(2), rtol=1e-4, atol=1e-12)


def test_taylor_abs_variant_sums_absolute_terms_per_weight_and_call(dense):
    model, calib = dense.model, dense.calib
    gen = torch.Generator().manual_seed(0)
    weights = _layer1_weights(model)
    channels = heads = 0
    for i in range(len(calib)):
        grads = torch.autograd.grad(flow_matching_loss(model, calib, i, gen), weights)
        c, h = _unit_sums([(w * g).abs() for w, g in zip(weights, grads)])
        channels, heads = channels + c, heads + h

    scores = taylor_importance(model, dense.tree, calib, seed=0, score="abs_sum")
    torch.testing.assert_close(scores["layers.1.feed_forward#channels"], channels, rtol=1e-4, atol=1e-12)
    torch.testing.assert_close(scores["layers.1.attention#heads"], heads, rtol=1e-4, atol=1e-12)


def test_taylor_records_its_variant(dense):
    default, _ = plan_and_apply(dense, "taylor", "25%")
    variant, _ = plan_and_apply(dense, "taylor", "25%", method="taylor-abs")
    assert (default.settings["method"], default.settings["scorer"]) == ("taylor", "taylor_squared_sum")
    assert (variant.settings["method"], variant.settings["scorer"]) == ("taylor-abs", "taylor_abs_sum")
    assert default.decisions != variant.decisions  # the two scores rank units differently here


def test_random_prunes_magnitudes_kinds_by_default(moe):
    plan, _ = plan_and_apply(moe, "random", "25%")
    assert plan.settings["kinds"] == ["heads", "channels"]
    assert not [d for d in plan.decisions if d.policy == "prune_experts"]
    magnitude, _ = plan_and_apply(moe, "magnitude", "25%")
    assert {d.path for d in plan.decisions} == {d.path for d in magnitude.decisions}
    wider, _ = plan_and_apply(moe, "random", "25%", kinds=["heads", "channels", "experts"])
    assert [d for d in wider.decisions if d.policy == "prune_experts"]
