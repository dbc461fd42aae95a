"""Pruning compute is counted by hooks on the denoiser, the same way for every pruner."""

import torch

from tmpbench.pruning.cost import ComputeMeter, total
from tmpbench.pruning.runner import prune_generator


def test_meter_counts_forwards_and_backwards_by_hand():
    lin = torch.nn.Linear(3, 2)
    with ComputeMeter(lin) as meter:
        for _ in range(3):
            lin(torch.ones(1, 3))  # no grad needed: a forward, no backward
        lin(torch.ones(1, 3)).sum().backward()
    d = meter.as_dict()
    assert (d["denoiser_forwards"], d["backward_passes"]) == (4, 1)
    assert d["seconds"] >= 0 and d["peak_rss_mb"] > 0
    lin(torch.ones(1, 3))  # after the stage: not counted
    assert meter.forwards == 4
    assert total({"a": {"denoiser_forwards": 2, "backward_passes": 1, "seconds": 1.0, "peak_rss_mb": 5},
                  "b": {"denoiser_forwards": 3, "forward_equivalents": 1.5, "seconds": 2.0, "peak_rss_mb": 7}}) == {
        "denoiser_forwards": 5, "backward_passes": 1, "forward_equivalents": 3.5, "seconds": 3.0, "peak_rss_mb": 7}


def test_each_pruner_reports_what_it_spent(dense):
    n = len(dense.calib)
    costs = {}
    for pruner, settings in (("magnitude", {}), ("taylor", {}), ("tmp", {"chunks": 4, "max_calib_inputs": 2})):
        result = prune_generator(dense.gen, pruner, "25%", pruner_settings=settings, progress=False,
                                 _collected=dense.calib)
        costs[pruner] = result.pruning_cost
        assert set(result.pruning_cost) == {"calibration", "planning", "apply", "recovery", "total"}
    assert costs["magnitude"]["planning"]["denoiser_forwards"] == 0  # weight norms only
    # per input: a forward for the teacher's clean estimate (the loss target), one with the gradient, one backward
    assert costs["taylor"]["planning"]["denoiser_forwards"] == 2 * n
    assert costs["taylor"]["planning"]["backward_passes"] == n
    tmp = costs["tmp"]["planning"]
    assert tmp["backward_passes"] == 0 and tmp["denoiser_forwards"] > 0
    # block-local probes run part of a forward: the search's own count is below the calls the hook saw
    assert 0 < tmp["forward_equivalents"] < tmp["denoiser_forwards"]
    stages = [costs["tmp"][k] for k in ("calibration", "planning", "apply", "recovery")]
    assert costs["tmp"]["total"]["forward_equivalents"] == round(
        sum(st.get("forward_equivalents", st["denoiser_forwards"]) for st in stages), 2)


def test_recovery_counts_the_teacher_copy_it_distils_from(dense):
    result = prune_generator(dense.gen, "magnitude", "25%", recover_steps=2, progress=False, _collected=dense.calib)
    rec = result.pruning_cost["recovery"]
    # every student forward with a gradient has one backward; the teacher (a copy made inside the stage)
    # adds forwards of its own, so forwards exceed twice the backward passes
    assert rec["backward_passes"] >= 2
    assert rec["denoiser_forwards"] >= 2 * rec["backward_passes"]
