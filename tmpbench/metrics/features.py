"""Feature-extractor modes for FID/KID: each named mode pins the resizing, the network and its weights.

A mode (clean-fid's idea) fixes every setting that shapes the features, so two numbers computed in
the same mode are comparable and cached statistics can be keyed by :meth:`FeatureMode.settings`.

=========  ===========================================  ========  ============================
mode       network                                      resize    weights (checked in order)
=========  ===========================================  ========  ============================
shapes     ShapesWorld CNN trained by tmpbench, 64-d    32 px     ``weights`` argument,
           (metrics/backbones/shapes_net.py)            box       ``$TMPBENCH_SHAPES_FEATURES``,
                                                                  tmpbench/assets/shapes-features/
                                                                  model.safetensors (committed,
                                                                  sha256 pinned below)
inception  clean-fid's TorchScript Inception-V3 pool3,  299 px    ``weights`` argument,
           2048-d, "clean" mode (clean-fid's            bicubic   ``$TMPBENCH_INCEPTION_WEIGHTS``,
           ``InceptionV3W(..., resize_inside=False)``)  (float)   /tmp/inception-2015-12-05.pt (where
                                                                  clean-fid's ``feature_extractor``
                                                                  downloads it on Linux),
                                                                  ``$XDG_CACHE_HOME``/tmpbench/
                                                                  inception-2015-12-05.pt
clip       open_clip ViT-B-32, OpenAI weights,          224 px    ``weights`` argument,
           image embedding, 512-d (as clean-fid's       bicubic   ``$TMPBENCH_CLIP_WEIGHTS``, the
           ``clip_vit_b_32`` features)                  + crop    Hugging Face cache entry open_clip
                                                                  itself downloads: repo
                                                                  timm/vit_base_patch32_clip_224.openai
                                                                  file open_clip_model.safetensors
=========  ===========================================  ========  ============================

Nothing is ever downloaded. Without weights, :func:`resolve_weights` raises
:class:`~tmpbench.errors.OfflineError` with one line naming the file, the path to put it at, the
environment variable and the ``--weights`` flag. ``torchmetrics``' own Inception needs
``torch-fidelity`` (not installed), so the ``inception`` mode runs clean-fid's network.

Resizing is done on float pixels per channel (PIL mode ``F``), never re-quantised to uint8, as in
clean-fid's "clean" mode (:func:`tmpbench.metrics.images.resize_float`); an image already at the
mode's size is used as is. The networks themselves live in :mod:`tmpbench.metrics.backbones`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tmpbench.errors import DataFormatError, MissingDependencyError, OfflineError, TmpbenchError
from tmpbench.metrics.backbones.inception import INCEPTION_FILENAME, inception_paths, load_inception
from tmpbench.metrics.images import as_uint8_images, resize_float
from tmpbench.provenance import library_version, sha256_file
from tmpbench.registry import Registry

#: sha256 of the committed ShapesWorld extractor (tmpbench/assets/shapes-features/model.safetensors).
SHAPES_FEATURES_SHA256 = "11f7aa357e1895953f6a65502ff639ae28f348c64a55bccad61a5bcfe4498aa8"
SHAPES_FEATURES_DIR = Path(__file__).resolve().parents[1] / "assets" / "shapes-features"

CLIP_HF_REPO = "timm/vit_base_patch32_clip_224.openai"
CLIP_HF_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")



# ------------------------------------------------------------------------------------------------
# modes
@dataclass(frozen=True)
class FeatureMode:
    """Everything that shapes a feature vector, plus where the weights are looked for.

    ``load(weights_path, device)`` returns a function mapping ``(N, 3, S, S)`` float32 images in
    ``[0, 255]`` (already resized to ``image_size``) to ``(N, feature_dim)`` features.
    """

    name: str
    description: str
    network: str
    image_size: int
    resize_filter: str  # PIL filter name: "box" or "bicubic"
    center_crop: bool  # crop non-square images to their centre square before resizing
    feature_dim: int
    weights_name: str
    weights_sha256: str | None  # pinned checksum; None where upstream publishes none (recorded, not checked)
    env_var: str
    library: str  # distribution whose version is recorded in identity()
    default_paths: Callable[[], list[Path]]
    load: Callable[[Path, str], Callable] = field(repr=False)
    weights_flag: str = "--weights PATH"

    def settings(self) -> dict:
        """The settings that shape the features (key material for cached statistics)."""
        return {
            "mode": self.name,
            "network": self.network,
            "image_size": self.image_size,
            "resize_filter": self.resize_filter,
            "center_crop": self.center_crop,
            "feature_dim": self.feature_dim,
            "weights_name": self.weights_name,
            "weights_sha256": self.weights_sha256,
        }


FEATURE_MODES: Registry[FeatureMode] = Registry("feature mode", entry_point_group="tmpbench.feature_modes")


def get_mode(name: str | FeatureMode) -> FeatureMode:
    """The registered mode ``name``; an unknown name raises UnknownNameError with "did you mean"."""
    if isinstance(name, FeatureMode):
        return name
    return FEATURE_MODES.get(name)


def resolve_weights(mode: str | FeatureMode, weights: str | Path | None = None) -> Path:
    """Find the mode's weights locally: ``weights``, then ``$ENV``, then the default locations.

    Raises OfflineError (one line: the file, where to put it, the env var and flag) when absent.
    """
    mode = get_mode(mode)
    if weights is not None:
        p = Path(weights).expanduser()
        if not p.is_file():
            raise OfflineError(f"{mode.network} weights for feature mode {mode.name!r} not found at {p}: pass an existing file")
        return p
    env = os.environ.get(mode.env_var)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise OfflineError(f"${mode.env_var}={env} does not exist: point it at {mode.weights_name} ({mode.network})")
        return p
    candidates = mode.default_paths()
    for p in candidates:
        if p.is_file():
            return p
    where = candidates[0] if candidates else "a local file"
    raise OfflineError(
        f"{mode.network} weights for feature mode {mode.name!r} not found offline: put {mode.weights_name} at {where}, "
        f"or set {mode.env_var}=PATH, or pass {mode.weights_flag} (no download is attempted)"
    )


def check_weights(mode: str | FeatureMode, path: Path) -> str:
    """Return the file's sha256; raise DataFormatError when it differs from the mode's pinned checksum."""
    mode = get_mode(mode)
    digest = sha256_file(path)
    if mode.weights_sha256 is not None and digest != mode.weights_sha256:
        raise DataFormatError(
            f"{path} has sha256 {digest[:16]}..., but feature mode {mode.name!r} pins {mode.weights_sha256[:16]}...; "
            "use the matching weights (or a new mode name for new weights)"
        )
    return digest


def mode_available(mode: str | FeatureMode, weights: str | Path | None = None) -> tuple[bool, str]:
    """``(True, "")`` when the mode's library and weights are present and match; else ``(False, reason)``."""
    mode = get_mode(mode)
    if library_version(mode.library) == "not installed":
        return False, f"feature mode {mode.name!r} needs {mode.library}: pip install {mode.library}"
    try:
        check_weights(mode, resolve_weights(mode, weights))
    except TmpbenchError as exc:
        return False, str(exc)
    return True, ""


# ------------------------------------------------------------------------------------------------
# extractors
class FeatureExtractor:
    """A loaded mode: ``extractor(images) -> (N, D)`` float64 features on the CPU.

    >>> ex = build_extractor("shapes")                          # doctest: +SKIP
    >>> ex(np.zeros((2, 32, 32, 3), np.uint8)).shape            # doctest: +SKIP
    torch.Size([2, 64])
    """

    def __init__(self, mode: FeatureMode, weights_path: Path, weights_sha256: str, fn: Callable, device: str) -> None:
        self.mode = mode
        self.weights_path = weights_path
        self.weights_sha256 = weights_sha256
        self.device = device
        self._fn = fn

    def __call__(self, images, batch_size: int = 64):
        import torch

        arrays = as_uint8_images(images)
        out = []
        for i in range(0, len(arrays), batch_size):
            mode = self.mode
            chunk = [resize_float(a, mode.image_size, mode.resize_filter, mode.center_crop) for a in arrays[i : i + batch_size]]
            x = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).contiguous().to(self.device)
            with torch.no_grad():
                feats = self._fn(x)
            out.append(feats.detach().to("cpu", torch.float64))
        if not out:
            return torch.zeros(0, self.mode.feature_dim, dtype=torch.float64)
        return torch.cat(out)

    def identity(self) -> dict:
        return {
            "mode": self.mode.name,
            "network": self.mode.network,
            "library": self.mode.library,
            "library_version": library_version(self.mode.library),
            "weights_path": str(self.weights_path),
            "weights_sha256": self.weights_sha256,
            "settings": self.mode.settings(),
        }


_LOADED: dict[tuple, FeatureExtractor] = {}


def build_extractor(mode: str | FeatureMode, weights: str | Path | None = None, device: str = "cpu") -> FeatureExtractor:
    """Resolve, verify and load a mode's network (memoised per path, checksum and device)."""
    mode = get_mode(mode)
    if library_version(mode.library) == "not installed":
        raise MissingDependencyError(f"feature mode {mode.name!r} needs {mode.library}: pip install {mode.library}")
    path = resolve_weights(mode, weights)
    digest = check_weights(mode, path)
    key = (mode.name, str(path.resolve()), digest, device)
    if key not in _LOADED:
        _LOADED[key] = FeatureExtractor(mode, path, digest, mode.load(path, device), device)
    return _LOADED[key]


def _load_shapes(path: Path, device: str) -> Callable:
    from tmpbench.metrics.backbones import shapes_net

    model = shapes_net.load(path).to(device)
    return model.features


def _load_clip_image(path: Path, device: str) -> Callable:
    from tmpbench.metrics.backbones.openclip import DEFAULT_MODEL, load_open_clip_checkpoint

    return load_open_clip_checkpoint(DEFAULT_MODEL, path, device).encode_image_pixels


def clip_cache_paths() -> list[Path]:
    """Where open_clip's own download of ViT-B-32/openai lands: the Hugging Face hub cache (offline lookup)."""
    try:
        from huggingface_hub import constants, try_to_load_from_cache
    except ImportError:
        return []
    found = []
    for name in CLIP_HF_FILES:
        hit = try_to_load_from_cache(CLIP_HF_REPO, name)
        if isinstance(hit, str):
            found.append(Path(hit))
    repo_dir = Path(constants.HF_HUB_CACHE) / ("models--" + CLIP_HF_REPO.replace("/", "--"))
    return found + [repo_dir / "snapshots" / "<revision>" / CLIP_HF_FILES[0]]


FEATURE_MODES.add(
    "shapes",
    FeatureMode(
        name="shapes",
        description="ShapesWorld domain CNN (tmpbench-trained), penultimate 64-d features",
        network="tmpbench ShapesFeatureNet",
        image_size=32,
        resize_filter="box",
        center_crop=False,
        feature_dim=64,
        weights_name="model.safetensors",
        weights_sha256=SHAPES_FEATURES_SHA256,
        env_var="TMPBENCH_SHAPES_FEATURES",
        library="torch",
        default_paths=lambda: [SHAPES_FEATURES_DIR / "model.safetensors"],
        load=_load_shapes,
    ),
)
FEATURE_MODES.add(
    "inception",
    FeatureMode(
        name="inception",
        description="clean-fid 'clean' mode: TorchScript Inception-V3 pool3 (2048-d), PIL bicubic float resize to 299",
        network="clean-fid Inception-V3 (TorchScript)",
        image_size=299,
        resize_filter="bicubic",
        center_crop=False,
        feature_dim=2048,
        weights_name=INCEPTION_FILENAME,
        weights_sha256=None,
        env_var="TMPBENCH_INCEPTION_WEIGHTS",
        library="clean-fid",
        default_paths=inception_paths,
        load=load_inception,
    ),
)
FEATURE_MODES.add(
    "clip",
    FeatureMode(
        name="clip",
        description="open_clip ViT-B-32 (OpenAI weights) image embeddings (512-d), bicubic 224 + centre crop",
        network="open_clip ViT-B-32 openai",
        image_size=224,
        resize_filter="bicubic",
        center_crop=True,
        feature_dim=512,
        weights_name=CLIP_HF_FILES[0],
        weights_sha256=None,
        env_var="TMPBENCH_CLIP_WEIGHTS",
        library="open_clip_torch",
        default_paths=clip_cache_paths,
        load=_load_clip_image,
    ),
)
