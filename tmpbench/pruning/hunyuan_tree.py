"""Unit tree and surgery for HunyuanImage-3.0's decoder stack (an 80B MoE language-model backbone).

:func:`tmpbench.pruning.tree.build_unit_tree` reads Z-Image-family DiTs. HunyuanImage-3.0 is laid
out as a causal decoder, so this module builds the same :class:`~tmpbench.pruning.tree.UnitTree`
(same node kinds, policies and ``params == fixed + children`` invariant) from that layout, and
replays Plans on it with the same index checks as :mod:`tmpbench.pruning.surgery`.

Layouts read (by attribute names, so meta-device models work):

* blocks: ``layers.N`` (under ``model.`` for ``*ForCausalLM``/``*ForCausalMM``);
* attention ``layers.N.self_attn``: split ``q_proj``/``k_proj``/``v_proj``/``o_proj`` (transformers'
  ``HunYuanMoEV1Attention``) or fused ``qkv_proj`` + ``o_proj`` (the official
  ``HunyuanImage3SDPAAttention``, whose rows are grouped per KV head as
  ``[q x group_size, k, v] x kv_heads``). Both use grouped-query attention (32 query heads, 8 KV
  heads at full size);
* ``layers.N.mlp``: an MoE block read through :func:`tmpbench.models.moe.find_moe_blocks` /
  :class:`~tmpbench.models.moe.MoEBlockView` (fused 3-D experts in transformers, expert modules in
  the official code), its ``shared_mlp`` (``gate_proj``/``up_proj``/``down_proj`` or fused
  ``gate_and_up_proj``/``down_proj``), or a dense MLP of either layout.

**GQA units.** A unit of the ``heads`` node is one whole KV group: ``group_size`` query heads plus
their key and value head. Removing a group keeps ``num_key_value_groups`` unchanged, so
``repeat_kv`` and the fused row layout stay valid; removing single query heads would leave groups
of unequal size, which neither implementation can run. In a Plan, ``prune_heads`` at an attention
path therefore keeps KV-group ids (``constraints["unit"] == "kv_group"``).

**FLOPs** follow the tree convention (2 per multiply-add, linear layers plus ``QK^T`` and ``AV``)
over ``image_tokens = (size / vae_factor) ** 2`` (HunyuanImage-3.0's VAE downsamples 16x and its
patch embed adds no further downsampling) plus ``caption_tokens``; routed experts cost ``top_k``
experts per token, so expert removal saves parameters, not FLOPs.

Example::

    >>> from tmpbench.models.hunyuan import build_hunyuanimage3_meta
    >>> tree = build_hunyuan_tree(build_hunyuanimage3_meta())        # doctest: +SKIP
    >>> round(tree.params / 1e9, 2)                                  # doctest: +SKIP
    80.96
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from tmpbench.errors import TmpbenchError
from tmpbench.models.moe import MoEBlockView
from tmpbench.pruning.plan import Plan, check_indices
from tmpbench.pruning.surgery import prune_ffn_channels, replay_plan, slice_linear
from tmpbench.pruning.tree import (
    UnitNode,
    UnitTree,
    _close,
    _linear_flops,
    _split,
    count_params,
    expert_units,
    is_dense_ffn,
    is_moe,
)

HUNYUAN_VAE_FACTOR = 16
DEFAULT_SIZE = 1024
DEFAULT_CAPTION_TOKENS = 128


# --------------------------------------------------------------------------------------------
# recognising the layout
# --------------------------------------------------------------------------------------------
def decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """``(path, layers)`` of a HunyuanImage-3.0-style decoder stack, or None when ``model`` has none."""
    for prefix in ("model.layers", "layers"):
        try:
            layers = model.get_submodule(prefix)
        except AttributeError:
            continue
        blocks = [b for b in layers if not _is_linear_block(b)] if isinstance(layers, nn.ModuleList) else []
        # at least one real decoder block: a list of nothing but linear maps says nothing about the family
        # (a Z-Image DiT whose every main layer was replaced by a linear map must not read as a decoder)
        if blocks and all(hasattr(b, "self_attn") and hasattr(b, "mlp") for b in blocks):
            return prefix, layers
    return None


def is_hunyuan_decoder(model: nn.Module) -> bool:
    """True for a model this module's tree reads (HunyuanImage-3.0, HunYuanMoEV1, the stand-in)."""
    return decoder_layers(model) is not None


def _is_linear_block(block: nn.Module) -> bool:
    return type(block).__name__ == "LinearBlock"


def attention_layout(attn: nn.Module) -> str:
    if all(isinstance(getattr(attn, a, None), nn.Linear) for a in ("q_proj", "k_proj", "v_proj", "o_proj")):
        return "split"
    if all(isinstance(getattr(attn, a, None), nn.Linear) for a in ("qkv_proj", "o_proj")):
        return "fused"
    raise TmpbenchError(
        f"{type(attn).__name__} is not a HunyuanImage-3.0 attention: expected q_proj/k_proj/v_proj/o_proj or qkv_proj/o_proj"
    )


def gqa_geometry(attn: nn.Module) -> tuple[int, int, int]:
    """(query heads, KV heads, head_dim), read from the weight shapes (so pruned modules report truly)."""
    layout = attention_layout(attn)
    head_dim = int(getattr(attn, "head_dim"))
    heads = attn.o_proj.in_features // head_dim
    if layout == "split":
        kv = attn.k_proj.out_features // head_dim
    else:
        kv = (attn.qkv_proj.out_features // head_dim - heads) // 2
    if kv < 1 or heads % kv:
        raise TmpbenchError(f"attention with {heads} query heads and {kv} KV heads is not grouped-query attention")
    return heads, kv, head_dim


def is_swiglu_split(mlp: nn.Module) -> bool:
    """transformers' ``HunYuanMoEV1MLP`` layout: gate_proj/up_proj/down_proj."""
    return all(isinstance(getattr(mlp, a, None), nn.Linear) for a in ("gate_proj", "up_proj", "down_proj"))


def mlp_width(mlp: nn.Module) -> int:
    return int(mlp.down_proj.in_features)


# --------------------------------------------------------------------------------------------
# node builders
# --------------------------------------------------------------------------------------------
def _bias(lin: nn.Linear) -> int:
    return 1 if lin.bias is not None else 0


def _attention_node(path: str, attn: nn.Module, tokens: int) -> UnitNode:
    heads, kv, head_dim = gqa_geometry(attn)
    group = heads // kv
    dim = attn.o_proj.out_features
    in_dim = attn.o_proj.out_features
    q_lin = attn.q_proj if attention_layout(attn) == "split" else attn.qkv_proj
    # one KV group owns (group + 2) * head_dim projection rows and group * head_dim o_proj columns
    rows = (group + 2) * head_dim
    unit_params = rows * (in_dim + _bias(q_lin)) + group * head_dim * dim
    unit_flops = 2.0 * tokens * in_dim * rows + 2.0 * tokens * group * head_dim * dim
    unit_flops += 4.0 * tokens * tokens * head_dim * group
    total = count_params(attn)
    total_flops = _linear_flops(attn, tokens) + 4.0 * tokens * tokens * head_dim * heads
    constraints = {
        "heads": heads,
        "kv_heads": kv,
        "head_dim": head_dim,
        "head_dim_fixed": True,  # query/key RMS norms and RoPE act over head_dim
        "unit": "kv_group",  # keep ids of prune_heads name KV groups, each `group_size` query heads
        "group_size": group,
        "kept_heads_multiple_of": 1,
        "min_heads": 1,
        "layout": attention_layout(attn),
    }
    units = UnitNode(
        path=f"{path}#heads", kind="heads", level="unit", params=kv * unit_params, flops=kv * unit_flops,
        policies=("prune_heads",), constraints=dict(constraints), count=kv, unit_params=unit_params,
        unit_flops=unit_flops, min_params=unit_params, min_flops=unit_flops,
    )
    node = UnitNode(path=path, kind="attention", level="component", params=total, flops=total_flops,
                    policies=("prune_heads",), constraints=constraints, children=[units])
    return _close(node)


def _mlp_node(path: str, mlp: nn.Module, tokens: int, kind: str) -> UnitNode:
    width = mlp_width(mlp)
    dim = mlp.down_proj.out_features
    if is_swiglu_split(mlp):
        in_dim, bias = mlp.gate_proj.in_features, _bias(mlp.gate_proj)
    else:
        in_dim, bias = mlp.gate_and_up_proj.in_features, _bias(mlp.gate_and_up_proj)
    unit_params = 2 * (in_dim + bias) + dim
    unit_flops = 6.0 * tokens * in_dim
    constraints = {"channels": width, "min_channels": 1}
    units = UnitNode(path=f"{path}#channels", kind="channels", level="unit", params=width * unit_params,
                     flops=width * unit_flops, policies=("prune_channels",), constraints=dict(constraints),
                     count=width, unit_params=unit_params, unit_flops=unit_flops,
                     min_params=unit_params, min_flops=unit_flops)
    node = UnitNode(path=path, kind=kind, level="component", params=count_params(mlp), flops=_linear_flops(mlp, tokens),
                    policies=("prune_channels",), constraints=constraints, children=[units])
    return _close(node)


def _expert_flops_per_token(view: MoEBlockView) -> float:
    return 2.0 * (view.expert_gate_up(0).numel() + view.expert_down(0).numel())


def _moe_nodes(path: str, moe: nn.Module, tokens: int) -> list[UnitNode]:
    view = MoEBlockView(path, moe)
    n, k = view.num_experts, view.top_k
    router = view.router
    shared = view.shared
    units = expert_units(path, view, tokens)
    node = UnitNode(path=path, kind="moe", level="component", params=count_params(moe) - count_params(shared),
                    flops=2.0 * tokens * router.in_features * n + tokens * k * _expert_flops_per_token(view),
                    policies=("prune_experts", "merge_experts"), constraints=dict(units.constraints), children=[units])
    out = [_close(node)]
    if shared is not None:
        out.append(_mlp_node(f"{path}.shared_mlp", shared, tokens, "shared_expert"))
    return out


def _block_node(path: str, block: nn.Module, tokens: int) -> UnitNode:
    children = [_attention_node(f"{path}.self_attn", block.self_attn, tokens)]
    if is_moe(block.mlp):
        children.extend(_moe_nodes(f"{path}.mlp", block.mlp, tokens))
    elif is_swiglu_split(block.mlp) or is_dense_ffn(block.mlp):
        children.append(_mlp_node(f"{path}.mlp", block.mlp, tokens, "ffn"))
    else:
        raise TmpbenchError(f"{path}.mlp ({type(block.mlp).__name__}) is neither an MoE block nor a SwiGLU MLP")
    dim = block.self_attn.o_proj.out_features
    node = UnitNode(path=path, kind="block", level="block", params=count_params(block),
                    flops=sum(c.flops for c in children), policies=("drop_block", "linear_replace"),
                    constraints={"dim": dim, "dim_prunable": False}, children=children)
    node = _close(node)
    node.min_params, node.min_flops = 0, 0.0
    return node


def build_hunyuan_tree(
    model: nn.Module,
    *,
    size: int | None = None,
    num_stages: int = 4,
    vae_factor: int = HUNYUAN_VAE_FACTOR,
    caption_tokens: int = DEFAULT_CAPTION_TOKENS,
) -> UnitTree:
    """The unit tree of a HunyuanImage-3.0-layout decoder (see the module docstring), on any device.

    ``size`` is the image side the FLOPs are counted at (default 1024). Raises TmpbenchError for a
    model without a decoder stack of this layout.
    """
    found = decoder_layers(model)
    if found is None:
        raise TmpbenchError(
            f"{type(model).__name__} has no decoder stack (layers.N.self_attn + layers.N.mlp); "
            "the HunyuanImage-3.0 tree reads HunyuanImage-3.0 / HunYuanMoEV1 models"
        )
    size = DEFAULT_SIZE if size is None else int(size)
    if size <= 0 or size % vae_factor:
        raise TmpbenchError(f"size {size} must be a positive multiple of the VAE factor {vae_factor}")
    if num_stages < 1:
        raise TmpbenchError(f"num_stages must be >= 1, got {num_stages}")
    img = (size // vae_factor) ** 2
    cap = int(caption_tokens)
    tokens = img + cap
    prefix, layers = found
    blocks = []
    for i, block in enumerate(layers):
        if _is_linear_block(block):
            raise TmpbenchError(f"{prefix}.{i} is already a fitted linear map; plan on the unpruned model")
        blocks.append(_block_node(f"{prefix}.{i}", block, tokens))
    stages = []
    for lo, hi in _split(len(blocks), num_stages):
        part = blocks[lo:hi]
        st = UnitNode(path=f"{prefix}[{lo}:{hi}]", kind="stage", level="stage",
                      params=sum(n.params for n in part), flops=sum(n.flops for n in part),
                      constraints={"blocks": [lo, hi], "list": prefix, "tokens": tokens}, children=part)
        stages.append(_close(st))
    # outside the blocks: embeddings and norms cost nothing per token; lm_head and any other linear
    # layer (image heads of the full model) see every token
    rest = 0.0
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and not name.startswith(prefix + "."):
            rest += 2.0 * tokens * mod.in_features * mod.out_features
    root = UnitNode(path="", kind="model", level="model", params=count_params(model),
                    flops=sum(s.flops for s in stages) + rest,
                    constraints={"image_tokens": img, "caption_tokens": cap, "vae_factor": vae_factor},
                    children=stages)
    _close(root)
    return UnitTree(root=root, size=size, image_tokens=img, caption_tokens=cap, model_class=type(model).__name__)


# --------------------------------------------------------------------------------------------
# surgery for the layouts surgery.py does not cover
# --------------------------------------------------------------------------------------------
def prune_kv_groups(attn: nn.Module, keep: Sequence[int]) -> nn.Module:
    """Keep whole KV groups ``keep`` of a grouped-query attention (split or fused layout).

    Each kept group keeps its ``group_size`` query heads, its key and its value head; the ratio
    ``num_key_value_groups`` is unchanged. Updates the head-count attributes both implementations keep.
    """
    heads, kv, head_dim = gqa_geometry(attn)
    group = heads // kv
    keep = list(keep)
    check_indices(keep, kv, "prune_heads (KV groups)")
    q_rows = [(g * group + j) * head_dim + d for g in keep for j in range(group) for d in range(head_dim)]
    kv_rows = [g * head_dim + d for g in keep for d in range(head_dim)]
    if attention_layout(attn) == "split":
        slice_linear(attn.q_proj, rows=q_rows)
        slice_linear(attn.k_proj, rows=kv_rows)
        slice_linear(attn.v_proj, rows=kv_rows)
    else:
        per = (group + 2) * head_dim  # fused rows: [q x group, k, v] per KV group
        slice_linear(attn.qkv_proj, rows=[g * per + r for g in keep for r in range(per)])
    slice_linear(attn.o_proj, cols=q_rows)
    new_heads, new_kv = len(keep) * group, len(keep)
    for name, value in (("num_heads", new_heads), ("num_attention_heads", new_heads), ("num_key_value_heads", new_kv),
                        ("hidden_size_q", new_heads * head_dim), ("hidden_size_kv", new_kv * head_dim)):
        if isinstance(getattr(attn, name, None), int):
            setattr(attn, name, value)
    return attn


def prune_mlp_channels(mlp: nn.Module, keep: Sequence[int]) -> nn.Module:
    """Keep hidden channels ``keep`` of a SwiGLU MLP: gate_proj/up_proj rows and down_proj columns, or
    the fused layout through :func:`tmpbench.pruning.surgery.prune_ffn_channels`."""
    if not is_swiglu_split(mlp):
        prune_ffn_channels(mlp, keep)
        if hasattr(mlp, "gate_and_up_proj") and isinstance(getattr(mlp, "intermediate_size", None), int):
            mlp.intermediate_size = mlp.gate_and_up_proj.out_features  # HunyuanMLP stores the fused 2I width
        return mlp
    keep = list(keep)
    check_indices(keep, mlp_width(mlp), "prune_channels")
    slice_linear(mlp.gate_proj, rows=keep)
    slice_linear(mlp.up_proj, rows=keep)
    slice_linear(mlp.down_proj, cols=keep)
    if isinstance(getattr(mlp, "intermediate_size", None), int):
        mlp.intermediate_size = len(keep)
    return mlp


def apply_hunyuan_plan(
    model: nn.Module,
    plan: Plan,
    *,
    linear_maps: Mapping[str, Any] | None = None,
    copy: bool = True,
) -> nn.Module:
    """Replay ``plan`` on a HunyuanImage-3.0-layout model (a deep copy unless ``copy=False``).

    Same order as :func:`tmpbench.pruning.surgery.apply_plan`: validate against the tree, width
    cuts, then block replacements and drops from the highest index down.
    """
    model = replay_plan(
        model, plan, build_hunyuan_tree(model), prune_heads=prune_kv_groups, prune_channels=prune_mlp_channels,
        linear_maps=linear_maps, copy=copy,
    )
    _sync_layer_count(model)
    return model


def _sync_layer_count(model: nn.Module) -> None:
    """Keep a decoder consistent after blocks were dropped: transformers iterates
    ``layers[: config.num_hidden_layers]`` and its KV cache has one slot per layer, indexed by each
    layer's ``layer_idx``, so the survivors are renumbered 0..n-1."""
    found = decoder_layers(model)
    if found is None:
        return
    layers = found[1]
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "num_hidden_layers"):
        config.num_hidden_layers = len(layers)
    for i, block in enumerate(layers):
        for mod in block.modules():
            if isinstance(getattr(mod, "layer_idx", None), int):
                mod.layer_idx = i


sync_layer_count = _sync_layer_count


@torch.no_grad()
def masked_reference_groups(attn: nn.Module, keep: Sequence[int]) -> None:
    """Zero the o_proj columns of the KV groups not in ``keep`` (a masked reference for tests)."""
    heads, kv, head_dim = gqa_geometry(attn)
    group = heads // kv
    for g in range(kv):
        if g not in set(keep):
            attn.o_proj.weight[:, g * group * head_dim:(g + 1) * group * head_dim] = 0
