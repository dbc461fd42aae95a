"""The generator interface every model adapter implements, and the description of a registered model.

A :class:`Generator` turns batches of prompts (or images plus instructions) into PIL images, one
image per seed, and exposes its denoiser module tree to pruners. A :class:`ModelEntry` is the plain
data the ``MODELS`` registry holds for each name (family, where the weights live, defaults, nominal
size) plus two lazy ``"module:attr"`` hooks: ``loader`` builds the generator and ``meta_builder``
builds the full-size denoiser on the meta device for counting.

Where an adapter's weights come from (hub id, local folder, one-line offline errors) is
:mod:`tmpbench.models.weights`; the base of the diffusers adapters is
:mod:`tmpbench.models.diffusers_generator`. Loading a model by its spec (registered name,
``NAME-SIZE`` or a folder, pruned or not) is a composition of models and pruning and lives above
both, in :mod:`tmpbench.loading`.

Example::

    >>> from tmpbench.loading import load_model
    >>> gen = load_model("tiny-dit")                       # doctest: +SKIP
    >>> gen.generate(["a red circle"], seeds=[0], steps=8, guidance=1.0, size=32)  # doctest: +SKIP
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tmpbench.errors import TmpbenchError, did_you_mean

if TYPE_CHECKING:  # keep `import tmpbench.models.base` free of torch/PIL
    import torch
    from PIL import Image


def resolve_target(target: str | Callable[..., Any]) -> Callable[..., Any]:
    """Import ``"package.module:attr"`` (``attr`` may be dotted, e.g. ``Class.method``), or pass a
    callable through: how :class:`ModelEntry` hooks and other lazy targets are resolved."""
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
    # images per generator call when --batch-size is not given: large for models whose calls are cheap
    # (the 32 px references), small where a batch must fit in accelerator memory at full size
    default_batch_size: int = 8
    # how generate() calls the denoiser: each task's prompts as one batch per step (the diffusers pipelines;
    # True), or every prompt through its own calls (False: HunyuanImage-3.0's generate_image); what a
    # calibration input (one call) holds, for plan --estimate's FLOPs
    batched_calls: bool = True
    # classifier-free guidance doubles a call's batch when guidance is above this value: ZImagePipeline and
    # its img2img twin guide whenever guidance_scale > 0, FluxPipeline (true CFG) and HunyuanImage-3.0 above
    # 1; edit_cfg_above is the edit path's own rule when it differs (None: the same)
    cfg_above: float = 1.0
    edit_cfg_above: float | None = None
    path_env: str | None = None  # env var naming a local checkpoint directory
    meta_builder: str | Callable[..., Any] | None = None  # "module:attr" -> (entry) -> nn.Module on meta
    # "module:attr" -> (entry) -> {name: nn.Module on meta}: the pipeline's other components (text
    # encoder, VAE, vision encoder) at full size, for memory estimates (tmpbench.fit)
    meta_components: str | Callable[..., Any] | None = None
    supports_edit: bool = False
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # family-specific settings
    # traits read by the layers above, instead of tests on the model's name:
    calibration_suite: str = "geneval"  # suite whose prompts calibrate pruning by default
    # edit suite whose instructions join the default calibration (a T2I + editing mix); None: T2I only
    calibration_edit_suite: str | None = None
    # keyword arguments of the reference architecture (tmpbench.models.reference.tiny_zimage
    # .TinyZImageConfig) for models `tmpbench train-reference` can train; None for hub models
    architecture: dict[str, Any] | None = None
    transfer_partner: str | None = None  # the model of another architecture the arch-transfer ablation pairs it with

    def __post_init__(self) -> None:
        if self.default_batch_size < 1:
            raise TmpbenchError(f"model {self.name!r}: default_batch_size must be at least 1, got {self.default_batch_size}")

    def cfg_batch(self, guidance: float, task: str = "t2i") -> int:
        """Sequences per prompt in one denoiser call at ``guidance``: 2 when the pipeline runs classifier-free
        guidance (conditional and unconditional in one batch), else 1."""
        above = self.edit_cfg_above if task == "edit" and self.edit_cfg_above is not None else self.cfg_above
        return 2 if guidance > above else 1

    def load(self, path: str | Path | None = None, device: str = "cpu", offload_folder: str | Path | None = None) -> Generator:
        """Build the generator (``loader``); with ``offload_folder`` its denoiser's blocks stay on disk
        there (:mod:`tmpbench.models.offload`), for loaders that take one."""
        loader = resolve_target(self.loader)
        if offload_folder is None:
            return loader(self, None if path is None else str(path), device)
        import inspect

        if "offload_folder" not in inspect.signature(loader).parameters:
            raise TmpbenchError(f"model {self.name!r} cannot be loaded with --offload-folder (its loader has no disk "
                                "offload); load it in memory, or plan it data-free with --meta")
        return loader(self, None if path is None else str(path), device, offload_folder=str(offload_folder))

    def build_meta(self) -> Any:
        if self.meta_builder is None:
            raise TmpbenchError(f"model {self.name!r} has no meta-device builder; count a loaded model instead")
        return resolve_target(self.meta_builder)(self)

    def build_meta_components(self) -> dict[str, Any]:
        """The other components of the pipeline on the meta device (``{}`` when the entry names none)."""
        return {} if self.meta_components is None else dict(resolve_target(self.meta_components)(self))

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
            "default_batch_size": self.default_batch_size,
            "batched_calls": self.batched_calls,
            "cfg_above": self.cfg_above,
            "edit_cfg_above": self.edit_cfg_above,
            "path_env": self.path_env,
            "supports_edit": self.supports_edit,
            "description": self.description,
            "calibration_suite": self.calibration_suite,
            "calibration_edit_suite": self.calibration_edit_suite,
            "trainable_reference": self.architecture is not None,
            "transfer_partner": self.transfer_partner,
        }


# ``tmpbench run --offload``: the strategies ``tmpbench fit`` prices (tmpbench.models.memory), "expert" for MoE denoisers
OFFLOADS = ("none", "model", "group", "expert")


def check_offload(strategy: str) -> None:
    """One line for an offload strategy ``tmpbench run`` does not know."""
    if strategy not in OFFLOADS:
        raise TmpbenchError(f"unknown --offload {strategy!r}{did_you_mean(strategy, OFFLOADS)}; use one of "
                            f"{', '.join(OFFLOADS)} (tmpbench fit says which one fits a GPU)")


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
        self, images: list[Image.Image], instructions: list[str], seeds: list[int], steps: int, guidance: float, size: int
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

    def offload(self, strategy: str, device: str) -> None:
        """Keep weights off ``device`` between their uses while generating (``tmpbench run --offload``):
        ``"none"`` leaves the generator as loaded; adapters that can offload override this."""
        check_offload(strategy)
        if strategy != "none":
            raise TmpbenchError(f"model {self.name!r} ({self.family}) cannot run with --offload {strategy}: only the "
                                "diffusers pipelines (zimage, flux and the references built on them) and HunyuanImage-3.0 "
                                "(expert) offload here; use --offload none")

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
