"""The Flux layout (FluxTransformer2DModel): tree, surgery == masks, save/reload, TMP's prediction, refusals.

A tiny seeded FluxTransformer2DModel (2 double-stream + 2 single-stream blocks, 4 heads of 16) is built in
code. Surgery is checked against :func:`pruners.importance.apply_masks` (the masks TMP measures with), in
float64, for data-free plans of two pruners at 25% and 50% and for a hand plan that touches every kind of
unit and drops a block of each list.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import FluxTransformer2DModel

from pruners.importance import apply_masks
from tmpbench.catalog import PRUNERS
from tmpbench.errors import TmpbenchError
from tmpbench.models.flux import FLUX_SCHNELL_TRANSFORMER_CONFIG
from tmpbench.pruning import Budget
from tmpbench.pruning.calibration import Calibration
from tmpbench.pruning.families import apply, layout, unit_tree
from tmpbench.pruning.io import load_denoiser, save_denoiser
from tmpbench.pruning.layouts import FLUX_MMDIT
from tmpbench.pruning.plan import Decision, Plan, model_identity
from tmpbench.pruning.runner import base_config, check_prediction

ATOL = 1e-9  # float64: a pruned matmul adds fewer terms, nothing else differs
TINY = dict(num_layers=2, num_single_layers=2, attention_head_dim=16, num_attention_heads=4, joint_attention_dim=32,
            pooled_projection_dim=32, in_channels=16, axes_dims_rope=(4, 6, 6))


def tiny_flux(seed: int = 0, dtype=torch.float64) -> FluxTransformer2DModel:
    torch.manual_seed(seed)
    model = FluxTransformer2DModel(**TINY)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # diffusers zero-inits nothing here, but make every weight clearly non-trivial
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.to(dtype).eval()


def flux_inputs(seed: int, dtype=torch.float64, side: int = 4, text: int = 6) -> dict:
    g = torch.Generator().manual_seed(100 + seed)
    img_ids = torch.stack(torch.meshgrid(torch.zeros(1), torch.arange(float(side)), torch.arange(float(side)), indexing="ij"), -1)
    return dict(
        hidden_states=torch.randn(1, side * side, 16, generator=g, dtype=dtype),
        encoder_hidden_states=torch.randn(1, text, 32, generator=g, dtype=dtype),
        pooled_projections=torch.randn(1, 32, generator=g, dtype=dtype),
        timestep=torch.rand(1, generator=g, dtype=dtype),
        img_ids=img_ids.reshape(-1, 3).to(dtype),
        txt_ids=torch.zeros(text, 3, dtype=dtype),
    )


def run(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).sample


def masks_of(plan: Plan, tree) -> dict:
    keep = {d.path: (tree[d.path].children[0].kind, d.keep, tree[d.path].children[0].count)
            for d in plan.decisions if d.keep is not None}
    blocks = {d.path: d.policy for d in plan.decisions if d.policy == "drop_block"}
    return {"keep": keep, "blocks": blocks}


@pytest.fixture(scope="module")
def flux():
    model = tiny_flux()
    return model, unit_tree(model, size=64)


def test_the_tree_counts_every_parameter(flux):
    model, tree = flux
    assert layout(model) is FLUX_MMDIT
    assert tree.params == sum(p.numel() for p in model.parameters())
    for node in (n for n in tree.walk() if n.level != "unit"):
        assert node.params == node.fixed_params + sum(c.params for c in node.children), node.path
    kinds = {n.path: n.kind for n in tree.walk() if n.level == "component"}
    assert kinds == {"transformer_blocks.0.attn": "attention", "transformer_blocks.0.ff": "ffn",
                     "transformer_blocks.0.ff_context": "ffn", "transformer_blocks.1.attn": "attention",
                     "transformer_blocks.1.ff": "ffn", "transformer_blocks.1.ff_context": "ffn",
                     "single_transformer_blocks.0.attn": "attention", "single_transformer_blocks.0.proj_mlp": "ffn",
                     "single_transformer_blocks.1.attn": "attention", "single_transformer_blocks.1.proj_mlp": "ffn"}
    # a single-stream head owns 3 q/k/v row blocks (with bias) and 16 columns of proj_out; an MLP channel a
    # proj_mlp row (with bias) and one proj_out column
    assert tree["single_transformer_blocks.0.attn#heads"].unit_params == 3 * 16 * 65 + 16 * 64
    assert tree["single_transformer_blocks.0.proj_mlp#channels"].unit_params == 65 + 64
    assert {n.policies for n in tree.at_level("block")} == {("drop_block",)}


def test_the_full_size_tree_on_meta_matches_the_registered_size():
    with torch.device("meta"):
        model = FluxTransformer2DModel(**FLUX_SCHNELL_TRANSFORMER_CONFIG)
    tree = unit_tree(model)
    assert tree.params == 11_891_178_560 and tree.image_tokens == 4096 and tree.caption_tokens == 256
    assert len(tree.at_level("stage")) == 4 and len(tree.at_level("block")) == 19 + 38


@pytest.mark.parametrize("pruner", ["magnitude", "random"])
@pytest.mark.parametrize("budget", ["25%", "50%"])
def test_surgery_equals_the_masks(flux, pruner, budget):
    model, tree = flux
    plan = PRUNERS.get(pruner)().plan(model, tree, Budget.parse(budget), None)
    assert {d.policy for d in plan.decisions} == {"prune_heads", "prune_channels"}
    pruned = apply(model, plan)
    assert sum(p.numel() for p in pruned.parameters()) == plan.achieved_params
    target = Budget.parse(budget).target(tree.params)
    assert abs(plan.achieved_params - target) <= 0.005 * target
    for seed in range(2):
        inputs = flux_inputs(seed)
        with apply_masks(model, **masks_of(plan, tree)):
            masked = run(model, inputs)
        cut = run(pruned, inputs)
        assert (cut - masked).abs().max().item() < ATOL
        assert (cut - run(model, inputs)).abs().max().item() > 1e-3  # the cut did change the output


def hand_plan(model) -> Plan:
    return Plan(model=model_identity(model, "tiny-flux"), budget=Budget.parse("30%").to_dict(), pruner="hand", decisions=[
        Decision("transformer_blocks.0", "drop_block"),
        Decision("transformer_blocks.1.attn", "prune_heads", keep=[1, 3]),
        Decision("transformer_blocks.1.ff", "prune_channels", keep=list(range(0, 256, 3))),
        Decision("transformer_blocks.1.ff_context", "prune_channels", keep=[5, 9, 200]),
        Decision("single_transformer_blocks.0.attn", "prune_heads", keep=[2]),
        Decision("single_transformer_blocks.0.proj_mlp", "prune_channels", keep=list(range(7, 256, 5))),
        Decision("single_transformer_blocks.1", "drop_block"),
    ])


def test_a_hand_plan_of_every_policy_cuts_what_the_masks_silence(flux):
    model, tree = flux
    plan = hand_plan(model)
    pruned = apply(model, plan)
    assert len(pruned.transformer_blocks) == 1 and len(pruned.single_transformer_blocks) == 1
    single = pruned.single_transformer_blocks[0]
    assert (single.attn.to_q.out_features, single.proj_mlp.out_features, single.proj_out.in_features) == (16, 50, 66)
    inputs = flux_inputs(3)
    with apply_masks(model, **masks_of(plan, tree)):
        masked = run(model, inputs)
    assert (run(pruned, inputs) - masked).abs().max().item() < ATOL


def test_a_pruned_model_reloads_with_its_shapes_and_outputs(flux, tmp_path):
    model, tree = flux
    plan = hand_plan(model)
    pruned = apply(model, plan)
    save_denoiser(pruned, plan, tmp_path / "transformer", base_config(model))
    loaded = load_denoiser(tmp_path / "transformer")
    assert {k: v.shape for k, v in loaded.state_dict().items()} == {k: v.shape for k, v in pruned.state_dict().items()}
    inputs = flux_inputs(4)
    # same weights bit for bit; float64 outputs agree to summation-order noise (about 1e-14)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in pruned.state_dict().items())
    assert (run(pruned, inputs) - run(loaded, inputs)).abs().max().item() < ATOL


@pytest.mark.parametrize("budget", ["25%", "50%"])
def test_tmp_lands_and_predicts_the_error_surgery_delivers(budget):
    model = tiny_flux(dtype=torch.float32)
    tree = unit_tree(model, size=64)
    calls = [((), {**flux_inputs(i, torch.float32), "return_dict": True}) for i in range(3)]
    calib = Calibration({"kind": "hand-made flux calls", "n_inputs": 3}, calls, [float(c[1]["timestep"]) for c in calls])
    plan = PRUNERS.get("tmp")(chunks=4, max_calib_inputs=3).plan(model, tree, Budget.parse(budget), calib)
    pruned = apply(model, plan)
    check_prediction(plan, model, pruned, calib)
    search = plan.settings["search"]
    target = Budget.parse(budget).target(tree.params)
    assert abs(sum(p.numel() for p in pruned.parameters()) - target) <= 0.005 * target
    assert search["evaluator"] == "masked_output_error" and search["measured_error"] > 0
    assert search["prediction_gap"] <= 1e-3, (search["predicted_error"], search["measured_error"])


def test_a_plan_for_another_layout_is_refused_in_one_line(flux, dense):
    model, _ = flux
    zimage_plan = Plan(model=model_identity(dense.model, "tiny-dit"), budget=Budget.parse("10%").to_dict(), pruner="hand",
                       decisions=[Decision("layers.0", "drop_block")])
    with pytest.raises(TmpbenchError, match=r"^plan is for ZImageTransformer2DModel but the model is FluxTransformer2DModel; "
                                            r"plan it for this model$"):
        apply(model, zimage_plan)
    anonymous = Plan(model={}, budget=zimage_plan.budget, pruner="hand", decisions=zimage_plan.decisions)
    with pytest.raises(TmpbenchError, match=r"^no node 'layers.0' in the unit tree of FluxTransformer2DModel"):
        apply(model, anonymous)
    with pytest.raises(TmpbenchError, match=r"^policy 'linear_replace' is not admitted at 'single_transformer_blocks.0' "
                                            r"\(block\); it admits: drop_block$"):
        apply(model, Plan(model={}, budget=zimage_plan.budget, pruner="hand",
                          decisions=[Decision("single_transformer_blocks.0", "linear_replace", linear={"fit": "hand"})]))
