"""The prune runner: one path from (generator, pruner, budget) to a pruned generator, for every pruner alike.

The arrows, each in one place::

    generator.denoiser --families.unit_tree--> UnitTree --Budget.target--> target size
        --CalibrationSpec.collect--> Calibration (same prompts/seeds/steps/size for every pruner)
        --pruner.plan--> Plan --families.apply--> pruned denoiser --check_achieved--> BudgetReport
        --recovery.distill(RecoveryRecipe)--> recovered denoiser --> PruneResult (--io.save_pruned-->)

This module runs the arrows (:func:`plan_model`, :func:`prune_generator`, :func:`prune_all`); the
pieces it runs live beside it, one concern each: the recipes (:mod:`~tmpbench.pruning.recipes`),
the per-layout tree and surgery (:mod:`~tmpbench.pruning.families`), the size arithmetic
(:mod:`~tmpbench.pruning.accounting`), the pruner factory (:mod:`~tmpbench.pruning.factory`); the
pruned-model cache of ``tmpbench run`` (:mod:`~tmpbench.pruning.cache`) sits above it.

"Identical calibration and recovery" is enforced by construction: :func:`prune_all` hands one
CalibrationSpec and one RecoveryRecipe to every pruner, their hashes are recorded in every
:class:`PruneResult`, Plan and saved folder, and :func:`check_identical` refuses results whose
hashes differ.

Example::

    >>> result = prune_generator(gen, "random", "50%", calibration=CalibrationSpec(n_prompts=2, steps=2, size=32))  # doctest: +SKIP
    >>> result.budget_report.ok, result.achieved_params / result.original_params                          # doctest: +SKIP
    (True, 0.5012)
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tmpbench.errors import TmpbenchError
from tmpbench.pruning.accounting import count_params, measured_size, planned_size
from tmpbench.pruning.budget import Budget, BudgetReport, check_achieved, original_for_tree
from tmpbench.pruning.calibration import offloaded, onloaded
from tmpbench.pruning.cost import ComputeMeter
from tmpbench.pruning.cost import total as cost_total
from tmpbench.pruning.factory import check_family, make_pruner
from tmpbench.pruning.families import apply, apply_offloaded, unit_tree
from tmpbench.pruning.plan import Plan, model_identity, validate_plan
from tmpbench.pruning.recipes import CalibrationSpec, RecoveryRecipe, default_calibration, model_defaults, model_name_of


# --------------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------------
@dataclass
class PlanOutcome:
    """A Plan plus the numbers `tmpbench plan` prints: original, target, achieved, budget check."""

    plan: Plan
    tree: Any
    budget: Budget
    original: float
    target: float
    achieved: float
    report: BudgetReport
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan.to_dict()  # canonical: the lowest plan version that holds these decisions
        return {
            "model": self.plan.model,
            "pruner": self.plan.pruner,
            "original_params": int(self.plan.original_params),
            "achieved_params": int(self.plan.achieved_params),
            "requested": {"budget": self.budget.text, "kind": self.budget.label, "target": self.target,
                          "original": self.original},
            "achieved": self.achieved,
            "budget_check": self.report.to_dict(),
            "plan_version": plan["version"],  # the format of "decisions" (2: kept ids as range strings; 3: or coded, see plan.py)
            "decisions": plan["decisions"],
            "settings": self.plan.settings,
            "calibration": self.plan.calibration,
            "seconds": round(self.seconds, 3),
        }


def plan_model(
    model: Any,
    pruner_name: str,
    budget: str | Budget,
    *,
    pruner_settings: dict | None = None,
    calibration: Any = None,
    seed: int = 0,
    model_name: str | None = None,
    tree: Any = None,
    progress: bool = False,
) -> PlanOutcome:
    """Plan (do not cut) ``model`` under ``budget`` with pruner ``pruner_name``; checks the plan lands.

    ``calibration`` is a collected Calibration or None (data-free proxies, as at meta size).
    ``progress`` lets a long search show a bar on stderr (TMP's measured search: forward-equivalents
    against its estimate); it never changes the plan.
    """
    start = time.perf_counter()
    budget = budget if isinstance(budget, Budget) else Budget.parse(budget)
    if budget.kind == "latency":
        raise TmpbenchError(
            f"budget {budget.text!r} is a latency budget; the runner plans params or flops@SIZE budgets "
            "(measure latency with benchmarks/prune_latency.py)"
        )
    pruner = make_pruner(pruner_name, seed=seed, settings=pruner_settings)
    check_family(pruner, pruner_name, model)
    if tree is None:
        tree = unit_tree(model, size=budget.resolution)
    original, minimum = original_for_tree(budget, tree)
    target = budget.target(original, minimum)
    # without calibration, a pruner that needs it decides whether data-free proxies will do (it raises otherwise)
    pruner.progress = progress  # an attribute, not an argument: plan()'s signature is the registry's interface
    plan = pruner.plan(model, tree, budget, calibration)
    if not isinstance(plan, Plan):
        raise TmpbenchError(f"pruner {pruner_name!r} returned {type(plan).__name__}, not a Plan")
    validate_plan(plan, tree)
    if not plan.model.get("name"):
        plan.model = {**model_identity(model, model_name), **plan.model, "name": model_name}
    achieved = planned_size(tree, plan, budget.kind)
    plan.original_params = int(tree.params)
    plan.achieved_params = int(planned_size(tree, plan, "params"))
    plan.original_flops, plan.achieved_flops = float(tree.flops), float(planned_size(tree, plan, "flops"))
    plan.budget = budget.to_dict()
    if calibration is not None and not plan.calibration:
        plan.calibration = dict(getattr(calibration, "identity", {}) or {})
    report = _check(original, achieved, budget, plan, tree)
    return PlanOutcome(plan, tree, budget, original, target, achieved, report, time.perf_counter() - start)


def _check(original: float, achieved: float, budget: Budget, plan: Plan, tree: Any) -> BudgetReport:
    """The budget check of ``achieved``, with the rounding allowance when the plan rounded widths."""
    # pruners record the rounding multiple in their landing report (settings["allocation"]); a
    # hand-written plan may give it at the top level
    allocation = plan.settings.get("allocation") if isinstance(plan.settings.get("allocation"), dict) else {}
    multiple = plan.settings.get("rounding_multiple") or allocation.get("rounding_multiple")
    if multiple:
        return check_achieved(original, achieved, budget, rounding_multiple=int(multiple),
                              step=tree.width_step(int(multiple), "params" if budget.kind == "params" else "flops"))
    return check_achieved(original, achieved, budget)


# --------------------------------------------------------------------------------------------
# pruning a generator
# --------------------------------------------------------------------------------------------
@dataclass
class PruneResult:
    """A pruned generator and everything that says how it was made."""

    generator: Any  # the pruned Generator (same interface as the input)
    plan: Plan
    budget_report: BudgetReport
    calibration_identity: dict[str, Any]
    recovery_identity: dict[str, Any]
    original_params: int
    achieved_params: int
    linear_maps: dict[str, Any] = field(default_factory=dict)
    recovery_log: dict[str, Any] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)  # base model name, spec, fingerprint
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage: calibration, plan, apply, recovery
    # compute per stage and in total (tmpbench.pruning.cost): denoiser forwards, backward passes, seconds, peak memory
    pruning_cost: dict[str, Any] = field(default_factory=dict)
    pruner_settings: dict[str, Any] = field(default_factory=dict)  # the knobs the pruner was given (not its defaults)
    seed: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "pruner": self.plan.pruner,
            "budget": self.plan.budget.get("text"),
            "original_params": self.original_params,
            "achieved_params": self.achieved_params,
            "budget_check": self.budget_report.message,
            "calibration_hash": self.calibration_identity.get("hash"),
            "recovery_hash": self.recovery_identity.get("hash"),
            "decisions": len(self.plan.decisions),
            "seconds": self.seconds,
            "pruning_cost": self.pruning_cost,
        }


def with_denoiser(generator: Any, module: Any) -> Any:
    """A shallow copy of ``generator`` whose denoiser is ``module`` (the original is left untouched)."""
    new = copy.copy(generator)
    pipe = getattr(generator, "pipe", None)
    if pipe is not None and getattr(pipe, "transformer", None) is generator.denoiser:
        components = dict(pipe.components)
        components["transformer"] = module
        new.pipe = type(pipe)(**components)
        if hasattr(new.pipe, "set_progress_bar_config"):
            new.pipe.set_progress_bar_config(disable=True)
        if hasattr(new, "_img2img"):
            new._img2img = None
        return new
    if getattr(generator, "model", None) is generator.denoiser:
        new.model = module
        return new
    raise TmpbenchError(f"cannot swap the denoiser of {type(generator).__name__}; it has no pipe.transformer or model")


def base_config(module: Any) -> dict[str, Any]:
    """The unpruned denoiser's config as a plain dict (what io rebuilds the base from)."""
    config = getattr(module, "config", None)
    if config is None:
        return {}
    data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return json.loads(json.dumps({k: v for k, v in data.items() if not str(k).startswith("_") or k == "_attn_implementation"},
                                 default=list))


def _state_items(module: Any, prefix: str = "") -> Any:
    """``module.state_dict(prefix=prefix).items()`` in the same order; where accelerate offloads weights,
    each module's own are read in turn (:func:`~tmpbench.pruning.calibration.onloaded`), so memory holds
    one module's worth at a time however deep the block lists sit (``model.layers.*`` included)."""
    if not offloaded(module):
        yield from module.state_dict(prefix=prefix).items()
        return
    with onloaded(module, recurse=False):
        yield from ((prefix + n, p) for n, p in module.named_parameters(recurse=False))
        yield from ((prefix + n, b) for n, b in module.named_buffers(recurse=False)
                    if n not in module._non_persistent_buffers_set)
    for name, child in module.named_children():
        yield from _state_items(child, f"{prefix}{name}.")


def weights_fingerprint(module: Any) -> str:
    """A cheap content hash of a module's weights: names, shapes, dtypes, sums and a few values each
    (the same for a model in memory and offloaded)."""
    import torch

    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in _state_items(module):
            h.update(f"{name}{tuple(p.shape)}{p.dtype}".encode())
            if p.device.type == "meta" or p.numel() == 0:
                continue
            flat = p.detach().reshape(-1)
            h.update(repr(float(flat.double().sum())).encode())
            h.update(flat[:16].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def check_prediction(plan: Plan, original: Any, pruned: Any, calibration: Any) -> None:
    """Measure the physically pruned model's error where the search predicted it.

    A search that scores masked states (``settings.search.evaluator == "masked_output_error"``) records
    the error it predicts for its final state on its calibration inputs. Here the pruned model (before
    any recovery) is scored on the same inputs, against the same teacher outputs, with the same
    per-timestep weights; ``measured_error`` and the relative ``prediction_gap`` join the plan.
    """
    search = plan.settings.get("search") if isinstance(plan.settings.get("search"), dict) else None
    if not search or search.get("evaluator") != "masked_output_error" or calibration is None:
        return
    from tmpbench.pruning.calibration import relative_output_error, timestep_weights

    inputs = calibration.subset(search.get("calib_inputs"))
    weights = timestep_weights(inputs.timesteps, search.get("timestep_weighting", "uniform"))
    measured = relative_output_error(pruned, inputs, inputs.outputs(original), weights)
    predicted = float(search.get("predicted_error", search.get("final_error", float("nan"))))
    search["measured_error"] = measured
    search["prediction_gap"] = abs(predicted - measured) / max(abs(measured), 1e-12)


def prune_generator(
    generator: Any,
    pruner_name: str,
    budget: str | Budget,
    *,
    pruner_settings: dict | None = None,
    calibration: CalibrationSpec | None = None,
    recover_steps: int = 0,
    recovery: RecoveryRecipe | None = None,
    seed: int = 0,
    progress: bool = True,
    reuse: tuple[Any, dict] | None = None,
    _collected: Any = None,
) -> PruneResult:
    """Prune ``generator``'s denoiser with ``pruner_name`` to ``budget``, optionally recover, and check it.

    ``calibration`` (default :func:`default_calibration`) is resolved against the model's default
    steps/size and collected once when the pruner needs data, the plan fits linear maps, or recovery
    runs. ``recovery`` (default ``RecoveryRecipe(steps=recover_steps)``) must agree with
    ``recover_steps`` when both are given. The achieved size must meet the budget (0.5%, or the
    nearest feasible size under the plan's rounding) or a TmpbenchError says by how much it missed.

    ``reuse`` = ``(plan, pruning_cost)`` of an earlier run of the same pruner, budget, settings and
    calibration (a recovery curve: the same plan, recovered for longer): planning is skipped, the plan
    is applied as it is, and that run's calibration and planning cost is carried into this one's
    (marked ``reused``), so the recorded cost stays what the plan took to make.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    budget = budget if isinstance(budget, Budget) else Budget.parse(budget)
    if recovery is not None and recover_steps and recovery.steps != recover_steps:
        raise TmpbenchError(
            f"recover_steps={recover_steps} disagrees with the recovery recipe's steps={recovery.steps}; give one"
        )
    recipe = recovery if recovery is not None else RecoveryRecipe(steps=int(recover_steps), seed=seed)
    name = model_name_of(generator)
    spec = (calibration or default_calibration(name)).resolved(*model_defaults(generator))
    original = generator.denoiser
    pruner = make_pruner(pruner_name, seed=seed, settings=pruner_settings)
    check_family(pruner, pruner_name, original)
    tree = unit_tree(original, size=budget.resolution)
    base_original, minimum = original_for_tree(budget, tree)
    budget.target(base_original, minimum)  # refuse impossible budgets before any sampling

    meters: dict[str, ComputeMeter] = {}
    calib = _collected
    needs_data = getattr(pruner, "needs_calibration", False) and reuse is None
    with ComputeMeter(original) as meters["calibration"]:
        if calib is None and (needs_data or recipe.steps > 0):
            calib = spec.collect(generator)
    timings["calibration"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    if reuse is None:
        with ComputeMeter(original) as meters["planning"]:
            outcome = plan_model(original, pruner_name, budget, pruner_settings=pruner_settings, calibration=calib,
                                 seed=seed, model_name=name, tree=tree, progress=progress)
        plan = outcome.plan
    else:
        plan = reuse[0]
        if plan.pruner != pruner_name or plan.calibration.get("hash") != spec.hash:
            raise TmpbenchError(f"a reused plan must come from the same pruner and calibration: got {plan.pruner!r} with "
                                f"calibration {plan.calibration.get('hash')!r}, want {pruner_name!r} with {spec.hash!r}")
    plan.calibration = {**(plan.calibration or {}), "spec": spec.identity(), "hash": spec.hash}
    search = plan.settings.get("search") if isinstance(plan.settings.get("search"), dict) else {}
    if reuse is None and search.get("forward_equivalents") is not None:  # a search running partial forwards counts them
        meters["planning"].extra["forward_equivalents"] = search["forward_equivalents"]
    timings["plan"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    maps: dict[str, Any] = {}
    with ComputeMeter(original) as meters["apply"]:
        if any(d.policy == "linear_replace" for d in plan.decisions):
            from tmpbench.pruning.calibration import fit_linear_maps

            if calib is None:
                calib = spec.collect(generator)
            maps = fit_linear_maps(original, plan, calib)
        pruned = (apply_offloaded if offloaded(original) else apply)(original, plan, linear_maps=maps)
    achieved = measured_size(pruned, budget.kind, budget.resolution)
    report = _check(base_original, achieved, budget, plan, tree).require()
    plan.achieved_params = int(count_params(pruned))
    timings["apply"] = time.perf_counter() - t2
    check_prediction(plan, original, pruned, calib)

    t3 = time.perf_counter()
    log: dict[str, Any] = {}
    with ComputeMeter(original, pruned) as meters["recovery"]:
        if recipe.steps > 0:
            from tmpbench.pruning.recovery import distill

            pruned, log = distill(generator, pruned, spec, recipe, progress=progress)
    timings["recovery"] = time.perf_counter() - t3
    stages = {k: m.as_dict() for k, m in meters.items()}
    if reuse is not None:  # what the reused plan cost to make, plus this run's own collection for recovery
        earlier = reuse[1] or {}
        stages["planning"] = {**(earlier.get("planning") or {}), "reused": True}
        own = stages["calibration"]
        stages["calibration"] = {**(earlier.get("calibration") or {}), "reused": True}
        if own.get("denoiser_forwards") and not stages["calibration"].get("denoiser_forwards"):
            stages["recovery_calibration"] = own  # the plan was data-free: recovery's collection is new
    pruning_cost = {**stages, "total": cost_total(stages)}

    return PruneResult(
        generator=with_denoiser(generator, pruned.eval()),
        plan=plan,
        budget_report=report,
        # the items each stage drew (calib split; recovery's held-out loss: dev), so that compare and gate can
        # refuse an evaluation that overlaps them
        calibration_identity={**spec.identity(), "item_ids": spec.item_ids(),
                              "collected": dict(getattr(calib, "identity", {}) or {}) if calib is not None else None},
        recovery_identity={**recipe.identity(), "item_ids": log.get("item_ids", {}),
                           "held_out_item_ids": log.get("held_out_item_ids", {})},
        original_params=int(tree.params),
        achieved_params=plan.achieved_params,
        linear_maps=maps,
        recovery_log=log,
        base={"model": name, "class": type(original).__name__, "weights": weights_fingerprint(original),
              "config": base_config(original)},
        seconds={k: round(v, 3) for k, v in timings.items()},
        pruning_cost=pruning_cost,
        pruner_settings=dict(pruner_settings or {}),
        seed=int(seed),
    )


def prune_all(
    generator: Any,
    pruners: Sequence[str],
    budgets: Sequence[str | Budget],
    *,
    calibration: CalibrationSpec | None = None,
    recovery: RecoveryRecipe | None = None,
    pruner_settings: dict[str, dict] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[PruneResult]:
    """Every pruner at every budget with ONE calibration spec, ONE collected calibration set and
    ONE recovery recipe; refuses to return results whose calibration/recovery identities differ."""
    spec = (calibration or default_calibration(model_name_of(generator))).resolved(*model_defaults(generator))
    recipe = recovery or RecoveryRecipe(seed=seed)
    collected = None
    results = []
    for name in pruners:
        pruner = make_pruner(name, seed=seed, settings=(pruner_settings or {}).get(name))
        if collected is None and (getattr(pruner, "needs_calibration", False) or recipe.steps > 0):
            collected = spec.collect(generator)
        for b in budgets:
            results.append(prune_generator(generator, name, b, pruner_settings=(pruner_settings or {}).get(name),
                                           calibration=spec, recovery=recipe, seed=seed, progress=progress,
                                           _collected=collected))
    check_identical(results)
    return results


def check_identical(results: Sequence[PruneResult]) -> None:
    """Raise TmpbenchError unless all results share their calibration and recovery hashes."""
    for key in ("calibration_identity", "recovery_identity"):
        hashes = {getattr(r, key).get("hash") for r in results}
        if len(hashes) > 1:
            raise TmpbenchError(f"pruners in one comparison used different {key.split('_')[0]} settings ({sorted(hashes)}); use one spec")
