"""Per-family dispatch: each layout gets its own tree builder and surgery; apply leaves the model whole."""

from __future__ import annotations

import pytest
from tiny_generators import tiny_generator

from tmpbench.models.hunyuan import build_hunyuan_moe_standin
from tmpbench.pruning.families import apply, layout_of, model_family, unit_tree
from tmpbench.pruning.plan import Decision, Plan


@pytest.fixture(scope="module")
def dense():
    return tiny_generator().denoiser


def test_each_layout_gets_its_tree_and_surgery(dense):
    hunyuan = build_hunyuan_moe_standin()
    assert (layout_of(dense), layout_of(hunyuan)) == ("zimage-dit", "hunyuan-decoder")
    assert "layers.1" in {n.path for n in unit_tree(dense).at_level("block")}
    assert "model.layers.1" in {n.path for n in unit_tree(hunyuan).at_level("block")}
    plan = Plan(model={"class": "HunYuanMoEV1ForCausalLM"}, budget={}, pruner="hand", decisions=[Decision("model.layers.1", "drop_block")])
    pruned = apply(hunyuan, plan)
    assert len(pruned.model.layers) == 1 and pruned.config.num_hidden_layers == 1 and len(hunyuan.model.layers) == 2


def test_unit_tree_counts_flops_at_the_size_asked(dense):
    assert unit_tree(dense, size=32).size == 32 and unit_tree(dense).size == 1024
    assert unit_tree(dense, size=32).flops < unit_tree(dense, size=256).flops


def test_model_family(dense):
    assert model_family(dense) == "dit"
    assert model_family(tiny_generator(moe=True).denoiser) == "moe"
    assert model_family(build_hunyuan_moe_standin()) == "moe"


def test_apply_survives_tensors_cached_with_grad(dense):
    weight = dense.layers[0].attention.to_q.weight
    dense.layers[0].cached_loss = (weight * 2).sum()  # as an MoE block's aux_loss after a Taylor scorer
    plan = Plan(model={"class": "ZImageTransformer2DModel"}, budget={}, pruner="hand",
                decisions=[Decision("layers.1", "drop_block")])
    try:
        pruned = apply(dense, plan)
        assert pruned.layers[0].cached_loss.grad_fn is None
        assert len(pruned.layers) == 1 and len(dense.layers) == 2
    finally:
        del dense.layers[0].cached_loss
