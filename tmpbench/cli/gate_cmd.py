"""``tmpbench gate``: paired per-prompt regression check of runs against a committed baseline
(exit 1 with a table on a regression)."""

from __future__ import annotations

from pathlib import Path

import typer

from tmpbench.errors import TmpbenchError


def register(app: typer.Typer) -> None:
    @app.command("gate")
    def gate(
        baseline: Path = typer.Option(..., "--baseline", help="Baseline JSON (reports/<name>.json)."),
        run: list[Path] = typer.Option(..., "--run", help="Candidate run folder(s) or a sweep folder."),
        max_drop: list[str] = typer.Option(None, "--max-drop", help="Tolerated drop, METRIC=VALUE (repeatable; default 0)."),
        alpha: float = typer.Option(0.05, "--alpha", help="Significance level of the one-sided paired tests."),
        write_baseline: bool = typer.Option(False, "--write-baseline", help="Write --baseline from --run instead of gating."),
        split: str = typer.Option("test", "--split", help="The evaluation split runs and baseline must have used: test "
                                  "(default), dev, calib or all (runs from before splits)."),
    ) -> None:
        """Paired per-prompt regression gate: exit 1 (with a table) when quality at any ratio regressed."""
        from tmpbench.experiments import gate as g

        if write_baseline:
            from tmpbench.report.tables import check_split, expand_run_dirs, load_run

            check_split([load_run(p) for p in expand_run_dirs(list(run))], split, "gate --write-baseline")
            if max_drop:
                raise TmpbenchError("--max-drop applies when gating; drop it with --write-baseline")
            path = g.write_baseline(list(run), baseline)
            typer.echo(f"wrote baseline {path}")
            return
        report = g.gate_runs(baseline, list(run), max_drop, alpha, split)
        typer.echo(report.table())
        if report.failed:
            # SystemExit, not typer.Exit: with standalone_mode=False click returns typer.Exit's code
            # from app() instead of raising, and tmpbench.cli.main would exit 0
            raise SystemExit(1)
