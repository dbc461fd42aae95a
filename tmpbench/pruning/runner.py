"""The prune runner: one path from (generator, pruner, budget) to a pruned generator, for every pruner alike.

The arrows, each in one place::

    generator.denoiser --unit_tree--> UnitTree --Budget.target--> target size
        --CalibrationSpec.collect--> Calibration (same prompts/seeds/steps/size for every pruner)
        --pruner.plan--> Plan --apply--> pruned denoiser --check_achieved--> BudgetReport
        --recovery.distill(RecoveryRecipe)--> recovered denoiser --> PruneResult (--io.save_pruned-->)

"Identical calibration and recovery" is enforced by construction: a :class:`CalibrationSpec` and a
:class:`RecoveryRecipe` are small frozen dataclasses built once, handed unchanged to every pruner
of a comparison (:func:`prune_all` passes one instance of each), and their hashes are recorded in
every :class:`PruneResult`, Plan and saved folder; :func:`check_identical` refuses results whose
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
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tmpbench.errors import TmpbenchError
from tmpbench.pruning.budget import Budget, BudgetReport, check_achieved, original_for_tree
from tmpbench.pruning.plan import Plan, model_identity, validate_plan
from tmpbench.catalog import MODELS, PRUNERS



def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# calibration and recovery: built once, recorded everywhere
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CalibrationSpec:
    """Which data every pruner calibrates on: ``n_prompts`` prompts of ``suite`` (round-robin over its
    categories, as ``--limit`` does), one seed each, sampled for ``steps`` steps at ``size`` px.

    ``seeds`` None uses the suite's own item seeds. ``steps``/``size``/``guidance`` None take the
    model's defaults when the spec is resolved (:meth:`resolved`).
    """

    suite: str = "shapes-t2i"
    n_prompts: int = 8
    steps: int | None = None
    size: int | None = None
    guidance: float | None = None
    seeds: tuple[int, ...] | None = None
    max_inputs: int | None = None  # cap on captured denoiser calls (None: every step of every prompt)
    source: str | None = None  # suite source override (file / folder), as `tmpbench run --suite-source`

    def __post_init__(self) -> None:
        if self.n_prompts < 1:
            raise TmpbenchError(f"calibration needs at least 1 prompt, got n_prompts={self.n_prompts}")
        if self.steps is not None and self.steps < 1:
            raise TmpbenchError(f"calibration steps must be >= 1, got {self.steps}")
        if self.size is not None and self.size < 1:
            raise TmpbenchError(f"calibration size must be positive, got {self.size}")
        if self.seeds is not None:
            object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
            if len(self.seeds) != self.n_prompts:
                raise TmpbenchError(f"calibration has {len(self.seeds)} seeds for {self.n_prompts} prompts; give one per prompt")

    def resolved(self, steps: int, size: int, guidance: float) -> CalibrationSpec:
        """This spec with unset steps/size/guidance filled from a model's defaults."""
        return replace(
            self,
            steps=self.steps if self.steps is not None else int(steps),
            size=self.size if self.size is not None else int(size),
            guidance=self.guidance if self.guidance is not None else float(guidance),
        )

    def prompts(self) -> tuple[list[str], list[int], str]:
        """(prompts, seeds, suite hash) this spec names."""
        from tmpbench.suites.core import load_suite

        suite = load_suite(self.suite, source=self.source, limit=self.n_prompts)
        if suite.kind != "t2i":
            raise TmpbenchError(f"calibration suite {self.suite!r} is a {suite.kind} suite; use a T2I suite such as shapes-t2i")
        items = list(suite.items)[: self.n_prompts]
        seeds = list(self.seeds) if self.seeds is not None else [it.seed for it in items]
        return [it.prompt for it in items], seeds[: len(items)], suite.hash

    def identity(self) -> dict[str, Any]:
        data = asdict(self)
        data["seeds"] = list(self.seeds) if self.seeds is not None else None
        data["hash"] = _digest(data)
        return data

    @property
    def hash(self) -> str:
        return self.identity()["hash"]

    def collect(self, generator: Any) -> Any:
        """Run the generator's own sampling on these prompts and capture the denoiser's inputs."""
        from tmpbench.pruning.calibration import collect_calibration

        if self.steps is None or self.size is None:
            raise TmpbenchError("calibration spec has no steps/size; call .resolved(...) with the model's defaults first")
        prompts, seeds, suite_hash = self.prompts()
        calib = collect_calibration(generator, prompts, seeds, self.steps, self.size,
                                    guidance=self.guidance if self.guidance is not None else 1.0,
                                    max_inputs=self.max_inputs)
        identity = dict(getattr(calib, "identity", {}) or {})
        identity.update(spec=self.identity(), suite_hash=suite_hash)
        calib.identity = identity
        return calib


@dataclass(frozen=True)
class RecoveryRecipe:
    """How every pruned model is recovered: knowledge distillation from the unpruned teacher.

    ``steps`` optimiser steps of AdamW at ``lr`` on batches of ``batch`` states; the loss is
    ``output_weight * MSE(student, teacher)`` on the denoiser output plus ``feature_weight *
    MSE`` on the hidden state entering the final layer. States are the teacher's own sampling
    trajectory (``1 - fresh_fraction`` of each batch) and fresh re-noisings of the teacher's
    samples at uniformly random t (``fresh_fraction``). Prompts come from the CalibrationSpec.
    """

    steps: int = 0
    lr: float = 1e-4
    batch: int = 4
    output_weight: float = 1.0
    feature_weight: float = 0.0
    fresh_fraction: float = 0.5
    grad_clip: float | None = 1.0
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise TmpbenchError(f"recovery steps must be >= 0, got {self.steps}")
        if not self.lr > 0:
            raise TmpbenchError(f"recovery lr must be positive, got {self.lr}")
        if self.batch < 1:
            raise TmpbenchError(f"recovery batch must be >= 1, got {self.batch}")
        if self.output_weight < 0 or self.feature_weight < 0 or self.output_weight + self.feature_weight == 0:
            raise TmpbenchError(
                f"recovery loss weights must be >= 0 and not both 0 (output {self.output_weight}, feature {self.feature_weight})"
            )
        if not 0.0 <= self.fresh_fraction <= 1.0:
            raise TmpbenchError(f"fresh_fraction must lie in [0, 1], got {self.fresh_fraction}")

    def identity(self) -> dict[str, Any]:
        data = asdict(self)
        data["method"] = "kd-output-mse"
        data["hash"] = _digest(data)
        return data

    @property
    def hash(self) -> str:
        return self.identity()["hash"]


def default_calibration(model_name: str | None) -> CalibrationSpec:
    """The suite the model's registry entry names (``calibration_suite``: shapes-t2i for the
    ShapesWorld references, GenEval prompts for the real models); shapes-t2i when no model is named."""
    if not model_name:
        return CalibrationSpec(suite="shapes-t2i")
    base = model_name.split("/")[-1]
    entry = MODELS.get(base) if base in MODELS else None
    return CalibrationSpec(suite=getattr(entry, "calibration_suite", "geneval"))


# --------------------------------------------------------------------------------------------
# trees, apply and size accounting for both layouts
# --------------------------------------------------------------------------------------------
def unit_tree(model: Any, size: int | None = None) -> Any:
    """The unit tree of a denoiser: Z-Image-family DiTs or HunyuanImage-3.0-layout decoders."""
    from tmpbench.pruning.hunyuan_tree import build_hunyuan_tree, is_hunyuan_decoder
    from tmpbench.pruning.tree import build_unit_tree

    if is_hunyuan_decoder(model):
        return build_hunyuan_tree(model, size=size)
    return build_unit_tree(model, size=size)


def apply(model: Any, plan: Plan, linear_maps: dict | None = None) -> Any:
    """Replay ``plan`` on a copy of ``model`` with the surgery of its layout."""
    from tmpbench.pruning.hunyuan_tree import apply_hunyuan_plan, is_hunyuan_decoder
    from tmpbench.pruning.surgery import apply_plan

    detach_cached_tensors(model)
    if is_hunyuan_decoder(model):
        return apply_hunyuan_plan(model, plan, linear_maps=linear_maps)
    return apply_plan(model, plan, linear_maps=linear_maps)


def detach_cached_tensors(model: Any) -> None:
    """Detach tensors modules keep from their last forward (e.g. an MoE block's ``aux_loss`` after a
    gradient-based scorer ran): deepcopy refuses non-leaf tensors, and surgery copies the model."""
    import torch

    for module in model.modules():
        for key, value in list(vars(module).items()):
            if isinstance(value, torch.Tensor) and value.grad_fn is not None:
                setattr(module, key, value.detach())


def model_family(model: Any) -> str:
    """``"moe"`` when the denoiser has MoE blocks, else ``"dit"`` (what Pruner.families names)."""
    from tmpbench.models.moe import find_moe_blocks

    return "moe" if find_moe_blocks(model) else "dit"


def planned_size(tree: Any, plan: Plan, kind: str = "params") -> float:
    """Size the plan leaves, from the tree alone (no surgery; works at meta size)."""
    parent: dict[str, Any] = {}
    for node in tree.walk():
        for child in node.children:
            parent[child.path] = node
    total = float(tree.params if kind == "params" else tree.flops)
    kept_experts: dict[str, int] = {}  # MoE path -> experts left (expert channels cost per kept expert)
    for d in plan.decisions:
        if d.policy in ("prune_experts", "merge_experts"):
            kept_experts[d.path] = len(d.keep or d.groups or [])
    for d in plan.decisions:
        channels = tree.expert_channels(d.path)
        if channels is not None:
            experts = int(channels.constraints["experts"])
            removed = channels.count - len(d.keep) // experts
            if kind == "params":
                moe = channels.constraints["moe"]
                total -= removed * (channels.unit_params // experts) * kept_experts.get(moe, experts)
            else:
                total -= removed * channels.unit_flops
            continue
        node = tree[d.path]
        cost = node.params if kind == "params" else node.flops
        if d.policy == "drop_block":
            total -= cost
        elif d.policy == "linear_replace":
            dim = int(node.constraints.get("dim") or 0)
            if kind == "params":
                total -= cost - (dim * dim + dim)
            else:
                tokens = parent[d.path].constraints.get("tokens", 0)
                total -= cost - 2.0 * tokens * dim * dim
        else:
            unit = node.children[0]
            per = unit.unit_params if kind == "params" else unit.unit_flops
            if d.policy == "merge_experts":
                left = len(d.groups or [])
                total -= (unit.count - left) * per
                router_bias = node.constraints.get("router_bias", False)
                if kind == "params" and (d.merge_router or "lse") == "lse" and not router_bias and any(len(g) > 1 for g in d.groups):
                    total += left  # the merged router gains a bias vector
            else:
                total -= (unit.count - len(d.keep or [])) * per
    return total


def measured_size(model: Any, kind: str, size: int | None) -> float:
    if kind == "params":
        return float(sum(p.numel() for p in model.parameters()))
    return float(unit_tree(model, size=size).flops)


# --------------------------------------------------------------------------------------------
# pruners
# --------------------------------------------------------------------------------------------
def make_pruner(name: str, seed: int = 0, settings: dict | None = None) -> Any:
    """Instantiate registered pruner ``name`` (unknown names answer "did you mean")."""
    cls = PRUNERS.get(name)
    pruner = cls(seed=seed, **dict(settings or {})) if isinstance(cls, type) else cls
    if not hasattr(pruner, "plan"):
        raise TmpbenchError(f"pruner {name!r} is registered as {type(pruner).__name__}, which has no plan() method")
    return pruner


def check_family(pruner: Any, name: str, model: Any) -> str:
    family = model_family(model)
    families = getattr(pruner, "families", None)
    if families and family not in families:
        kinds = " or ".join(sorted(families))
        raise TmpbenchError(
            f"pruner {name!r} works on {kinds} models, but {type(model).__name__} is a {family} model; "
            f"pick a pruner for {family} (`tmpbench pruners list`)"
        )
    return family


def pruner_list() -> list[dict[str, Any]]:
    """Every registered pruner with its families and whether it needs calibration data."""
    rows = []
    for name in PRUNERS.names():
        try:
            obj = PRUNERS.get(name)
            families = sorted(getattr(obj, "families", ()) or ())
            rows.append({"name": name, "families": families, "needs_calibration": bool(getattr(obj, "needs_calibration", False)),
                         "description": ((obj.__doc__ or "").strip().splitlines() or [""])[0]})
        except Exception as exc:  # a broken third-party entry should not hide the others
            rows.append({"name": name, "families": [], "needs_calibration": False, "description": f"(cannot load: {exc})"})
    return rows


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
        return {
            "model": self.plan.model,
            "pruner": self.plan.pruner,
            "original_params": int(self.plan.original_params),
            "achieved_params": int(self.plan.achieved_params),
            "requested": {"budget": self.budget.text, "kind": self.budget.label, "target": self.target,
                          "original": self.original},
            "achieved": self.achieved,
            "budget_check": self.report.to_dict(),
            "decisions": [asdict(d) for d in self.plan.decisions],
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
) -> PlanOutcome:
    """Plan (do not cut) ``model`` under ``budget`` with pruner ``pruner_name``; checks the plan lands.

    ``calibration`` is a collected Calibration or None (data-free proxies, as at meta size).
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
    if getattr(pruner, "needs_calibration", False) and calibration is None:
        pass  # the pruner decides whether data-free proxies are acceptable (it raises otherwise)
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
    multiple = plan.settings.get("rounding_multiple")
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
    seconds: dict[str, float] = field(default_factory=dict)

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


def model_defaults(generator: Any) -> tuple[int, int, float]:
    """(steps, size, guidance) defaults for calibration: the registered entry's, else tiny ones."""
    from tmpbench.catalog import MODELS

    name = getattr(generator, "model", None) if isinstance(getattr(generator, "model", None), str) else getattr(generator, "name", None)
    if isinstance(name, str) and name in MODELS:
        entry = MODELS.get(name)
        return int(entry.default_steps), int(entry.default_size), float(entry.default_guidance)
    return 2, 32, 1.0


def model_name_of(generator: Any) -> str | None:
    model = getattr(generator, "model", None)
    return model if isinstance(model, str) else getattr(generator, "name", None)


def base_config(module: Any) -> dict[str, Any]:
    """The unpruned denoiser's config as a plain dict (what io rebuilds the base from)."""
    config = getattr(module, "config", None)
    if config is None:
        return {}
    data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return json.loads(json.dumps({k: v for k, v in data.items() if not str(k).startswith("_") or k == "_attn_implementation"},
                                 default=list))


def weights_fingerprint(module: Any) -> str:
    """A cheap content hash of a module's weights: names, shapes, dtypes, sums and a few values each."""
    import torch

    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in module.state_dict().items():
            h.update(f"{name}{tuple(p.shape)}{p.dtype}".encode())
            if p.device.type == "meta" or p.numel() == 0:
                continue
            flat = p.detach().reshape(-1)
            h.update(repr(float(flat.double().sum())).encode())
            h.update(flat[:16].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


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
    _collected: Any = None,
) -> PruneResult:
    """Prune ``generator``'s denoiser with ``pruner_name`` to ``budget``, optionally recover, and check it.

    ``calibration`` (default :func:`default_calibration`) is resolved against the model's default
    steps/size and collected once when the pruner needs data, the plan fits linear maps, or recovery
    runs. ``recovery`` (default ``RecoveryRecipe(steps=recover_steps)``) must agree with
    ``recover_steps`` when both are given. The achieved size must meet the budget (0.5%, or the
    nearest feasible size under the plan's rounding) or a TmpbenchError says by how much it missed.
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

    calib = _collected
    if calib is None and (getattr(pruner, "needs_calibration", False) or recipe.steps > 0):
        calib = spec.collect(generator)
    timings["calibration"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    outcome = plan_model(original, pruner_name, budget, pruner_settings=pruner_settings, calibration=calib,
                         seed=seed, model_name=name, tree=tree)
    plan = outcome.plan
    plan.calibration = {**(plan.calibration or {}), "spec": spec.identity(), "hash": spec.hash}
    timings["plan"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    maps: dict[str, Any] = {}
    if any(d.policy == "linear_replace" for d in plan.decisions):
        from tmpbench.pruning.calibration import fit_linear_maps

        if calib is None:
            calib = spec.collect(generator)
        maps = fit_linear_maps(original, plan, calib)
    pruned = apply(original, plan, linear_maps=maps)
    achieved = measured_size(pruned, budget.kind, budget.resolution)
    report = _check(base_original, achieved, budget, plan, tree).require()
    plan.achieved_params = int(sum(p.numel() for p in pruned.parameters()))
    timings["apply"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    log: dict[str, Any] = {}
    if recipe.steps > 0:
        from tmpbench.pruning.recovery import distill

        pruned, log = distill(generator, pruned, spec, recipe, progress=progress)
    timings["recovery"] = time.perf_counter() - t3

    return PruneResult(
        generator=with_denoiser(generator, pruned.eval()),
        plan=plan,
        budget_report=report,
        calibration_identity={**spec.identity(), "collected": dict(getattr(calib, "identity", {}) or {}) if calib is not None else None},
        recovery_identity=recipe.identity(),
        original_params=int(tree.params),
        achieved_params=plan.achieved_params,
        linear_maps=maps,
        recovery_log=log,
        base={"model": name, "class": type(original).__name__, "weights": weights_fingerprint(original),
              "config": base_config(original)},
        seconds={k: round(v, 3) for k, v in timings.items()},
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


# --------------------------------------------------------------------------------------------
# cache for `tmpbench run` (pruned specs such as tiny-dit-50%)
# --------------------------------------------------------------------------------------------
def pruned_cache_key(
    spec_text: str,
    pruner: str,
    budget: str,
    pruner_settings: dict | None,
    calibration_spec: CalibrationSpec | dict | None,
    recovery_recipe: RecoveryRecipe | dict | None,
    base_model_hash: str,
) -> str:
    """Key of a cached pruned model: every setting that shaped it."""
    def ident(x: Any) -> Any:
        return x.identity() if hasattr(x, "identity") else x

    return _digest({
        "spec": spec_text, "pruner": pruner, "budget": budget, "settings": pruner_settings or {},
        "calibration": ident(calibration_spec), "recovery": ident(recovery_recipe), "base": base_model_hash,
    })


def get_or_prune(
    spec: Any,
    *,
    pruner: str | None,
    cache_dir: str | Path,
    recover_steps: int = 0,
    budget: str | None = None,
    device: str = "cpu",
    model_path: str | None = None,
    pruner_settings: dict | None = None,
    calibration: CalibrationSpec | None = None,
    recovery: RecoveryRecipe | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[Any, dict[str, Any]]:
    """The pruned generator a spec names (``tiny-dit-50%`` / ``--pruner``), from ``cache_dir`` when a
    folder with the same key exists, else pruned now and saved there. Returns ``(generator, info)``;
    ``info`` holds the key, folder, whether it was cached, the budget check and the identities."""
    from tmpbench.models.spec import ModelSpec, parse_spec, resolve_entry
    from tmpbench.pruning.io import PRUNED_FILE, load_pruned, save_pruned

    parsed = spec if isinstance(spec, ModelSpec) else parse_spec(str(spec), pruner=pruner if budget is None else None)
    budget_text = budget or parsed.budget
    if budget_text is None:
        raise TmpbenchError(f"model spec {str(parsed)!r} names no budget; give a size such as {parsed.base}-50%")
    pruner_name = pruner or parsed.pruner or "tmp"
    entry = resolve_entry(parsed)
    base = entry.load(path=model_path if model_path is not None else parsed.path, device=device)
    spec_cal = (calibration or default_calibration(entry.name)).resolved(entry.default_steps, entry.default_size,
                                                                         entry.default_guidance)
    recipe = recovery if recovery is not None else RecoveryRecipe(steps=int(recover_steps), seed=seed)
    key = pruned_cache_key(parsed.base, pruner_name, budget_text, pruner_settings, spec_cal, recipe,
                           weights_fingerprint(base.denoiser))
    folder = Path(cache_dir) / f"{parsed.base}-{budget_text.replace('%', 'pct')}-{pruner_name}-{key[:12]}"
    info: dict[str, Any] = {"cache_key": key, "path": str(folder), "pruner": pruner_name, "budget": budget_text,
                            "base": parsed.base}
    if (folder / PRUNED_FILE).is_file():
        gen = load_pruned(folder, device=device)
        meta = json.loads((folder / PRUNED_FILE).read_text())
        info.update(cached=True, budget_check=meta.get("budget_report"), calibration=meta.get("calibration"),
                    recovery=meta.get("recovery"))
        return gen, info
    result = prune_generator(base, pruner_name, budget_text, pruner_settings=pruner_settings, calibration=spec_cal,
                             recovery=recipe, seed=seed, progress=progress)
    tmp = folder.with_name(folder.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    save_pruned(result, tmp, spec_text=str(parsed))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    info.update(cached=False, budget_check=result.budget_report.to_dict(), calibration=result.calibration_identity,
                recovery=result.recovery_identity)
    return load_pruned(folder, device=device), info
