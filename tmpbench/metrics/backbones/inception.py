"""clean-fid's TorchScript Inception-V3 (pool3, 2048-d): the network of the ``inception`` feature mode.

``resize_inside=False`` is clean-fid's "clean" mode: images arrive already resized to 299 px on float
pixels. clean-fid loads the file by its name, so the weights must be called ``inception-2015-12-05.pt``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tmpbench.errors import OfflineError

INCEPTION_FILENAME = "inception-2015-12-05.pt"


def inception_paths() -> list[Path]:
    """Where the weights are looked for: clean-fid's own download spot on Linux, then tmpbench's cache."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return [Path("/tmp") / INCEPTION_FILENAME, cache / "tmpbench" / INCEPTION_FILENAME]


def load_inception(path: Path, device: str) -> Callable:
    """The network as a function ``(N, 3, 299, 299)`` float images in [0, 255] -> ``(N, 2048)`` features."""
    from cleanfid.inception_torchscript import InceptionV3W

    if path.name != INCEPTION_FILENAME:
        raise OfflineError(f"clean-fid loads Inception by its file name: rename {path} to {INCEPTION_FILENAME}")
    # resize_inside=False: clean-fid's "clean" mode, images arrive resized to 299 px by resize_float
    model = InceptionV3W(str(path.parent), download=False, resize_inside=False).to(device).eval()
    return model
