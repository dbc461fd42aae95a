"""Per-family dispatch: the one place that picks a denoiser's :class:`~tmpbench.pruning.layouts.Layout`.

Layouts (one file each in :mod:`tmpbench.pruning.layouts`):

* ``"zimage-dit"``: Z-Image-family DiTs, dense or MoE feed-forward (Z-Image, tiny-dit, tiny-moe);
* ``"hunyuan-decoder"``: HunyuanImage-3.0-layout decoders (HunyuanImage-3.0, HunYuanMoEV1, tiny-hy3, the stand-in);
* ``"flux-mmdit"``: FLUX.1 double- and single-stream MM-DiTs (diffusers ``FluxTransformer2DModel``).

Callers that must not care which layout they hold (the runner, ``tmpbench tree``, the accounting's
measured size, the latency benchmark, every pruner and scorer) go through :func:`layout`,
:func:`unit_tree` and :func:`apply`.

:func:`model_family` answers another question, the one ``Pruner.families`` names: does the
denoiser route tokens to experts (``"moe"``) or not (``"dit"``)? Both layouts can be either.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from tmpbench.errors import TmpbenchError
from tmpbench.models.moe import find_moe_blocks
from tmpbench.pruning.layouts import LAYOUTS, Layout
from tmpbench.pruning.plan import Plan
from tmpbench.pruning.surgery import detach_cached_tensors
from tmpbench.pruning.tree import UnitTree


def layout(model: nn.Module) -> Layout:
    """The layout of ``model``: the first of :data:`tmpbench.pruning.layouts.LAYOUTS` that matches it."""
    for candidate in LAYOUTS:
        if candidate.matches(model):
            return candidate
    raise TmpbenchError(
        f"{type(model).__name__} has no known layout (known: {', '.join(x.name for x in LAYOUTS)}); "
        "a new model family is one new file in tmpbench/pruning/layouts/"
    )


def layout_of(model: nn.Module) -> str:
    """The name of ``model``'s layout: ``"hunyuan-decoder"``, ``"zimage-dit"`` or ``"flux-mmdit"``."""
    return layout(model).name


def unit_tree(model: nn.Module, size: int | None = None) -> UnitTree:
    """The unit tree of a denoiser of any layout; FLOPs counted at ``size`` px (the builder's default when None)."""
    return layout(model).tree(model, size=size)


def apply(model: nn.Module, plan: Plan, linear_maps: dict | None = None) -> nn.Module:
    """Replay ``plan`` on a copy of ``model`` with the surgery of its layout. The original keeps its weights
    and shapes; tensors it cached from its last forward are detached first (a copy needs leaf tensors)."""
    detach_cached_tensors(model)
    return layout(model).apply(model, plan, linear_maps=linear_maps)


def apply_offloaded(model: nn.Module, plan: Plan, linear_maps: dict | None = None) -> nn.Module:
    """Replay ``plan`` on a model whose weights accelerate offloads (``tmpbench plan/prune --offload-folder``),
    one block at a time, into a new model in memory: memory holds the pruned model and one unpruned block.

    A fresh copy of the model is built on the meta device from its config. Each block the plan keeps gets
    the original's weights (read under :func:`~tmpbench.pruning.calibration.onloaded`) and then the
    plan's decisions inside it; dropped and linear-mapped blocks are never read. The modules outside the
    blocks follow, and last the block decisions (drops, linear maps), as :func:`apply` orders them. The
    result equals :func:`apply` on the same weights in memory (``tests/pruners/test_offloaded.py``; weights
    one module shares with another are copied apart, which no layout here has).
    """
    import dataclasses

    import torch

    from tmpbench.pruning.calibration import onloaded
    from tmpbench.pruning.plan import BLOCK_POLICIES

    lay = layout(model)
    if not (hasattr(type(model), "from_config") and hasattr(model, "config")):
        raise TmpbenchError(f"{type(model).__name__} has no from_config to rebuild it from; prune it in memory")
    with torch.device("meta"):
        base = type(model).from_config(model.config)
    nn.Module.to(base, next(model.parameters()).dtype)  # (ModelMixin.to warns about fp32 modules a meta copy lacks)
    lists = dict(lay.block_lists(base))
    blocks = [f"{name}.{i}" for name, modules in lists.items() for i in range(len(modules))]

    def under(path: str, unit: str) -> bool:
        return path == unit or path.startswith(unit + ".")

    def take(src: nn.Module, dst: nn.Module, recurse: bool = True) -> None:
        """``src``'s parameters and buffers (non-persistent ones too), copied into ``dst``'s places."""
        with onloaded(src, recurse=recurse):
            tensors = dict(src.named_parameters(recurse=recurse)) | dict(src.named_buffers(recurse=recurse))
            for name, t in tensors.items():
                owner, _, attr = name.rpartition(".")
                mod = dst.get_submodule(owner) if owner else dst
                value = t.detach().clone()
                if attr in mod._parameters:
                    mod._parameters[attr] = nn.Parameter(value, requires_grad=t.requires_grad)
                else:
                    mod._buffers[attr] = value

    whole = {d.path for d in plan.decisions if d.policy in BLOCK_POLICIES}
    done: set[int] = set()
    for unit in blocks:
        if unit in whole:
            continue
        take(model.get_submodule(unit), base.get_submodule(unit))
        inside = [i for i, d in enumerate(plan.decisions) if i not in done and under(d.path, unit)]
        if inside:
            lay.apply(base, dataclasses.replace(plan, decisions=[plan.decisions[i] for i in inside]), copy=False)
            done.update(inside)

    def rest(module: nn.Module, prefix: str) -> None:
        """Everything outside the block lists: whole modules, and the own tensors of those holding a list."""
        take(module, base.get_submodule(prefix) if prefix else base, recurse=False)
        for name, child in module.named_children():
            path = f"{prefix}.{name}" if prefix else name
            if path in lists:
                continue
            if any(under(b, path) for b in lists):
                rest(child, path)
            else:
                take(child, base.get_submodule(path))

    rest(model, "")
    last = [d for i, d in enumerate(plan.decisions) if i not in done]
    pruned = lay.apply(base, dataclasses.replace(plan, decisions=last), linear_maps=linear_maps, copy=False).eval()
    left = [n for n, t in [*pruned.named_parameters(), *pruned.named_buffers()] if t.device.type == "meta"]
    if left:
        raise TmpbenchError(f"apply_offloaded left {len(left)} tensors unread ({', '.join(left[:3])}); "
                            f"{type(model).__name__} keeps weights where its layout's block lists do not say")
    return pruned


def model_family(model: Any) -> str:
    """``"moe"`` when the denoiser has MoE blocks, else ``"dit"`` (what Pruner.families names)."""
    return "moe" if find_moe_blocks(model) else "dit"
