"""Per-family dispatch: which unit-tree builder and which surgery a denoiser's layout takes.

Two layouts are supported, told apart by :func:`layout_of` (the one place that tests it):

* ``"zimage-dit"``: Z-Image-family DiTs, dense or MoE feed-forward (Z-Image, tiny-dit, tiny-moe):
  :func:`tmpbench.pruning.tree.build_unit_tree` and :func:`tmpbench.pruning.surgery.apply_plan`;
* ``"hunyuan-decoder"``: HunyuanImage-3.0-layout decoders:
  :func:`tmpbench.pruning.hunyuan_tree.build_hunyuan_tree` and
  :func:`tmpbench.pruning.hunyuan_tree.apply_hunyuan_plan`.

Callers that must not care which layout they hold (the runner, ``tmpbench tree``, the accounting's
measured size, the latency benchmark) go through :func:`unit_tree` and :func:`apply`. The two
tables below are the seam where per-family Layout objects (one object per layout, holding its tree
builder and its surgery) will replace them.

:func:`model_family` answers another question, the one ``Pruner.families`` names: does the
denoiser route tokens to experts (``"moe"``) or not (``"dit"``)? Both layouts can be either.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from tmpbench.models.moe import find_moe_blocks
from tmpbench.pruning.hunyuan_tree import apply_hunyuan_plan, build_hunyuan_tree, is_hunyuan_decoder
from tmpbench.pruning.plan import Plan
from tmpbench.pruning.surgery import apply_plan, detach_cached_tensors
from tmpbench.pruning.tree import UnitTree, build_unit_tree

_TREE_BUILDERS = {"zimage-dit": build_unit_tree, "hunyuan-decoder": build_hunyuan_tree}
_SURGERY = {"zimage-dit": apply_plan, "hunyuan-decoder": apply_hunyuan_plan}


def layout_of(model: nn.Module) -> str:
    """``"hunyuan-decoder"`` for a HunyuanImage-3.0-layout decoder, else ``"zimage-dit"``."""
    return "hunyuan-decoder" if is_hunyuan_decoder(model) else "zimage-dit"


def unit_tree(model: nn.Module, size: int | None = None) -> UnitTree:
    """The unit tree of a denoiser of either layout; FLOPs counted at ``size`` px (the builder's default when None)."""
    return _TREE_BUILDERS[layout_of(model)](model, size=size)


def apply(model: nn.Module, plan: Plan, linear_maps: dict | None = None) -> nn.Module:
    """Replay ``plan`` on a copy of ``model`` with the surgery of its layout. The original keeps its weights
    and shapes; tensors it cached from its last forward are detached first (a copy needs leaf tensors)."""
    detach_cached_tensors(model)
    return _SURGERY[layout_of(model)](model, plan, linear_maps=linear_maps)


def model_family(model: Any) -> str:
    """``"moe"`` when the denoiser has MoE blocks, else ``"dit"`` (what Pruner.families names)."""
    return "moe" if find_moe_blocks(model) else "dit"
