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


def model_family(model: Any) -> str:
    """``"moe"`` when the denoiser has MoE blocks, else ``"dit"`` (what Pruner.families names)."""
    return "moe" if find_moe_blocks(model) else "dit"
