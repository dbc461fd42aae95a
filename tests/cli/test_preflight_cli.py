"""Bad output folders, devices and edit-suite image folders are one line + exit 2, before any model loads (issue 15)."""

import json
import os

import pytest

from tmpbench.errors import TmpbenchError
from tmpbench.preflight import check_device, check_output_dir

RUN = ["run", "--model", "tiny-dit", "--suite", "shapes-t2i", "--limit", "1", "--steps", "1", "--quiet"]
GENERATE = ["generate", "--model", "tiny-dit", "--suite", "shapes-t2i", "--limit", "1", "--steps", "1", "--quiet"]


def _one_line(code, err, pattern):
    import re

    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture
def no_model_load(monkeypatch):
    """Any model load fails the test: the checks must come first."""
    import tmpbench.loading

    def boom(*a, **k):  # pragma: no cover - only reached on a regression
        raise AssertionError("a model was loaded before the check")

    monkeypatch.setattr(tmpbench.loading, "load_model", boom)


@pytest.mark.parametrize("argv", [RUN, GENERATE], ids=["run", "generate"])
def test_out_is_a_file(cli, tmp_path, no_model_load, argv):
    f = tmp_path / "f.txt"
    f.write_text("x")
    code, _, err = cli(*argv, "--out", str(f))
    _one_line(code, err, r"--out .*f\.txt exists and is not a folder; pass a folder path")


@pytest.mark.parametrize("argv", [RUN, GENERATE], ids=["run", "generate"])
def test_out_under_a_file(cli, tmp_path, no_model_load, argv):
    f = tmp_path / "f.txt"
    f.write_text("x")
    code, _, err = cli(*argv, "--out", str(f / "sub"))
    _one_line(code, err, r"f\.txt is a file, so the folder cannot be created")


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu"])
@pytest.mark.parametrize("argv", [RUN, GENERATE], ids=["run", "generate"])
def test_unknown_device(cli, tmp_path, no_model_load, argv, device):
    code, _, err = cli(*argv, "--out", str(tmp_path / "o"), "--device", device)
    _one_line(code, err, rf"--device '{device}' is not a torch device; pass cpu, cuda, cuda:N or mps")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("argv", [RUN, GENERATE], ids=["run", "generate"])
def test_cuda_without_gpu(cli, tmp_path, no_model_load, argv):
    code, _, err = cli(*argv, "--out", str(tmp_path / "o"), "--device", "cuda")
    _one_line(code, err, r"--device cuda asked for, but torch sees no CUDA GPU here; pass --device cpu")
    assert not (tmp_path / "o").exists()


def test_prune_out_is_a_file(cli, tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("x")
    code, _, err = cli("prune", "--model", "tiny-dit", "--pruner", "random", "--budget", "50%", "--out", str(f))
    _one_line(code, err, r"--out .*f\.txt exists and is not a folder")


def test_sweep_out_is_a_file(cli, tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("x")
    code, _, err = cli("sweep", "--model", "tiny-dit", "--suite", "shapes-t2i", "--out", str(f))
    _one_line(code, err, r"--out .*f\.txt exists and is not a folder")


def test_render_out_is_a_file(cli, tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("x")
    code, _, err = cli("suites", "render", "shapes-t2i", "--limit", "1", "--out", str(f))
    _one_line(code, err, r"--out .*f\.txt exists and is not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders anyway")
def test_render_read_only_out(cli, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = cli("suites", "render", "shapes-t2i", "--limit", "1", "--out", str(ro / "x"))
    finally:
        ro.chmod(0o755)
    _one_line(code, err, r"ro is not writable; pass a folder you can write to")


def test_read_only_is_refused(tmp_path, monkeypatch):
    """Root ignores permissions, so the check is exercised through os.access."""
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(TmpbenchError, match=r"--out .*new: .* is not writable; pass a folder you can write to"):
        check_output_dir(tmp_path / "new")


def test_check_device_accepts_cpu_and_none():
    check_device(None)
    check_device("cpu")


@pytest.mark.parametrize("argv", [RUN, GENERATE], ids=["run", "generate"])
def test_steps_zero_names_only_steps(cli, tmp_path, no_model_load, argv):
    argv = [a if a != "1" or argv[i - 1] != "--steps" else "0" for i, a in enumerate(argv)]
    code, _, err = cli(*argv, "--out", str(tmp_path / "o"))
    _one_line(code, err, r"--steps 0 must be at least 1$")
    assert "--size" not in err


def test_size_zero_names_only_size(cli, tmp_path, no_model_load):
    code, _, err = cli(*RUN, "--size", "0", "--out", str(tmp_path / "o"))
    _one_line(code, err, r"--size 0 must be at least 1$")
    assert "--steps" not in err


def _imgedit(tmp_path):
    (tmp_path / "basic_edit.json").write_text(
        json.dumps({"1": {"id": "style/0001.jpg", "prompt": "make it red", "edit_type": "alter"}})
    )
    return tmp_path / "basic_edit.json"


@pytest.mark.parametrize("cmd", ["run", "generate"])
def test_missing_image_root_refused_before_model(cli, tmp_path, no_model_load, cmd):
    src = _imgedit(tmp_path)
    code, _, err = cli(cmd, "--model", "tiny-dit", "--suite", "imgedit", "--source", str(src), "--limit", "1",
                       "--out", str(tmp_path / "o"), "--image-root", str(tmp_path / "nope"))
    _one_line(code, err, r"imgedit: 1 input image\(s\) not found, first .*nope/style/0001\.jpg \(item '1'\); "
                         r"pass --image-root DIR")


def test_image_root_flag_reaches_the_suite(tmp_path):
    from PIL import Image

    from tmpbench.run.pipeline import RunConfig, prepare

    src = _imgedit(tmp_path)
    (tmp_path / "imgs" / "style").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / "style" / "0001.jpg")
    p = prepare(RunConfig(suite="imgedit", model="tiny-dit", out=tmp_path / "o", source=str(src),
                          image_root=str(tmp_path / "imgs")), with_metrics=False)
    assert p.suite.items[0].source_image == tmp_path / "imgs" / "style" / "0001.jpg"


def test_builtin_model_path_hint_names_asset_and_training(cli, tmp_path):
    code, _, err = cli(*GENERATE, "--out", str(tmp_path / "o"), "--model-path", str(tmp_path / "missing"))
    assert code == 2, err
    assert "download 'builtin'" not in err
    _one_line(code, err, r"embedded .*assets/tiny-dit.*`tmpbench train-reference tiny-dit`")
