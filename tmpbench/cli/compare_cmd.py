"""``tmpbench compare``: a table (md|csv|latex|html) of run folders with 95% CIs and achieved
against requested budget, refusing runs that are not comparable; optionally the HTML report and a
gate baseline."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare(
        runs: list[Path] = typer.Argument(..., help="Run folders (or a sweep folder) written by tmpbench run / sweep."),
        fmt: str = typer.Option("md", "--format", help="md, csv, latex or html."),
        out: Path = typer.Option(None, "--out", help="Write the table to FILE instead of printing it."),
        metrics: str = typer.Option(None, "--metrics", help="Only these comma-separated metrics."),
        report: Path = typer.Option(None, "--report", help="Also write report.html, plot and grids into DIR."),
        write_baseline: Path = typer.Option(None, "--write-baseline", help="Also write a gate baseline JSON of these runs."),
        split: str = typer.Option("test", "--split", help="The evaluation split the runs must have used: test (default), "
                                  "dev, calib or all (runs from before splits)."),
        versus: str = typer.Option(None, "--versus", help="Also pair every pruner with this one (e.g. tmp) at the same "
                                   "budget and recovery: Δ with 95% CI, McNemar / paired-bootstrap p, Holm, tie or winner."),
    ) -> None:
        """Tabulate runs with 95% bootstrap CIs and achieved vs requested budget (refuses incomparable runs)."""
        from tmpbench.report.tables import compare_runs

        wanted = [m.strip() for m in metrics.split(",")] if metrics else None
        records, text = compare_runs(list(runs), fmt, wanted, split)
        from tmpbench.report.analyses import extra_tables
        from tmpbench.report.tables import render

        extra = extra_tables(records, wanted, versus)
        for _, caption, table in extra["recovery"] + extra["paired"]:  # a recovery curve, then the pairs with --versus
            text += f"\n\n{caption}\n\n{render(table, fmt)}"
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text if text.endswith("\n") else text + "\n")
            typer.echo(f"wrote {out}")
        else:
            typer.echo(text)
        if report is not None:
            from tmpbench.report.html import write_report

            paths = write_report(records, report, versus=versus)
            typer.echo(f"report: {paths['report']}")
        if write_baseline is not None:
            from tmpbench.experiments.gate import write_baseline as write

            typer.echo(f"baseline: {write(list(runs), write_baseline)}")

