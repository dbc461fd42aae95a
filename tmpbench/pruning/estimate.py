"""``tmpbench plan --estimate``: what a measured search will cost, before any heavy work.

The pruner predicts its own evaluations and denoiser forward-equivalents over the calibration inputs
(:meth:`pruners.tmp.TMPPruner.estimate`); this module adds the calibration sampling, turns
forward-equivalents into FLOPs with the model's own unit tree at the calibration resolution, and
projects hours on named GPUs from :data:`tmpbench.models.memory.GPUS` at an assumed model-FLOPs
utilisation (``MFU``, stated in every estimate). Nothing is loaded or sampled: a meta-device model
works.

    >>> est = estimate_plan(model, "tmp", "4b", n_prompts=8, steps=8, size=512, guidance=1.0)  # doctest: +SKIP
    >>> est["forward_equivalents"], est["hours"]["h100"]                                      # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from tmpbench.errors import TmpbenchError
from tmpbench.models.memory import GPUS
from tmpbench.pruning.budget import Budget
from tmpbench.pruning.factory import check_family, make_pruner
from tmpbench.pruning.families import unit_tree

#: assumed model-FLOPs utilisation of a denoiser forward in bf16 on the GPU (small calibration batches
#: rarely reach more); the projection scales as 1 / MFU
MFU = 0.4
PROJECTED_GPUS = ("h100", "a100-80g", "rtx4090")


def estimable(pruner_name: str, pruner_settings: dict | None = None, seed: int = 0) -> Any:
    """The pruner, when its search can be estimated before it runs; else one line saying why (checked
    before any model is loaded)."""
    pruner = make_pruner(pruner_name, seed=seed, settings=pruner_settings)
    if not hasattr(pruner, "estimate"):
        raise TmpbenchError(f"pruner {pruner_name!r} has no search to estimate; --estimate applies to measured searches "
                            "(tmp)")
    getattr(pruner, "check_estimable", lambda: None)()
    return pruner


def estimate_plan(
    model: Any,
    pruner_name: str,
    budget: str | Budget,
    *,
    n_prompts: int,
    steps: int,
    size: int,
    guidance: float,
    pruner_settings: dict | None = None,
    seed: int = 0,
    tasks: dict[str, int] | None = None,
    batched: bool = False,
    cfg_batch: Any = None,
) -> dict[str, Any]:
    """Evaluations, forward-equivalents, FLOPs and projected GPU hours of planning ``model`` with
    ``pruner_name`` under ``budget``, on a calibration of ``n_prompts`` prompts x ``steps`` steps at
    ``size`` px. ``cfg_batch(guidance, task)`` gives the sequences per prompt in one call
    (:meth:`tmpbench.models.base.ModelEntry.cfg_batch`: 2 where the pipeline runs classifier-free
    guidance at ``guidance``); without it, guidance above 1 doubles the batch.

    A calibration input is one denoiser call. ``batched`` says how the generator makes them: True
    when each task's prompts go through one call per step as a batch (the diffusers pipelines, so
    ``tasks`` = prompts per task, e.g. ``{"t2i": 4, "edit": 4}``, gives ``steps x len(tasks)`` calls of
    ``n_prompts / len(tasks)`` samples each), False when every prompt has its own calls
    (HunyuanImage-3.0's ``generate_image``: ``n_prompts x steps`` calls of one sample). The search's
    forward-equivalents count calls, so a call's FLOPs are the per-sample FLOPs times its samples."""
    budget = budget if isinstance(budget, Budget) else Budget.parse(budget)
    pruner = estimable(pruner_name, pruner_settings, seed)
    check_family(pruner, pruner_name, model)
    tree = unit_tree(model, size=budget.resolution)
    tasks = {k: int(v) for k, v in (tasks or {"t2i": int(n_prompts)}).items() if int(v) > 0}
    if sum(tasks.values()) != int(n_prompts):
        raise TmpbenchError(f"estimate: tasks {tasks} hold {sum(tasks.values())} prompts, not n_prompts={n_prompts}")
    calls = int(steps) * (len(tasks) if batched else int(n_prompts))
    samples_per_call = int(n_prompts) * int(steps) / calls
    cfg_of = cfg_batch or (lambda g, _task: 2 if g > 1 else 1)
    # sequences per call, averaged over the calls (each task makes the same number of calls per prompt or batch)
    sequences = sum(n * cfg_of(guidance, task) for task, n in tasks.items()) * int(steps) / calls
    est = pruner.estimate(tree, budget, calls)
    per_forward = float(unit_tree(model, size=size).flops) * sequences
    search_fe = float(est["forward_equivalents"])
    search_low = float(est.get("forward_equivalents_low", search_fe))
    total_fe = search_fe + calls  # + sampling the calibration trajectories
    flops = total_fe * per_forward
    hours = {g: round(flops / (GPUS[g].bf16_tflops * 1e12 * MFU) / 3600, 4) for g in PROJECTED_GPUS}
    return {
        "pruner": pruner_name, "budget": budget.text, "search": est.get("search"),
        "evaluations": est["evaluations"], "calib_inputs": est["calib_inputs"],
        "search_forward_equivalents": round(search_fe, 1), "search_forward_equivalents_low": round(search_low, 1),
        "screen_inputs": est.get("screen_inputs", est["calib_inputs"]), "calibration_forwards": calls,
        "samples_per_call": samples_per_call, "tasks": tasks, "batched": bool(batched),
        "forward_equivalents": round(total_fe, 1), "calibration_size": size, "batch_per_call": sequences,
        "flops_per_forward": per_forward, "flops": flops, "mfu_assumed": MFU,
        "hours": hours, "gpus": {g: GPUS[g].description for g in PROJECTED_GPUS},
    }


__all__ = ["MFU", "PROJECTED_GPUS", "estimable", "estimate_plan"]
