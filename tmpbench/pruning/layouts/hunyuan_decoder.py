"""HunyuanImage-3.0-layout decoders (HunyuanImage-3.0, transformers' HunYuanMoEV1, the stand-in).

``model.layers[i]`` decoder layers with GQA ``self_attn`` (``q_proj``/``k_proj``/``v_proj``/``o_proj``,
or a fused ``qkv_proj``; units are KV groups, each ``heads / kv_heads`` query heads with their K and
V), and ``mlp`` SwiGLU FFNs (``gate_proj``/``up_proj``/``down_proj``) or MoE blocks (router ``gate.wg``,
fused or per-expert experts, ``shared_mlp``). Tree and surgery: :mod:`tmpbench.pruning.hunyuan_tree`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from tmpbench.errors import TmpbenchError
from tmpbench.pruning.hunyuan_tree import (
    apply_hunyuan_plan,
    attention_layout,
    build_hunyuan_tree,
    decoder_layers,
    gqa_geometry,
    is_hunyuan_decoder,
)
from tmpbench.pruning.layouts.base import Layout, swiglu_rows


class HunyuanDecoder(Layout):
    name: ClassVar[str] = "hunyuan-decoder"

    def matches(self, model: nn.Module) -> bool:
        return is_hunyuan_decoder(model)

    def tree(self, model: nn.Module, size: int | None = None) -> Any:
        return build_hunyuan_tree(model, size=size)

    def apply(self, model: nn.Module, plan: Any, linear_maps: dict | None = None, copy: bool = True) -> nn.Module:
        return apply_hunyuan_plan(model, plan, linear_maps=linear_maps, copy=copy)

    def head_output(self, attention: nn.Module) -> nn.Linear:
        return attention.o_proj

    def block_lists(self, model: nn.Module) -> list[tuple[str, nn.ModuleList]]:
        found = decoder_layers(model)
        return [found] if found is not None else []

    def unit_weights(self, module: nn.Module, kind: str) -> tuple[list[tuple[nn.Linear, int, int]], list[nn.Linear]]:
        if kind == "heads":
            if attention_layout(module) != "split":
                raise TmpbenchError(
                    f"{type(module).__name__}: per-KV-group weight scores need split q/k/v projections; a fused qkv_proj "
                    "interleaves them (score it with calibration data instead)"
                )
            gqa_geometry(module)  # refuses a non-grouped geometry in one line
            # a KV group owns its query heads' rows of q_proj (contiguous), its K and V rows, its o_proj columns
            rows = [module.q_proj, module.k_proj, module.v_proj]
            return [(lin, 0, lin.out_features) for lin in rows], [module.o_proj]
        return swiglu_rows(module), [self.channel_output(module)]


LAYOUT = HunyuanDecoder()
