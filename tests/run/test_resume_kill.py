"""A run killed with SIGKILL mid-generation resumes without regenerating finished samples, same scores."""

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import cli_command, subprocess_env

N = 40  # enough batches that the kill lands mid-generation


def run_args(pipe, out):
    return ["run", "--suite", "shapes-t2i", "--model", "tiny-dit", "--model-path", str(pipe), "--limit", str(N), "--steps", "2",
            "--batch-size", "2", "--metrics", "geneval,fid", "--out", str(out), "--quiet"]


def complete_items(images):
    return sorted(d for d in images.glob("0*") if (d / "metadata.jsonl").is_file())


@pytest.mark.slow
def test_sigkill_then_rerun_keeps_finished_samples(tmp_path, tiny_pipe_dir):
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        cli_command(*run_args(tiny_pipe_dir, out)), env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.time() + 240
    while time.time() < deadline and len(complete_items(out / "images")) < 4 and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()[1].decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = complete_items(out / "images")
    assert 4 <= len(done) < N
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for d in done for p in (d / "samples").glob("*.png")}
    assert not (out / "results.json").exists()

    subprocess.run(cli_command(*run_args(tiny_pipe_dir, out)), env=subprocess_env(), check=True, capture_output=True)
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in before}
    assert after == before  # finished samples were neither rewritten nor replaced
    res = json.loads((out / "results.json").read_text())
    assert res["generation"]["resumed"] == len(done) and res["generation"]["generated_now"] == N - len(done)

    fresh = tmp_path / "fresh"
    subprocess.run(cli_command(*run_args(tiny_pipe_dir, fresh)), env=subprocess_env(), check=True, capture_output=True)
    ref = json.loads((fresh / "results.json").read_text())
    assert res["metrics"] == ref["metrics"]
    for d in (out / "images").glob("0*"):
        for p in (d / "samples").glob("*.png"):
            assert p.read_bytes() == (fresh / "images" / d.name / "samples" / p.name).read_bytes()
