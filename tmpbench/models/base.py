"""The generator interface every model adapter implements, and the description of a registered model.

A :class:`Generator` turns batches of prompts (or images plus instructions) into PIL images, one
image per seed, and exposes its denoiser module tree to pruners. A :class:`ModelEntry` is the plain
data the ``MODELS`` registry holds for each name (family, where the weights live, defaults, nominal
size) plus two lazy ``"module:attr"`` hooks: ``loader`` builds the generator and ``meta_builder``
builds the full-size denoiser on the meta device for counting.

Loading a model by its spec (registered name, ``NAME-SIZE`` or a folder, pruned or not) is a
composition of models and pruning and lives above both, in :mod:`tmpbench.loading`.

Example::

    >>> from tmpbench.loading import load_model
    >>> gen = load_model("tiny-dit")                       # doctest: +SKIP
    >>> gen.generate(["a red circle"], seeds=[0], steps=8, guidance=1.0, size=32)  # doctest: +SKIP
"""

from __future__ import annotations

import abc
import contextlib
import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable

from tmpbench.errors import OfflineError, TmpbenchError

if TYPE_CHECKING:  # keep `import tmpbench.models.base` free of torch/PIL
    import torch
    from PIL import Image


def resolve_target(target: str | Callable[..., Any]) -> Callable[..., Any]:
    """Import ``"package.module:attr"`` (or pass a callable through)."""
    if callable(target):
        return target
    module_name, sep, attr = target.partition(":")
    if not sep:
        raise TmpbenchError(f"hook {target!r} must look like 'module:attr'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class ModelEntry:
    """What the ``MODELS`` registry knows about one named model.

    ``loader(entry, path, device) -> Generator`` builds the generator (``path`` is a local
    directory or ``None`` for the entry's default source). ``meta_builder(entry) -> nn.Module``
    builds the full-size denoiser on the meta device. ``nominal_params`` is the denoiser's
    parameter count as published (what ``models show`` reports without building anything).
    """

    name: str  # registry name, e.g. "zimage"
    family: str  # adapter family, e.g. "zimage", "flux", "hunyuanimage3"
    source: str  # hub id ("Tongyi-MAI/Z-Image-Turbo") or "builtin" for in-repo tiny models
    loader: str | Callable[..., Generator]  # "module:attr" -> (entry, path, device) -> Generator
    nominal_params: int  # denoiser parameters (the module pruners see)
    default_steps: int = 8
    default_guidance: float = 0.0
    default_size: int = 1024
    path_env: str | None = None  # env var naming a local checkpoint directory
    meta_builder: str | Callable[..., Any] | None = None  # "module:attr" -> (entry) -> nn.Module on meta
    supports_edit: bool = False
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # family-specific settings
    # traits read by the layers above, instead of tests on the model's name:
    calibration_suite: str = "geneval"  # suite whose prompts calibrate pruning by default
    # keyword arguments of the reference architecture (tmpbench.models.reference.tiny_zimage
    # .TinyZImageConfig) for models `tmpbench train-reference` can train; None for hub models
    architecture: dict[str, Any] | None = None
    transfer_partner: str | None = None  # the model of another architecture the arch-transfer ablation pairs it with

    def load(self, path: str | Path | None = None, device: str = "cpu") -> Generator:
        return resolve_target(self.loader)(self, None if path is None else str(path), device)

    def build_meta(self) -> Any:
        if self.meta_builder is None:
            raise TmpbenchError(f"model {self.name!r} has no meta-device builder; count a loaded model instead")
        return resolve_target(self.meta_builder)(self)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (hooks shown as their target strings)."""
        return {
            "name": self.name,
            "family": self.family,
            "source": self.source,
            "nominal_params": self.nominal_params,
            "default_steps": self.default_steps,
            "default_guidance": self.default_guidance,
            "default_size": self.default_size,
            "path_env": self.path_env,
            "supports_edit": self.supports_edit,
            "description": self.description,
            "calibration_suite": self.calibration_suite,
            "trainable_reference": self.architecture is not None,
            "transfer_partner": self.transfer_partner,
        }


class Generator(abc.ABC):
    """A batched image generator: one image per (prompt, seed), each image depending only on its seed.

    Subclasses set ``name``, ``family`` and ``supports_edit`` and implement :meth:`generate`,
    :attr:`denoiser` and :meth:`save`; editing models implement :meth:`edit`.
    """

    name: str = "generator"
    family: str = "unknown"
    supports_edit: bool = False

    @abc.abstractmethod
    def generate(
        self, prompts: list[str], seeds: list[int], steps: int, guidance: float, size: int
    ) -> list[Image.Image]:
        """Text-to-image: returns ``len(prompts)`` RGB images of ``size`` x ``size`` pixels."""

    def edit(
        self,
        images: list[Image.Image],
        instructions: list[str],
        seeds: list[int],
        steps: int,
        guidance: float,
        size: int,
    ) -> list[Image.Image]:
        """Instruction editing: returns one edited image per (image, instruction, seed)."""
        raise TmpbenchError(f"model {self.name!r} ({self.family}) does not support editing; use a T2I suite")

    @property
    @abc.abstractmethod
    def denoiser(self) -> torch.nn.Module:
        """The module tree pruners score and cut (the DiT transformer, or the MoE backbone)."""

    @abc.abstractmethod
    def save(self, path: str | Path) -> None:
        """Write everything needed to load this generator back from ``path`` (a directory)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, family={self.family!r})"


def check_batch(prompts: list[Any], seeds: list[int], steps: int, size: int, multiple: int = 16) -> None:
    """Validate the common batch arguments, raising one-line TmpbenchErrors."""
    if len(prompts) != len(seeds):
        raise TmpbenchError(f"got {len(prompts)} prompts but {len(seeds)} seeds; pass one seed per prompt")
    if steps < 1:
        raise TmpbenchError(f"steps={steps} must be at least 1")
    if size < multiple or size % multiple:
        raise TmpbenchError(f"size={size} must be a positive multiple of {multiple} for this model")


def check_edit_batch(
    images: list[Any], instructions: list[Any], seeds: list[int], steps: int, size: int, multiple: int = 16
) -> None:
    """:func:`check_batch` for :meth:`Generator.edit`, plus exactly one source image per instruction."""
    check_batch(instructions, seeds, steps, size, multiple)
    if len(images) != len(instructions):
        raise TmpbenchError(f"got {len(images)} images but {len(instructions)} instructions; pass one of each")


def pipeline_call_kwargs(pipe: Any, seeds: list[int], steps: int, size: int, max_sequence_length: int) -> dict[str, Any]:
    """The arguments a diffusers adapter passes to every pipeline call (T2I and img2img alike):
    a ``size`` x ``size`` image, ``steps`` steps, PIL output, and one generator per image seeded
    with its own seed, so that each image depends on its own seed only, not on its batch neighbours
    (``randn_tensor`` draws each sample's noise from its own generator)."""
    import torch

    device = pipe._execution_device
    return {
        "height": size,
        "width": size,
        "num_inference_steps": steps,
        "generator": [torch.Generator(device=device).manual_seed(int(s)) for s in seeds],
        "max_sequence_length": max_sequence_length,
        "output_type": "pil",
    }


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
    env = f" or set {entry.path_env}=DIR" if entry.path_env else ""
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


def load_diffusers_pipeline(entry: ModelEntry, path: str | None, pipeline_cls: Any, device: str = "cpu") -> Any:
    """``pipeline_cls.from_pretrained`` for a diffusers adapter's loader hook, moved to ``device``.

    The weights come from :func:`weights_source` (``path``, else the entry's environment variable,
    else its hub id) in :func:`checkpoint_dtype`; anything that stops them loading raises one
    OfflineError line (:func:`loading_weights`).
    """
    source, local = weights_source(entry, path)
    dtype = checkpoint_dtype(entry)
    with loading_weights(entry, local=local):
        pipe = pipeline_cls.from_pretrained(source, dtype=dtype, local_files_only=local)
    pipe.to(device)
    return pipe


def set_eval(pipe: Any) -> None:
    """Put every module of a pipeline in eval mode: a freshly built module is in train mode, and
    dropout (T5's 0.1) would make an image depend on its batch neighbours' random draws."""
    import torch

    for component in getattr(pipe, "components", {}).values():
        if isinstance(component, torch.nn.Module):
            component.eval()
