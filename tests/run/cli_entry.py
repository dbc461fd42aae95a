"""Command-line entry for subprocess tests: the tmpbench CLI with `run`/`generate` registered.

Until tmpbench/cli/__init__.py registers run_cmd and generate_cmd itself, this adds them, so tests
(and `accelerate launch tests/run/cli_entry.py run ...`) exercise the real CLI code path.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout (suites/ package)


def ensure_registered():
    from tmpbench.cli import app, generate_cmd, run_cmd

    names = {c.name for c in app.registered_commands}
    if "run" not in names:
        run_cmd.register(app)
    if "generate" not in names:
        generate_cmd.register(app)


if __name__ == "__main__":
    ensure_registered()
    from tmpbench.cli import main

    main(sys.argv[1:])
