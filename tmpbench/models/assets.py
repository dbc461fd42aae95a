"""Where the committed reference models live, and a clear error when one is missing."""

from __future__ import annotations

from pathlib import Path

from tmpbench.errors import TmpbenchError

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def asset_dir(name: str) -> Path:
    """Folder of a committed reference model (``tmpbench/assets/<name>``)."""
    return ASSETS / name


def require_asset(name: str) -> Path:
    path = asset_dir(name)
    if not (path / "tmpbench.json").is_file():
        raise TmpbenchError(
            f"reference model {name!r} is not in {path}; train it with `tmpbench train-reference {name}`"
        )
    return path
