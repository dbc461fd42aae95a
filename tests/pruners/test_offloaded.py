"""A denoiser under accelerate's disk offload (``from_pretrained(device_map=..., offload_folder=...)``):
its weights sit on the meta device between calls, yet it runs. The measured search only masks activations,
so it plans such a model exactly as the same model in memory; what reads or edits weights refuses in one line."""

import pytest
import torch

from pruners.importance import apply_masks, is_meta, weight_magnitude
from tmpbench.errors import TmpbenchError
from tmpbench.pruning.calibration import execution_device, offloaded
from tmpbench.pruning.runner import plan_model


@pytest.fixture(scope="module")
def on_disk(dense, tmp_path_factory):
    """``dense``'s denoiser saved, then loaded back with every weight offloaded to disk."""
    root = tmp_path_factory.mktemp("offload")
    dense.model.save_pretrained(root / "ckpt")
    model = type(dense.model).from_pretrained(root / "ckpt", device_map={"": "disk"}, offload_folder=str(root / "off"))
    return model.eval()


def test_an_offloaded_model_runs_where_its_hook_says_and_is_not_meta(dense, on_disk):
    assert next(on_disk.parameters()).device.type == "meta"
    assert offloaded(on_disk) and not is_meta(on_disk)
    assert execution_device(on_disk) == torch.device("cpu")
    assert not offloaded(dense.model) and execution_device(dense.model) == torch.device("cpu")
    with torch.no_grad():
        a, b = dense.calib.outputs(dense.model), dense.calib.outputs(on_disk)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_masks_act_on_an_offloaded_model_as_in_memory(dense, on_disk):
    width = dense.tree["layers.2.feed_forward"].children[0].count
    keep = {"layers.1.attention": ("heads", [0, 2], 4), "layers.2.feed_forward": ("channels", list(range(0, width, 3)), width)}
    outs = []
    for model in (dense.model, on_disk):
        with apply_masks(model, keep=keep), torch.no_grad():
            outs.append(dense.calib.outputs(model))
    assert all(torch.equal(x, y) for x, y in zip(*outs))
    with torch.no_grad():
        assert not torch.equal(outs[0][0], dense.calib.outputs(dense.model)[0])  # the masks did act


def test_the_measured_search_plans_an_offloaded_model_as_in_memory(dense, on_disk):
    plans = [plan_model(m, "tmp", "25%", calibration=dense.calib, model_name="tiny-dit").plan for m in (dense.model, on_disk)]
    memory, disk = plans
    assert disk.settings["search"]["evaluator"] == "masked_output_error"  # measured, not the data-free proxy
    assert disk.decisions == memory.decisions and disk.achieved_params == memory.achieved_params
    assert disk.settings["search"]["final_error"] == memory.settings["search"]["final_error"]
    assert disk.settings["search"]["forward_equivalents"] == memory.settings["search"]["forward_equivalents"]


def test_weight_reads_refuse_an_offloaded_model_in_one_line(dense, on_disk):
    with pytest.raises(TmpbenchError, match=r"weight-magnitude scoring reads or edits weights in place, and accelerate offloads"):
        weight_magnitude(on_disk, dense.tree)


@pytest.fixture(scope="module")
def moe_on_disk(moe, tmp_path_factory):
    root = tmp_path_factory.mktemp("offload-moe")
    moe.model.save_pretrained(root / "ckpt")
    return type(moe.model).from_pretrained(root / "ckpt", device_map={"": "disk"}, offload_folder=str(root / "off")).eval()


NO_MERGE = {"policy_mix": ["prune_experts", "prune_channels", "prune_heads", "drop_block", "linear_replace"]}


def test_expert_masks_act_on_an_offloaded_moe_as_in_memory(moe, moe_on_disk):
    keep = {"layers.0.feed_forward": ("experts", [0, 2, 3, 5, 7], 8),
            "layers.1.feed_forward.experts": ("channels", list(range(0, 1024, 2)), 1024)}
    outs = []
    for model in (moe.model, moe_on_disk):
        with apply_masks(model, keep=keep), torch.no_grad():
            outs.append(moe.calib.outputs(model))
    assert all(torch.equal(x, y) for x, y in zip(*outs))


def test_tmp_plans_an_offloaded_moe_without_merges_and_refuses_merges_in_one_line(moe, moe_on_disk):
    memory, disk = (plan_model(m, "tmp", "25%", pruner_settings=NO_MERGE, calibration=moe.calib, model_name="tiny-moe").plan
                    for m in (moe.model, moe_on_disk))
    assert disk.decisions == memory.decisions
    assert disk.settings["search"]["final_error"] == memory.settings["search"]["final_error"]
    with pytest.raises(TmpbenchError, match=r"scoring an expert merge .* leave merge_experts out of tmp's policy_mix"):
        plan_model(moe_on_disk, "tmp", "25%", calibration=moe.calib, model_name="tiny-moe")
