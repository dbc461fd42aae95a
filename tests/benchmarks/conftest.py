"""Loading a benchmark script as a module, as the tests of benchmarks/ do."""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark(name)``: ``benchmarks/<name>.py`` as a module (benchmarks/ is not a package)."""
    return _load


@pytest.fixture
def on_path(monkeypatch):
    """A script imports its neighbours (_fullsize, _record, fullsize_zimage_cpu) as a script run from
    benchmarks/ does; the scripts set torch's thread count, which the rest of the session keeps otherwise."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
