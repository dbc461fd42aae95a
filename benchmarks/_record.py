"""One way for benchmark scripts to append a Markdown table and its JSON record to a report file.

The JSON sits in an HTML comment under the table, so the file reads as a table and still holds the
raw records and how they were made (torch, python, threads, the command line)."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any


def append_table(path: Path, rows: list[str], records: list[dict[str, Any]], *, threads: int,
                 argv: list[str] | None = None, **meta: Any) -> None:
    """Append ``rows`` (Markdown lines) and ``{"meta": ..., "records": records}`` to ``path``."""
    import torch

    info = {"torch": torch.__version__, "python": platform.python_version(), "threads": threads,
            "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]), **meta}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write("\n".join(rows) + "\n\n<!-- " + json.dumps({"meta": info, "records": records}, default=str) + " -->\n\n")
