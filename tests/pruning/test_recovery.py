"""Recovery by distillation: fixed recipe, lowers the student's distance to the teacher, dense and MoE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_generators import tiny_generator

from tmpbench.errors import TmpbenchError
from tmpbench.models.hunyuan import HunyuanImage3Generator, build_hunyuan_moe_standin
from tmpbench.models.reference import tiny_zimage as tz
from tmpbench.pruning.families import apply, unit_tree
from tmpbench.pruning.plan import Decision, Plan
from tmpbench.pruning.recipes import CalibrationSpec, RecoveryRecipe
from tmpbench.pruning.recovery import distill, edit_teacher_data, make_batch, teacher_data
from tmpbench.suites.core import split_of

SPEC = CalibrationSpec(n_prompts=2, steps=2, size=32, guidance=1.0)


@pytest.mark.parametrize("moe", [False, True])
def test_distillation_lowers_held_out_loss(moe):
    gen = tiny_generator(moe)
    tree = unit_tree(gen.denoiser)
    path = "layers.1.feed_forward.shared_mlp" if moe else "layers.1.feed_forward"
    plan = Plan(model={"class": tree.model_class}, budget={}, pruner="hand",
                decisions=[Decision("layers.0.attention", "prune_heads", keep=[0]),
                           Decision(path, "prune_channels", keep=[0, 1, 2])])
    student = apply(gen.denoiser, plan)
    recipe = RecoveryRecipe(steps=4, lr=1e-4, batch=4, seed=1)
    student, log = distill(gen, student, SPEC, recipe, progress=False)
    assert log["steps"] == 4 and len(log["losses"]) == 4
    assert log["held_out_after"] < log["held_out_before"]
    assert all(not p.requires_grad for p in student.parameters())


def test_feature_loss_runs_and_is_recorded():
    gen = tiny_generator()
    plan = Plan(model={"class": "ZImageTransformer2DModel"}, budget={}, pruner="hand",
                decisions=[Decision("layers.1", "drop_block")])
    _, log = distill(gen, apply(gen.denoiser, plan), SPEC, RecoveryRecipe(steps=1, batch=2, feature_weight=0.5), progress=False)
    assert len(log["losses"]) == 1 and log["losses"][0] > 0


def test_batches_mix_trajectory_and_fresh_states():
    gen = tiny_generator()
    data = teacher_data(gen, gen.denoiser, ["a photo of a circle"], [0], 2, 32, 1.0)
    side = 32 // gen.pipe.vae_scale_factor
    assert len(data) == 1 and len(data.states[0]) == 2 and data.x0[0].shape == (gen.denoiser.config.in_channels, side, side)
    assert data.times[0][0] == 0.0  # first step: pure noise, t = 1 - sigma = 0
    batch = make_batch(data, 8, 0.5, torch.Generator().manual_seed(0))
    assert len(batch) == 8 and batch[0][0].shape == (gen.denoiser.config.in_channels, 1, side, side)
    assert all(0 <= t <= 1 and cond is None for _, t, _, cond in batch)


def test_edit_share_trains_on_edit_items_and_reports_dev_loss():
    """A mix with an edit share distils on calib-split edits too (through the generator's edit call) and
    reports its held-out loss on dev-split items, disjoint from the training items."""
    gen = tiny_generator()
    spec = CalibrationSpec(n_prompts=2, steps=2, size=32, guidance=1.0, mix="t2i=0.5,edit=0.5")
    plan = Plan(model={"class": "ZImageTransformer2DModel"}, budget={}, pruner="hand",
                decisions=[Decision("layers.0.attention", "prune_heads", keep=[0])])
    _, log = distill(gen, apply(gen.denoiser, plan), spec, RecoveryRecipe(steps=2, batch=4, held_out=2), progress=False)
    assert log["prompts"] == 1 and log["edits"] == 1 and log["held_out_split"] == "dev"
    assert set(log["item_ids"]) == {"shapes-t2i", "shapes-edit"} == set(log["held_out_item_ids"])
    for suite, ids in log["item_ids"].items():
        assert {split_of(suite, i) for i in ids} == {"calib"}
        assert {split_of(suite, i) for i in log["held_out_item_ids"][suite]} == {"dev"}
    assert log["item_ids"] == spec.item_ids()
    assert len(log["losses"]) == 2 and log["held_out_before"] > 0 and log["held_out_after"] > 0


def test_edit_teacher_data_records_the_source_latent_and_the_final_latent():
    gen = tiny_generator()
    spec = CalibrationSpec(n_prompts=1, steps=2, size=32, guidance=1.0, mix="edit=1")
    images, instructions, seeds, _ = spec.edits(32)
    data = edit_teacher_data(gen, images, instructions, seeds, 2, 32, 1.0)
    assert len(data) == 1 and data.n_edits == 1 and len(data.states[0]) == 2
    cond = data.conditions[0]
    assert len(cond["x"]) == 1 and cond["kwargs"]["image_noise_mask"] == [0, 1]
    # the final latent is the edit the generator returns: decode it and compare with the edit call's image
    edited = np.asarray(gen.edit(images, instructions, seeds, 2, 1.0, 32)[0], dtype=np.float32)
    decoded = tz.latents_to_images(data.x0[0].unsqueeze(0), gen.pipe.vae.config.factor)[0].astype(np.float32)
    assert np.abs(decoded - edited).max() <= 1.0
    batch = make_batch(data, 4, 0.5, torch.Generator().manual_seed(0))
    assert all(c is cond for _, _, _, c in batch)


def test_recipe_validation_and_unsupported_family():
    with pytest.raises(TmpbenchError, match="lr must be positive"):
        RecoveryRecipe(lr=0)
    with pytest.raises(TmpbenchError, match="not both 0"):
        RecoveryRecipe(output_weight=0, feature_weight=0)
    hy = HunyuanImage3Generator(build_hunyuan_moe_standin(), name="hunyuanimage3")
    with pytest.raises(TmpbenchError, match="Z-Image-family pipelines"):
        distill(hy, hy.denoiser, SPEC, RecoveryRecipe(steps=1))
    assert RecoveryRecipe(steps=3).hash == RecoveryRecipe(steps=3).hash != RecoveryRecipe(steps=4).hash
