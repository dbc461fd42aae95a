"""Provenance: file checksums, installed library versions, the git state, strict JSON.

One copy of each, used by everything that records where a number came from (results, model
cards, feature-mode identities, judge identities).

Example::

    >>> json_safe({"a": float("nan"), "b": (1, 2)})
    {'a': None, 'b': [1, 2]}
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import subprocess
from pathlib import Path
from typing import Any

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | Path) -> str:
    """sha256 (hex) of a file, memoised by (path, size, mtime) so big weights are hashed once per process."""
    st = Path(path).stat()
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def library_version(dist: str) -> str:
    """The installed version of distribution ``dist`` (``"not installed"`` when absent)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git_state() -> tuple[str | None, bool | None]:
    """``(HEAD hash, dirty)`` of the checkout holding tmpbench, or ``(None, None)`` outside git."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None, None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10
        )
        return head.stdout.strip(), bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def json_safe(obj: Any) -> Any:
    """Non-finite floats -> None, tuples -> lists, numpy scalars -> Python numbers, paths -> str (strict JSON)."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "item") and not isinstance(obj, (dict, list, tuple)):
        return json_safe(obj.item())
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
