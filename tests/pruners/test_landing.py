"""Every pruner lands within 0.5% of the same target at 25% and 50%, and the pruned model generates."""

import pytest
from pruner_checks import generate_with, plan_and_apply

WIDTH_AND_DEPTH = ["random", "magnitude", "taylor", "block-influence", "late-drop"]


@pytest.mark.parametrize("budget", ["25%", "50%"])
@pytest.mark.parametrize("pruner", WIDTH_AND_DEPTH)
def test_baselines_land_on_dense(dense, pruner, budget):
    plan, pruned = plan_and_apply(dense, pruner, budget)
    assert plan.pruner == pruner and plan.decisions
    assert plan.settings["allocation"]["achieved"] == pytest.approx(plan.achieved_params)
    if budget == "50%":
        arr = generate_with(dense, pruned)
        assert arr.dtype.name == "uint8"
    if pruner in ("block-influence", "late-drop"):
        assert any(d.policy == "drop_block" for d in plan.decisions)
    else:
        assert {d.policy for d in plan.decisions} <= {"prune_heads", "prune_channels"}


@pytest.mark.parametrize("budget", ["25%", "50%"])
@pytest.mark.parametrize("pruner", ["expert-frequency", "reap", "random"])
def test_moe_pruners_land(moe, pruner, budget):
    kwargs = {"kinds": ["heads", "channels", "experts"]} if pruner == "random" else {}  # random: experts on request
    plan, pruned = plan_and_apply(moe, pruner, budget, **kwargs)
    assert any(d.policy == "prune_experts" for d in plan.decisions)
    for d in plan.decisions:
        if d.policy == "prune_experts":
            assert len(d.keep) >= 2  # top_k
    if budget == "50%":
        generate_with(moe, pruned)


def test_late_drop_drops_latest_blocks_first(dense):
    plan, _ = plan_and_apply(dense, "late-drop", "25%")
    dropped = sorted(int(d.path.split(".")[1]) for d in plan.decisions if d.policy == "drop_block")
    assert dropped == list(range(4 - len(dropped), 4))
    assert plan.settings["dropped"] == [f"layers.{i}" for i in reversed(dropped)]


def test_block_influence_drops_the_least_influential(dense):
    plan, _ = plan_and_apply(dense, "block-influence", "25%")
    influence = plan.settings["block_influence"]
    dropped = {d.path for d in plan.decisions if d.policy == "drop_block"}
    kept = set(influence) - dropped
    assert dropped and max(influence[p] for p in dropped) <= min(influence[p] for p in kept)


def test_magnitude_keeps_the_largest_units(dense):
    plan, _ = plan_and_apply(dense, "magnitude", "25%")
    d = next(d for d in plan.decisions if d.policy == "prune_channels")
    ffn = dense.model.get_submodule(d.path)
    norms = (ffn.w1.weight.pow(2).sum(1) + ffn.w3.weight.pow(2).sum(1) + ffn.w2.weight.pow(2).sum(0)).sqrt()
    dropped = sorted(set(range(ffn.w1.out_features)) - set(d.keep))
    assert norms[dropped].max() <= norms[d.keep].min()


def test_seeded_determinism(dense):
    a, _ = plan_and_apply(dense, "random", "25%")
    b, _ = plan_and_apply(dense, "random", "25%")
    assert a.to_json() == b.to_json()
    from tmpbench.catalog import PRUNERS
    from tmpbench.pruning import Budget

    c = PRUNERS.get("random")(seed=1).plan(dense.model, dense.tree, Budget.parse("25%"), None)
    assert c.decisions != a.decisions


def test_rounding_is_reported(dense):
    plan, _ = plan_and_apply(dense, "magnitude", "25%", round_to=8)
    alloc = plan.settings["allocation"]
    assert alloc["rounding_multiple"] == 8 and alloc["rounding_step"] > 0
    for d in plan.decisions:
        if d.policy == "prune_channels":
            assert len(d.keep) % 8 == 0
    # landed within the reported tolerance: 0.5%, or one rounding step when that is wider
    assert alloc["tolerance"] == pytest.approx(max(0.005, alloc["rounding_step"] / alloc["target"]))
    assert abs(alloc["relative_error"]) <= alloc["tolerance"]


@pytest.fixture(scope="module")
def trained_moe():
    """The committed tiny-moe with a two-prompt calibration set (what plan_and_apply expects)."""
    from tmpbench.loading import load_model
    from tmpbench.pruning import build_unit_tree
    from tmpbench.pruning.calibration import collect_calibration

    class Trained:
        gen = load_model("tiny-moe")
        model = gen.denoiser
        tree = build_unit_tree(model, size=32)
        calib = collect_calibration(gen, ["a photo of a red circle", "a photo of two blue squares"], [0, 1], steps=2, size=32)

    return Trained


@pytest.mark.parametrize("pruner", ["expert-frequency", "reap"])
def test_expert_pruners_land_when_one_expert_outweighs_the_tolerance(trained_moe, pruner):
    """The committed tiny-moe: one expert is 1.5% of the model, so removing experts uniformly
    overshot 25% by a whole expert (-1.64%, a miss before the fix); the pruner must give one back
    and close the gap with widths."""
    model = trained_moe.model
    expert = sum(p.numel() for p in model.layers[0].feed_forward.experts[0].parameters())
    assert expert / sum(p.numel() for p in model.parameters()) > 0.01  # the hard case
    plan, _ = plan_and_apply(trained_moe, pruner, "25%")  # lands within 0.5% (checked inside)
    assert any(d.policy == "prune_experts" for d in plan.decisions)


@pytest.mark.parametrize("budget", ["25%", "50%"])
@pytest.mark.parametrize("pruner", ["magnitude", "taylor", "random"])
def test_width_pruners_land_on_trained_moe_through_expert_channels(trained_moe, pruner, budget):
    """Routed experts hold most of tiny-moe's parameters; before expert channels were unit groups,
    heads/channels alone reached only +1.98% above the 25% target (a miss)."""
    plan, pruned = plan_and_apply(trained_moe, pruner, budget)  # lands within 0.5% (checked inside)
    routed = [d for d in plan.decisions if d.path.endswith(".experts")]
    assert routed and {d.policy for d in plan.decisions} <= {"prune_heads", "prune_channels"}
    for d in routed:  # one width per layer, each expert its own channels
        moe = trained_moe.model.get_submodule(d.path.rpartition(".")[0])
        width = moe.experts[0].down_proj.in_features
        assert d.original_count == len(moe.experts) * width
        per = [[i % width for i in d.keep if i // width == e] for e in range(len(moe.experts))]
        assert len({len(p) for p in per}) == 1
        if pruner == "magnitude":
            for e, kept in enumerate(per):
                ex = moe.experts[e]
                w = ex.gate_and_up_proj.weight.float().pow(2)
                norms = (w[:width].sum(1) + w[width:].sum(1) + ex.down_proj.weight.float().pow(2).sum(0)).sqrt()
                dropped = sorted(set(range(width)) - set(kept))
                assert norms[dropped].max() <= norms[kept].min()
    layer = d.path.rpartition(".")[0]
    assert pruned.get_submodule(layer).experts[0].down_proj.in_features == len(per[0])
