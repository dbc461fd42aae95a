"""Where a registered model's weights come from, and the one-line error when they cannot be had.

Every adapter's loader hook resolves its weights the same way (:func:`weights_source`): the CLI's
``--model-path`` wins over the entry's environment variable, which wins over its hub id. Whatever
stops the weights loading (offline hub, missing or incomplete folder) becomes one
:class:`~tmpbench.errors.OfflineError` line that names the fix (:func:`weights_unavailable`,
:func:`loading_weights`).

Example::

    >>> source, local = weights_source(entry, None)          # doctest: +SKIP
    >>> with loading_weights(entry, local=local):             # doctest: +SKIP
    ...     pipe = ZImagePipeline.from_pretrained(source, local_files_only=local)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tmpbench.errors import OfflineError

if TYPE_CHECKING:  # keep `import tmpbench.models.weights` free of torch
    import torch

    from tmpbench.models.base import ModelEntry


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE`` set)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def weights_source(entry: ModelEntry, path: str | Path | None) -> tuple[str, bool]:
    """Where ``entry``'s weights come from: ``(directory, True)`` or ``(hub_id, False)``.

    ``path`` (the CLI's ``--model-path``) wins over the entry's environment variable, which wins
    over the hub id. A named directory that does not exist raises OfflineError.
    """
    chosen = str(path) if path is not None else (os.environ.get(entry.path_env) if entry.path_env else None)
    if chosen:
        directory = Path(chosen).expanduser()
        if not directory.is_dir():
            raise OfflineError(f"{entry.name} weights directory {str(directory)!r} does not exist; {path_hint(entry)}")
        return str(directory), True
    return entry.source, False


def path_hint(entry: ModelEntry) -> str:
    """The fix every weights error ends with: download the weights and point at them, or, for a
    builtin model (nothing to download), use the embedded asset or train it."""
    env = f" or set {entry.path_env}=DIR" if entry.path_env else ""
    if entry.source == "builtin":
        from tmpbench.models.assets import asset_dir

        return (
            f"leave out --model-path to use the embedded {asset_dir(entry.name)}, or run "
            f"`tmpbench train-reference {entry.name}` and pass --model-path DIR{env}"
        )
    return f"download {entry.source!r} and pass --model-path DIR{env}"


def weights_unavailable(entry: ModelEntry, reason: str, local: bool = False) -> OfflineError:
    """The one-line error for weights that cannot be had (offline, missing, incomplete).

    ``local`` says the weights came from a directory, so the hub's offline mode is not the cause."""
    reason = reason.strip().splitlines()[0] if reason.strip() else "unknown reason"
    reason = reason if len(reason) <= 200 else reason[:197] + "..."
    if local:
        return OfflineError(f"cannot load {entry.name} weights from a local directory ({reason}); {path_hint(entry)}")
    where = "HF_HUB_OFFLINE=1 and not in the local cache" if hub_offline() else reason
    return OfflineError(f"cannot load {entry.name} weights {entry.source!r} ({where}); {path_hint(entry)}")


@contextlib.contextmanager
def quiet_hub_logs() -> Iterator[None]:
    """Silence diffusers/transformers hub warnings while loading, so a failure stays one line."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    before = (dlog.get_verbosity(), tlog.get_verbosity())
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    try:
        yield
    finally:
        dlog.set_verbosity(before[0])
        tlog.set_verbosity(before[1])


@contextlib.contextmanager
def loading_weights(entry: ModelEntry, local: bool = False) -> Iterator[None]:
    """Wrap ``from_pretrained`` calls: hub logs are silenced and an ``OSError`` (what hub errors
    subclass) or ``ValueError`` becomes the one-line :func:`weights_unavailable` error."""
    try:
        with quiet_hub_logs():
            yield
    except (OSError, ValueError) as exc:
        raise weights_unavailable(entry, f"{type(exc).__name__}: {exc}", local=local) from None


def checkpoint_dtype(entry: ModelEntry) -> torch.dtype:
    """The dtype ``entry``'s weights load in: bfloat16 unless ``entry.extra["dtype"]`` names another (float32)."""
    import torch

    return torch.bfloat16 if entry.extra.get("dtype", "bfloat16") == "bfloat16" else torch.float32
