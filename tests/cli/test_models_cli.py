"""``tmpbench models list|show``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tmpbench.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json_has_the_real_targets(capsys):
    code, out, _ = run(capsys, "models", "list", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["zimage"]["family"] == "zimage"
    assert rows["zimage"]["nominal_params"] == 6_154_908_736
    assert rows["zimage"]["source"] == "Tongyi-MAI/Z-Image-Turbo"
    assert rows["flux"]["nominal_params"] == 11_891_178_560


def test_list_table(capsys):
    code, out, _ = run(capsys, "models", "list")
    assert code == 0
    line = next(row for row in out.splitlines() if row.startswith("zimage "))
    assert "6.15B" in line and "t2i+edit" in line


def test_show_nominal_builds_nothing(capsys):
    code, out, _ = run(capsys, "models", "show", "zimage")
    assert code == 0
    assert "name:     zimage" in out and "family:   zimage" in out
    assert "params:   6,154,908,736 (6.15B, nominal, denoiser)" in out
    assert "flops" not in out  # FLOPs come with --meta


def test_show_pruned_spec_reports_the_target(capsys):
    code, out, _ = run(capsys, "models", "show", "zimage-4b", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["target_params"] == 4_000_000_000
    assert info["pruner"] == "tmp" and info["budget"] == "4b"
    assert info["removed_fraction"] == pytest.approx(1 - 4e9 / 6_154_908_736, abs=1e-4)


def test_show_meta_counts_the_full_size_denoiser(capsys):
    code, out, _ = run(capsys, "models", "show", "zimage", "--meta", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["params_counted"] == "meta"
    assert info["params"] == pytest.approx(6.15e9, rel=0.005)
    assert info["flops_per_forward"] > 5e13


def test_show_local_directory_loads_and_counts(capsys, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "models"))
    from test_zimage_adapter import tiny_zimage_pipeline

    from tmpbench.models.zimage import ZImageGenerator

    gen = ZImageGenerator(tiny_zimage_pipeline())
    gen.save(tmp_path / "m")
    expected = sum(p.numel() for p in gen.denoiser.parameters())
    code, out, _ = run(capsys, "models", "show", str(tmp_path / "m"), "--json")
    assert code == 0
    info = json.loads(out)
    assert (info["base"], info["params"], info["params_counted"]) == ("zimage", expected, "loaded")


@pytest.mark.parametrize(
    "args, match",
    [
        (["models", "show", "zimage-4q"], r"error: bad model spec 'zimage-4q': expected NAME\[-SIZE\]"),
        (["models", "show", "zimage-9b"], r"error: budget '9b' leaves 9,000,000,000 parameters"),
        (["models", "show", "/no/such/dir"], r"error: model directory '/no/such/dir' does not exist"),
        (["models", "show", "zimage", "--pruner", "tmp"], r"error: --pruner 'tmp' needs a spec with a size, e.g. zimage-50%"),
        (["models", "show", "zimage-4b", "--pruner", "nosuch"], r"error: unknown pruner 'nosuch'"),
    ],
)
def test_user_errors_are_one_line_exit_2(capsys, args, match):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert re.match(match, err.strip()), err


def test_offline_load_exits_2_without_traceback(tmp_path):
    """A real-model load with HF_HUB_OFFLINE fails with the one-line error in a fresh process."""
    script = (
        "import sys\n"
        "from tmpbench.cli import app, main\n"
        "from tmpbench.loading import load_model\n"
        "@app.command('try-load')\n"
        "def try_load(spec: str):\n"
        "    load_model(spec)\n"
        "main(sys.argv[1:])\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    env.pop("TMPBENCH_ZIMAGE_PATH", None)
    proc = subprocess.run([sys.executable, "-c", script, "try-load", "zimage"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: cannot load zimage weights 'Tongyi-MAI/Z-Image-Turbo' (HF_HUB_OFFLINE=1")
    assert lines[0].endswith("--model-path DIR or set TMPBENCH_ZIMAGE_PATH=DIR")
