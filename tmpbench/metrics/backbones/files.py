"""Weight files of a local model folder: which files count, their checksums, one-line load errors.

>>> one_line(OSError("no such file\\nsecond line"))
'OSError: no such file'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tmpbench.provenance import library_version, sha256_file

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".tar")


def weight_files(folder: Path) -> list[Path]:
    """Every weight file under ``folder`` (recursively, sorted): what an identity checksums."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))


def weights_sha256(files: Sequence[Path]) -> dict[str, str]:
    """``{file name: sha256}`` of ``files`` (memoised per process by :func:`tmpbench.provenance.sha256_file`)."""
    return {str(p.name): sha256_file(p) for p in files}


def one_line(exc: BaseException) -> str:
    """``"<type>: <first line of the message>"`` (at most 160 characters) for a one-line error."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:160] if lines else ''}"


def folder_identity(name: str, path: Path, library: str, substitute_for: str | None = None, **extra) -> dict:
    """The identity a result records for an encoder loaded from a local folder: its name, library and
    version, the folder and the sha256 of every weight file in it, and whether it stands in for the
    benchmark's official encoder (``substitute_for``). ``extra`` keys (a config, a dtype) come after the name."""
    return {
        "name": name,
        **extra,
        "library": library,
        "library_version": library_version(library),
        "weights_path": str(path),
        "weights_sha256": weights_sha256(weight_files(path)),
        "substitute_for": substitute_for,
        "official": substitute_for is None,
    }
