"""Checks of an output folder and a torch device, run before any model loads.

One home for both so that every command (``run``, ``generate``, ``sweep``, ``prune``,
``suites render``) and :class:`tmpbench.run.pipeline.RunConfig` refuse them with the same line::

    >>> check_device("tpu")
    Traceback (most recent call last):
    ...
    tmpbench.errors.TmpbenchError: --device 'tpu' is not a torch device; pass cpu, cuda, cuda:N or mps
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tmpbench.errors import TmpbenchError

_DEVICE = re.compile(r"^(cpu|cuda|mps)(:\d+)?$")


def check_device(device: str | None) -> None:
    """Refuse a ``--device`` that torch cannot use here (None means "pick one": always fine)."""
    if device is None:
        return
    name = str(device)
    if not _DEVICE.match(name):
        raise TmpbenchError(f"--device {name!r} is not a torch device; pass cpu, cuda, cuda:N or mps")
    import torch

    kind, _, index = name.partition(":")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise TmpbenchError(f"--device {name} asked for, but torch sees no CUDA GPU here; pass --device cpu")
        if index and int(index) >= count:
            raise TmpbenchError(f"--device {name} asked for, but torch sees {count} CUDA GPU(s); pass cuda:0..cuda:{count - 1}")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise TmpbenchError(f"--device {name} asked for, but MPS is not available here; pass --device cpu")


def check_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """Refuse an output folder that is a file, or that cannot be created or written; returns it.

    Creates nothing: the nearest existing ancestor must be a writable folder.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise TmpbenchError(f"{flag} {out} exists and is not a folder; pass a folder path")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise TmpbenchError(f"{flag} {out}: {probe} is a file, so the folder cannot be created; pass another path")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise TmpbenchError(f"{flag} {out}: {probe} is not writable; pass a folder you can write to")
    return out
