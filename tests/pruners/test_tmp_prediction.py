"""What TMP's search predicts is what surgery delivers.

The search scores masked states; :func:`tmpbench.pruning.runner.check_prediction` scores the
physically pruned model on the same calibration inputs, teacher outputs and timestep weights. They must
agree within 1% (relative), for dense and MoE models, with block maps, and with merged experts beside
channel cuts. Merged experts are built from a clean copy of the MoE, and a plan never merges the
experts of an MoE whose channels it also cuts.
"""

import pytest
import torch

from pruners.importance import apply_masks, masked_output_error
from tmpbench.errors import TmpbenchError
from tmpbench.pruning.plan import Decision, Plan, model_identity, validate_plan
from tmpbench.pruning.runner import prune_generator

FAST = {"chunks": 4, "max_calib_inputs": 2, "rescore_every": 50}
# channels at a high prior, so the search reaches for merges (at 50% it also cuts the shared experts of merged MoEs)
# (the flat greedy; the tree search measures routed-channel cuts as cheaper even at that prior)
MERGE_MIX = {"policy_mix": {"merge_experts": 1.0, "prune_channels": 10.0, "prune_heads": 1.0}, "search": "flat"}
# the tree search with merges as the only expert policy beside heads and (shared-expert) channels
TREE_MERGE = {"policy_mix": ["merge_experts", "prune_heads"]}


@pytest.mark.parametrize("case_name, budget, extra", [
    ("dense", "25%", {}),
    ("dense", "50%", {}),
    ("moe", "25%", {}),
    ("moe", "50%", {}),
    ("moe", "25%", MERGE_MIX),
    ("moe", "50%", MERGE_MIX),
    ("moe", "25%", TREE_MERGE),
])
def test_predicted_error_is_what_surgery_delivers(request, case_name, budget, extra):
    case = request.getfixturevalue(case_name)
    result = prune_generator(case.gen, "tmp", budget, pruner_settings={**FAST, **extra}, progress=False,
                             _collected=case.calib)
    search = result.plan.settings["search"]
    assert search["evaluator"] == "masked_output_error" and search["calib_inputs"] == 2
    assert search["measured_error"] > 0
    assert search["prediction_gap"] <= 0.01, (search["predicted_error"], search["measured_error"])
    policies = {d.policy for d in result.plan.decisions}
    if extra:
        assert "merge_experts" in policies
        merged = {d.path for d in result.plan.decisions if d.policy == "merge_experts"}
        if budget == "50%" and "prune_channels" in str(extra):  # masks inside a merged MoE (its shared expert) sit on the merged copy
            assert any(d.path.rpartition(".")[0] in merged for d in result.plan.decisions if d.policy == "prune_channels")
        cut = {d.path.rpartition(".")[0] for d in result.plan.decisions if d.path.endswith(".experts")}
        assert not merged & cut  # never both in one MoE
    for d in result.plan.decisions:  # linear maps are fitted on the search's own inputs
        if d.policy == "linear_replace":
            assert d.linear["fit_inputs"] == 2


def _moe_parts(moe):
    comp = next(n.path for n in moe.tree.walk() if n.kind == "moe")
    channels = moe.tree.expert_channels(f"{comp}.experts")
    return comp, channels


def test_merged_experts_come_from_a_clean_copy(moe):
    """A merge measured after a state that masked the merged MoE's shared expert equals a fresh merge:
    masks inside a merged MoE sit on the cached merged copy and leave with the context."""
    comp, _ = _moe_parts(moe)
    shared = f"{comp}.shared_mlp"
    groups = [[0, 1], [2, 3], [4, 5], [6, 7]]
    ref = moe.calib.outputs(moe.model)
    cache: dict = {}
    with apply_masks(moe.model, keep={shared: ("channels", list(range(0, 128, 2)), 128)},
                     merges={comp: (groups, None)}, merged_cache=cache):
        masked = masked_output_error(moe.model, moe.calib, ref)
    with apply_masks(moe.model, merges={comp: (groups, None)}, merged_cache=cache):
        cached = masked_output_error(moe.model, moe.calib, ref)
    with apply_masks(moe.model, merges={comp: (groups, None)}, merged_cache={}):
        fresh = masked_output_error(moe.model, moe.calib, ref)
    assert cached == pytest.approx(fresh, rel=1e-9, abs=1e-12)
    assert masked > fresh  # the shared-expert mask did act on the merged MoE's output
    # and the original is untouched: no hooks left, same outputs
    assert all(torch.equal(a, b) for a, b in zip(moe.calib.outputs(moe.model), ref))


def test_a_plan_merging_and_cutting_one_moe_is_refused(moe):
    comp, channels = _moe_parts(moe)
    experts, width = int(channels.constraints["experts"]), channels.count
    plan = Plan(model=model_identity(moe.model), budget={"text": "x"}, pruner="hand", decisions=[
        Decision(comp, "merge_experts", groups=[[0, 1], [2, 3], [4, 5], [6, 7]]),
        Decision(f"{comp}.experts", "prune_channels", keep=[e * width + c for e in range(experts) for c in range(width // 2)]),
    ])
    with pytest.raises(TmpbenchError, match=r"merges the experts of .* and also cuts their channels"):
        validate_plan(plan, moe.tree)
