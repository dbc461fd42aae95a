"""The MoE view on the three layouts: HunyuanImage-3.0 modules, transformers HunYuanMoEV1, tiny-moe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tmpbench.errors import TmpbenchError
from tmpbench.models.hunyuan import build_hunyuan_moe_standin
from tmpbench.models.moe import (
    LAYOUT_EXPERT_MODULES,
    LAYOUT_FUSED_3D,
    MoEBlockView,
    find_moe_blocks,
    moe_config_lists,
)
from tmpbench.models.reference.tiny_moe import TinyMoEBlock, build_tiny_moe

H, W, E, K = 16, 8, 4, 2  # hidden size, expert width (intermediate size), experts, top-k


# A structural replica of HunyuanImage-3.0's modules (hunyuan_image_3/hunyuan.py): the attribute
# names and shapes the real checkpoint has, without its CUDA-only forward.
class _HunyuanMLP(nn.Module):
    def __init__(self, hidden: int, inter: int) -> None:
        super().__init__()
        self.intermediate_size = 2 * inter  # upstream stores the fused SwiGLU width
        self.gate_and_up_proj = nn.Linear(hidden, 2 * inter, bias=False)
        self.down_proj = nn.Linear(inter, hidden, bias=False)


class _HunyuanTopKGate(nn.Module):
    def __init__(self, hidden: int, experts: int, topk: int, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.moe_topk = topk
        self.wg = nn.Linear(hidden, experts, bias=False, dtype=torch.float32)


class _HunyuanMoE(nn.Module):
    def __init__(self, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.moe_topk = [K, K]  # upstream keeps the whole config list here; the gate holds the int
        self.num_experts = E
        self.shared_mlp = _HunyuanMLP(H, W)
        self.gate = _HunyuanTopKGate(H, E, K, layer_idx)
        self.experts = nn.ModuleList([_HunyuanMLP(H, W) for _ in range(E)])


class _Layer(nn.Module):
    def __init__(self, idx: int) -> None:
        super().__init__()
        self.mlp = _HunyuanMoE(idx)


class _Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([_Layer(0), _Layer(1)])


class _HunyuanImage3Replica(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = _Backbone()


def _tiny_moe(**kw):
    base = dict(dim=32, n_layers=2, n_heads=2, n_kv_heads=2, axes_dims=[4, 6, 6], num_experts=E, moe_topk=K,
                moe_intermediate_size=W, in_channels=4, cap_feat_dim=16)
    base.update(kw)
    return build_tiny_moe(seed=0, **base).eval()


def _standin():
    return build_hunyuan_moe_standin(seed=0, hidden_size=H, intermediate_size=W, num_experts=E, moe_topk=K)


def _tiny_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = [torch.randn(4, 1, 8, 8, generator=g)]
    cap = [torch.randn(5, 16, generator=g)]
    return dict(x=x, t=torch.tensor([0.4]), cap_feats=cap)


# --- discovery -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "build, layout, names",
    [
        (_HunyuanImage3Replica, LAYOUT_EXPERT_MODULES, ["model.layers.0.mlp", "model.layers.1.mlp"]),
        (_standin, LAYOUT_FUSED_3D, ["model.layers.0.mlp", "model.layers.1.mlp"]),
        (_tiny_moe, LAYOUT_EXPERT_MODULES, ["layers.0.feed_forward", "layers.1.feed_forward"]),
    ],
)
def test_find_moe_blocks_reads_every_layout(build, layout, names):
    model = build()
    blocks = find_moe_blocks(model)
    hidden = 32 if build is _tiny_moe else H
    assert [b.name for b in blocks] == names
    assert [b.layer_idx for b in blocks] == [0, 1]
    for b in blocks:
        assert b.layout == layout
        assert (b.num_experts, b.top_k, b.hidden_size, b.intermediate_size) == (E, K, hidden, W)
        assert b.router_weight.shape == (E, hidden)
        assert b.expert_gate_up(3).shape == (2 * W, hidden)
        assert b.expert_down(3).shape == (hidden, W)
        assert b.stacked_gate_up().shape == (E, 2 * W, hidden)
        assert b.stacked_down().shape == (E, hidden, W)
        assert b.expert_param_count == 3 * hidden * W
        assert b.routed_param_count == E * 3 * hidden * W
        assert b.router_param_count == E * hidden
        assert b.shared is not None and b.shared_param_count == 3 * hidden * W
        moe_params = sum(p.numel() for p in b.block.parameters())
        assert b.param_count == moe_params


def test_halves_order_follows_each_layout():
    assert find_moe_blocks(_HunyuanImage3Replica())[0].gate_up_halves == ("up", "gate")
    assert find_moe_blocks(_standin())[0].gate_up_halves == ("gate", "up")


def test_dense_model_has_no_moe_blocks_and_bad_module_is_rejected():
    assert find_moe_blocks(nn.Sequential(nn.Linear(4, 4))) == []
    with pytest.raises(TmpbenchError, match="is not an MoE block"):
        MoEBlockView("mlp", nn.Linear(4, 4))


@pytest.mark.parametrize("build", [_standin, _tiny_moe, _HunyuanImage3Replica])
def test_expert_tensors_are_views_into_the_model(build):
    model = build()
    block = find_moe_blocks(model)[0]
    with torch.no_grad():
        block.expert_gate_up(2)[0, 0] = 123.0
        block.expert_down(1)[0, 0] = -7.0
    assert float(block.stacked_gate_up().detach()[2, 0, 0]) == 123.0
    assert float(block.stacked_down().detach()[1, 0, 0]) == -7.0
    with pytest.raises(TmpbenchError, match=r"expert index 4 is out of range .* use 0\.\.3"):
        block.expert_down(4)


# --- top-k -----------------------------------------------------------------------------------
@pytest.mark.parametrize("build, attr", [(_standin, "top_k"), (_tiny_moe, "moe_topk"), (_HunyuanImage3Replica, "moe_topk")])
def test_top_k_is_settable_and_validated(build, attr):
    block = find_moe_blocks(build())[0]
    block.top_k = 1
    assert getattr(block.block.gate, attr) == 1 and block.top_k == 1
    with pytest.raises(TmpbenchError, match=r"top_k=5 is invalid .* with 4 experts; use an integer in 1\.\.4"):
        block.top_k = 5
    with pytest.raises(TmpbenchError, match="top_k=0 is invalid"):
        block.top_k = 0
    assert block.top_k == 1


# --- layout-level writes ---------------------------------------------------------------------
def _standin_logits(model):
    ids = torch.arange(12).reshape(1, 12) % 256
    with torch.no_grad():
        return model(ids).logits


def _tiny_out(model):
    with torch.no_grad():
        return model(**_tiny_inputs()).sample[0]


@pytest.mark.parametrize("build, run", [(_standin, _standin_logits), (_tiny_moe, _tiny_out)])
def test_permuting_experts_keeps_outputs(build, run):
    model = build()
    before = run(model)
    for block in find_moe_blocks(model):
        block.keep_experts([3, 1, 0, 2])
    torch.testing.assert_close(run(model), before, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("per_expert", [False, True], ids=["one-list", "per-expert-table"])
@pytest.mark.parametrize("build, run", [(_standin, _standin_logits), (_tiny_moe, _tiny_out)])
def test_permuting_intermediate_channels_keeps_outputs(build, run, per_expert):
    # per-expert table: each expert permuted differently, so every expert must be sliced by its own row
    model = build()
    before = run(model)
    gen = torch.Generator().manual_seed(1)
    for block in find_moe_blocks(model):
        if per_expert:
            block.keep_intermediate(torch.stack([torch.randperm(W, generator=gen) for _ in range(block.num_experts)]))
        else:
            block.keep_intermediate(torch.randperm(W, generator=gen))
    torch.testing.assert_close(run(model), before, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("build", [_standin, _tiny_moe, _HunyuanImage3Replica])
def test_keep_experts_slices_router_rows_and_expert_tensors(build):
    model = build()
    block = find_moe_blocks(model)[0]
    router = block.router_weight.detach().clone()
    gate_up = block.stacked_gate_up().detach().clone()
    down = block.stacked_down().detach().clone()
    block.keep_experts([0, 3])
    assert block.num_experts == 2
    assert torch.equal(block.router_weight, router[[0, 3]])
    assert torch.equal(block.expert_gate_up(1), gate_up[3])
    assert torch.equal(block.expert_down(0), down[0])
    for holder in (block.block, block.block.gate, getattr(block.block, "experts", None)):
        if isinstance(getattr(holder, "num_experts", None), int):
            assert holder.num_experts == 2


def test_pruned_models_still_run():
    standin = _standin()
    for block in find_moe_blocks(standin):
        block.keep_experts([1, 2, 3])
        block.keep_intermediate([0, 5, 6])
    assert _standin_logits(standin).shape == (1, 12, 256)
    tiny = _tiny_moe()
    for block in find_moe_blocks(tiny):
        block.top_k = 1
        block.keep_experts([2])
        block.keep_intermediate([7])
    assert _tiny_out(tiny).shape == (4, 1, 8, 8)


def test_keep_validates_indices():
    block = find_moe_blocks(_standin())[0]
    with pytest.raises(TmpbenchError, match=r"keeping 1 experts .* fewer than top_k=2"):
        block.keep_experts([0])
    with pytest.raises(TmpbenchError, match=r"expert indices .* must be in 0\.\.3; got \[0, 4\]"):
        block.keep_experts([0, 4])
    with pytest.raises(TmpbenchError, match="contain duplicates"):
        block.keep_experts([1, 1])
    with pytest.raises(TmpbenchError, match="no intermediate channel indices"):
        block.keep_intermediate([])
    assert block.num_experts == E and block.intermediate_size == W  # failed calls changed nothing


def test_pruned_tiny_moe_round_trips_through_its_config(tmp_path):
    from tmpbench.models.reference.tiny_moe import TinyMoETransformer

    model = _tiny_moe()
    blocks = find_moe_blocks(model)
    blocks[0].keep_experts([0, 1, 3])
    blocks[1].top_k = 1
    blocks[1].keep_experts([2])
    blocks[1].keep_intermediate([0, 1, 2, 3, 4])
    with torch.no_grad():  # shrink layer 0's shared expert on its own: width 8 -> 3
        shared = blocks[0].shared
        shared.gate_and_up_proj.weight = nn.Parameter(shared.gate_and_up_proj.weight[[0, 1, 2, 8, 9, 10]].clone())
        shared.down_proj.weight = nn.Parameter(shared.down_proj.weight[:, :3].clone())
    lists = moe_config_lists(blocks)
    assert lists == {
        "num_experts": [3, 1],
        "moe_topk": [2, 1],
        "moe_intermediate_size": [W, 5],
        "shared_intermediate_size": [3, W],
    }
    model.register_to_config(**lists)
    model.save_pretrained(tmp_path)
    loaded = TinyMoETransformer.from_pretrained(tmp_path).eval()
    assert isinstance(loaded.layers[1].feed_forward, TinyMoEBlock)
    torch.testing.assert_close(_tiny_out(loaded), _tiny_out(model), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("build", [_standin, _tiny_moe, _HunyuanImage3Replica])
def test_per_expert_channels_slice_each_expert_by_its_own_row(build):
    model = build()
    block = find_moe_blocks(model)[0]
    gate_up = block.stacked_gate_up().detach().clone()
    down = block.stacked_down().detach().clone()
    width = block.intermediate_size
    table = [[e % width, (e + 1) % width] for e in range(block.num_experts)]
    block.keep_intermediate(table)
    assert block.intermediate_size == 2
    for e, (a, b) in enumerate(table):
        assert torch.equal(block.expert_gate_up(e), gate_up[e][[a, b, a + width, b + width]])
        assert torch.equal(block.expert_down(e), down[e][:, [a, b]])
    with pytest.raises(TmpbenchError, match="one per expert"):
        block.keep_intermediate([[0]] * (block.num_experts + 1))
