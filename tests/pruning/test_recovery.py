"""Recovery by distillation: fixed recipe, lowers the student's distance to the teacher, dense and MoE."""

from __future__ import annotations

import pytest
import torch
from tiny_generators import tiny_generator

from tmpbench.errors import TmpbenchError
from tmpbench.models.hunyuan import HunyuanImage3Generator, build_hunyuan_moe_standin
from tmpbench.pruning.families import apply, unit_tree
from tmpbench.pruning.plan import Decision, Plan
from tmpbench.pruning.recipes import CalibrationSpec, RecoveryRecipe
from tmpbench.pruning.recovery import distill, make_batch, teacher_data

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
    assert len(data.states) == 2 and data.x0.shape == (1, gen.denoiser.config.in_channels, side, side)
    assert torch.allclose(data.times[0], torch.tensor([0.0]))  # first step: pure noise, t = 1 - sigma = 0
    xs, t, caps = make_batch(data, 8, 0.5, torch.Generator().manual_seed(0))
    assert len(xs) == 8 and xs[0].shape == (gen.denoiser.config.in_channels, 1, side, side) and len(caps) == 8
    assert ((t >= 0) & (t <= 1)).all()


def test_recipe_validation_and_unsupported_family():
    with pytest.raises(TmpbenchError, match="lr must be positive"):
        RecoveryRecipe(lr=0)
    with pytest.raises(TmpbenchError, match="not both 0"):
        RecoveryRecipe(output_weight=0, feature_weight=0)
    hy = HunyuanImage3Generator(build_hunyuan_moe_standin(), name="hunyuanimage3")
    with pytest.raises(TmpbenchError, match="Z-Image-family pipelines"):
        distill(hy, hy.denoiser, SPEC, RecoveryRecipe(steps=1))
    assert RecoveryRecipe(steps=3).hash == RecoveryRecipe(steps=3).hash != RecoveryRecipe(steps=4).hash
