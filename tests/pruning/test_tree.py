"""Unit tree: structure, costs that add up, policies and constraints, meta-device full size."""

from __future__ import annotations

import time

import pytest
import torch
from diffusers import ZImageTransformer2DModel

from tmpbench.models.reference.tiny_moe import TinyMoETransformer, tiny_moe_config
from tmpbench.pruning import build_unit_tree, format_tree

TINY = dict(
    all_patch_size=(2,), all_f_patch_size=(1,), in_channels=4, dim=16, n_layers=3, n_refiner_layers=1,
    n_heads=2, n_kv_heads=2, cap_feat_dim=8, axes_dims=[2, 2, 4], axes_lens=[64, 16, 16],
)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return ZImageTransformer2DModel(**TINY)


@pytest.fixture(scope="module")
def full_meta():
    with torch.device("meta"):
        model = ZImageTransformer2DModel()  # Z-Image-Turbo's defaults: 30 layers, dim 3840
    return model


def _assert_sums(tree) -> None:
    for node in tree.walk():
        if node.children:
            assert node.params == node.fixed_params + sum(c.params for c in node.children), node.path
            assert node.flops == pytest.approx(node.fixed_flops + sum(c.flops for c in node.children)), node.path
            assert node.fixed_params >= 0
        if node.level == "unit":
            assert node.params == node.count * node.unit_params


def test_full_size_zimage_on_meta_is_fast_and_exact(full_meta):
    start = time.perf_counter()
    tree = build_unit_tree(full_meta, size=1024)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"tree build took {elapsed:.2f}s"
    assert tree.params == sum(p.numel() for p in full_meta.parameters()) == 6_154_908_736
    assert [s.path for s in tree.at_level("stage")] == [
        "noise_refiner[0:2]", "context_refiner[0:2]", "layers[0:8]", "layers[8:15]", "layers[15:22]", "layers[22:30]",
    ]
    assert len(tree.at_level("block")) == 34
    _assert_sums(tree)

    attn = tree["layers.0.attention"]
    assert attn.constraints["heads"] == 30 and attn.constraints["head_dim"] == 128
    assert attn.constraints["rope_axes_dims"] == [32, 48, 48]
    assert tree["layers.0"].constraints["adaln_out"] == 4 * 3840
    assert tree["layers.0.feed_forward#channels"].count == 10240

    # FLOPs of one main block by hand: q,k,v,out projections, QK^T and AV, SwiGLU FFN, adaLN once
    t, d, h = 4096 + 128, 3840, 10240
    expected = 8 * t * d * d + 4 * t * t * d + 6 * t * d * h + 2 * 256 * 4 * d
    assert tree["layers.0"].flops == expected
    assert tree["noise_refiner.0"].flops == 8 * 4096 * d * d + 4 * 4096**2 * d + 6 * 4096 * d * h + 2 * 256 * 4 * d
    assert (tree.image_tokens, tree.caption_tokens) == (4096, 128)


def test_tiny_tree_structure_policies_and_costs(tiny):
    tree = build_unit_tree(tiny, size=32)
    assert tree.params == sum(p.numel() for p in tiny.parameters())
    _assert_sums(tree)
    # 32 px / vae 8 / patch 2 = 2x2 = 4 image tokens, padded to 32; 128 caption tokens
    assert (tree.image_tokens, tree.caption_tokens) == (32, 128)
    assert tree["layers.1"].policies == ("drop_block", "linear_replace")
    assert tree["noise_refiner.0"].policies == () and tree["context_refiner.0"].kind == "context_block"
    assert tree["noise_refiner.0.attention"].policies == ("prune_heads",)
    heads = tree["layers.0.attention#heads"]
    # one head: 8 rows of to_q, to_k, to_v (16 inputs each) and 8 columns of to_out (16 outputs)
    assert (heads.count, heads.unit_params) == (2, 4 * 8 * 16)
    channels = tree["layers.0.feed_forward#channels"]
    assert (channels.count, channels.unit_params) == (42, 3 * 16)
    assert tree["layers.0"].depth == 2 and heads.depth == 4 and heads.module_path == "layers.0.attention"


def test_min_params_counts_undroppable_parts(tiny):
    tree = build_unit_tree(tiny, size=32)
    outside_blocks = tree.root.fixed_params
    refiner_min = 0
    for path in ("noise_refiner.0", "context_refiner.0"):
        block = tree[path]
        refiner_min += block.params - (2 - 1) * tree[f"{path}.attention#heads"].unit_params - (42 - 1) * 3 * 16
    assert tree.min_params == outside_blocks + refiner_min  # main layers may all be dropped
    assert tree["layers.0"].min_params == 0


def test_moe_tree_nodes_and_constraints():
    model = TinyMoETransformer(**tiny_moe_config(n_layers=2, num_experts=4, moe_topk=2, moe_intermediate_size=6))
    tree = build_unit_tree(model, size=32, vae_factor=2)
    _assert_sums(tree)
    assert tree.params == sum(p.numel() for p in model.parameters())
    moe = tree["layers.0.feed_forward"]
    assert moe.kind == "moe" and set(moe.policies) == {"prune_experts", "merge_experts"}
    assert moe.constraints["top_k"] == 2 and moe.constraints["min_experts"] == 2
    experts = tree["layers.0.feed_forward#experts"]
    # expert: gate_and_up (128 -> 12) + down (6 -> 128); plus its router row (128)
    assert experts.count == 4 and experts.unit_params == 128 * 12 + 6 * 128 + 128
    # smallest: top-k experts of one channel each (router row + gate row + up row + down column)
    assert experts.min_params == 2 * (128 + 3 * 128)
    channels = tree["layers.0.feed_forward.experts#channels"]
    assert channels.constraints["per_expert"] and channels.count == 6
    assert channels.unit_params == 4 * 3 * 128  # one channel in each of the 4 experts
    assert experts.params == experts.fixed_params + channels.params and experts.fixed_params == 4 * 128
    assert tree.expert_channels("layers.0.feed_forward.experts") is channels
    shared = tree["layers.0.feed_forward.shared_mlp"]
    assert shared.kind == "shared_expert" and tree["layers.0.feed_forward.shared_mlp#channels"].count == 6
    # refiners keep dense FFNs
    assert tree["noise_refiner.0.feed_forward"].kind == "ffn"
    # routed compute: tokens x top_k x expert FLOPs + router; removing experts only saves router FLOPs
    t = tree.image_tokens + tree.caption_tokens
    assert moe.flops == 2 * t * 128 * 4 + t * 2 * 2 * (128 * 12 + 6 * 128)
    assert experts.unit_flops == 2 * t * 128


def test_moe_full_size_shape_on_meta_is_fast():
    """A HunyuanImage-3.0-sized MoE stack (32 layers x 64 experts, dim 4096) on meta."""
    with torch.device("meta"):
        model = TinyMoETransformer(**tiny_moe_config(
            dim=4096, n_layers=32, n_heads=32, n_kv_heads=32, axes_dims=[32, 48, 48], num_experts=64, moe_topk=8,
            moe_intermediate_size=3072, cap_feat_dim=64,
        ))
    start = time.perf_counter()
    tree = build_unit_tree(model, size=1024)
    assert time.perf_counter() - start < 10.0
    assert tree["layers.31.feed_forward#experts"].count == 64
    assert tree.params == sum(p.numel() for p in model.parameters())


def test_width_step_and_format(tiny):
    tree = build_unit_tree(tiny, size=32)
    assert tree.width_step(4) == 4 * 3 * 16  # four FFN channels are the cheapest rounded step
    text = format_tree(tree, depth=2)
    assert "layers.2" in text and "attention" not in text.split("\n", 1)[1]
    deep = format_tree(tree, depth=4)
    assert "heads x2" in deep and "channels x42" in deep and "[drop_block,linear_replace]" in deep
    assert tree.to_dict(depth=1)["root"]["children"][0].get("children") is None


def test_tree_errors(tiny):
    with pytest.raises(ValueError, match="has none of the block lists"):
        build_unit_tree(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="size 36 is not a multiple of vae_factor\\*patch = 16"):
        build_unit_tree(tiny, size=36)
    tree = build_unit_tree(tiny, size=32)
    with pytest.raises(KeyError, match="no node 'layers.0.atention'.*did you mean 'layers.0.attention'"):
        tree["layers.0.atention"]
    with pytest.raises(ValueError, match="unknown tree level 'blocks'"):
        tree.at_level("blocks")
    with pytest.raises(ValueError, match="rounding multiple must be >= 1"):
        tree.width_step(0)
