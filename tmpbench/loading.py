"""Load the generator a model spec names: a registered model, a local folder, or a pruned folder.

This is a composition of :mod:`tmpbench.models` (registered entries and their loaders) and
:mod:`tmpbench.pruning` (folders written by ``tmpbench prune``), so it sits above both: the model
interface knows nothing of pruning.

Example::

    >>> from tmpbench.loading import load_model
    >>> gen = load_model("tiny-dit")                       # doctest: +SKIP
    >>> gen.generate(["a red circle"], seeds=[0], steps=8, guidance=1.0, size=32)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from tmpbench.errors import TmpbenchError
from tmpbench.models.base import Generator
from tmpbench.models.spec import parse_spec, resolve_entry
from tmpbench.pruning.io import is_pruned_dir, load_pruned


def load_model(spec: str, device: str = "cpu", path: str | Path | None = None,
               offload_folder: str | Path | None = None) -> Generator:
    """Load the generator a model spec names (``"zimage"``, ``"tiny-dit"``, ``"/path/to/dir"``).

    ``path`` overrides where the weights come from (the CLI's ``--model-path``). Specs with a
    budget (``"zimage-4b"``) name a pruned model; pruning is done by ``tmpbench prune``.
    ``offload_folder`` keeps the denoiser's blocks on disk there (:mod:`tmpbench.models.offload`).
    """
    parsed = parse_spec(spec)
    if parsed.budget is not None:
        raise TmpbenchError(
            f"model spec {spec!r} names a pruned model; `tmpbench run` prunes it (cached), or run "
            f"`tmpbench prune --model {spec} --out DIR` and pass --model DIR"
        )
    folder = path if path is not None else parsed.path
    if folder is not None:
        if is_pruned_dir(folder):  # a folder written by `tmpbench prune`: rebuild its pruned shapes
            if offload_folder is not None:
                raise TmpbenchError(f"{str(folder)!r} is a pruned model folder, which loads in memory; "
                                    "--offload-folder applies to base models")
            return load_pruned(folder, device=device)
    entry = resolve_entry(parsed)
    return entry.load(path=path if path is not None else parsed.path, device=device, offload_folder=offload_folder)
