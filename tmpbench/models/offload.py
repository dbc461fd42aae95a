"""Load a denoiser with its blocks offloaded to disk (accelerate's disk offload), for planning on a
machine whose memory cannot hold the weights.

Every block of the denoiser's block lists goes to ``"disk"``: its weights stay in the offload folder
(safetensors memory maps) and accelerate's ``AlignDevicesHook`` loads them for the block's call only.
The small modules outside the blocks (embedders, final layer) stay in memory. TMP's measured search
runs on such a model as loaded: it masks activations and replays recorded block outputs, never
editing a weight (``tmpbench.pruning.calibration.offloaded``; what would edit one refuses in one line).

Example::

    >>> from tmpbench.models.offload import load_offloaded
    >>> from diffusers import ZImageTransformer2DModel
    >>> model = load_offloaded(ZImageTransformer2DModel, "ckpt/transformer", "offload/")  # doctest: +SKIP

``tmpbench plan --offload-folder DIR`` loads a model this way (``ModelEntry.load(offload_folder=...)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tmpbench.errors import TmpbenchError


def _lists(model: Any) -> dict[str, Any]:
    """The outermost ``ModuleList`` s of ``model`` by path (a MoE's expert list inside a block is not one)."""
    import torch

    out: dict[str, Any] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and not any(name.startswith(p + ".") for p in out):
            out[name] = module
    return out


def block_names(model: Any) -> list[str]:
    """Every block of the model's block lists (``noise_refiner.0``, ..., ``layers.29``; ``model.layers.0``, ...)."""
    return [f"{name}.{i}" for name, blocks in _lists(model).items() for i in range(len(blocks))]


def block_device_map(model: Any, device: str = "cpu") -> dict[str, str]:
    """accelerate's device map with every block on ``"disk"`` and the rest on ``device``, where the
    blocks then run too (accelerate's execution device is the map's first device other than disk).

    The map names each module outside the blocks that holds no block list, and the own parameters of
    those that do (Z-Image's ``x_pad_token``, ``cap_pad_token``): accelerate refuses a map that leaves a
    parameter out, and then warns that those names match no submodule, which is harmless."""
    lists = _lists(model)
    if not lists:
        raise TmpbenchError(f"{type(model).__name__} has no block lists to offload; load it in memory")
    out: dict[str, str] = {}

    def walk(module: Any, prefix: str) -> None:
        out.update({f"{prefix}{n}": device for n, _ in module.named_parameters(recurse=False)})
        for n, child in module.named_children():
            path = f"{prefix}{n}"
            if path in lists:
                out.update({f"{path}.{i}": "disk" for i in range(len(child))})
            elif any(p.startswith(path + ".") for p in lists):
                walk(child, path + ".")
            else:
                out[path] = device

    walk(model, "")
    return out


def load_offloaded(model_cls: Any, folder: str | Path, offload_folder: str | Path, dtype: Any = None,
                   subfolder: str | None = None, device: str = "cpu", **kwargs: Any) -> Any:
    """``model_cls.from_pretrained(folder)`` with its blocks on disk under ``offload_folder`` and run on
    ``device`` (:func:`block_device_map`, built on the meta device from the checkpoint's config).

    ``kwargs`` go to ``from_pretrained`` (``local_files_only``, ...). The folder is created; files
    accelerate writes there are the offloaded weights in ``dtype`` and can be deleted after the run."""
    import torch

    offload = Path(offload_folder).expanduser()
    offload.mkdir(parents=True, exist_ok=True)
    where = {"subfolder": subfolder} if subfolder else {}
    config = model_cls.load_config(str(folder), **where, **{k: v for k, v in kwargs.items() if k == "local_files_only"})
    with torch.device("meta"):
        shell = model_cls.from_config(config)
    return model_cls.from_pretrained(str(folder), **where, torch_dtype=dtype, device_map=block_device_map(shell, device),
                                     offload_folder=str(offload), **kwargs).eval()


def is_dispatched(module: Any) -> bool:
    """Whether accelerate placed ``module`` by a device map (it then refuses ``.to``)."""
    return getattr(module, "hf_device_map", None) is not None


def pipeline_to(pipe: Any, device: str) -> Any:
    """``pipe.to(device)`` for a pipeline holding a dispatched (offloaded) component: diffusers refuses
    to move such a pipeline, so every other module component is moved on its own."""
    import torch

    for component in getattr(pipe, "components", {}).values():
        if isinstance(component, torch.nn.Module) and not is_dispatched(component):
            component.to(device)
    return pipe


def group_offload_kwargs(device: str) -> dict[str, Any]:
    """diffusers' group offloading as ``tmpbench run --offload group`` applies it (and ``tmpbench fit``'s
    ``group`` strategy prices it): block level, one block per group, weights kept on the CPU, the next
    block prefetched on a side stream when ``device`` is CUDA. For ``pipe.enable_group_offload(**kw)`` or
    ``diffusers.hooks.apply_group_offloading(module, **kw)``."""
    import torch

    target = torch.device(device)
    return {"onload_device": target, "offload_device": torch.device("cpu"), "offload_type": "block_level",
            "num_blocks_per_group": 1, "use_stream": target.type == "cuda"}


def expert_offload(model: Any, device: str, cache_bytes: int = 0) -> dict[str, Any]:
    """``tmpbench fit``'s ``expert`` strategy on an MoE denoiser (``tmpbench run --offload expert``): every
    weight but the routed experts on ``device``; the routed experts of the first MoE blocks, as many as
    ``cache_bytes`` holds, there too (fit's static cache); every other block's routed experts stay on the
    CPU under diffusers' leaf-level group offloading, so each expert's weights reach ``device`` for its own
    call only (with a CUDA side stream prefetching the next). Returns what went where."""
    import torch
    from diffusers.hooks import apply_group_offloading

    from tmpbench.models.moe import find_moe_blocks

    blocks = find_moe_blocks(model)
    if not blocks:
        raise TmpbenchError(f"{type(model).__name__} has no MoE blocks: --offload expert streams routed experts; "
                            "use --offload group for a dense denoiser")
    target = torch.device(device)
    streamed: list[Any] = []
    cached = 0
    for view in blocks:
        size = sum(p.numel() * p.element_size() for p in view.block.experts.parameters())
        if not streamed and cached + size <= cache_bytes:
            cached += size
        else:
            streamed.append(view.block.experts)
    keep = {id(m) for m in streamed}

    def place(module: Any) -> None:
        if id(module) in keep:
            return
        for p in module._parameters.values():
            if p is not None:
                p.data = p.data.to(target)
        for key, buf in module._buffers.items():
            if buf is not None:
                module._buffers[key] = buf.to(target)
        for child in module.children():
            place(child)

    place(model)
    for experts in streamed:
        apply_group_offloading(experts, onload_device=target, offload_device=torch.device("cpu"), offload_type="leaf_level",
                               use_stream=target.type == "cuda")
    return {"moe_blocks": len(blocks), "cached_blocks": len(blocks) - len(streamed), "streamed_blocks": len(streamed),
            "cached_bytes": cached}


__all__ = ["block_device_map", "block_names", "expert_offload", "group_offload_kwargs", "is_dispatched", "load_offloaded",
           "pipeline_to"]
