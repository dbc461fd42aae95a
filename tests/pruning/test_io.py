"""Save/load of pruned models: exact shapes and identical outputs after a round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_generators import tiny_generator

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.models.hunyuan import HunyuanImage3Generator, build_hunyuan_moe_standin
from tmpbench.models.spec import MARKER_FILE, detect_model_name
from tmpbench.pruning.budget import Budget, check_achieved
from tmpbench.pruning.families import apply, unit_tree
from tmpbench.pruning.io import ARCH_FILE, WEIGHTS_FILE, load_pruned, save_pruned
from tmpbench.pruning.plan import Decision, Plan
from tmpbench.pruning.runner import PruneResult, base_config, weights_fingerprint, with_denoiser


def result_for(gen, decisions, name, maps=None) -> PruneResult:
    model = gen.denoiser
    tree = unit_tree(model)
    plan = Plan(model={"class": tree.model_class, "name": name}, budget=Budget.parse("1%").to_dict(), pruner="hand",
                decisions=decisions)
    pruned = apply(model, plan, linear_maps=maps)
    achieved = sum(p.numel() for p in pruned.parameters())
    report = check_achieved(tree.params, achieved, Budget.parse(str(achieved)))
    return PruneResult(with_denoiser(gen, pruned), plan, report, {"hash": "c"}, {"hash": "r"}, tree.params, achieved,
                       base={"model": name, "class": tree.model_class, "weights": weights_fingerprint(model),
                             "config": base_config(model)})


def images(gen, seed=0):
    return np.stack([np.asarray(im) for im in gen.generate(["a photo of a circle", "two squares"], [seed, seed + 1], 2, 1.0, 32)])


def test_dense_round_trip_identical_images(tmp_path):
    gen = tiny_generator()
    w = torch.eye(32) * 0.5
    decisions = [Decision("layers.0", "linear_replace", linear={"fit": "hand"}),
                 Decision("layers.1.attention", "prune_heads", keep=[0]),
                 Decision("layers.1.feed_forward", "prune_channels", keep=[1, 5, 7, 30]),
                 Decision("context_refiner.0.feed_forward", "prune_channels", keep=list(range(40)))]
    result = result_for(gen, decisions, "tiny-dit", maps={"layers.0": (w, torch.zeros(32))})
    save_pruned(result, tmp_path / "p")
    arch = json.loads((tmp_path / "p" / "transformer" / ARCH_FILE).read_text())
    blocks = arch["lists"]["layers"]["blocks"]
    assert blocks[0] == {"index": 0, "type": "linear", "dim": 32, "bias": True}
    assert blocks[1]["parts"]["attention"] == {"kind": "attention", "heads": 1}
    assert blocks[1]["parts"]["feed_forward"] == {"kind": "ffn", "channels": 4}
    loaded = load_pruned(tmp_path / "p")
    assert type(loaded.pipe).__name__ == "ZImagePipeline"
    assert sum(p.numel() for p in loaded.denoiser.parameters()) == result.achieved_params
    assert np.array_equal(images(result.generator), images(loaded))
    assert detect_model_name(tmp_path / "p") == "tiny-dit"
    assert json.loads((tmp_path / "p" / MARKER_FILE).read_text())["pruned"] is True


def test_round_trip_when_every_main_layer_is_a_linear_map_or_dropped(tmp_path):
    """Regression (tiny-dit TMP at 75%): with no real block left in ``layers`` the pruned model read as a
    HunyuanImage-3.0 decoder, its saved spec lost the refiner lists and the folder did not reload."""
    from tmpbench.pruning.families import layout_of

    gen = tiny_generator()
    n = len(gen.denoiser.layers)
    w = torch.eye(32) * 0.5
    decisions = [Decision("layers.0", "linear_replace", linear={"fit": "hand"})]
    decisions += [Decision(f"layers.{i}", "drop_block") for i in range(1, n)]
    decisions += [Decision("context_refiner.0.feed_forward", "prune_channels", keep=[3, 7]),
                  Decision("noise_refiner.0.attention", "prune_heads", keep=[1])]
    result = result_for(gen, decisions, "tiny-dit", maps={"layers.0": (w, torch.zeros(32))})
    assert layout_of(result.generator.denoiser) == "zimage-dit"
    save_pruned(result, tmp_path / "p")
    arch = json.loads((tmp_path / "p" / "transformer" / ARCH_FILE).read_text())
    assert {"context_refiner", "noise_refiner", "layers"} <= set(arch["lists"])
    loaded = load_pruned(tmp_path / "p")
    assert sum(p.numel() for p in loaded.denoiser.parameters()) == result.achieved_params
    assert np.array_equal(images(result.generator), images(loaded))


@pytest.mark.parametrize("experts_decision, want", [
    (Decision("layers.1.feed_forward", "merge_experts", groups=[[0, 3], [1], [2]]),
     {"kind": "moe", "experts": 3, "top_k": 2, "intermediate": 16, "router_bias": True}),
    # pruned (not merged) experts may also lose routed channels: each of the 4 original experts keeps its own 5 of 16
    (Decision("layers.1.feed_forward", "prune_experts", keep=[0, 1, 3]), {"kind": "moe", "experts": 3, "top_k": 2, "intermediate": 5}),
])
def test_moe_round_trip_with_drop_merge_and_channels(tmp_path, experts_decision, want):
    gen = tiny_generator(moe=True)
    decisions = [Decision("layers.0", "drop_block"), experts_decision,
                 Decision("layers.1.feed_forward.shared_mlp", "prune_channels", keep=[0, 2, 4, 6])]
    if experts_decision.policy == "prune_experts":
        decisions.append(Decision("layers.1.feed_forward.experts", "prune_channels",
                                  keep=[e * 16 + c for e in range(4) for c in sorted({(3 * e + 5 * k) % 16 for k in range(5)})]))
    result = result_for(gen, decisions, "tiny-moe")
    save_pruned(result, tmp_path / "m")
    arch = json.loads((tmp_path / "m" / "transformer" / ARCH_FILE).read_text())
    assert arch["lists"]["layers"]["dropped"] == [0]
    moe = arch["lists"]["layers"]["blocks"][0]["parts"]["feed_forward"]
    assert {k: moe[k] for k in want} == want
    loaded = load_pruned(tmp_path / "m")
    assert np.array_equal(images(result.generator, 5), images(loaded, 5))


def test_hunyuan_standin_round_trip(tmp_path):
    model = build_hunyuan_moe_standin()
    gen = HunyuanImage3Generator(model, name="hunyuanimage3")
    decisions = [Decision("model.layers.0.self_attn", "prune_heads", keep=[1]),
                 Decision("model.layers.0.mlp", "prune_experts", keep=[0, 2, 3]),
                 Decision("model.layers.0.mlp.shared_mlp", "prune_channels", keep=[1, 2, 3]),
                 Decision("model.layers.1", "drop_block")]
    result = result_for(gen, decisions, "hunyuanimage3")
    save_pruned(result, tmp_path / "h")
    loaded = load_pruned(tmp_path / "h")
    ids = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(result.generator.denoiser(ids).logits, loaded.denoiser(ids).logits)
    assert len(loaded.denoiser.model.layers) == 1


def test_load_refuses_mismatched_weights(tmp_path):
    from safetensors.torch import load_file, save_file

    gen = tiny_generator()
    result = result_for(gen, [Decision("layers.1.attention", "prune_heads", keep=[1])], "tiny-dit")
    save_pruned(result, tmp_path / "p")
    wfile = tmp_path / "p" / "transformer" / WEIGHTS_FILE
    state = load_file(str(wfile))
    state.pop("layers.1.attention.to_q.weight")
    save_file(state, str(wfile))
    with pytest.raises(DataFormatError, match="missing .*layers.1.attention.to_q.weight"):
        load_pruned(tmp_path / "p")
    with pytest.raises(TmpbenchError, match="not a pruned model folder"):
        load_pruned(tmp_path)


def test_folders_that_name_a_moved_module_still_load(tmp_path):
    """Folders written before tiny_moe moved to tmpbench.models.reference name the old module."""
    gen = tiny_generator(moe=True)
    result = result_for(gen, [Decision("layers.1.feed_forward", "prune_experts", keep=[0, 1, 3])], "tiny-moe")
    save_pruned(result, tmp_path / "old")
    arch_file = tmp_path / "old" / "transformer" / ARCH_FILE
    arch = json.loads(arch_file.read_text())
    assert arch["class"] == "tmpbench.models.reference.tiny_moe:TinyMoETransformer"
    arch_file.write_text(json.dumps({**arch, "class": "tmpbench.models.tiny_moe:TinyMoETransformer"}))
    loaded = load_pruned(tmp_path / "old")
    assert type(loaded.denoiser).__name__ == "TinyMoETransformer"
    assert np.array_equal(images(result.generator, 2), images(loaded, 2))
    arch_file.write_text(json.dumps({**arch, "class": "tmpbench.models.gone:TinyMoETransformer"}))
    with pytest.raises(DataFormatError, match=r"class 'tmpbench.models.gone:TinyMoETransformer' .* cannot be imported.*MOVED_MODULES"):
        load_pruned(tmp_path / "old")


def test_folders_with_a_version_1_plan_still_load(tmp_path):
    """Folders written before plan format 2 hold keep as lists of ids; they load, and their recorded
    plan_sha256 stays the hash of the bytes they hold (the file is read, never rewritten)."""
    import hashlib

    from tmpbench.pruning.io import PLAN_FILE, folder_provenance, read_plan

    gen = tiny_generator(moe=True)
    decisions = [Decision("layers.1.feed_forward", "prune_experts", keep=[0, 1, 3]),
                 Decision("layers.1.feed_forward.shared_mlp", "prune_channels", keep=[0, 1, 2, 6]),
                 Decision("layers.1.feed_forward.experts", "prune_channels",
                          keep=[e * 16 + c for e in range(4) for c in (0, 1, 2, 9, 10)])]
    result = result_for(gen, decisions, "tiny-moe")
    save_pruned(result, tmp_path / "old")
    plan_file = tmp_path / "old" / PLAN_FILE
    assert json.loads(plan_file.read_text())["decisions"][1]["keep"] == "0-2,9-10,16-18,25-26,32-34,41-42,48-50,57-58"
    v1 = result.plan.to_json(version=1) + "\n"
    plan_file.write_text(v1)
    assert json.loads(v1)["version"] == 1 and json.loads(v1)["decisions"][1]["keep"][:4] == [0, 1, 2, 9]
    assert read_plan(tmp_path / "old") == result.plan
    assert folder_provenance(tmp_path / "old")["plan_sha256"] == hashlib.sha256(v1.encode()).hexdigest()
    loaded = load_pruned(tmp_path / "old")
    assert np.array_equal(images(result.generator, 3), images(loaded, 3))
