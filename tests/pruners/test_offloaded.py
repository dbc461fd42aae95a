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


def _linear_maps(model, plan, calib):
    from tmpbench.pruning.calibration import fit_linear_maps

    return fit_linear_maps(model, plan, calib) if any(d.policy == "linear_replace" for d in plan.decisions) else {}


def _same_model(a, b, calib) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not offloaded(b) and {p.device.type for p in b.parameters()} == {"cpu"}
    with torch.no_grad():
        assert all(torch.equal(x, y) for x, y in zip(calib.outputs(a), calib.outputs(b)))


@pytest.mark.parametrize(("pruner", "budget", "policies"), [
    ("tmp", "50%", {"prune_heads", "prune_channels", "linear_replace"}),
    ("late-drop", "25%", {"drop_block"}),
])
def test_apply_offloaded_cuts_an_offloaded_model_as_apply_does_in_memory(dense, on_disk, pruner, budget, policies):
    """Block by block from the offloaded weights (dropped and linear-mapped blocks never read) gives the
    same pruned model, in memory, as the deep-copy surgery of the model in memory."""
    from tmpbench.pruning.families import apply, apply_offloaded

    plan = plan_model(dense.model, pruner, budget, calibration=dense.calib, model_name="tiny-dit").plan
    assert policies <= {d.policy for d in plan.decisions}
    maps = _linear_maps(dense.model, plan, dense.calib)
    _same_model(apply(dense.model, plan, linear_maps=maps), apply_offloaded(on_disk, plan, linear_maps=maps), dense.calib)
    assert offloaded(on_disk) and next(on_disk.parameters()).device.type == "meta"  # the original is untouched


def test_apply_offloaded_cuts_experts_and_their_channels_as_in_memory(moe, moe_on_disk):
    from tmpbench.pruning.families import apply, apply_offloaded

    plan = plan_model(moe.model, "tmp", "50%", pruner_settings=NO_MERGE, calibration=moe.calib, model_name="tiny-moe").plan
    assert {"prune_experts", "prune_channels"} <= {d.policy for d in plan.decisions}
    maps = _linear_maps(moe.model, plan, moe.calib)
    _same_model(apply(moe.model, plan, linear_maps=maps), apply_offloaded(moe_on_disk, plan, linear_maps=maps), moe.calib)


def test_weights_fingerprint_reads_an_offloaded_model_block_by_block(dense, on_disk):
    from tmpbench.pruning.runner import weights_fingerprint

    assert weights_fingerprint(on_disk) == weights_fingerprint(dense.model)


@pytest.fixture(scope="module")
def hy3(tmp_path_factory):
    """A small HunyuanImage-3.0-layout pipeline (fused 3-D experts), its calibration, and its transformer
    loaded back with every block of ``model.layers`` on disk (:func:`tmpbench.models.offload.load_offloaded`)."""
    from types import SimpleNamespace

    from tmpbench.models.offload import load_offloaded
    from tmpbench.models.reference import tiny_zimage as tz
    from tmpbench.models.zimage import ZImageGenerator
    from tmpbench.pruning.calibration import collect_calibration

    torch.manual_seed(0)
    cfg = tz.TinyZImageConfig(dim=32, n_layers=3, n_heads=4, text_hidden=16, text_layers=2,
                              hy3={"n_kv_heads": 2, "num_experts": 4, "moe_topk": 2, "moe_intermediate_size": 16,
                                   "num_shared_expert": 1})
    gen = ZImageGenerator(tz.make_pipeline(tz.build_components(cfg)), name="tiny-hy3", model="tiny-hy3",
                          edit_fn=tz.edit_in_sequence, max_sequence_length=24)
    model = gen.denoiser.eval()
    torch.nn.init.normal_(model.final_layer.weight, std=0.1)  # the output head starts at zero; open it up
    root = tmp_path_factory.mktemp("offload-hy3")
    model.save_pretrained(root / "ckpt")
    disk = load_offloaded(type(model), root / "ckpt", root / "off")
    calib = collect_calibration(gen, ["a red circle", "two blue squares"], [0, 1], steps=2, size=32)
    return SimpleNamespace(model=model, disk=disk, calib=calib)


EXPERTS_ONLY = {"policy_mix": ["prune_experts", "prune_heads", "drop_block", "linear_replace"]}


def test_a_decoder_layout_offloads_its_nested_blocks_and_plans_as_in_memory(hy3):
    """Blocks under ``model.layers`` go to disk; REAP reads the fused experts' weights under the hook
    (on meta they gave other scores and so another plan); TMP without channel cuts plans as in memory;
    the default policy mix stops at the fused channel masks in one line; the surgery matches."""
    from pruners.importance import reap_saliency
    from tmpbench.pruning.families import apply, apply_offloaded, unit_tree

    assert offloaded(hy3.disk) and next(hy3.disk.model.layers[0].parameters()).device.type == "meta"
    tree = unit_tree(hy3.model)
    a, b = reap_saliency(hy3.model, tree, hy3.calib), reap_saliency(hy3.disk, tree, hy3.calib)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    memory, disk = (plan_model(m, "tmp", "20%", pruner_settings=EXPERTS_ONLY, calibration=hy3.calib, model_name="tiny-hy3").plan
                    for m in (hy3.model, hy3.disk))
    assert "prune_experts" in {d.policy for d in disk.decisions}
    assert disk.decisions == memory.decisions and disk.settings["search"]["final_error"] == memory.settings["search"]["final_error"]
    with pytest.raises(TmpbenchError, match=r"^masking fused experts' channels reads or edits weights in place.*"
                                            r"prune experts only \(policy_mix without prune_channels\)$"):
        plan_model(hy3.disk, "tmp", "30%", calibration=hy3.calib, model_name="tiny-hy3")
    maps = _linear_maps(hy3.model, memory, hy3.calib)
    _same_model(apply(hy3.model, memory, linear_maps=maps), apply_offloaded(hy3.disk, memory, linear_maps=maps), hy3.calib)
    from tmpbench.pruning.runner import weights_fingerprint

    assert weights_fingerprint(hy3.disk) == weights_fingerprint(hy3.model)  # blocks nested under model.layers
