"""Shared fixtures of the run tests: a tiny random-init tiny-dit pipeline saved once per session."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI_ENTRY = ROOT / "tests" / "run" / "cli_entry.py"


def subprocess_env() -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def cli_command(*args) -> list[str]:
    return [sys.executable, str(CLI_ENTRY), *args]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
