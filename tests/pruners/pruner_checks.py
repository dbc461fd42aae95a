"""Shared checks: plan -> fit maps -> apply -> count, and generation with the pruned denoiser."""

import numpy as np

from tmpbench.catalog import PRUNERS
from tmpbench.pruning import Budget, apply_plan, check_achieved, validate_plan
from tmpbench.pruning.calibration import fit_linear_maps


def plan_and_apply(case, pruner: str, budget: str, calibration="case", **settings):
    calib = case.calib if calibration == "case" else calibration
    b = Budget.parse(budget)
    plan = PRUNERS.get(pruner)(seed=0, **settings).plan(case.model, case.tree, b, calib)
    validate_plan(plan, case.tree)
    maps = fit_linear_maps(case.model, plan, case.calib)
    pruned = apply_plan(case.model, plan, linear_maps=maps)
    counted = sum(p.numel() for p in pruned.parameters())
    assert counted == plan.achieved_params, (pruner, budget, counted, plan.achieved_params)
    report = check_achieved(case.tree.params, counted, b)
    assert report.ok, report.message
    assert abs(report.relative_error) <= 0.005
    return plan, pruned


def generate_with(case, pruned):
    pipe = case.gen.pipe
    original = pipe.transformer
    pipe.transformer = pruned
    try:
        images = case.gen.generate(["a red circle"], seeds=[0], steps=2, guidance=1.0, size=32)
    finally:
        pipe.transformer = original
    arr = np.asarray(images[0])
    assert images[0].size == (32, 32) and arr.shape == (32, 32, 3)
    return arr
