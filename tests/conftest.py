"""Test-wide settings: never touch a hub, keep threads to the machine's two cores."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# The default suite is a reproducible gate: property tests draw the same examples on every run (a failure
# found once is found again). `HYPOTHESIS_PROFILE=fuzz` explores fresh random examples on each run.
settings.register_profile("default", derandomize=True, print_blob=True)
settings.register_profile("fuzz", derandomize=False, max_examples=1000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
from synthetic_runs import BAD, GOOD, write_run  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests using it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real benchmark files not found at {SHARED_DATA} (the ../shared folder beside the checkout)")
    return SHARED_DATA


# --- synthetic run folders (tests/synthetic_runs.py), shared by tests/report and tests/experiments ---

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


# --- a tiny saved pipeline, shared by tests/run and tests/cli ---
@pytest.fixture(scope="session")
def tiny_pipe_dir(tmp_path_factory) -> Path:
    """A saved tiny ZImagePipeline (dim 32, 2 layers), loadable as tiny-dit via --model-path."""
    import torch

    from tmpbench.models.reference import tiny_zimage as tz

    d = tmp_path_factory.mktemp("tinypipe")
    cfg = tz.TinyZImageConfig(dim=32, n_layers=2, n_refiner_layers=1, n_heads=2, text_hidden=16, text_layers=2)
    pipe = tz.make_pipeline(tz.build_components(cfg))
    tz.save_pipeline(pipe, d, cfg, dtype=torch.float32)
    return d
