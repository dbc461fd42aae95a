"""The root command: --version, --help, and one-line errors with a non-zero exit."""

import subprocess
import sys

from tmpbench import __version__


def _run(*args):
    return subprocess.run([sys.executable, "-m", "tmpbench", *args], capture_output=True, text=True, timeout=120)


def test_version_and_help():
    out = _run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"tmpbench {__version__}"
    out = _run("--help")
    assert out.returncode == 0
    for cmd in ("suites", "score", "models", "train-reference"):
        assert cmd in out.stdout


def test_unknown_command_is_a_usage_error_without_traceback():
    out = _run("no-such-command")
    assert out.returncode == 2
    assert "No such command 'no-such-command'" in out.stderr
    assert "Traceback" not in out.stderr


def test_user_error_is_one_line():
    out = _run("train-reference", "tiny-unet")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: unknown reference model 'tiny-unet'; choose one of tiny-dit, tiny-hy3, tiny-moe"
