"""Fixtures of the CLI tests: run ``tmpbench`` in-process the way ``python -m tmpbench`` does."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def cli(capsys) -> Callable[..., tuple[int, str, str]]:
    """``cli("suites", "list")`` runs the CLI in-process and returns (exit code, stdout, stderr)."""
    from tmpbench.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
