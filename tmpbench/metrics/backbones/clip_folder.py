"""Load a local CLIP folder as an encoder, open_clip or transformers, by what the folder holds.

A judge that allows a stand-in for its official encoder (OneIG reasoning: LLM2CLIP; diversity:
DreamSim) loads it with :func:`load_clip_substitute`; the encoder's identity then records
``substitute_for`` and ``official: False``.
"""

from __future__ import annotations

from pathlib import Path

from tmpbench.errors import MissingDependencyError, OfflineError
from tmpbench.metrics.backbones.hf_clip import TransformersClipEncoder
from tmpbench.metrics.backbones.openclip import OpenClipEncoder
from tmpbench.provenance import library_version


def load_clip_substitute(path: str | Path, device: str, substitute_for: str, need_text: bool):
    """An explicitly named CLIP stand-in: an open_clip folder or a transformers CLIP folder."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise OfflineError(f"substitute judge folder {path} does not exist; give a local open_clip or transformers CLIP folder")
    if (path / "open_clip_config.json").is_file():
        if library_version("open_clip_torch") == "not installed":
            raise MissingDependencyError("an open_clip substitute judge needs open_clip: pip install open_clip_torch")
        return OpenClipEncoder(path, device, substitute_for)
    if (path / "config.json").is_file():
        return TransformersClipEncoder(path, device, substitute_for, need_text=need_text)
    raise OfflineError(f"{path} holds neither open_clip_config.json (open_clip) nor config.json (transformers CLIP)")
