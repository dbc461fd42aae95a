"""TMP's local probes (``local_probes``): a block's own output error on the teacher's inputs to it, for the
FLOPs of that block, turned into output error by the block's gain (docs/tmp.md §4d)."""

import pytest

from pruners.allocate import Allocation
from pruners.importance import apply_masks
from pruners.tmp_search import MeasuredEvaluator
from tmpbench.catalog import PRUNERS
from tmpbench.errors import TmpbenchError
from tmpbench.pruning.budget import Budget
from tmpbench.pruning.calibration import capture_blocks
from tmpbench.pruning.runner import prune_generator


def _rel(y, r) -> float:
    return float(((y - r) ** 2).sum() / (r ** 2).sum())


def test_local_error_is_the_blocks_own_output_error_and_costs_its_share(dense):
    calib = dense.calib
    alloc = Allocation(dense.tree, Budget.parse("25%"))
    ev = MeasuredEvaluator(dense.model, alloc, calib, set(), "uniform")
    block = ev.replay.order[2]
    heads = next(g for g in alloc.groups.values() if g.block == block and g.kind == "heads")
    heads.removed = 2
    # the same number from a full forward of the masked model, recording the block's output
    with capture_blocks(dense.model, [block]) as teacher:
        calib.outputs(dense.model)
    keep = {heads.component: (heads.kind, heads.kept_ids(), heads.id_count)}
    with apply_masks(dense.model, keep=keep), capture_blocks(dense.model, [block]) as masked:
        calib.outputs(dense.model)
    want = sum(_rel(y, r) for (_x, y), (_x2, r) in zip(masked[block], teacher[block])) / len(calib)
    spent = ev.forward_equivalents
    assert ev.local_error(block) == pytest.approx(want, rel=1e-5)
    share = ev.replay.share
    i = ev.replay.order.index(block)
    cost = 1.0 - sum(share[p] for p in ev.replay.order if p != block)
    assert ev.forward_equivalents - spent == pytest.approx(len(calib) * cost)
    assert cost < 0.5 and ev.local_evaluations == 1 and ev.evaluations == 0 and i > 0
    # memoised by the block's own state: cuts elsewhere do not change it
    other = next(g for g in alloc.groups.values() if g.block != block and g.kind == "heads")
    other.removed = 1
    assert ev.local_error(block) == pytest.approx(want, rel=1e-5) and ev.local_evaluations == 1
    heads.removed = 0
    assert ev.local_error(block) == 0.0


def test_local_probes_plan_lands_and_is_checked_on_the_full_objective(moe):
    settings = {"chunks": 4, "max_calib_inputs": 4, "local_probes": True}
    res = prune_generator(moe.gen, "tmp", "25%", pruner_settings=settings, progress=False, _collected=moe.calib)
    s = res.plan.settings["search"]
    assert s["local_evaluations"] > 0 and s["tree"]["local_probes"] > 0 and s["tree"]["gains"]
    assert all(v > 0 for v in s["tree"]["gains"].values())
    assert s["prediction_gap"] <= 0.01  # the final state is measured globally, and surgery reproduces it
    assert sum(s["phases"].values()) == pytest.approx(s["forward_equivalents"], abs=0.05)
    est = PRUNERS.get("tmp")(**settings).estimate(moe.tree, Budget.parse("25%"), len(moe.calib))
    glob = PRUNERS.get("tmp")(**{**settings, "local_probes": False}).estimate(moe.tree, Budget.parse("25%"), len(moe.calib))
    assert est["forward_equivalents"] < glob["forward_equivalents"]


@pytest.mark.parametrize("settings", [{"search": "flat"}, {"block_local": False}, {"local_probes": 1}])
def test_local_probes_need_the_tree_search_with_replay(settings):
    with pytest.raises(TmpbenchError, match=r"^pruner 'tmp': .*local_probes") as e:
        PRUNERS.get("tmp")(**{"local_probes": True, **settings})
    assert "\n" not in str(e.value)
