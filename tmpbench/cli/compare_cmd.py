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
        from tmpbench.report.curves import recovery_caption, recovery_steps, recovery_table

        if len(recovery_steps(records)) > 1:  # a recovery curve: quality per recovery length
            from tmpbench.report.tables import metric_order, render

            for m in [m for m in (wanted or metric_order(records)) if any(r.metric_values(m) for r in records)]:
                table = recovery_table(records, m)
                text += f"\n\n{recovery_caption(table, m)}\n\n{render(table, fmt)}"
        if versus is not None:
            from tmpbench.report.paired import versus_caption, versus_table
            from tmpbench.report.tables import metric_order, render

            per_sample = [m for m in (wanted or metric_order(records)) if any(r.metric_values(m) for r in records)]
            for m in per_sample:
                table = versus_table(records, versus, m)
                text += f"\n\n{versus_caption(table, versus, m)}\n\n{render(table, fmt)}"
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

