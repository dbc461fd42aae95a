"""``tmpbench run`` end to end: suite -> generator -> images on disk -> scorers -> results.json.

:func:`run_benchmark` is the whole arrow in one function; every step it calls lives in its own module
(:mod:`~tmpbench.run.generate`, :mod:`~tmpbench.scoring.engine`, :mod:`~tmpbench.run.shard`,
:mod:`~tmpbench.run.results`). Everything the user can get wrong (suite, model spec, metric names and
modes, --seeds for OneIG, resuming into a folder made with other settings) is checked before the model
is loaded.

Output folder::

    DIR/run.json          the settings that shaped the images (a rerun must match them to resume)
    DIR/images/...        the suite's native layout (see tmpbench.run.generate)
    DIR/teacher/...       pruned runs: the unpruned teacher's images from the same seeds
    DIR/shards/rank-<r>.jsonl   per-process per-sample rows (merged by the main process)
    DIR/samples.jsonl     one line per sample: item, category, seed, image path, metric values
    DIR/results.json      tmpbench.run.results.Results
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.provenance import git_state, json_safe
from tmpbench.run import generate as gen
from tmpbench.run import results as res
from tmpbench.run import shard
from tmpbench.scoring import engine
from tmpbench.scoring.base import SampleScorer, SampleView, SetScorer
from tmpbench.suites.core import edit_source

IMAGES, TEACHER = "images", "teacher"


@dataclass
class RunConfig:
    """Every option of ``tmpbench run`` (None = the model entry's / suite's default)."""

    suite: str
    model: str
    out: Path
    pruner: str | None = None
    seeds: int | None = None  # samples per prompt (default 1; OneIG 4)
    limit: int | None = None
    split: str = "test"  # evaluation split of the suite (calib, dev, test; "all" for legacy runs)
    batch_size: int | None = None  # images per generator call (None: the resumed run's, else the model entry's)
    steps: int | None = None
    guidance: float | None = None
    size: int | None = None
    model_path: str | None = None
    source: str | None = None
    image_root: str | None = None  # an edit suite's input-image folder (the YAML's image_root option)
    metrics: str | None = None  # "geneval,fid:shapes"; None = the suite's metrics
    device: str | None = None
    # "none" | "model" | "group": diffusers offloading while generating (Generator.offload); the models load
    # on the CPU and stream to ``device``, so a model larger than the GPU can run (tmpbench fit names one)
    offload: str = "none"
    recover_steps: int = 0
    # shared pruning inputs (a sweep passes the same objects to every run; None = the runner's defaults)
    calibration: Any = None  # tmpbench.pruning.recipes.CalibrationSpec
    recovery: Any = None  # tmpbench.pruning.recipes.RecoveryRecipe
    pruner_settings: dict | None = None  # e.g. {"tree_depth": 1} for TMP
    seed: int = 0  # pruner seed
    prune_cache: Path | None = None
    # images folder of an unpruned run of the same model with the same generation settings (a sweep
    # passes its teacher run's): pruned runs read their teacher images there instead of regenerating them
    teacher_images: Path | None = None
    progress: bool = True
    judges: dict = field(default_factory=dict)  # in-code judges / detectors by metric name (tests, plug-ins)
    argv: list[str] = field(default_factory=lambda: list(sys.argv))


@dataclass
class Prepared:
    """The validated plan of a run, before any model is loaded."""

    suite: Any
    spec: Any
    entry: Any
    steps: int
    guidance: float
    size: int
    seeds: int
    batch_size: int  # images per generator call (groups hold whole items: tmpbench.run.generate.plan_groups)
    pruned: bool
    metrics: list[tuple[str, str | None]]
    layout: gen.OutputLayout
    teacher_layout: gen.OutputLayout | None
    folder: dict | None = None  # provenance of a pruned --model DIR (tmpbench.pruning.io.folder_provenance)


def prepare(cfg: RunConfig, with_metrics: bool = True) -> Prepared:
    """Load the suite, parse the spec and metrics, fix defaults; raise one line on bad input."""
    from tmpbench.models.base import check_offload
    from tmpbench.models.spec import parse_spec, resolve_entry
    from tmpbench.preflight import check_device, check_output_dir
    from tmpbench.suites.core import load_suite

    check_device(cfg.device)
    check_offload(cfg.offload)
    check_output_dir(cfg.out)
    overrides = {"image_root": str(cfg.image_root)} if cfg.image_root is not None else None
    suite = load_suite(cfg.suite, source=cfg.source, limit=cfg.limit, overrides=overrides, split=cfg.split)
    _check_source_images(suite)
    spec = parse_spec(cfg.model, pruner=cfg.pruner)
    entry = resolve_entry(spec)
    folder = pruned_folder(spec)
    pruned = spec.budget is not None or folder is not None
    layout_kind = gen.layout_for(suite)
    seeds = cfg.seeds if cfg.seeds is not None else (gen.ONEIG_GRID_SEEDS if layout_kind == "oneig" else 1)
    steps = int(cfg.steps if cfg.steps is not None else entry.default_steps)
    guidance = float(cfg.guidance if cfg.guidance is not None else entry.default_guidance)
    size = int(cfg.size if cfg.size is not None else entry.default_size)
    for flag, value in (("--steps", steps), ("--size", size)):
        if value < 1:
            raise TmpbenchError(f"{flag} {value} must be at least 1")
    batch_size = int(cfg.batch_size if cfg.batch_size is not None else resumed_batch_size(cfg.out) or entry.default_batch_size)
    if batch_size < 1:
        raise TmpbenchError(f"--batch-size must be at least 1, got {batch_size}")
    metrics: list = []
    if with_metrics:
        metrics = engine.parse_metric_list(cfg.metrics) if cfg.metrics is not None else engine.default_metrics(suite, pruned)
    out = Path(cfg.out)
    model_dir = gen.model_dir_name(cfg.model)
    layout = gen.OutputLayout(layout_kind, out / IMAGES, seeds, model_dir)
    teacher = None
    if pruned:
        teacher_root = out / TEACHER if cfg.teacher_images is None else Path(cfg.teacher_images)
        teacher = gen.OutputLayout(layout_kind, teacher_root, seeds, gen.model_dir_name(spec.base))
    prepared = Prepared(suite, spec, entry, steps, guidance, size, seeds, batch_size, pruned, metrics, layout, teacher, folder)
    if pruned and cfg.teacher_images is not None:
        check_shared_teacher(Path(cfg.teacher_images), prepared, cfg.model_path)
    return prepared


# what must match between a pruned run and the teacher run whose images it reuses
SHARED_TEACHER_KEYS = ("suite_hash", "steps", "guidance", "size", "seeds", "batch_size", "model_path")


def check_shared_teacher(images: Path, p: Prepared, model_path: str | None) -> None:
    """``--teacher-images`` must be the images of an unpruned run of this run's base model, made with the
    same suite items, seeds and sampler settings (read from that run's ``run.json``); one line otherwise."""
    try:
        have = json.loads((images.parent / "run.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise TmpbenchError(f"teacher images {images}: no readable run.json beside them ({exc.__class__.__name__}); "
                            "pass the images folder of a finished `tmpbench run` of the unpruned model") from None
    want = {"suite_hash": p.suite.hash, "steps": p.steps, "guidance": p.guidance, "size": p.size, "seeds": p.seeds,
            "batch_size": p.batch_size, "model_path": model_path}
    if have.get("pruner") is not None or have.get("model") != p.spec.base:
        raise TmpbenchError(f"teacher images {images}: made by {have.get('model')!r}, not the unpruned {p.spec.base!r}")
    diff = [k for k in SHARED_TEACHER_KEYS if have.get(k) != want[k]]
    if diff:
        k = diff[0]
        raise TmpbenchError(f"teacher images {images}: {k} {have.get(k)!r} differs from this run's {want[k]!r}; "
                            "the teacher images would not be paired with this run's")


def resumed_batch_size(out: Path | str) -> int | None:
    """The batch size recorded in ``out/run.json`` (None when there is no readable one): a rerun without
    ``--batch-size`` resumes with the batch its images were made in, whatever the model's default is now."""
    try:
        value = json.loads((Path(out) / "run.json").read_bytes()).get("batch_size")
    except (OSError, ValueError, UnicodeDecodeError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def pruned_folder(spec) -> dict | None:
    """The provenance of a ``--model DIR`` written by ``tmpbench prune`` (None for any other spec)."""
    from tmpbench.pruning.io import folder_provenance, is_pruned_dir

    if spec.path is None or not is_pruned_dir(spec.path):
        return None
    return folder_provenance(spec.path)


def _check_source_images(suite) -> None:
    """An edit suite's input images (files) exist before any model loads; names the first missing one."""
    missing = [it for it in suite.items if isinstance(it.source_image, Path) and not it.source_image.is_file()]
    if missing:
        first = missing[0]
        raise TmpbenchError(
            f"{suite.name}: {len(missing)} input image(s) not found, first {first.source_image} (item {first.id!r}); "
            "pass --image-root DIR (the folder holding them)"
        )


def manifest(cfg: RunConfig, p: Prepared) -> dict:
    """What shaped the images; resuming requires the same values."""
    return {
        "suite": p.suite.name,
        "suite_hash": p.suite.hash,
        "model": cfg.model,
        "pruner": p.spec.pruner,
        "model_path": cfg.model_path,
        "steps": p.steps,
        "guidance": p.guidance,
        "size": p.size,
        "seeds": p.seeds,
        "batch_size": p.batch_size,
        "recover_steps": cfg.recover_steps,
        "calibration": getattr(cfg.calibration, "hash", None),
        "recovery": getattr(cfg.recovery, "hash", None),
        "pruner_settings": dict(sorted((cfg.pruner_settings or {}).items())),
        "prune_seed": cfg.seed,
        # a pruned --model DIR: resuming needs the same plan in that folder (a re-prune there is a new model)
        **({"pruned_plan_sha256": p.folder["plan_sha256"]} if p.folder else {}),
    }


def check_or_write_manifest(out: Path, want: dict, write: bool) -> None:
    path = out / "run.json"
    if path.is_file():
        try:
            have = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError):
            have = None
        if not isinstance(have, dict):
            raise DataFormatError(f"{path} is damaged (not a JSON object); delete it to resume with these settings, or pass another --out")
        diff = sorted(k for k in want if have.get(k) != want[k])
        if diff:
            k = diff[0]
            raise TmpbenchError(
                f"{out} holds a run with {k}={have.get(k)!r}, not {want[k]!r}; resume with the same settings or pass another --out"
            )
        return
    if write:
        out.mkdir(parents=True, exist_ok=True)
        res.write_json_atomic(path, want)


# ------------------------------------------------------------------------------------------------
# models
def load_generators(cfg: RunConfig, p: Prepared, device: str) -> tuple[Any, Any, dict]:
    """``(generator, teacher or None, prune info)``; pruned specs go through the prune runner's cache.
    With ``cfg.offload`` the models load (and a pruned spec prunes) on the CPU and are then offloaded to
    ``device``: loading them there first would need the memory the offload saves."""
    if cfg.offload == "none":
        return _load_generators(cfg, p, device)
    generator, teacher, info = _load_generators(cfg, p, "cpu")
    for g in (generator, teacher):
        if g is not None:
            g.offload(cfg.offload, device)
    return generator, teacher, info


def _load_generators(cfg: RunConfig, p: Prepared, device: str) -> tuple[Any, Any, dict]:
    from tmpbench.loading import load_model

    if not p.pruned:
        return load_model(cfg.model, device=device, path=cfg.model_path), None, {}
    if p.folder is not None:  # --model DIR from `tmpbench prune`: the teacher is the base it was pruned from
        generator = load_model(cfg.model, device=device)
        teacher = load_model(p.spec.base, device=device, path=cfg.model_path)
        check_teacher(p.folder, teacher, cfg.model_path)
        return generator, teacher, dict(p.folder, cached=True)
    if importlib.util.find_spec("tmpbench.pruning.cache") is None:
        raise TmpbenchError(
            f"model spec {cfg.model!r} names a pruned model, but the prune runner (tmpbench.pruning.cache) is not in this "
            "checkout yet; run an unpruned spec (e.g. tiny-dit) or prune with `tmpbench prune` and pass --model DIR"
        )
    import inspect

    from tmpbench.pruning.cache import get_or_prune

    kwargs: dict[str, Any] = {
        "pruner": p.spec.pruner,
        "cache_dir": Path(cfg.prune_cache) if cfg.prune_cache else Path(cfg.out) / "pruned-cache",
        "recover_steps": cfg.recover_steps,
    }
    params = inspect.signature(get_or_prune).parameters
    for name, value in (
        ("model_path", cfg.model_path),
        ("device", device),
        ("progress", cfg.progress),
        ("calibration", cfg.calibration),
        ("recovery", cfg.recovery),
        ("pruner_settings", cfg.pruner_settings),
        ("seed", cfg.seed),
    ):
        if name in params:
            kwargs[name] = value
    generator, info = get_or_prune(p.spec, **kwargs)
    teacher = load_model(p.spec.base, device=device, path=cfg.model_path)
    return generator, teacher, dict(info or {})


def check_teacher(folder: dict, teacher, model_path: str | None) -> None:
    """The teacher of a ``--model DIR`` run is the model DIR was pruned from (same weights fingerprint)."""
    from tmpbench.pruning.runner import weights_fingerprint

    want = folder.get("base_weights")
    have = weights_fingerprint(teacher.denoiser)
    if want and have != want:
        where = f"--model-path {model_path}" if model_path else f"{folder['base']}'s default weights"
        raise TmpbenchError(
            f"{folder['path']} was pruned from {folder['base']} weights {want}, but {where} hold weights {have}; "
            "pass --model-path with the weights it was pruned from (the teacher of a pruned run)"
        )


def model_info(cfg: RunConfig, p: Prepared, generator, teacher, info: dict) -> res.ModelInfo:
    from tmpbench.models.spec import ModelSpec
    from tmpbench.run.efficiency import count_parameters

    achieved = count_parameters(generator.denoiser)
    original = count_parameters(teacher.denoiser) if teacher is not None else achieved
    budget = info.get("budget", p.spec.budget)
    # a params budget names the parameters left; a FLOPs budget (`tmpbench prune --budget flops@512:50%`) does not
    by_params = p.pruned and info.get("budget_kind", "params") == "params"
    return res.ModelInfo(
        spec=cfg.model,
        base=p.spec.base,
        family=p.entry.family,
        model_path=cfg.model_path or p.spec.path,
        budget=budget,
        pruner=info.get("pruner", p.spec.pruner),
        pruner_settings=dict(info.get("pruner_settings") or cfg.pruner_settings or {}),
        original_params=original,
        requested_params=ModelSpec(p.spec.base, budget=budget).target_params(original) if by_params else None,
        achieved_params=achieved,
        calibration=info.get("calibration", info.get("calibration_identity")),
        recovery=info.get("recovery", info.get("recovery_identity")),
        prune_cache_key=info.get("cache_key"),
        prune_info=json_safe({k: v for k, v in info.items() if k not in ("generator", "plan", "pruning_cost")}),
        pruning_cost=json_safe(info.get("pruning_cost") or {}),
    )


# ------------------------------------------------------------------------------------------------
# samples
def sample_views(p: Prepared, items: list, with_teacher: bool) -> list[SampleView]:
    """Read the images of ``items`` back from disk (resumed and fresh samples alike)."""
    views = []
    for item in items:
        images = p.layout.read(item)
        teachers = p.teacher_layout.read(item) if (with_teacher and p.teacher_layout is not None) else [None] * p.seeds
        source = np.asarray(edit_source(p.suite, item, images[0].shape[0])) if p.suite.kind == "edit" else None
        cells = images if p.layout.kind == "oneig" else None
        for n, (im, t) in enumerate(zip(images, teachers)):
            views.append(SampleView(item, n, gen.sample_seed(item.seed, n), im, t, source, cells))
    return views


def sample_rows(p: Prepared, out: Path, views: list[SampleView], values: list[dict], scorer_names: set[str]) -> list[dict]:
    rows = []
    for v, vals in zip(views, values):
        path, cell = p.layout.sample_location(v.item, v.n)
        rows.append(
            {
                "index": v.item.index,
                "id": v.item.id,
                "category": v.item.category,
                "prompt": v.item.prompt,
                "sample": v.n,
                "seed": v.seed,
                "item_seed": v.item.seed,
                "image": str(path.relative_to(out)),
                "cell": cell,
                "metrics": {k: val for k, val in vals.items() if k in scorer_names},
                "extras": {k: val for k, val in vals.items() if k not in scorer_names},
            }
        )
    return rows


# ------------------------------------------------------------------------------------------------
# efficiency
def efficiency(generator, p: Prepared, report: gen.GenerationReport, peak: tuple[int, str] | None, device: str,
               offload: str = "none") -> dict:
    """Params, FLOPs (one 1-image call), latency per image and peak memory.

    Latency is the median per-image time of this process's generator calls after the first
    (warm-up); when fewer than two calls were made (a resumed or one-batch run), three dedicated 1-image calls
    after one warm-up are timed instead. Peak memory is that of the generation loop, or of one
    dedicated call.
    """
    from tmpbench.run.efficiency import count_flops, count_parameters, device_name, measure_latency, peak_memory

    item = p.suite.items[0]
    seed = gen.sample_seed(item.seed, 0)
    src = edit_source(p.suite, item, p.size) if p.suite.kind == "edit" else None

    def call(steps: int):
        if src is not None:
            return generator.edit([src], [item.prompt], [seed], steps, p.guidance, p.size)
        return generator.generate([item.prompt], [seed], steps, p.guidance, p.size)

    def one_call():
        return call(p.steps)

    # every sampler step runs the same shapes, so FLOPs are affine in the step count: counting a
    # 1-step and a 2-step call gives the exact total for N steps at a fraction of the cost
    if p.steps > 2:
        f1, f2 = count_flops(lambda: call(1)), count_flops(lambda: call(2))
        flops, flops_method = f1 + (p.steps - 1) * (f2 - f1), "FlopCounterMode on 1- and 2-step calls, extrapolated linearly in steps"
    else:
        flops, flops_method = count_flops(one_call), "FlopCounterMode on one call"

    calls = report.call_times[1:]
    if calls:
        per_image = [t / n for t, n in calls]
        latency_source = f"generation calls of this run after 1 warm-up call ({len(calls)} timed, batch up to {max(n for _, n in calls)})"
        times = [t for t, _ in calls]
        images_per_call = max(n for _, n in calls)
    else:
        times = measure_latency(one_call, repeats=3, warmup=1, device=device)
        per_image = times
        latency_source = "3 dedicated 1-image calls after 1 warm-up (this run made fewer than 2 generation calls)"
        images_per_call = 1
    if peak is None:
        peak = peak_memory(one_call, device)
    return {
        "params": count_parameters(generator.denoiser),
        "flops_per_call": int(flops),
        "flops_images_per_call": 1,
        "flops_method": flops_method,
        "images_per_call": images_per_call,
        "latency_per_image_s": float(statistics.median(per_image)),
        "latency_median_s": float(statistics.median(times)),
        "latency_s": [float(t) for t in times],
        "latency_source": latency_source,
        "peak_memory_bytes": int(peak[0]),
        "peak_memory_kind": peak[1],
        "offload": offload,
        "device": device,
        "device_name": device_name(device),
        "steps": p.steps,
        "size": p.size,
    }


# ------------------------------------------------------------------------------------------------
# the run
def _log(cfg: RunConfig, msg: str) -> None:
    if cfg.progress:
        print(msg, file=sys.stderr, flush=True)


def set_aside_old_results(out: Path) -> None:
    """Rename a previous ``results.json`` to ``results.previous.json`` (and drop its samples.jsonl), so
    a rerun that fails leaves no results file that looks current; the new one is written atomically."""
    old = out / "results.json"
    if old.is_file():
        old.replace(out / "results.previous.json")
    (out / "samples.jsonl").unlink(missing_ok=True)


def log_damaged(report: gen.GenerationReport, what: str) -> None:
    """One stderr line when resuming found damaged files (always shown: the user should know)."""
    if report.damaged:
        print(f"resume: regenerated {len(report.damaged)} damaged sample(s) of {what}; first: {report.damaged[0]}",
              file=sys.stderr, flush=True)


def run_benchmark(cfg: RunConfig) -> res.Results | None:
    """Generate (resumably), score and write ``results.json``; returns it on the main process."""
    t_start = time.perf_counter()
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    ctx = shard.process_context(cfg.device)
    device = cfg.device or ctx.device
    p = prepare(cfg)
    scorers = engine.build_scorers(p.suite, p.metrics, device=device, pruned=p.pruned, judges=cfg.judges)
    out = Path(cfg.out)
    if ctx.is_main:
        check_or_write_manifest(out, manifest(cfg, p), write=True)
        shard.clear_shards(out)
        set_aside_old_results(out)
    ctx.wait()
    check_or_write_manifest(out, manifest(cfg, p), write=False)

    t0 = time.perf_counter()
    if p.pruned and not ctx.is_main:
        ctx.wait()  # the main process prunes (or finds the cache) first; the others load the cached model
    generator, teacher, info = load_generators(cfg, p, device)
    if p.pruned and ctx.is_main:
        ctx.wait()
    load_s = time.perf_counter() - t0

    from tmpbench.run.efficiency import peak_memory

    kwargs = dict(steps=p.steps, guidance=p.guidance, size=p.size, batch_size=p.batch_size, rank=ctx.rank, world=ctx.world,
                  progress=cfg.progress and ctx.is_main)
    holder: dict[str, gen.GenerationReport] = {}

    def generate_mine():
        holder["r"] = gen.generate_suite(generator, p.suite, p.layout, desc=f"generate [{ctx.rank}]", **kwargs)

    peak = peak_memory(generate_mine, device)
    report = holder["r"]
    peak_used = peak if report.generated else None
    log_damaged(report, "images")
    teacher_report = gen.GenerationReport()
    if teacher is not None:
        teacher_report = gen.generate_suite(teacher, p.suite, p.teacher_layout, desc=f"teacher [{ctx.rank}]", **kwargs)
        log_damaged(teacher_report, "teacher images")

    # score this process's samples
    t0 = time.perf_counter()
    groups = gen.plan_groups(len(p.suite.items), p.seeds, p.batch_size)
    my_items = [p.suite.items[i] for g in gen.shard_groups(groups, ctx.rank, ctx.world) for i in groups[g]]
    views = sample_views(p, my_items, with_teacher=teacher is not None)
    sample_scorers = {k: s for k, s in scorers.items() if isinstance(s, SampleScorer)}
    values, skipped, seconds = engine.score_samples(sample_scorers, views, progress=cfg.progress and ctx.is_main)
    rows = sample_rows(p, out, views, values, set(scorers))
    shard.write_shard_rows(out, ctx.rank, [{**r, "skipped": skipped} for r in rows])
    score_local_s = time.perf_counter() - t0
    ctx.wait()
    if not ctx.is_main:
        return None

    # main: merge, set-level metrics, aggregates
    t0 = time.perf_counter()
    gen.check_complete(p.suite, p.layout)
    rows = shard.merge_shard_rows(out, ctx.world)
    for r in rows:
        skipped.update(r.pop("skipped"))
    metrics: dict[str, Any] = {}
    all_views: list[SampleView] | None = None
    for name, scorer in scorers.items():
        if name in skipped:
            metrics[name] = skipped[name]
        elif isinstance(scorer, SetScorer):
            if all_views is None:
                all_views = sample_views(p, p.suite.items, with_teacher=False)
            ts = time.perf_counter()
            metrics[name] = engine.compute_set_metric(scorer, all_views, p.suite)
            seconds[name] = time.perf_counter() - ts
        else:
            metrics[name] = engine.summarise(name, scorer, rows)
    score_s = score_local_s + time.perf_counter() - t0

    t0 = time.perf_counter()
    eff = efficiency(generator, p, report, peak_used, device, cfg.offload)
    seconds["efficiency"] = time.perf_counter() - t0

    git_hash, dirty = git_state()
    from tmpbench.run.efficiency import device_name

    item_seeds = [it.seed for it in p.suite.items]
    results = res.Results(
        schema_version=res.SCHEMA_VERSION,
        run=res.RunInfo(
            argv=list(cfg.argv),
            git_hash=git_hash,
            git_dirty=dirty,
            device=device,
            device_name=device_name(device),
            num_processes=ctx.world,
            threads_per_process=__import__("torch").get_num_threads(),
            started_at=started,
        ),
        versions=res.versions(),
        suite=res.SuiteInfo(
            name=p.suite.name,
            version=p.suite.version,
            hash=p.suite.hash,
            kind=p.suite.kind,
            items=len(p.suite.items),
            limit=cfg.limit,
            source=p.suite.source,
            layout=p.layout.kind,
            split=p.suite.split,
        ),
        model=model_info(cfg, p, generator, teacher, info),
        generation=res.GenerationInfo(
            steps=p.steps,
            guidance=p.guidance,
            size=p.size,
            batch_size=p.batch_size,
            seeds_per_item=p.seeds,
            seed_rule=gen.SEED_RULE,
            suite_seed_range=[min(item_seeds), max(item_seeds)],
            samples=len(rows),
            generated_now=report.generated,
            resumed=report.resumed,
            teacher_generated_now=teacher_report.generated,
            damaged_regenerated=len(report.damaged) + len(teacher_report.damaged),
        ),
        scorers={name: scorer.identity() for name, scorer in scorers.items()},
        metrics=metrics,
        efficiency=eff,
        timings=res.Timings(
            total_s=0.0,
            load_s=load_s,
            generate_s=report.seconds,
            teacher_s=teacher_report.seconds,
            score_s=score_s,
            per_metric_s=seconds,
        ),
        samples_file="samples.jsonl",
        images_dir=IMAGES,
    )
    tmp = out / ".samples.jsonl.tmp"
    tmp.write_text("".join(json.dumps(json_safe(r), sort_keys=True, ensure_ascii=False) + "\n" for r in rows))
    tmp.replace(out / "samples.jsonl")
    results["timings"]["total_s"] = time.perf_counter() - t_start
    results = json_safe(results)
    res.validate_results(results)
    res.write_json_atomic(out / "results.json", results)
    return results


def generate_only(cfg: RunConfig) -> dict:
    """``tmpbench generate``: the images only, in the suite layout, resumable and shardable."""
    ctx = shard.process_context(cfg.device)
    device = cfg.device or ctx.device
    p = prepare(cfg, with_metrics=False)
    if p.pruned and p.folder is None:
        raise TmpbenchError(f"`tmpbench generate` takes an unpruned model or a pruned model's folder; for {cfg.model!r} use `tmpbench run`")
    out = Path(cfg.out)
    # generate writes straight into DIR (the folder `tmpbench score --images DIR` reads)
    layout = gen.OutputLayout(p.layout.kind, out, p.seeds, p.layout.model_dir)
    from tmpbench.loading import load_model

    generator = load_model(cfg.model, device="cpu" if cfg.offload != "none" else device,
                           path=None if p.folder else cfg.model_path)
    generator.offload(cfg.offload, device)
    report = gen.generate_suite(
        generator, p.suite, layout, steps=p.steps, guidance=p.guidance, size=p.size, batch_size=p.batch_size,
        rank=ctx.rank, world=ctx.world, progress=cfg.progress and ctx.is_main,
    )
    log_damaged(report, "images")
    ctx.wait()
    if ctx.is_main:
        gen.check_complete(p.suite, layout)
    return {
        "suite": p.suite.name,
        "items": len(p.suite.items),
        "seeds": p.seeds,
        "generated": report.generated,
        "resumed": report.resumed,
        "damaged_regenerated": len(report.damaged),
        "seconds": report.seconds,
        "out": str(out),
        "layout": layout.kind,
        "is_main": ctx.is_main,
    }
