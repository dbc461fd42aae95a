"""``tmpbench suites ...``: list, inspect and render benchmark suites.

* ``list [--json]``: every registered suite with its kind, version and default source.
* ``show NAME [--source PATH] [--limit N] [--json]``: name, kind, version, count, by_category, hash.
* ``render NAME --out DIR [--limit N] [--size PX]``: ground-truth images of a ShapesWorld suite in
  GenEval's layout (the exact target scene for edit suites), ready for ``tmpbench score``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from tmpbench.errors import TmpbenchError

suites_app = typer.Typer(help="List, inspect and render benchmark suites.", no_args_is_help=True)

#: Loaders whose items carry an exact ShapesWorld scene, so ground truth can be rendered.


def _echo_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))


@suites_app.command("list")
def list_suites(as_json: bool = typer.Option(False, "--json", help="Print a JSON list.")) -> None:
    """List the registered suites (no data is loaded)."""
    from tmpbench.catalog import SUITES
    from tmpbench.suites.core import get_spec

    rows = []
    for name in SUITES.names():
        spec = get_spec(name)
        rows.append(
            {
                "name": name,
                "kind": spec.kind,
                "version": spec.version,
                "source": spec.source,
                "metrics": list(spec.metrics),
                "description": spec.description,
            }
        )
    if as_json:
        _echo_json(rows)
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        src = r["source"] or "(generated)"
        typer.echo(f"{r['name']:<{width}}  {r['kind']:<4}  v{r['version']:<3}  {src:<36}  {r['description']}")


@suites_app.command("show")
def show_suite(
    name: str = typer.Argument(..., help="Suite name (see `tmpbench suites list`) or a suite YAML path."),
    source: str = typer.Option(None, "--source", help="The benchmark file or folder (or a HF dataset id)."),
    limit: int = typer.Option(None, "--limit", help="Keep N items, round-robin over categories."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Load a suite and print its name, kind, version, count, by_category and content hash."""
    from tmpbench.suites.core import load_suite

    summary = load_suite(name, source=source, limit=limit).summary()
    if as_json:
        _echo_json(summary)
        return
    for key in ("name", "kind", "version", "count", "hash", "source"):
        typer.echo(f"{key}: {summary[key]}")
    typer.echo(f"metrics: {', '.join(summary['metrics'])}")
    typer.echo("by_category:")
    for cat, n in summary["by_category"].items():
        typer.echo(f"  {cat}: {n}")


@suites_app.command("render")
def render_suite(
    name: str = typer.Argument(..., help="A ShapesWorld suite: shapes-t2i or shapes-edit."),
    out: Path = typer.Option(..., "--out", help="Output folder (GenEval layout: <index:05d>/metadata.jsonl, samples/)."),
    limit: int = typer.Option(None, "--limit", help="Keep N items, round-robin over categories."),
    size: int = typer.Option(None, "--size", help="Image size in px (default: the suite's, 32)."),
) -> None:
    """Write the ground-truth image of every item (the exact target for edit suites)."""
    from tmpbench.preflight import check_output_dir
    from tmpbench.shapes.render import render_ground_truth
    from tmpbench.suites.core import get_spec, load_suite
    from tmpbench.suites.layout import write_item

    spec = get_spec(name)
    if spec.world != "shapes":
        raise TmpbenchError(
            f"suite {spec.name!r} has no exact ground truth to render; only ShapesWorld suites can be rendered "
            "(shapes-t2i, shapes-edit)"
        )
    if size is not None and size < 8:
        raise TmpbenchError(f"--size {size} is too small; use --size 8 or more (32 is the default)")
    check_output_dir(out)  # a file or a read-only folder: one line, before rendering anything
    suite = load_suite(name, limit=limit)
    if out.is_dir():  # stale items would be scored as part of this suite, so refuse them
        stale = sorted(p.name for p in out.iterdir() if p.name.isdigit() and int(p.name) >= len(suite.items))
        if stale:
            raise TmpbenchError(
                f"--out {out} already holds item {stale[0]} beyond this suite's {len(suite.items)} items; "
                "use an empty folder"
            )
    start = time.perf_counter()
    for item in suite.items:
        image = render_ground_truth(suite.kind, item.metadata, item.seed, size)
        write_item(out, item.index, item.metadata, [image])
    elapsed = time.perf_counter() - start
    typer.echo(
        f"rendered {len(suite.items)} ground-truth images of {suite.name} (hash {suite.hash[:12]}) to {out} "
        f"in {elapsed:.2f}s"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(suites_app, name="suites")
