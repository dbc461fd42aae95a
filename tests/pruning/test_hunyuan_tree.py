"""HunyuanImage-3.0 unit tree and surgery: GQA kept as whole KV groups, MoE layouts, full size on meta."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tmpbench.errors import TmpbenchError
from tmpbench.models.hunyuan import build_hunyuan_moe_standin, build_hunyuanimage3_meta
from tmpbench.pruning.hunyuan_tree import (
    apply_hunyuan_plan,
    build_hunyuan_tree,
    masked_reference_groups,
    prune_kv_groups,
)
from tmpbench.pruning.plan import Decision, Plan, validate_plan


def plan_of(model, *decisions):
    return Plan(model={"class": type(model).__name__}, budget={}, pruner="hand", decisions=list(decisions))


def test_tree_of_standin_accounts_every_parameter():
    model = build_hunyuan_moe_standin()
    tree = build_hunyuan_tree(model, size=64)
    assert tree.params == sum(p.numel() for p in model.parameters())
    for node in tree.walk():
        if node.children:
            assert node.params == node.fixed_params + sum(c.params for c in node.children)
    heads = tree["model.layers.0.self_attn#heads"]
    assert (heads.count, heads.constraints["group_size"], heads.constraints["unit"]) == (2, 2, "kv_group")
    assert tree["model.layers.0.mlp"].constraints["layout"] == "fused-3d"
    assert tree["model.layers.0.mlp.shared_mlp"].kind == "shared_expert"


def test_full_size_meta_tree():
    tree = build_hunyuan_tree(build_hunyuanimage3_meta())
    assert round(tree.params / 1e9, 2) == 80.96
    heads = tree["model.layers.31.self_attn#heads"]
    assert (heads.count, heads.constraints["group_size"]) == (8, 4)
    assert tree["model.layers.0.mlp"].constraints["experts"] == 64
    assert tree.min_params < 2e10


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), keep_mask=st.integers(1, 3), layer=st.integers(0, 1))
def test_kv_group_surgery_equals_masked_reference(seed, keep_mask, layer):
    model = build_hunyuan_moe_standin(seed=seed)
    keep = [g for g in range(2) if keep_mask >> g & 1]
    masked = copy.deepcopy(model)
    masked_reference_groups(masked.model.layers[layer].self_attn, keep)
    pruned = apply_hunyuan_plan(model, plan_of(model, Decision(f"model.layers.{layer}.self_attn", "prune_heads", keep=keep)))
    ids = torch.randint(0, 256, (1, 6), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        assert torch.allclose(pruned(ids).logits, masked(ids).logits, atol=1e-5, rtol=1e-5)


class FusedGQA(nn.Module):
    """The official HunyuanImage-3.0 fused-qkv row layout, [q x group, k, v] per KV head (no RoPE/norms)."""

    def __init__(self, hidden=16, heads=4, kv=2, head_dim=4):
        super().__init__()
        self.head_dim, self.num_heads, self.num_key_value_heads = head_dim, heads, kv
        self.num_key_value_groups = heads // kv
        self.qkv_proj = nn.Linear(hidden, (heads + 2 * kv) * head_dim, bias=False)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=False)

    def forward(self, x):
        b, n, _ = x.shape
        kv = self.qkv_proj.out_features // self.head_dim // (self.num_key_value_groups + 2)
        qkv = self.qkv_proj(x).reshape(b, n, kv, self.num_key_value_groups + 2, self.head_dim)
        q, k, v = torch.split(qkv, [self.num_key_value_groups, 1, 1], dim=3)
        q = q.reshape(b, n, -1, self.head_dim).transpose(1, 2)
        k = k.reshape(b, n, kv, self.head_dim).transpose(1, 2).repeat_interleave(self.num_key_value_groups, 1)
        v = v.reshape(b, n, kv, self.head_dim).transpose(1, 2).repeat_interleave(self.num_key_value_groups, 1)
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, -1))


def test_fused_qkv_layout_keeps_whole_groups():
    torch.manual_seed(0)
    attn = FusedGQA().double()
    masked = copy.deepcopy(attn)
    masked_reference_groups(masked, [1])
    x = torch.randn(2, 5, 16, dtype=torch.double)
    pruned = prune_kv_groups(copy.deepcopy(attn), [1])
    assert pruned.qkv_proj.out_features == 4 * 4 and pruned.num_heads == 2 and pruned.num_key_value_heads == 1
    assert torch.allclose(pruned(x), masked(x), atol=1e-10)


def test_plans_are_checked():
    model = build_hunyuan_moe_standin()
    tree = build_hunyuan_tree(model)
    with pytest.raises(TmpbenchError, match="out of range for 2 units"):
        validate_plan(plan_of(model, Decision("model.layers.0.self_attn", "prune_heads", keep=[0, 2])), tree)
    with pytest.raises(TmpbenchError, match="top_k is 2"):
        validate_plan(plan_of(model, Decision("model.layers.0.mlp", "prune_experts", keep=[1])), tree)
    with pytest.raises(TmpbenchError, match="not admitted"):
        validate_plan(plan_of(model, Decision("model.layers.0.self_attn", "prune_channels", keep=[0])), tree)
    pruned = apply_hunyuan_plan(model, plan_of(model, Decision("model.layers.0", "drop_block"),
                                               Decision("model.layers.1.mlp", "merge_experts", groups=[[0, 1], [2, 3]])))
    assert pruned.config.num_hidden_layers == 1 and model.config.num_hidden_layers == 2
    assert pruned.model.layers[0].mlp.gate.wg.bias is not None
    assert [layer.self_attn.layer_idx for layer in pruned.model.layers] == [0]
    assert pruned(torch.randint(0, 256, (1, 4))).logits.shape == (1, 4, 256)
