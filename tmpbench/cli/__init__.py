"""The ``tmpbench`` command line.

Each command group lives in its own module and registers itself on :data:`app`; ``main`` turns
user errors (:class:`tmpbench.errors.TmpbenchError`) into one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import sys

import typer

from tmpbench import __version__
from tmpbench.errors import TmpbenchError

app = typer.Typer(
    name="tmpbench",
    help="Benchmark harness for pruning image-generation models: TMP and baselines under identical budgets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"tmpbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """tmpbench: prune, generate, score, compare."""


def _register_commands() -> None:
    # imported here so each module can import `app` from this package without a cycle
    from tmpbench.cli import (
        ablate_cmd,
        compare_cmd,
        fid_cmd,
        fit_cmd,
        gate_cmd,
        generate_cmd,
        models_cmd,
        prune_cmd,
        run_cmd,
        score_cmd,
        suites_cmd,
        sweep_cmd,
        train_cmd,
    )

    for module in (
        suites_cmd,
        models_cmd,
        generate_cmd,
        run_cmd,
        score_cmd,
        fid_cmd,
        prune_cmd,
        sweep_cmd,
        compare_cmd,
        ablate_cmd,
        gate_cmd,
        train_cmd,
        fit_cmd,
    ):
        module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, printing user errors as one line (exit 2) instead of a traceback."""
    try:
        rc = app(args=argv, standalone_mode=False)  # non-standalone click returns typer.Exit codes
    except TmpbenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", None)
        if code is None:
            code = getattr(exc, "code", 0)
        sys.exit(code or 0)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except Exception as exc:
        # click's usage errors (typer may vendor its own click, so match by shape, not class)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if os.environ.get("TMPBENCH_DEBUG"):
            raise
        raise
    if isinstance(rc, int) and rc != 0:
        sys.exit(rc)
