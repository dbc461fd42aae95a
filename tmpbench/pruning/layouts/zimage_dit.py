"""Z-Image-family DiTs, dense or with MoE feed-forwards (Z-Image, tiny-dit, tiny-moe).

diffusers' ``Attention`` (``to_q``/``to_k``/``to_v``/``to_out[0]``; units are query heads, K/V shared
under GQA), ``feed_forward`` SwiGLU FFNs (``w1``/``w2``/``w3``) or MoE blocks with a router, routed
experts and a shared expert. Tree: :func:`tmpbench.pruning.tree.build_unit_tree`; surgery:
:func:`tmpbench.pruning.surgery.apply_plan`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from tmpbench.pruning.layouts.base import Layout, swiglu_rows
from tmpbench.pruning.surgery import apply_plan
from tmpbench.pruning.tree import BLOCK_LISTS, attention_geometry, build_unit_tree


class ZImageDiT(Layout):
    name: ClassVar[str] = "zimage-dit"

    def matches(self, model: nn.Module) -> bool:
        return any(isinstance(getattr(model, name, None), nn.ModuleList) for name in BLOCK_LISTS)

    def tree(self, model: nn.Module, size: int | None = None) -> Any:
        return build_unit_tree(model, size=size)

    def apply(self, model: nn.Module, plan: Any, linear_maps: dict | None = None, copy: bool = True) -> nn.Module:
        return apply_plan(model, plan, linear_maps=linear_maps, copy=copy)

    def head_output(self, attention: nn.Module) -> nn.Linear:
        return attention.to_out[0]

    def block_lists(self, model: nn.Module) -> list[tuple[str, nn.ModuleList]]:
        return [(name, getattr(model, name)) for name in BLOCK_LISTS if isinstance(getattr(model, name, None), nn.ModuleList)]

    def unit_weights(self, module: nn.Module, kind: str) -> tuple[list[tuple[nn.Linear, int, int]], list[nn.Linear]]:
        if kind == "heads":
            heads, kv_heads, _ = attention_geometry(module)
            rows = [module.to_q] + ([module.to_k, module.to_v] if kv_heads == heads else [])  # GQA: K/V are shared
            return [(lin, 0, lin.out_features) for lin in rows], [module.to_out[0]]
        return swiglu_rows(module), [self.channel_output(module)]


LAYOUT = ZImageDiT()
