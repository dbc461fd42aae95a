"""TMP's screened search (``screen_inputs``): probes scored on a spread subset of the calibration inputs
for their share of the cost, candidates and the final state confirmed on all of them; and the one
teacher pass that serves the reference outputs, the replay records and the linear maps."""

import pytest
import torch

from pruners.allocate import Allocation
from pruners.tmp_search import MeasuredEvaluator
from tmpbench.catalog import PRUNERS
from tmpbench.errors import TmpbenchError
from tmpbench.pruning.budget import Budget
from tmpbench.pruning.calibration import capture_replay, fit_block_maps, spread_indices
from tmpbench.pruning.runner import prune_generator

POLICIES = {"prune_heads", "prune_channels", "linear_replace", "drop_block"}


def _cut_last_block(ev: MeasuredEvaluator) -> None:
    last = ev.replay.order[-1]
    group = next(g for g in ev.alloc.groups.values() if g.block == last and g.kind == "heads")
    group.removed = 1


def test_spread_indices_cover_both_ends():
    assert spread_indices(16, 4) == [0, 5, 10, 15]
    assert spread_indices(16, 1) == [8]
    assert spread_indices(3, 8) == [0, 1, 2]


def test_one_teacher_pass_gives_the_same_reference_replay_and_maps(dense):
    calib = dense.calib
    alloc = Allocation(dense.tree, Budget.parse("25%"))
    ev = MeasuredEvaluator(dense.model, alloc, calib, POLICIES, "uniform")
    assert ev.forward_equivalents == len(calib)  # one pass, not three
    assert ev.by_phase == {"teacher pass": float(len(calib))}
    for got, want in zip(ev.reference, calib.outputs(dense.model)):
        assert torch.equal(got, want)
    paths = list(ev.linear_maps)
    assert paths
    separate = fit_block_maps(dense.model, paths, calib)
    for p in paths:
        assert torch.equal(ev.linear_maps[p][0], separate[p][0]) and torch.equal(ev.linear_maps[p][1], separate[p][1])
    flops = {b.path: b.flops for b in alloc.blocks.values()}
    replay = capture_replay(dense.model, list(alloc.blocks), calib, flops, alloc.tree.flops)
    assert replay.order == ev.replay.order


def test_screened_error_is_the_subset_error_and_confirm_is_the_full_one(dense):
    calib = dense.calib
    n = len(calib)
    assert n >= 2
    screened = MeasuredEvaluator(dense.model, Allocation(dense.tree, Budget.parse("25%")), calib, set(), "uniform",
                                 screen_inputs=1)
    full = MeasuredEvaluator(dense.model, Allocation(dense.tree, Budget.parse("25%")), calib, set(), "uniform")
    idx = spread_indices(n, 1)
    subset = MeasuredEvaluator(dense.model, Allocation(dense.tree, Budget.parse("25%")), calib.select(idx), set(),
                               "uniform")
    for ev in (screened, full, subset):
        _cut_last_block(ev)
    assert screened.screens and not full.screens and screened.screen_inputs == 1
    before = screened.forward_equivalents
    on_subset = screened.error()
    spent_screen = screened.forward_equivalents - before
    assert on_subset == pytest.approx(subset.error(), rel=1e-6)
    with screened.confirm():
        on_all = screened.error()
    spent_confirm = screened.forward_equivalents - before - spent_screen
    assert on_all == pytest.approx(full.error(), rel=1e-6)
    assert spent_confirm == pytest.approx(n * spent_screen)  # k of n inputs cost k/n of a confirmation
    assert screened.by_phase["confirm"] == pytest.approx(spent_confirm)
    assert screened.error() == pytest.approx(on_subset)  # back on the subset after confirm()


def test_screened_plan_is_confirmed_on_every_input(dense):
    settings = {"chunks": 4, "max_calib_inputs": 4}
    plain = prune_generator(dense.gen, "tmp", "25%", pruner_settings=settings, progress=False, _collected=dense.calib)
    screened = prune_generator(dense.gen, "tmp", "25%", pruner_settings={**settings, "screen_inputs": 1},
                               progress=False, _collected=dense.calib)
    p, s = plain.plan.settings["search"], screened.plan.settings["search"]
    assert s["screen_inputs"] == 1 and "screen_inputs" not in p
    assert s["calib_inputs"] == p["calib_inputs"] == min(4, len(dense.calib))
    # the final state is measured on every input, and surgery reproduces it there
    assert s["prediction_gap"] <= 0.01
    assert all("confirmed_error" in r for r in s["tree"]["rounds"])
    assert s["forward_equivalents"] < p["forward_equivalents"]
    assert sum(s["phases"].values()) == pytest.approx(s["forward_equivalents"], abs=0.05)
    assert sum(p["phases"].values()) == pytest.approx(p["forward_equivalents"], abs=0.05)
    # the estimate is above what the screened search spent on this model
    est = PRUNERS.get("tmp")(**settings, screen_inputs=1).estimate(dense.tree, Budget.parse("25%"), len(dense.calib))
    assert est["screen_inputs"] == 1
    assert s["forward_equivalents"] <= est["forward_equivalents"]


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "4"])
def test_screen_inputs_must_be_a_positive_integer(bad):
    with pytest.raises(TmpbenchError, match=r"^pruner 'tmp': screen_inputs=.* must be an integer >= 1") as e:
        PRUNERS.get("tmp")(screen_inputs=bad)
    assert "\n" not in str(e.value)


def test_a_state_met_again_is_scored_once(dense):
    ev = MeasuredEvaluator(dense.model, Allocation(dense.tree, Budget.parse("25%")), dense.calib, set(), "uniform",
                           screen_inputs=1)
    _cut_last_block(ev)
    first = ev.error()
    spent, evaluations = ev.forward_equivalents, ev.evaluations
    assert ev.error() == first and ev.forward_equivalents == spent and ev.evaluations == evaluations
    assert ev.memo_hits == 1
    with ev.confirm():  # the same state on other inputs is another measurement
        ev.error()
    assert ev.evaluations == evaluations + 1
    group = next(g for g in ev.alloc.groups.values() if g.removed)
    group.removed = 0  # back to the teacher: nothing touched, nothing spent
    assert ev.error() == 0.0
    group.removed = 1
    assert ev.error() == first and ev.memo_hits == 2


def test_estimate_range(dense):
    est = PRUNERS.get("tmp")(chunks=4).estimate(dense.tree, Budget.parse("50%"), 16)
    assert 0 < est["forward_equivalents_low"] < est["forward_equivalents"]
    assert est["evaluations_low"] < est["evaluations"]
    # without a refine pass nothing can repeat: the range closes
    flat = PRUNERS.get("tmp")(chunks=4, refine=0).estimate(dense.tree, Budget.parse("50%"), 16)
    assert flat["forward_equivalents_low"] == flat["forward_equivalents"]
