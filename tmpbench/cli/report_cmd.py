"""``tmpbench sweep | compare | ablate | gate | demo``: the commands that turn runs into decisions.

* ``sweep``   every pruner at every budget (one calibration, one recovery recipe, same items/seeds),
              one run folder each plus the unpruned teacher, then ``report/report.html``;
* ``compare`` a table (md|csv|latex|html) of run folders, refusing runs that are not comparable;
* ``ablate``  tree-depth, policy-mix or arch-transfer tables with CIs;
* ``gate``    paired per-prompt regression check against a committed baseline (exit 1 on regression);
* ``demo``    the README's main job: tiny-dit, TMP vs the baselines at 25%/50%, a shapes-t2i subset.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from tmpbench.cli import _options as opt
from tmpbench.errors import TmpbenchError

DEMO_BUDGETS = "25%,50%"
# TMP against one baseline of each kind (random, width, depth): 9 runs in 7 min on 2 cores;
# `--pruners all` adds every dense-DiT baseline (13 runs)
DEMO_PRUNERS = "tmp,random,magnitude,block-influence"
DEMO_LIMIT = 24
DEMO_STEPS = 8
DEMO_RECOVER = 20
DEMO_CALIB_PROMPTS = None  # the prune runner default (RunConfig cannot pass another yet)


def dense_pruners() -> list[str]:
    """TMP first, then every registered pruner that handles dense DiTs."""
    from tmpbench.pruning.runner import pruner_list

    names = [r["name"] for r in pruner_list() if "dit" in r["families"]]
    return sorted(names, key=lambda n: (n != "tmp", names.index(n)))


def pruners_for(model: str) -> list[str]:
    """TMP first, then every registered pruner that handles ``model``'s family (dense DiT or MoE)."""
    from tmpbench.pruning.runner import pruner_list
    from tmpbench.experiments.ablate import model_is_moe

    family = "moe" if model_is_moe(model) else "dit"
    names = [r["name"] for r in pruner_list() if family in r["families"]]
    return sorted(names, key=lambda n: (n != "tmp", names.index(n)))


def register(app: typer.Typer) -> None:
    @app.command("sweep")
    def sweep(
        model: str = typer.Option(..., "--model", help="Registered model name, e.g. tiny-dit (local weights: --model-path)."),
        suite: str = typer.Option(..., "--suite", help="Suite name, e.g. shapes-t2i."),
        pruners: str = typer.Option("tmp,random", "--pruners", help="Comma-separated pruners (`tmpbench pruners list`), or 'all' for every pruner the model supports."),
        budgets: str = typer.Option("25%,50%", "--budgets", help="Comma-separated shares removed, e.g. 25%,50%."),
        limit: int = opt.limit_evaluated(),
        out: Path = typer.Option(Path("runs/sweep"), "--out", help="Sweep folder (runs already done are reused)."),
        recover_steps: int = typer.Option(0, "--recover-steps", help="Recovery distillation steps, the same for every pruner."),
        seeds: int = typer.Option(None, "--seeds", help="Samples per prompt (default 1)."),
        steps: int = opt.steps(),
        size: int = opt.size(),
        model_path: str = opt.model_path(),
        metrics: str = typer.Option(None, "--metrics", help="Comma-separated metrics (default: the suite's)."),
        calib_prompts: int = typer.Option(None, "--calib-prompts", help="Calibration prompts (default: the prune runner's)."),
        seed: int = typer.Option(0, "--seed", help="Pruner and recovery seed."),
        quiet: bool = opt.quiet_output(),
    ) -> None:
        """Run every pruner at every budget under identical calibration/recovery/seeds; write the report."""
        from tmpbench.experiments.sweep import SweepConfig, Variant, parse_budgets, parse_list, run_sweep

        names = pruners_for(model) if pruners == "all" else parse_list(pruners, "pruners")
        cfg = SweepConfig(model=model, suite=suite, variants=[Variant(p, p) for p in names],
                          budgets=parse_budgets(budgets), out=out, limit=limit, seeds=seeds, steps=steps, size=size,
                          model_path=model_path, metrics=metrics, recover_steps=recover_steps,
                          calib_prompts=calib_prompts, seed=seed, progress=not quiet)
        start = time.perf_counter()
        _finish_sweep(run_sweep(cfg), start)

    @app.command("compare")
    def compare(
        runs: list[Path] = typer.Argument(..., help="Run folders (or a sweep folder) written by tmpbench run / sweep."),
        fmt: str = typer.Option("md", "--format", help="md, csv, latex or html."),
        out: Path = typer.Option(None, "--out", help="Write the table to FILE instead of printing it."),
        metrics: str = typer.Option(None, "--metrics", help="Only these comma-separated metrics."),
        report: Path = typer.Option(None, "--report", help="Also write report.html, plot and grids into DIR."),
        write_baseline: Path = typer.Option(None, "--write-baseline", help="Also write a gate baseline JSON of these runs."),
    ) -> None:
        """Tabulate runs with 95% bootstrap CIs and achieved vs requested budget (refuses incomparable runs)."""
        from tmpbench.report.tables import compare_runs

        records, text = compare_runs(list(runs), fmt, [m.strip() for m in metrics.split(",")] if metrics else None)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text if text.endswith("\n") else text + "\n")
            typer.echo(f"wrote {out}")
        else:
            typer.echo(text)
        if report is not None:
            from tmpbench.report.html import write_report

            paths = write_report(records, report)
            typer.echo(f"report: {paths['report']}")
        if write_baseline is not None:
            from tmpbench.experiments.gate import write_baseline as write

            typer.echo(f"baseline: {write(list(runs), write_baseline)}")

    @app.command("ablate")
    def ablate(
        axis: str = typer.Option(..., "--axis", help="tree-depth, policy-mix or arch-transfer."),
        model: str = typer.Option(..., "--model", help="Registered model name, e.g. tiny-dit or tiny-moe."),
        suite: str = typer.Option("shapes-t2i", "--suite", help="Suite name."),
        budget: str = typer.Option("50%", "--budget", help="Share of parameters removed, e.g. 50%."),
        limit: int = typer.Option(None, "--limit", help="Test items (arch-transfer tunes on the next K items)."),
        out: Path = typer.Option(None, "--out", help="Folder (default runs/ablate-<axis>-<model>)."),
        model_path: str = typer.Option(None, "--model-path", help="Local weights directory for --model."),
        other_model: str = typer.Option(None, "--other-model", help="arch-transfer partner (default: tiny-dit <-> tiny-moe)."),
        other_model_path: str = typer.Option(None, "--other-model-path", help="Local weights directory for --other-model."),
        metric: str = typer.Option(None, "--metric", help="Per-sample metric to compare (default: the suite's first)."),
        recover_steps: int = typer.Option(0, "--recover-steps", help="Recovery steps, the same for every variant."),
        steps: int = opt.steps(),
        calib_prompts: int = typer.Option(None, "--calib-prompts", help="Calibration prompts."),
        grid: str = typer.Option(None, "--grid", help="arch-transfer: JSON list of TMP settings dicts to tune over."),
        quiet: bool = opt.quiet_output(),
    ) -> None:
        """TMP ablations (tree depth, policy mix, architecture transfer), each as a table with CIs."""
        from tmpbench.pruning.budget import Budget
        from tmpbench.experiments.ablate import AXES, run_ablation
        from tmpbench.experiments.sweep import SweepConfig

        if axis not in AXES:
            raise TmpbenchError(f"unknown --axis {axis!r}; use one of {', '.join(AXES)}")
        Budget.parse(budget)
        grid_list = None
        if grid is not None:
            try:
                grid_list = json.loads(grid)
            except json.JSONDecodeError as exc:
                raise TmpbenchError(f"--grid is not valid JSON ({exc.msg}); pass e.g. '[{{\"chunks\": 4}}, {{\"chunks\": 8}}]'") from None
            if not isinstance(grid_list, list) or not grid_list or not all(isinstance(g, dict) for g in grid_list):
                raise TmpbenchError("--grid must be a non-empty JSON list of settings objects")
        base = SweepConfig(model=model, suite=suite, variants=[], budgets=[budget],
                           out=out or Path(f"runs/ablate-{axis}-{model}"), limit=limit, steps=steps,
                           model_path=model_path, recover_steps=recover_steps, calib_prompts=calib_prompts,
                           progress=not quiet)
        result = run_ablation(axis, base, budget, metric, other_model, other_model_path, grid_list)
        typer.echo(result["markdown"])
        typer.echo(f"wrote {result['out'] / 'table.md'} (+ table.csv, table.tex, ablation.json)")

    @app.command("gate")
    def gate(
        baseline: Path = typer.Option(..., "--baseline", help="Baseline JSON (reports/<name>.json)."),
        run: list[Path] = typer.Option(..., "--run", help="Candidate run folder(s) or a sweep folder."),
        max_drop: list[str] = typer.Option(None, "--max-drop", help="Tolerated drop, METRIC=VALUE (repeatable; default 0)."),
        alpha: float = typer.Option(0.05, "--alpha", help="Significance level of the one-sided paired tests."),
        write_baseline: bool = typer.Option(False, "--write-baseline", help="Write --baseline from --run instead of gating."),
    ) -> None:
        """Paired per-prompt regression gate: exit 1 (with a table) when quality at any ratio regressed."""
        from tmpbench.experiments import gate as g

        if write_baseline:
            if max_drop:
                raise TmpbenchError("--max-drop applies when gating; drop it with --write-baseline")
            path = g.write_baseline(list(run), baseline)
            typer.echo(f"wrote baseline {path}")
            return
        report = g.gate_runs(baseline, list(run), max_drop, alpha)
        typer.echo(report.table())
        if report.failed:
            # SystemExit, not typer.Exit: with standalone_mode=False click returns typer.Exit's code
            # from app() instead of raising, and tmpbench.cli.main would exit 0
            raise SystemExit(1)

    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("runs/demo"), "--out", help="Demo folder (rerunning reuses finished runs)."),
        limit: int = typer.Option(DEMO_LIMIT, "--limit", help="shapes-t2i items evaluated."),
        budgets: str = typer.Option(DEMO_BUDGETS, "--budgets", help="Shares removed."),
        pruners: str = typer.Option(DEMO_PRUNERS, "--pruners", help="Pruners, or 'all' for TMP and every dense-DiT baseline."),
        steps: int = typer.Option(DEMO_STEPS, "--steps", help="Sampler steps."),
        recover_steps: int = typer.Option(DEMO_RECOVER, "--recover-steps", help="Short recovery, the same for every pruner."),
        calib_prompts: int = typer.Option(DEMO_CALIB_PROMPTS, "--calib-prompts", help="Calibration prompts (default: the prune runner's)."),
        model_path: str = typer.Option(None, "--model-path", help="tiny-dit weights (default: the embedded reference)."),
        quiet: bool = opt.quiet_output(),
    ) -> None:
        """The README's main job: tiny-dit, TMP vs the baselines at two budgets on shapes-t2i; prints the table."""
        from tmpbench.experiments.sweep import SweepConfig, Variant, parse_budgets, parse_list, run_sweep

        start = time.perf_counter()
        names = dense_pruners() if pruners in (None, "all") else parse_list(pruners, "pruners")
        cfg = SweepConfig(model="tiny-dit", suite="shapes-t2i", variants=[Variant(p, p) for p in names],
                          budgets=parse_budgets(budgets), out=out, limit=limit, steps=steps, model_path=model_path,
                          metrics="geneval", recover_steps=recover_steps, calib_prompts=calib_prompts,
                          progress=not quiet)
        _finish_sweep(run_sweep(cfg), start)


def _finish_sweep(manifest: dict, start: float) -> None:
    report = manifest.get("report") or {}
    if report.get("table_md") is not None:
        typer.echo(Path(report["table_md"]).read_text())
    reused = sum(r.get("reused", False) for r in manifest["runs"])
    for r in manifest["runs"]:
        if "error" in r:
            typer.echo(f"miss: {r['variant']} at {r['budget']}: cannot land, nearest size {r['nearest']:,.0f} "
                       f"({r['relative_error']:+.2%} vs target); recorded in sweep.json, no results written")
    typer.echo(f"{len(manifest['runs'])} runs ({reused} reused) in {time.perf_counter() - start:.0f}s; "
               f"calibration {manifest['calibration']['hash']}, recovery {manifest['recovery']['hash']}")
    if report.get("report") is not None:
        typer.echo(f"report: {report['report']}")
