"""Where the committed reference models (``tiny-dit``, ``tiny-moe``) live: ``tmpbench/assets/<name>``."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def asset_dir(name: str) -> Path:
    """Folder of a committed reference model (``tmpbench/assets/<name>``)."""
    return ASSETS / name
