"""`accelerate launch --num_processes 2` gives the same results.json metrics and samples as one process."""

import json
import shutil
import subprocess

import pytest
from conftest import CLI_ENTRY, cli_command, subprocess_env


def args(pipe, out):
    return ["run", "--suite", "shapes-t2i", "--model", "tiny-dit", "--model-path", str(pipe), "--limit", "8", "--steps", "2",
            "--batch-size", "2", "--metrics", "geneval,fid,clipscore", "--out", str(out), "--quiet", "--device", "cpu"]


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path, tiny_pipe_dir):
    accelerate = shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("accelerate's launcher is not on PATH")
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(cli_command(*args(tiny_pipe_dir, one)), env=subprocess_env(), check=True, capture_output=True)
    proc = subprocess.run(
        # `--cpu` makes accelerate start ONE process; `--multi_gpu` takes the torchrun path, and on a
        # machine without GPUs (plus --device cpu) the processes form a gloo (multi-CPU) group
        [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no",
         "--main_process_port", "29517", str(CLI_ENTRY), *args(tiny_pipe_dir, two)],
        env=subprocess_env(), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r1 = json.loads((one / "results.json").read_text())
    r2 = json.loads((two / "results.json").read_text())
    assert r2["run"]["num_processes"] == 2 and r1["run"]["num_processes"] == 1
    assert r1["metrics"] == r2["metrics"]
    assert (one / "samples.jsonl").read_text() == (two / "samples.jsonl").read_text()
    # each process wrote its own rows; the main process merged them
    assert sorted(p.name for p in (two / "shards").iterdir()) == ["rank-0.jsonl", "rank-1.jsonl"]
    for p in (one / "images").rglob("*.png"):
        assert p.read_bytes() == (two / p.relative_to(one)).read_bytes()
