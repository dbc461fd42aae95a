"""Fixtures of the report tests: synthetic run folders (tests/report/synthetic_runs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_runs import BAD, GOOD, write_run


@pytest.fixture
def make_run(tmp_path):
    def make(name: str, geneval: list[float], **kwargs) -> Path:
        return write_run(tmp_path / name, geneval, **kwargs)

    return make


@pytest.fixture
def small_sweep(make_run):
    """Teacher + two pruners at two budgets, on the same 20 items and seeds."""
    return {
        "teacher": make_run("teacher", [1] * 18 + [0, 1], psnr=None),
        "tmp25": make_run("tmp-25pct", GOOD, pruner="tmp", budget="25%", achieved=751, psnr=[30.0 + i % 3 for i in range(20)]),
        "rnd25": make_run("random-25pct", BAD, pruner="random", budget="25%", achieved=748, psnr=[20.0 + i % 3 for i in range(20)]),
        "tmp50": make_run("tmp-50pct", GOOD[:10] + BAD[10:], pruner="tmp", budget="50%", achieved=502, psnr=[25.0] * 20),
        "rnd50": make_run("random-50pct", BAD, pruner="random", budget="50%", achieved=499, psnr=[18.0] * 20),
    }
