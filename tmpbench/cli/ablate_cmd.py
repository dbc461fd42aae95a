"""``tmpbench ablate``: TMP ablations (tree depth, policy mix, search cost, architecture transfer), each a table
with CIs."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tmpbench.cli import _options as opt
from tmpbench.errors import TmpbenchError


def register(app: typer.Typer) -> None:
    @app.command("ablate")
    def ablate(
        axis: str = typer.Option(..., "--axis", help="tree-depth, policy-mix, search-cost or arch-transfer."),
        model: str = typer.Option(..., "--model", help="Registered model name, e.g. tiny-dit or tiny-moe."),
        suite: str = typer.Option("shapes-t2i", "--suite", help="Suite name."),
        budget: str = typer.Option("50%", "--budget", help="Share of parameters removed, e.g. 50%."),
        limit: int = typer.Option(
            None, "--limit", help="Evaluated items (default: the whole split; arch-transfer tunes on the first K of dev too).",
        ),
        split: str = opt.split(),
        seeds: int = typer.Option(
            None, "--seeds", help="Samples per prompt (default 2; at least 2: the paired tests resample seeds).",
        ),
        out: Path = typer.Option(None, "--out", help="Folder (default runs/ablate-<axis>-<model>)."),
        model_path: str = typer.Option(None, "--model-path", help="Local weights directory for --model."),
        other_model: str = typer.Option(
            None, "--other-model", help="arch-transfer partners, comma-separated (default: the other two of tiny-dit, tiny-moe, tiny-hy3).",
        ),
        other_model_path: str = typer.Option(
            None, "--other-model-path", help="Local weights directories for --other-model, comma-separated in the same order.",
        ),
        metric: str = typer.Option(None, "--metric", help="Per-sample metric to compare (default: the suite's first)."),
        recover_steps: int = typer.Option(0, "--recover-steps", help="Recovery steps, the same for every variant."),
        steps: int = opt.steps(),
        calib_prompts: int = typer.Option(None, "--calib-prompts", help="Calibration prompts."),
        grid: str = typer.Option(None, "--grid", help="arch-transfer: JSON list of TMP settings dicts to tune over."),
        quiet: bool = opt.quiet_output(),
    ) -> None:
        """TMP ablations (tree depth, policy mix, search cost, architecture transfer), each as a table with CIs."""
        from tmpbench.experiments.ablate import AXES, run_ablation
        from tmpbench.experiments.sweep import SweepConfig
        from tmpbench.pruning.budget import Budget

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
                           out=out or Path(f"runs/ablate-{axis}-{model}"), limit=limit, split=split, seeds=seeds, steps=steps,
                           model_path=model_path, recover_steps=recover_steps, calib_prompts=calib_prompts,
                           progress=not quiet)
        result = run_ablation(axis, base, budget, metric, other_model, other_model_path, grid_list)
        typer.echo(result["markdown"])
        typer.echo(f"wrote {result['out'] / 'table.md'} (+ table.csv, table.tex, ablation.json)")

