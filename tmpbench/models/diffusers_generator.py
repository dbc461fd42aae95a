"""The base of the adapters over a diffusers pipeline (Z-Image, FLUX.1): :class:`DiffusersGenerator`.

A subclass names its diffusers classes and its guidance arguments; everything else is shared:
construction from a ready pipeline (tiny components in tests, real checkpoints via
:meth:`DiffusersGenerator.from_entry`), T2I through the pipeline, editing through the family's
img2img pipeline built from the same components, ``save`` and the meta-device denoiser::

    class ZImageGenerator(DiffusersGenerator):
        family = "zimage"
        pipeline_class, img2img_class = "ZImagePipeline", "ZImageImg2ImgPipeline"
        transformer_class = "ZImageTransformer2DModel"
        ...

Diffusers classes are named as strings and imported on first use, so importing an adapter (which
``tmpbench models list`` does for every entry) stays free of diffusers.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tmpbench.errors import TmpbenchError
from tmpbench.models.base import Generator, ModelEntry, check_batch, check_edit_batch, check_offload
from tmpbench.models.spec import write_marker
from tmpbench.models.weights import checkpoint_dtype, loading_weights, weights_source

if TYPE_CHECKING:
    import torch
    from PIL import Image


def diffusers_class(name: str) -> Any:
    """The diffusers class called ``name`` (e.g. ``"ZImagePipeline"``), imported now."""
    import diffusers

    return getattr(diffusers, name)


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


def load_diffusers_pipeline(entry: ModelEntry, path: str | None, pipeline_cls: Any, device: str = "cpu",
                            transformer_cls: Any = None, offload_folder: str | None = None) -> Any:
    """``pipeline_cls.from_pretrained`` for a diffusers adapter's loader hook, moved to ``device``.

    The weights come from :func:`~tmpbench.models.weights.weights_source` (``path``, else the
    entry's environment variable, else its hub id) in
    :func:`~tmpbench.models.weights.checkpoint_dtype`; anything that stops them loading raises one
    OfflineError line (:func:`~tmpbench.models.weights.loading_weights`). With ``offload_folder``
    the transformer (``transformer_cls``) is loaded first with its blocks on disk there
    (:func:`~tmpbench.models.offload.load_offloaded`) and handed to the pipeline.
    """
    from tmpbench.models.offload import load_offloaded, pipeline_to

    source, local = weights_source(entry, path)
    dtype = checkpoint_dtype(entry)
    with loading_weights(entry, local=local):
        given = {}
        if offload_folder is not None:
            given["transformer"] = load_offloaded(transformer_cls, source, offload_folder, dtype=dtype, device=device,
                                                  subfolder="transformer", local_files_only=local)
        pipe = pipeline_cls.from_pretrained(source, dtype=dtype, local_files_only=local, **given)
    return pipeline_to(pipe, device)


def set_eval(pipe: Any) -> None:
    """Put every module of a pipeline in eval mode: a freshly built module is in train mode, and
    dropout (T5's 0.1) would make an image depend on its batch neighbours' random draws."""
    import torch

    for component in getattr(pipe, "components", {}).values():
        if isinstance(component, torch.nn.Module):
            component.eval()


class DiffusersGenerator(Generator):
    """A :class:`~tmpbench.models.base.Generator` over a diffusers text-to-image pipeline.

    ``pipe`` is a ready pipeline whose ``transformer`` is the denoiser pruners see. ``name`` (default:
    the family) labels the generator; ``model`` (default: the family) is the registered name written
    to the save marker, so ``--model DIR`` loads the folder back. ``edit_strength`` is the img2img
    noise level of :meth:`edit`: 1.0 ignores the source image, 0.0 would return it unchanged.
    ``max_sequence_length`` (default: the family's) is the prompt length the text encoder sees.

    Subclasses set ``family``, the class names below and :meth:`_guidance_kwargs`; they may
    override :meth:`_edit_sources` and :meth:`_save_pipeline`.
    """

    supports_edit = True
    pipeline_class: str  # diffusers T2I pipeline class the loader hook builds, e.g. "ZImagePipeline"
    img2img_class: str  # diffusers img2img pipeline class built from the same components for edits
    transformer_class: str  # the denoiser's diffusers class, built on the meta device for counting
    default_transformer_config: dict[str, Any]  # its config at the registered checkpoint
    default_max_sequence_length: int  # prompt length (tokens) the family's text encoder sees by default

    def __init__(
        self,
        pipe: Any,
        name: str | None = None,
        edit_strength: float = 0.6,
        max_sequence_length: int | None = None,
        model: str | None = None,
    ) -> None:
        if not 0.0 < edit_strength <= 1.0:
            raise ValueError(f"edit_strength={edit_strength} must be in (0, 1]")
        self.pipe = pipe
        self.name = self.family if name is None else name
        self.model = self.family if model is None else model
        self.edit_strength = edit_strength
        self.max_sequence_length = self.default_max_sequence_length if max_sequence_length is None else max_sequence_length
        self._img2img = None  # built on the first edit; pruning.runner.with_denoiser resets it
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)
        set_eval(pipe)

    # registry hooks --------------------------------------------------------------------------
    @classmethod
    def from_entry(cls, entry: ModelEntry, path: str | None, device: str = "cpu",
                   offload_folder: str | None = None) -> DiffusersGenerator:
        """Loader hook (``ModelEntry.loader``): the entry's weights from ``path``, its environment
        variable or its hub id, as a generator named after the entry (its transformer's blocks on disk
        under ``offload_folder`` when one is given)."""
        pipe = load_diffusers_pipeline(entry, path, diffusers_class(cls.pipeline_class), device,
                                       transformer_cls=diffusers_class(cls.transformer_class), offload_folder=offload_folder)
        return cls(pipe, name=entry.name, model=entry.name)

    @classmethod
    def meta_denoiser(cls, entry: ModelEntry) -> torch.nn.Module:
        """Meta-device hook (``ModelEntry.meta_builder``): the full-size transformer, no weights
        allocated, at ``entry.extra["transformer_config"]`` or the class's default config."""
        import torch

        config = entry.extra.get("transformer_config", cls.default_transformer_config)
        with torch.device("meta"):
            return diffusers_class(cls.transformer_class)(**config)

    # the Generator interface -----------------------------------------------------------------
    @property
    def denoiser(self) -> torch.nn.Module:
        return self.pipe.transformer

    def offload(self, strategy: str, device: str) -> None:
        """diffusers' own offloading, the strategies ``tmpbench fit`` prices: ``"model"`` is
        ``enable_model_cpu_offload`` (one component at a time on ``device``), ``"group"`` is
        ``enable_group_offload`` at block level, one block per group, with the next block prefetched on a
        side stream on CUDA (every component's block lists stream; the rest of a component stays on
        ``device`` while it runs). ``"expert"`` (MoE denoisers) streams the text encoder and VAE as
        ``"group"`` does and the denoiser's routed experts only
        (:func:`tmpbench.models.offload.expert_offload`, no cache: the lowest peak of fit's strategy).
        Images are the same as without offload (tests); peak memory and latency are what change."""
        check_offload(strategy)
        if strategy == "none":
            return
        import torch

        from tmpbench.models.offload import expert_offload, group_offload_kwargs, is_dispatched

        if is_dispatched(self.pipe.transformer):
            raise TmpbenchError(f"model {self.name!r}: its denoiser is already dispatched by accelerate (loaded with an "
                                f"offload folder); it cannot take --offload {strategy} as well")
        if strategy == "model":
            self.pipe.enable_model_cpu_offload(device=torch.device(device))
        elif strategy == "group":
            self.pipe.enable_group_offload(**group_offload_kwargs(device))
        else:
            from diffusers.hooks import apply_group_offloading

            expert_offload(self.pipe.transformer, device)  # refuses a dense denoiser in one line
            for name, component in self.pipe.components.items():
                if name != "transformer" and isinstance(component, torch.nn.Module):
                    apply_group_offloading(component, **group_offload_kwargs(device))
        self._img2img = None  # rebuilt from the offloaded components on the next edit

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this: the VAE's downsampling times 2 (Z-Image's patch
        size, FLUX's 2x2 latent packing)."""
        return int(self.pipe.vae_scale_factor) * 2

    @abc.abstractmethod
    def _guidance_kwargs(self, guidance: float, batch: int) -> dict[str, Any]:
        """The pipeline arguments that apply ``guidance`` to a batch of ``batch`` prompts."""

    def _call_kwargs(self, seeds: list[int], steps: int, guidance: float, size: int) -> dict[str, Any]:
        return {
            **pipeline_call_kwargs(self.pipe, seeds, steps, size, self.max_sequence_length),
            **self._guidance_kwargs(guidance, len(seeds)),
        }

    def generate(
        self, prompts: list[str], seeds: list[int], steps: int, guidance: float, size: int
    ) -> list[Image.Image]:
        check_batch(prompts, seeds, steps, size, self.size_multiple)
        if not prompts:
            return []
        out = self.pipe(prompt=list(prompts), **self._call_kwargs(seeds, steps, guidance, size))
        return [im.convert("RGB") for im in out.images]

    def edit(
        self, images: list[Image.Image], instructions: list[str], seeds: list[int], steps: int, guidance: float, size: int
    ) -> list[Image.Image]:
        check_edit_batch(images, instructions, seeds, steps, size, self.size_multiple)
        if not images:
            return []
        sources = [im.convert("RGB").resize((size, size)) for im in images]
        return self._edit_sources(sources, list(instructions), list(seeds), steps, guidance, size)

    def _edit_sources(
        self, sources: list[Image.Image], instructions: list[str], seeds: list[int], steps: int, guidance: float, size: int
    ) -> list[Image.Image]:
        """Edit validated ``size`` x ``size`` RGB sources: img2img at ``edit_strength``, prompt = instruction."""
        if self._img2img is None:
            self._img2img = diffusers_class(self.img2img_class)(**self.pipe.components)
            self._img2img.set_progress_bar_config(disable=True)
        out = self._img2img(
            prompt=instructions, image=sources, strength=self.edit_strength, **self._call_kwargs(seeds, steps, guidance, size)
        )
        return [im.convert("RGB") for im in out.images]

    def save(self, path: str | Path) -> None:
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_pipeline(directory)
        write_marker(directory, model=self.model, name=self.name)

    def _save_pipeline(self, directory: Path) -> None:
        """Write the pipeline's components into ``directory`` (diffusers layout)."""
        self.pipe.save_pretrained(directory)
