"""``tmpbench sweep`` and ``tmpbench demo``: every pruner at every budget under one calibration set,
one recovery recipe and the same items and seeds, one run folder each plus the unpruned teacher,
then ``report/report.html``. ``demo`` is the README's main job: tiny-dit, TMP against
two baselines at 25% on shapes-t2i's whole test split, paired tests included.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from tmpbench.cli import _options as opt

# the README headline under the evidence protocol: the whole shapes-t2i test split (478 prompts) x 2 seeds,
# TMP against the compute-matched best-of-n and data-free magnitude at 25%, GenEval and PSNR to the teacher
# paired with TMP (Holm); about 5-6 min on 2 cores. `--pruners all --budgets 25%,50%` is the full sweep.
DEMO_BUDGETS = "25%"
DEMO_PRUNERS = "tmp,best-of-n,magnitude"
DEMO_LIMIT = None
DEMO_STEPS = 8
DEMO_RECOVER = 100
DEMO_METRICS = "geneval,psnr_teacher"
DEMO_CALIB_PROMPTS = None  # the prune runner default


def register(app: typer.Typer) -> None:
    @app.command("sweep")
    def sweep(
        model: str = typer.Option(..., "--model", help="Registered model name, e.g. tiny-dit (local weights: --model-path)."),
        suite: str = typer.Option(..., "--suite", help="Suite name, e.g. shapes-t2i."),
        pruners: str = typer.Option(
            "tmp,random", "--pruners",
            help="Comma-separated pruners (`tmpbench pruners list`), or 'all' for every pruner the model supports.",
        ),
        budgets: str = typer.Option("25%,50%", "--budgets", help="Comma-separated shares removed, e.g. 25%,50%."),
        limit: int = opt.limit_evaluated(),
        split: str = opt.split(),
        out: Path = typer.Option(Path("runs/sweep"), "--out", help="Sweep folder (runs already done are reused)."),
        recover_steps: str = typer.Option(
            "0", "--recover-steps",
            help="Recovery distillation steps, the same for every pruner; several (0,20,100,400) give a recovery curve.",
        ),
        seeds: int = typer.Option(2, "--seeds", help="Samples per prompt (at least 2: the paired tests resample seeds)."),
        steps: int = opt.steps(),
        size: int = opt.size(),
        model_path: str = opt.model_path(),
        metrics: str = typer.Option(None, "--metrics", help="Comma-separated metrics (default: the suite's)."),
        calib_prompts: int = typer.Option(None, "--calib-prompts", help="Calibration prompts (default: the prune runner's)."),
        calibration_mix: str = opt.calibration_mix(),
        calib_draw: int = opt.calib_draw(),
        seed: int = typer.Option(0, "--seed", help="Pruner and recovery seed."),
        device: str = opt.device(),
        offload: str = opt.offload(),
        quiet: bool = opt.quiet_output(),
    ) -> None:
        """Run every pruner at every budget under identical calibration/recovery/seeds; write the report."""
        from tmpbench.experiments.sweep import (
            SweepConfig,
            Variant,
            parse_budgets,
            parse_list,
            parse_recover_steps,
            pruners_for,
            run_sweep,
        )
        from tmpbench.preflight import check_output_dir

        check_output_dir(out)
        recover = parse_recover_steps(recover_steps)
        names = pruners_for(model) if pruners == "all" else parse_list(pruners, "pruners")
        cfg = SweepConfig(model=model, suite=suite, variants=[Variant(p, p) for p in names],
                          budgets=parse_budgets(budgets), out=out, limit=limit, split=split, seeds=seeds, steps=steps, size=size,
                          model_path=model_path, metrics=metrics, recover_steps=recover,
                          calib_prompts=calib_prompts, calibration_mix=calibration_mix, calib_draw=calib_draw, seed=seed,
                          device=device, offload=offload, progress=not quiet)
        start = time.perf_counter()
        _finish_sweep(run_sweep(cfg), start)

    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("runs/demo"), "--out", help="Demo folder (rerunning reuses finished runs)."),
        limit: int = typer.Option(DEMO_LIMIT, "--limit", help="shapes-t2i test items evaluated (default: all 478)."),
        seeds: int = typer.Option(2, "--seeds", help="Samples per prompt (at least 2)."),
        budgets: str = typer.Option(DEMO_BUDGETS, "--budgets", help="Shares removed."),
        pruners: str = typer.Option(DEMO_PRUNERS, "--pruners", help="Pruners, or 'all' for TMP and every dense-DiT baseline."),
        steps: int = typer.Option(DEMO_STEPS, "--steps", help="Sampler steps."),
        recover_steps: int = typer.Option(DEMO_RECOVER, "--recover-steps", help="Short recovery, the same for every pruner."),
        calib_prompts: int = typer.Option(DEMO_CALIB_PROMPTS, "--calib-prompts", help="Calibration prompts (default: the prune runner's)."),
        model_path: str = typer.Option(None, "--model-path", help="tiny-dit weights (default: the embedded reference)."),
        quiet: bool = opt.quiet_output(),
    ) -> None:
        """The README's main job: tiny-dit, TMP vs baselines on shapes-t2i's test split; prints the paired tables."""
        from tmpbench.experiments.sweep import SweepConfig, Variant, dense_pruners, parse_budgets, parse_list, run_sweep

        start = time.perf_counter()
        names = dense_pruners() if pruners in (None, "all") else parse_list(pruners, "pruners")
        cfg = SweepConfig(model="tiny-dit", suite="shapes-t2i", variants=[Variant(p, p) for p in names],
                          budgets=parse_budgets(budgets), out=out, limit=limit, seeds=seeds, steps=steps, model_path=model_path,
                          metrics=DEMO_METRICS, recover_steps=recover_steps, calib_prompts=calib_prompts,
                          progress=not quiet)
        _finish_sweep(run_sweep(cfg), start)


def _finish_sweep(manifest: dict, start: float) -> None:
    report = manifest.get("report") or {}
    for key in ("table_md", "paired_md", "recovery_md"):
        if report.get(key) is not None:
            typer.echo(Path(report[key]).read_text())
    reused = sum(r.get("reused", False) for r in manifest["runs"])
    for r in manifest["runs"]:
        if "error" in r:
            typer.echo(f"miss: {r['variant']} at {r['budget']}: cannot land, nearest size {r['nearest']:,.0f} "
                       f"({r['relative_error']:+.2%} vs target); recorded in sweep.json, no results written")
    typer.echo(f"{len(manifest['runs'])} runs ({reused} reused) in {time.perf_counter() - start:.0f}s; "
               f"calibration {manifest['calibration']['hash']}, recovery {manifest['recovery']['hash']}")
    if report.get("report") is not None:
        typer.echo(f"report: {report['report']}")
