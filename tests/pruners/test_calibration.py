"""Calibration capture across timesteps, replay, linear-map fitting, and masks == surgery."""

import pytest
import torch

from pruners.importance import apply_masks, expert_frequency, masked_output_error, reap_saliency
from tmpbench.errors import TmpbenchError
from tmpbench.pruning import Decision, Plan, apply_plan, model_identity
from tmpbench.pruning.calibration import collect_calibration, fit_linear_maps, flatten_output


def test_capture_spans_every_timestep(dense):
    c = dense.calib
    assert len(c) == 2  # one batched call per step, 2 steps
    assert c.timesteps == pytest.approx([0.0, 0.5])
    assert c.identity["steps"] == 2 and c.identity["n_prompts"] == 2 and c.identity["timesteps"] == [0.0, 0.5]
    thin = collect_calibration(dense.gen, ["a red circle"], [0], steps=4, size=32, max_inputs=2)
    assert thin.timesteps == pytest.approx([0.0, 0.75])  # first and last of 4 steps
    with pytest.raises(TmpbenchError, match="got 1 prompts but 2 seeds"):
        collect_calibration(dense.gen, ["a"], [0, 1], steps=2, size=32)


def test_outputs_replay_the_denoiser(dense):
    outs = dense.calib.outputs(dense.model)
    with torch.no_grad():
        direct = flatten_output(dense.calib.call(dense.model, 1))
    latents = dense.calib.inputs[1][0][0]  # forward(x: list of latents, t, cap_feats)
    assert torch.equal(outs[1], direct) and outs[1].numel() == sum(x.numel() for x in latents)


def _plan(case, *decisions):
    return Plan(model=model_identity(case.model), budget={"text": "x"}, pruner="t", decisions=list(decisions))


def test_masks_match_surgery(moe):
    heads = Decision("layers.1.attention", "prune_heads", keep=[0, 2, 3])
    chans = Decision("layers.0.feed_forward.shared_mlp", "prune_channels", keep=list(range(0, 128, 2)))
    experts = Decision("layers.2.feed_forward", "prune_experts", keep=[1, 3, 4, 6])
    drop = Decision("layers.3", "drop_block")
    plan = _plan(moe, heads, chans, experts, drop)
    pruned = apply_plan(moe.model, plan)
    ref = moe.calib.outputs(pruned)
    unmasked = moe.calib.outputs(moe.model)
    keep = {heads.path: ("heads", heads.keep, 4), chans.path: ("channels", chans.keep, 128),
            experts.path: ("experts", experts.keep, 8)}
    with apply_masks(moe.model, keep=keep, blocks={"layers.3": "drop_block"}):
        err = masked_output_error(moe.model, moe.calib, ref)
        masked = moe.calib.outputs(moe.model)
    assert err < 1e-10
    assert not torch.allclose(masked[0], unmasked[0])  # the masks did change the output
    # and the mask is gone afterwards: the model gives its unmasked outputs again
    after = moe.calib.outputs(moe.model)
    assert len(after) == len(unmasked) and all(torch.equal(a, b) for a, b in zip(after, unmasked))
    assert len(moe.model.layers) == 4 and not moe.model.layers[1].attention.to_out[0]._forward_pre_hooks


def test_fitted_linear_map_is_the_least_squares_fit(dense):
    plan = _plan(dense, Decision("layers.1", "linear_replace", linear={"dim": 128}))
    maps = fit_linear_maps(dense.model, plan, dense.calib)
    w, b = maps["layers.1"]
    assert w.shape == (128, 128) and b.shape == (128,)
    replaced = apply_plan(dense.model, plan, linear_maps=maps)
    dropped = apply_plan(dense.model, _plan(dense, Decision("layers.1", "drop_block")))
    ref = dense.calib.outputs(dense.model)
    assert masked_output_error(replaced, dense.calib, ref) <= masked_output_error(dropped, dense.calib, ref)
    with pytest.raises(TmpbenchError, match="no calibration data was given to fit them"):
        fit_linear_maps(dense.model, plan, None)


def test_routing_scores(moe):
    freq = expert_frequency(moe.model, moe.tree, moe.calib)
    sal = reap_saliency(moe.model, moe.tree, moe.calib)
    assert set(freq) == set(sal) == {f"layers.{i}.feed_forward#experts" for i in range(4)}
    for path, f in freq.items():
        assert f.shape == (8,) and f.sum().item() == pytest.approx(1.0)
        # an expert never routed to has zero saliency and zero frequency
        assert torch.all((f == 0) <= (sal[path] == 0))
