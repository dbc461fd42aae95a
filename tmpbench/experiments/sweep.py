"""``tmpbench sweep``: every pruner at every budget under one calibration, one recovery recipe, one
evaluation subset and one set of seeds, each run in its own folder, then the comparison report.

Identical settings are enforced by construction: the :class:`~tmpbench.pruning.recipes.CalibrationSpec`
and :class:`~tmpbench.pruning.recipes.RecoveryRecipe` are built ONCE per sweep and the same objects are
handed to every run; their hashes are written to ``sweep.json`` and checked against what each run
recorded. Runs whose ``results.json`` exists and whose inputs match are reused, not rerun.

Folder::

    OUT/sweep.json            settings, calibration/recovery identities, one entry per run
    OUT/teacher/              the unpruned model's run (tmpbench run layout)
    OUT/<variant>-<budget>/   one run per pruner (or ablation variant) and budget, e.g. tmp-25pct
    OUT/<variant>-<budget>-r<N>/  with several --recover-steps: one run per recovery length N > 0 (a recovery
                                  curve; its 0 is the plain <variant>-<budget> run, so a curve added to a
                                  finished sweep reuses its unrecovered runs and their plans)
    OUT/pruned-cache/         pruned models shared by the runs (the prune runner's cache)
    OUT/report/               report.html, table.md/csv, quality_vs_ratio_<metric>.png/svg
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmpbench.errors import BudgetMissError, TmpbenchError

SWEEP_FILE = "sweep.json"
INPUTS_FILE = "sweep_inputs.json"
TEACHER_DIR = "teacher"
# RunConfig fields through which a run receives the sweep's shared objects (see run_fields_supported)
SHARED_RUN_FIELDS = ("calibration", "recovery", "pruner_settings", "seed")
# samples per prompt of a sweep: its paired tests between pruners resample items AND seeds, so the CI
# they print includes seed noise only with at least two samples per prompt
MIN_SWEEP_SEEDS = 2


@dataclass(frozen=True)
class Variant:
    """One column of a sweep: a pruner and its settings under a name (``tmp``, ``tmp-depth1``, ...)."""

    name: str
    pruner: str
    settings: dict = field(default_factory=dict, hash=False)


@dataclass
class SweepConfig:
    """Everything ``tmpbench sweep`` takes; None = the model entry's / suite's default."""

    model: str  # registered base model name, e.g. "tiny-dit" (local weights via model_path)
    suite: str
    variants: list[Variant]
    budgets: list[str]
    out: Path
    limit: int | None = None
    split: str = "test"  # evaluation split (calibration and recovery always draw from calib)
    seeds: int | None = MIN_SWEEP_SEEDS  # None = the default (2); fewer is refused (see validate)
    steps: int | None = None
    size: int | None = None
    guidance: float | None = None
    model_path: str | None = None
    metrics: str | None = None
    # recovery distillation steps; several values (e.g. (0, 20, 100, 400)) give every (variant, budget) one
    # run per value: quality against recovery steps under otherwise identical inputs
    recover_steps: int | tuple[int, ...] = 0
    calib_prompts: int | None = None  # None = the prune runner's default calibration
    calibration_mix: str | None = None  # e.g. "t2i=0.5,edit=0.5"; None = the model's default mix
    calib_draw: int = 0  # which disjoint set of calib items (CalibrationSpec.draw); 0 = the first
    calib_steps: int | None = None
    seed: int = 0
    batch_size: int | None = None  # None: the model entry's default_batch_size
    device: str | None = None
    offload: str = "none"  # tmpbench run --offload for every run (images are the same; memory and latency change)
    teacher: bool = True
    prune_cache: Path | None = None  # pruned-model cache (default OUT/pruned-cache); sweeps may share one
    progress: bool = True
    # a pruner or variant that cannot land a budget (e.g. depth-only on a model whose blocks are
    # too coarse) becomes a recorded miss, with the nearest size it reaches, instead of stopping
    # the whole sweep; False re-raises the one-line error
    record_misses: bool = True

    def __post_init__(self) -> None:
        if self.seeds is None:
            self.seeds = MIN_SWEEP_SEEDS

    @property
    def recover_list(self) -> tuple[int, ...]:
        steps = self.recover_steps
        return (int(steps),) if isinstance(steps, int) else tuple(int(s) for s in steps)


def parse_list(text: str, what: str) -> list[str]:
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise TmpbenchError(f"--{what} {text!r} names nothing; pass a comma-separated list")
    if len(set(items)) != len(items):
        dup = next(i for i in items if items.count(i) > 1)
        raise TmpbenchError(f"--{what} lists {dup!r} twice; name each once")
    return items


def parse_budgets(text: str) -> list[str]:
    """``"25%,50%"`` -> validated budget strings (each parsed by the prune runner's Budget)."""
    from tmpbench.pruning.budget import Budget

    budgets = parse_list(text, "budgets")
    for b in budgets:
        Budget.parse(b)
    return budgets


def parse_recover_steps(text: str) -> tuple[int, ...]:
    """``"0,20,100,400"`` -> ``(0, 20, 100, 400)``: distinct non-negative step counts, in the order given."""
    out = []
    for t in parse_list(text, "recover-steps"):
        try:
            n = int(t)
        except ValueError:
            raise TmpbenchError(f"--recover-steps {text!r}: {t!r} is not a whole number of steps") from None
        if n < 0:
            raise TmpbenchError(f"--recover-steps {text!r}: steps must be 0 or more, got {n}")
        if n in out:
            raise TmpbenchError(f"--recover-steps {text!r} gives {n} twice")
        out.append(n)
    return tuple(out)


def run_dir_name(variant: str, budget: str) -> str:
    return f"{variant}-{budget.replace('%', 'pct').replace('@', '_at_')}"


def run_fields_supported() -> bool:
    """Whether ``tmpbench.run.pipeline.RunConfig`` forwards calibration/recovery/pruner settings/seed to the
    prune runner (needed for non-default settings; see the report to the lead)."""
    from tmpbench.run.pipeline import RunConfig

    names = {f.name for f in dataclasses.fields(RunConfig)}
    return all(n in names for n in SHARED_RUN_FIELDS)


def shared_objects(cfg: SweepConfig) -> tuple[Any, Any]:
    """The ONE CalibrationSpec and ONE RecoveryRecipe every run of the sweep gets (the recipe of the first
    ``--recover-steps`` value; :func:`recipes_by_steps` gives one per value)."""
    from tmpbench.pruning.recipes import RecoveryRecipe, default_calibration

    calib = default_calibration(cfg.model)
    changes: dict[str, Any] = {}
    if cfg.calib_prompts is not None:
        changes["n_prompts"] = int(cfg.calib_prompts)
    if cfg.calib_steps is not None:
        changes["steps"] = int(cfg.calib_steps)
    if cfg.calibration_mix is not None:
        from tmpbench.pruning.recipes import parse_mix

        changes["mix"] = parse_mix(cfg.calibration_mix)
    if cfg.calib_draw:
        changes["draw"] = int(cfg.calib_draw)
    if changes:
        calib = dataclasses.replace(calib, **changes)
    recipe = RecoveryRecipe(steps=cfg.recover_list[0], seed=int(cfg.seed))
    return calib, recipe


def recipes_by_steps(cfg: SweepConfig, first: Any) -> dict[int, Any]:
    """One RecoveryRecipe per ``--recover-steps`` value, identical but for the step count."""
    return {n: dataclasses.replace(first, steps=n) for n in cfg.recover_list}


def validate(cfg: SweepConfig) -> tuple[Any, Any]:
    """Check everything before any model is loaded; returns ``(suite, model entry)``."""
    from tmpbench.catalog import PRUNERS
    from tmpbench.models.base import check_offload
    from tmpbench.models.spec import parse_spec, resolve_entry
    from tmpbench.suites.core import load_suite

    check_offload(cfg.offload)
    spec = parse_spec(cfg.model)
    if spec.path is not None or spec.budget is not None:
        raise TmpbenchError(
            f"sweep --model {cfg.model!r} must be a registered unpruned model name (e.g. tiny-dit); "
            "give local weights with --model-path DIR and sizes with --budgets"
        )
    entry = resolve_entry(spec)
    if not cfg.variants:
        raise TmpbenchError("sweep needs at least one pruner; pass --pruners tmp,random,...")
    if not cfg.budgets:
        raise TmpbenchError("sweep needs at least one budget; pass --budgets 25%,50%")
    names = [v.name for v in cfg.variants]
    if len(set(names)) != len(names):
        raise TmpbenchError(f"sweep variants must have distinct names, got {names}")
    for v in cfg.variants:
        PRUNERS.get(v.pruner)  # unknown pruner -> "did you mean"
    if cfg.seeds < MIN_SWEEP_SEEDS:
        raise TmpbenchError(
            f"--seeds {cfg.seeds}: a sweep's paired tests between pruners need at least {MIN_SWEEP_SEEDS} samples "
            f"per prompt to put seed noise in their CIs; pass --seeds {MIN_SWEEP_SEEDS} (the default) or more"
        )
    for b in cfg.budgets:
        if not b.endswith("%"):
            raise TmpbenchError(f"sweep budget {b!r}: give budgets as shares removed, e.g. 25%,50% (absolute sizes: tmpbench run)")
    suite = load_suite(cfg.suite, limit=cfg.limit, split=cfg.split)
    if not run_fields_supported():
        calib, recipe = shared_objects(cfg)
        from tmpbench.pruning.recipes import RecoveryRecipe, default_calibration

        nondefault = [v.name for v in cfg.variants if v.settings]
        if nondefault or calib != default_calibration(cfg.model) or recipe != RecoveryRecipe(steps=cfg.recover_list[0], seed=0):
            what = f"pruner settings of {nondefault[0]!r}" if nondefault else "non-default calibration/recovery/seed"
            raise TmpbenchError(
                f"this checkout's tmpbench.run.pipeline.RunConfig cannot pass {what} to the prune runner "
                f"(it lacks the fields {', '.join(SHARED_RUN_FIELDS)}); use the defaults or update tmpbench/run"
            )
    return suite, entry


def _log(cfg: SweepConfig, msg: str) -> None:
    if cfg.progress:
        print(msg, file=sys.stderr, flush=True)


def _recorded_hash(results: dict, key: str) -> str | None:
    model = results["model"]
    ident = model.get(key) or (model.get("prune_info") or {}).get(key) or {}
    return ident.get("hash") if isinstance(ident, dict) else None


def run_one(cfg: SweepConfig, variant: Variant | None, budget: str | None, calib: Any, recipe: Any,
            expected: dict[str, str], suffix: str = "") -> dict:
    """One run of the sweep (variant None = the unpruned teacher); reused when its inputs match.

    Pruned runs read the sweep's teacher images (``OUT/teacher/images``) when the sweep ran its teacher,
    instead of generating them again per run."""
    from tmpbench.pruning.factory import default_drift
    from tmpbench.run.pipeline import IMAGES, RunConfig, run_benchmark

    name = TEACHER_DIR if variant is None else run_dir_name(variant.name, budget) + suffix
    metrics = cfg.metrics if variant is not None else teacher_metrics(cfg.metrics)
    out = Path(cfg.out) / name
    inputs = {
        "model": cfg.model, "model_path": cfg.model_path, "suite": cfg.suite, "limit": cfg.limit, "split": cfg.split,
        "seeds": cfg.seeds, "steps": cfg.steps, "size": cfg.size, "guidance": cfg.guidance, "metrics": metrics,
        "pruner": None if variant is None else variant.pruner,
        # a changed pruner default counts as a setting, so a run made under the old default is not reused
        "settings": None if variant is None else {**default_drift(variant.pruner, variant.settings), **variant.settings},
        "budget": budget, "calibration": None if variant is None else expected["calibration"],
        "recovery": None if variant is None else expected["recovery"], "seed": cfg.seed,
    }
    if cfg.offload != "none":  # the efficiency a run records depends on it; sweeps before it keep their inputs
        inputs["offload"] = cfg.offload
    entry = {"dir": name, "variant": TEACHER_DIR if variant is None else variant.name,
             "pruner": None if variant is None else variant.pruner, "budget": budget,
             "settings": {} if variant is None else variant.settings,
             "recover_steps": 0 if variant is None else int(recipe.steps)}
    inputs_file = out / INPUTS_FILE
    if (out / "results.json").is_file() and inputs_file.is_file() and json.loads(inputs_file.read_text()) == inputs:
        _log(cfg, f"sweep: reusing {out} (results.json matches the inputs)")
        return {**entry, "reused": True, "seconds": 0.0}
    _log(cfg, f"sweep: running {name} ...")
    start = time.perf_counter()
    kwargs: dict[str, Any] = dict(
        suite=cfg.suite, model=cfg.model if variant is None else f"{cfg.model}-{budget}",
        out=out, pruner=None if variant is None else variant.pruner, seeds=cfg.seeds, limit=cfg.limit, split=cfg.split,
        batch_size=cfg.batch_size, steps=cfg.steps, guidance=cfg.guidance, size=cfg.size, model_path=cfg.model_path,
        metrics=metrics, device=cfg.device, offload=cfg.offload, recover_steps=0 if variant is None else int(recipe.steps),
        prune_cache=Path(cfg.prune_cache) if cfg.prune_cache is not None else Path(cfg.out) / "pruned-cache",
        progress=cfg.progress,
        argv=["tmpbench", "sweep", f"(run {name})"],
    )
    if variant is not None and run_fields_supported():
        kwargs.update(calibration=calib, recovery=recipe, pruner_settings=dict(variant.settings) or None, seed=cfg.seed)
        if cfg.teacher:
            kwargs.update(teacher_images=Path(cfg.out) / TEACHER_DIR / IMAGES)
    if inputs_file.is_file():
        inputs_file.unlink()
    results = run_benchmark(RunConfig(**kwargs))
    if results is None:
        raise TmpbenchError("sweep runs in one process; launch it without accelerate")
    if variant is not None:
        for key in ("calibration", "recovery"):
            got = _recorded_hash(results, key)
            if got is not None and got != expected[key]:
                raise TmpbenchError(
                    f"sweep: run {name} recorded {key} hash {got}, but the sweep's shared {key} has {expected[key]}; "
                    "the runs would not be comparable"
                )
    out.mkdir(parents=True, exist_ok=True)
    inputs_file.write_text(json.dumps(inputs, indent=1, sort_keys=True) + "\n")
    return {**entry, "reused": False, "seconds": round(time.perf_counter() - start, 2)}


def teacher_metrics(metrics: str | None) -> str | None:
    """The sweep's ``--metrics`` less those comparing a pruned model with its teacher (PSNR/SSIM/LPIPS to
    the teacher), which the unpruned teacher run cannot score; None when that leaves the suite's defaults."""
    if metrics is None:
        return None
    from tmpbench.scoring.engine import FIDELITY_METRICS

    kept = [m for m in parse_list(metrics, "metrics") if m.split(":")[0] not in FIDELITY_METRICS]
    return ",".join(kept) or None


def run_sweep(cfg: SweepConfig, report: bool = True) -> dict:
    """Run (or reuse) the teacher and every (variant, budget); write sweep.json and the report.

    Returns ``sweep.json``'s content plus ``report`` (paths from :func:`tmpbench.report.html.write_report`).
    """
    suite, entry = validate(cfg)
    if not cfg.progress:  # --quiet: also silence the libraries' own weight-loading bars
        import diffusers.utils.logging as dlog
        import transformers.utils.logging as tlog

        tlog.disable_progress_bar()
        dlog.disable_progress_bar()
    calib, recipe = shared_objects(cfg)
    recipes = recipes_by_steps(cfg, recipe)
    resolved = calib.resolved(entry.default_steps, entry.default_size, entry.default_guidance)
    expected = {"calibration": resolved.hash, "recovery": recipe.hash}
    curve = len(recipes) > 1
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    runs = []
    if cfg.teacher:
        runs.append(run_one(cfg, None, None, calib, recipe, expected))
    for budget in cfg.budgets:
        for variant in cfg.variants:
            for steps, rec in recipes.items():
                suffix = f"-r{steps}" if curve and steps > 0 else ""  # a curve's 0 is the plain run: reused
                try:
                    runs.append(run_one(cfg, variant, budget, calib, rec, {**expected, "recovery": rec.hash}, suffix))
                except BudgetMissError as exc:
                    if not cfg.record_misses:
                        raise
                    runs.append({"dir": run_dir_name(variant.name, budget) + suffix, "variant": variant.name,
                                 "pruner": variant.pruner, "budget": budget, "settings": variant.settings,
                                 "recover_steps": steps, "error": str(exc), "reused": False,
                                 "nearest": exc.achieved, "target": exc.target, "relative_error": exc.relative_error})
                    break  # the other recovery lengths of a plan that cannot land miss the same way
    manifest = {
        "model": cfg.model, "model_path": cfg.model_path, "suite": cfg.suite, "suite_hash": suite.hash,
        "items": len(suite.items), "limit": cfg.limit, "split": cfg.split, "seeds": cfg.seeds, "steps": cfg.steps, "size": cfg.size,
        "budgets": list(cfg.budgets), "variants": [dataclasses.asdict(v) for v in cfg.variants],
        "calibration": resolved.identity(), "recovery": recipe.identity(), "recover_steps": list(recipes), "seed": cfg.seed,
        "runs": runs, "seconds": round(time.perf_counter() - start, 2),
    }
    (out / SWEEP_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str) + "\n")
    if report:
        from tmpbench.report.html import write_report
        from tmpbench.report.tables import load_run

        records = [load_run(out / r["dir"]) for r in runs if "error" not in r]
        versus = "tmp" if any(v.pruner == "tmp" and not v.settings for v in cfg.variants) else None
        manifest["report"] = write_report(records, out / "report", title=f"tmpbench sweep: {cfg.model} on {cfg.suite}", versus=versus,
                                          notes=[f"calibration {expected['calibration']}, recovery "
                                                 + (f"{expected['recovery']} ({recipe.steps} steps)" if not curve else
                                                    f"recipes identical but for their steps ({', '.join(map(str, recipes))})")
                                                 + ", identical for every pruned run"])
    return manifest


__all__ = ["SweepConfig", "Variant", "parse_budgets", "parse_list", "parse_recover_steps", "recipes_by_steps", "run_dir_name",
           "run_sweep", "shared_objects"]


def dense_pruners() -> list[str]:
    """TMP first, then every registered pruner that handles dense DiTs."""
    from tmpbench.pruning.factory import pruner_list

    names = [r["name"] for r in pruner_list() if "dit" in r["families"]]
    return sorted(names, key=lambda n: (n != "tmp", names.index(n)))


def pruners_for(model: str) -> list[str]:
    """TMP first, then every registered pruner that handles ``model``'s family (dense DiT or MoE)."""
    from tmpbench.pruning.factory import pruner_list

    family = "moe" if model_is_moe(model) else "dit"
    names = [r["name"] for r in pruner_list() if family in r["families"]]
    return sorted(names, key=lambda n: (n != "tmp", names.index(n)))


def model_is_moe(model: str) -> bool:
    """Whether a registered model's denoiser has MoE blocks (built on the meta device; nothing loaded)."""
    from tmpbench.models.spec import parse_spec, resolve_entry
    from tmpbench.pruning.families import model_family

    entry = resolve_entry(parse_spec(model))
    try:
        return model_family(entry.build_meta()) == "moe"
    except TmpbenchError:
        return entry.family == "hunyuanimage3"
