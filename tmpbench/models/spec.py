"""Model specs as the user types them: ``NAME[-SIZE]`` or a local directory.

Grammar::

    SPEC  := NAME | NAME "-" SIZE | PATH
    SIZE  := NUMBER UNIT                   absolute parameter target, e.g. 4b, 500m, 1.5b
           | NUMBER "%"                    share of parameters removed, e.g. 50%
    PATH  := a directory (contains "/" or starts with "." or "~")

``SIZE`` is the one size grammar of :mod:`tmpbench.sizes` (budgets read it too) with the unit
required, so ``flux-2`` stays a name. ``zimage-4b`` is Z-Image pruned to 4B denoiser parameters,
``tiny-dit-50%`` is tiny-dit with half of its denoiser parameters removed. A spec with a size is
pruned by ``--pruner`` (default TMP).

Example::

    >>> parse_spec("zimage-4b")
    ModelSpec(base='zimage', budget='4b', pruner='tmp', path=None)
    >>> parse_spec("tiny-dit-50%").target_params(2_000_000)
    1000000
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tmpbench.catalog import MODELS
from tmpbench.errors import DataFormatError, OfflineError, TmpbenchError, did_you_mean
from tmpbench.models.base import ModelEntry
from tmpbench.sizes import SIZE_WITH_UNIT, parse_size

DEFAULT_PRUNER = "tmp"
GRAMMAR = "expected NAME[-SIZE] where SIZE is like 4b, 500m or 33%, or a local directory"
_SIZE_RE = re.compile(rf"^(?P<name>.+)-(?P<size>{SIZE_WITH_UNIT})$", re.IGNORECASE)

# diffusers pipeline / transformers architecture class -> registered model name, for local dirs
CLASS_TO_MODEL = {
    "ZImagePipeline": "zimage",
    "ZImageImg2ImgPipeline": "zimage",
    "FluxPipeline": "flux",
    "HunyuanImage3ForCausalMM": "hunyuanimage3",
}
# a directory written by tmpbench (tiny references, pruned models) names its model here
MARKER_FILE = "tmpbench_model.json"


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec: the registered ``base`` name, an optional ``budget`` and the pruner that meets it."""

    base: str  # registered model name ("zimage"), or the name detected from a local directory
    budget: str | None = None  # "4b", "500m" (absolute target) or "50%" (share removed); None = unpruned
    pruner: str | None = None  # pruner for a budget ("tmp" unless --pruner); None when unpruned
    path: str | None = None  # local directory holding the weights, if the spec was a path

    @property
    def is_ratio(self) -> bool:
        return self.budget is not None and self.budget.endswith("%")

    def target_params(self, nominal_params: int) -> int | None:
        """Parameters left after pruning a ``nominal_params`` model to this budget (None: unpruned)."""
        if self.budget is None:
            return None
        size = parse_size(self.budget)
        if size is None:
            raise TmpbenchError(f"budget {self.budget!r} of {self.base!r} is not a size; {GRAMMAR}")
        target = round(nominal_params * (1.0 - size.removed_share)) if size.is_ratio else round(size.amount)
        if target >= nominal_params:
            raise TmpbenchError(
                f"budget {self.budget!r} leaves {target:,} parameters, not fewer than {self.base!r}'s "
                f"{nominal_params:,}; pick a smaller size"
            )
        return target

    def __str__(self) -> str:
        if self.path is not None:
            return self.path
        return self.base if self.budget is None else f"{self.base}-{self.budget}"


def _looks_like_path(text: str) -> bool:
    return "/" in text or os.sep in text or text.startswith((".", "~"))


def parse_spec(text: str, pruner: str | None = None) -> ModelSpec:
    """Parse a user-typed model spec; raise TmpbenchError stating the grammar on a bad one."""
    text = text.strip()
    if not text:
        raise TmpbenchError(f"empty model spec: {GRAMMAR} (names: {', '.join(MODELS.names())})")
    if _looks_like_path(text):
        return ModelSpec(base=detect_model_name(text), path=str(Path(text).expanduser()))
    match = _SIZE_RE.match(text)
    # a registered name wins over a size reading of its tail
    name, size = (match["name"], match["size"]) if match and text not in MODELS else (text, None)
    if name not in MODELS:
        hint = did_you_mean(name, MODELS.names())
        raise TmpbenchError(f"bad model spec {text!r}: {GRAMMAR}{hint} (names: {', '.join(MODELS.names())})")
    if size is not None:
        parsed = parse_size(size)
        if parsed.number <= 0 or (parsed.is_ratio and parsed.number >= 100):
            raise TmpbenchError(f"bad model spec {text!r}: size {size!r} must be above 0 (and below 100%)")
        return ModelSpec(base=name, budget=size.lower(), pruner=pruner or DEFAULT_PRUNER)
    if pruner is not None:
        raise TmpbenchError(f"--pruner {pruner!r} needs a spec with a size, e.g. {name}-50% or {name}-4b")
    return ModelSpec(base=name)


def _json_object(path: Path) -> dict:
    """A JSON object file of a model folder; damage raises one line naming the file."""
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataFormatError(
            f"{path} is damaged (not valid JSON: {str(exc).splitlines()[0][:80]}); re-run `tmpbench prune` or the save that wrote it"
        ) from None
    if not isinstance(data, dict):
        raise DataFormatError(
            f"{path} is damaged (a JSON {type(data).__name__}, not an object); re-run `tmpbench prune` or the save that wrote it"
        )
    return data


def detect_model_name(path: str | Path) -> str:
    """Name of the registered model a local directory holds (marker file, diffusers index or HF config)."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise OfflineError(f"model directory {str(directory)!r} does not exist; pass a directory with the weights")
    marker = directory / MARKER_FILE
    if marker.is_file():
        data = _json_object(marker)
        if not isinstance(data.get("model"), str):
            raise DataFormatError(
                f"{marker} has no 'model' key (a name); expected {{\"model\": NAME, ...}} (re-run `tmpbench prune` or the save that"
                " wrote it)"
            )
        return data["model"]
    candidates: list[str] = []
    index = directory / "model_index.json"
    if index.is_file():
        candidates.append(str(_json_object(index).get("_class_name", "")))
    config = directory / "config.json"
    if config.is_file():
        archs = _json_object(config).get("architectures") or []
        candidates.extend(str(a) for a in (archs if isinstance(archs, list) else [archs]))
    for cls in candidates:
        if cls in CLASS_TO_MODEL:
            return CLASS_TO_MODEL[cls]
    found = ", ".join(c for c in candidates if c) or "no model_index.json, config.json or " + MARKER_FILE
    raise TmpbenchError(
        f"cannot tell which model {str(directory)!r} holds ({found}); known classes: {', '.join(CLASS_TO_MODEL)}"
    )


def resolve_entry(spec: ModelSpec) -> ModelEntry:
    """The registered :class:`~tmpbench.models.base.ModelEntry` for a parsed spec."""
    entry = MODELS.get(spec.base)
    if not isinstance(entry, ModelEntry):
        raise TmpbenchError(f"model {spec.base!r} is registered as {type(entry).__name__}, not a ModelEntry")
    return entry


def write_marker(directory: str | Path, **fields: Any) -> None:
    """Write the marker file by which ``--model DIR`` recognises a saved generator's registered model."""
    (Path(directory) / MARKER_FILE).write_text(json.dumps(fields, indent=2) + "\n")
