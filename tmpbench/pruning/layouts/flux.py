"""FLUX.1 MM-DiTs: diffusers ``FluxTransformer2DModel`` (FLUX.1-schnell/-dev and tiny test copies).

Two block lists, each its own stages (halves of the list):

* ``transformer_blocks`` (double-stream): a joint ``attn`` over image and context tokens (image
  projections ``to_q/to_k/to_v`` and ``to_out[0]``, context projections ``add_q_proj/add_k_proj/add_v_proj``
  and ``to_add_out``), and two GELU ``FeedForward`` s, ``ff`` on image tokens and ``ff_context`` on text
  tokens. A head is one unit across both streams: image and text queries, keys and values of head ``h``
  meet in the same softmax, so cutting it in one stream only would leave a head with half its keys. ``ff``
  and ``ff_context`` are separate channel groups: channel ``j`` of one has nothing to do with channel ``j``
  of the other (separate weights, separate tokens), they cost different FLOPs (4096 image vs 256-512 text
  tokens at 1024 px), and one group would force both streams to keep the same width.
* ``single_transformer_blocks`` (single-stream): ``attn`` (``to_q/to_k/to_v`` only, ``pre_only``) and an
  MLP ``proj_mlp`` -> GELU run in parallel on the joint sequence, and ``proj_out`` maps
  ``concat(attention, mlp)`` back to ``dim``. Head ``h`` owns q/k/v rows ``[h*d, (h+1)*d)`` and
  ``proj_out`` input columns ``[h*d, (h+1)*d)``; MLP channel ``j`` owns ``proj_mlp`` row ``j`` and
  ``proj_out`` column ``A + j`` (``A`` the attention width). The MLP component is named by its
  ``proj_mlp`` path.

``norm_q``/``norm_k`` (and the added ones) and RoPE act per head over ``head_dim``, so only whole heads
go. Both lists admit ``drop_block``: every block is residual in both streams (a dropped block hands on
``(encoder_hidden_states, hidden_states)`` unchanged). ``linear_replace`` is not admitted: a Flux block
reads and writes two streams, and :class:`~tmpbench.pruning.surgery.LinearBlock` (and the capture its
fit uses) maps one hidden state.

Token counts: FluxPipeline packs 2x2 latent patches, so a ``size`` px image is ``(size/16)^2`` tokens;
text is ``caption_tokens`` T5 tokens (256, FLUX.1-schnell's ``max_sequence_length``). Nothing is padded.
"""

from __future__ import annotations

import copy as copy_module
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from tmpbench.errors import TmpbenchError
from tmpbench.pruning.layouts.base import Layout
from tmpbench.pruning.plan import Plan, check_indices
from tmpbench.pruning.surgery import replay_plan, slice_linear
from tmpbench.pruning.tree import UnitNode, UnitTree, _close, _linear_flops, _split, count_params

DOUBLE, SINGLE = "transformer_blocks", "single_transformer_blocks"
FLUX_TOKEN_FACTOR = 16  # VAE factor 8 x the pipeline's 2x2 packing
DEFAULT_SIZE = 1024
DEFAULT_CAPTION_TOKENS = 256
STAGES_PER_LIST = 2


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------
def _bias(lin: nn.Linear) -> int:
    return 1 if lin.bias is not None else 0


def _heads(attn: nn.Module) -> tuple[int, int]:
    """(heads, head_dim) of a FluxAttention, read from its shapes (the processor infers heads the same way)."""
    head_dim = int(attn.head_dim)
    return attn.to_q.out_features // head_dim, head_dim


def _ff_linears(ff: nn.Module) -> tuple[nn.Linear, nn.Linear]:
    """(up, down) of a diffusers GELU FeedForward: ``net[0].proj`` and ``net[2]``."""
    net = getattr(ff, "net", None)
    up = getattr(net[0], "proj", None) if net is not None and len(net) >= 3 else None
    down = net[2] if up is not None else None
    if not isinstance(up, nn.Linear) or not isinstance(down, nn.Linear) or up.out_features != down.in_features:
        raise TmpbenchError(
            f"{type(ff).__name__} is not a GELU FeedForward (net[0].proj -> net[2] of one width); the flux layout "
            "prunes channels of those only"
        )
    return up, down


def _split_path(path: str) -> tuple[str, str]:
    """``single_transformer_blocks.3.proj_mlp`` -> (``single_transformer_blocks.3``, ``proj_mlp``)."""
    block, _, part = path.rpartition(".")
    return block, part


def _in_single(path: str) -> bool:
    return path.startswith(SINGLE + ".")


# --------------------------------------------------------------------------------------------
# tree
# --------------------------------------------------------------------------------------------
def _attention_node(path: str, attn: nn.Module, proj_out: nn.Linear | None, img: int, txt: int,
                    rope_axes: list[int] | None) -> UnitNode:
    """Heads of a joint attention (``proj_out`` None: both streams' projections are in ``attn``) or of a
    single-stream block's attention (its share of ``proj_out``'s input columns counted here)."""
    heads, head_dim = _heads(attn)
    dim = attn.to_q.in_features
    n = img + txt
    per_qkv = 3 * head_dim * (dim + _bias(attn.to_q))
    if proj_out is None:
        add_dim = attn.add_q_proj.in_features
        unit_params = per_qkv + 3 * head_dim * (add_dim + _bias(attn.add_q_proj))
        unit_params += head_dim * (attn.to_out[0].out_features + attn.to_add_out.out_features)
        unit_flops = 2.0 * head_dim * (4 * img * dim + 4 * txt * add_dim)
        params = count_params(attn)
        flops = sum(2.0 * t * lin.in_features * lin.out_features for lin, t in (
            (attn.to_q, img), (attn.to_k, img), (attn.to_v, img), (attn.to_out[0], img),
            (attn.add_q_proj, txt), (attn.add_k_proj, txt), (attn.add_v_proj, txt), (attn.to_add_out, txt)))
    else:
        unit_params = per_qkv + head_dim * proj_out.out_features
        unit_flops = 2.0 * 4 * n * dim * head_dim
        params = count_params(attn) + heads * head_dim * proj_out.out_features
        flops = _linear_flops(attn, n) + 2.0 * n * heads * head_dim * proj_out.out_features
    unit_flops += 4.0 * n * n * head_dim  # QK^T and AV over the joint sequence
    flops += 4.0 * n * n * head_dim * heads
    constraints = {
        "heads": heads, "kv_heads": heads, "head_dim": head_dim,
        "head_dim_fixed": True,  # norm_q/norm_k (and the added ones) and RoPE act over head_dim
        "rope_axes_dims": list(rope_axes) if rope_axes else None,
        "kept_heads_multiple_of": 1, "min_heads": 1,
        "streams": "image+text" if proj_out is None else "joint",
    }
    units = UnitNode(path=f"{path}#heads", kind="heads", level="unit", params=heads * unit_params, flops=heads * unit_flops,
                     policies=("prune_heads",), constraints={"group_size": 1, **constraints}, count=heads,
                     unit_params=unit_params, unit_flops=unit_flops, min_params=unit_params, min_flops=unit_flops)
    node = UnitNode(path=path, kind="attention", level="component", params=params, flops=flops,
                    policies=("prune_heads",), constraints=constraints, children=[units])
    return _close(node)


def _channels_node(path: str, up: nn.Linear, down: nn.Linear, col_offset: int, tokens: int, params: int, flops: float,
                   stream: str) -> UnitNode:
    width = up.out_features
    unit_params = up.in_features + _bias(up) + down.out_features  # an up row and a down column
    unit_flops = 2.0 * tokens * (up.in_features + down.out_features)
    constraints = {"channels": width, "min_channels": 1, "stream": stream}
    units = UnitNode(path=f"{path}#channels", kind="channels", level="unit", params=width * unit_params,
                     flops=width * unit_flops, policies=("prune_channels",), constraints=dict(constraints), count=width,
                     unit_params=unit_params, unit_flops=unit_flops, min_params=unit_params, min_flops=unit_flops)
    node = UnitNode(path=path, kind="ffn", level="component", params=params, flops=flops, policies=("prune_channels",),
                    constraints={**constraints, "down_columns": [col_offset, col_offset + width]}, children=[units])
    return _close(node)


def _block_node(path: str, block: nn.Module, single: bool, img: int, txt: int, rope_axes: list[int] | None) -> UnitNode:
    n = img + txt
    if single:
        attn, proj_out = block.attn, block.proj_out
        heads, head_dim = _heads(attn)
        width = heads * head_dim
        mlp = block.proj_mlp
        children = [
            _attention_node(f"{path}.attn", attn, proj_out, img, txt, rope_axes),
            _channels_node(f"{path}.proj_mlp", mlp, proj_out, width, n,
                           params=count_params(mlp) + mlp.out_features * proj_out.out_features,
                           flops=2.0 * n * mlp.out_features * (mlp.in_features + proj_out.out_features), stream="joint"),
        ]
        fixed_flops = _linear_flops(block.norm, 1.0)
        dim = proj_out.out_features
    else:
        children = [_attention_node(f"{path}.attn", block.attn, None, img, txt, rope_axes)]
        for name, tokens, stream in (("ff", img, "image"), ("ff_context", txt, "text")):
            ff = getattr(block, name)
            up, down = _ff_linears(ff)
            children.append(_channels_node(f"{path}.{name}", up, down, 0, tokens, params=count_params(ff),
                                           flops=_linear_flops(ff, tokens), stream=stream))
        fixed_flops = _linear_flops(block.norm1, 1.0) + _linear_flops(block.norm1_context, 1.0)
        dim = block.attn.to_q.in_features
    constraints = {"dim": dim, "dim_prunable": False, "stream": "single" if single else "double"}
    node = UnitNode(path=path, kind="block", level="block", params=count_params(block),
                    flops=sum(c.flops for c in children) + fixed_flops, policies=("drop_block",),
                    constraints=constraints, children=children)
    node = _close(node)
    node.min_params, node.min_flops = 0, 0.0
    return node


def build_flux_tree(model: nn.Module, *, size: int | None = None, caption_tokens: int = DEFAULT_CAPTION_TOKENS,
                    stages_per_list: int = STAGES_PER_LIST) -> UnitTree:
    """The unit tree of a ``FluxTransformer2DModel`` (shapes only: meta-device models work)."""
    size = DEFAULT_SIZE if size is None else int(size)
    side = size / FLUX_TOKEN_FACTOR
    if size <= 0 or side != int(side):
        raise TmpbenchError(f"size {size} is not a positive multiple of {FLUX_TOKEN_FACTOR} (VAE 8 x 2x2 packing); pick "
                            f"e.g. {max(1, round(side)) * FLUX_TOKEN_FACTOR}")
    img, txt = int(side) ** 2, int(caption_tokens)
    rope_axes = list(getattr(getattr(model, "pos_embed", None), "axes_dim", []) or []) or None
    stages: list[UnitNode] = []
    for name in (DOUBLE, SINGLE):
        blocks = getattr(model, name)
        nodes = [_block_node(f"{name}.{i}", b, name == SINGLE, img, txt, rope_axes) for i, b in enumerate(blocks)]
        for lo, hi in (_split(len(nodes), stages_per_list) if nodes else []):
            part = nodes[lo:hi]
            stage = UnitNode(path=f"{name}[{lo}:{hi}]", kind="stage", level="stage", params=sum(x.params for x in part),
                             flops=sum(x.flops for x in part), children=part,
                             constraints={"blocks": [lo, hi], "list": name, "tokens": img + txt})
            stages.append(_close(stage))
    rest = 0.0
    for mod_name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and not mod_name.startswith((DOUBLE + ".", SINGLE + ".")):
            top = mod_name.split(".", 1)[0]
            tokens = {"x_embedder": img, "proj_out": img, "context_embedder": txt}.get(top, 1)  # embedders, norm_out: 1
            rest += 2.0 * tokens * mod.in_features * mod.out_features
    root = UnitNode(path="", kind="model", level="model", params=count_params(model),
                    flops=sum(s.flops for s in stages) + rest,
                    constraints={"image_tokens": img, "caption_tokens": txt, "rope_axes_dims": rope_axes}, children=stages)
    _close(root)
    return UnitTree(root=root, size=size, image_tokens=img, caption_tokens=txt, model_class=type(model).__name__)


# --------------------------------------------------------------------------------------------
# surgery
# --------------------------------------------------------------------------------------------
def _head_rows(keep: Sequence[int], head_dim: int) -> list[int]:
    return [h * head_dim + j for h in keep for j in range(head_dim)]


def _refuse_fused(attn: nn.Module) -> None:
    if getattr(attn, "fused_projections", False):
        raise TmpbenchError("flux surgery: attention has fused projections; call attn.unfuse_projections() first")


def prune_joint_heads(attn: nn.Module, keep: Sequence[int]) -> nn.Module:
    """Keep heads ``keep`` of a double-stream attention: rows of to_q/k/v and add_q/k/v_proj, columns of
    to_out[0] and to_add_out (per-head norms untouched)."""
    _refuse_fused(attn)
    heads, head_dim = _heads(attn)
    keep = list(keep)
    check_indices(keep, heads, "prune_heads")
    rows = _head_rows(keep, head_dim)
    for lin in (attn.to_q, attn.to_k, attn.to_v, attn.add_q_proj, attn.add_k_proj, attn.add_v_proj):
        slice_linear(lin, rows=rows)
    slice_linear(attn.to_out[0], cols=rows)
    slice_linear(attn.to_add_out, cols=rows)
    attn.heads, attn.inner_dim = len(keep), len(rows)
    return attn


def prune_single_heads(block: nn.Module, keep: Sequence[int]) -> nn.Module:
    """Keep heads ``keep`` of a single-stream block: rows of attn.to_q/k/v, their columns of proj_out."""
    attn = block.attn
    _refuse_fused(attn)
    heads, head_dim = _heads(attn)
    keep = list(keep)
    check_indices(keep, heads, "prune_heads")
    rows = _head_rows(keep, head_dim)
    width, mlp = heads * head_dim, block.proj_mlp.out_features
    for lin in (attn.to_q, attn.to_k, attn.to_v):
        slice_linear(lin, rows=rows)
    slice_linear(block.proj_out, cols=rows + [width + j for j in range(mlp)])
    attn.heads, attn.inner_dim = len(keep), len(rows)
    block.proj_out._tp_packed_row_blocks = [len(rows), mlp]
    return block


def prune_ff_channels(ff: nn.Module, keep: Sequence[int]) -> nn.Module:
    """Keep channels ``keep`` of a GELU FeedForward: rows of net[0].proj, columns of net[2]."""
    up, down = _ff_linears(ff)
    keep = list(keep)
    check_indices(keep, up.out_features, "prune_channels")
    slice_linear(up, rows=keep)
    slice_linear(down, cols=keep)
    return ff


def prune_single_mlp(block: nn.Module, keep: Sequence[int]) -> nn.Module:
    """Keep MLP channels ``keep`` of a single-stream block: rows of proj_mlp, columns ``A + j`` of proj_out."""
    mlp = block.proj_mlp.out_features
    keep = list(keep)
    check_indices(keep, mlp, "prune_channels")
    width = block.attn.to_q.out_features
    slice_linear(block.proj_mlp, rows=keep)
    slice_linear(block.proj_out, cols=list(range(width)) + [width + j for j in keep])
    block.mlp_hidden_dim = len(keep)
    block.proj_out._tp_packed_row_blocks = [width, len(keep)]
    return block


class FluxPassThrough(nn.Module):
    """A dropped Flux block while masked: both streams pass unchanged, in the block's return order."""

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor, *args: Any,
                **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return encoder_hidden_states, hidden_states


# --------------------------------------------------------------------------------------------
# the layout
# --------------------------------------------------------------------------------------------
class FluxMMDiT(Layout):
    name: ClassVar[str] = "flux-mmdit"

    def matches(self, model: nn.Module) -> bool:
        return all(isinstance(getattr(model, n, None), nn.ModuleList) for n in (DOUBLE, SINGLE))

    def tree(self, model: nn.Module, size: int | None = None) -> Any:
        return build_flux_tree(model, size=size)

    def block_lists(self, model: nn.Module) -> list[tuple[str, nn.ModuleList]]:
        return [(n, getattr(model, n)) for n in (DOUBLE, SINGLE)]

    # --- surgery ------------------------------------------------------------------------------------
    def cut(self, model: nn.Module, path: str, policy: str, keep: Sequence[int]) -> None:
        """Cut the component at ``path`` of ``model`` in place (``prune_heads`` or ``prune_channels``)."""
        if _in_single(path):
            block, part = _split_path(path)
            cut = prune_single_heads if part == "attn" else prune_single_mlp
            cut(model.get_submodule(block), keep)
        elif policy == "prune_heads":
            prune_joint_heads(model.get_submodule(path), keep)
        else:
            prune_ff_channels(model.get_submodule(path), keep)

    def apply(self, model: nn.Module, plan: Plan, linear_maps: Mapping | None = None, copy: bool = True) -> nn.Module:
        """Replay ``plan`` on a copy (on ``model`` with ``copy=False``): width cuts, then drops from the highest
        index down (shared replay)."""
        model = copy_module.deepcopy(model) if copy else model
        tree = build_flux_tree(model)
        names = {id(m): name for name, m in model.named_modules()}
        return replay_plan(
            model, plan, tree, linear_maps=linear_maps, copy=False,
            prune_heads=lambda m, keep: self.cut(model, names[id(m)], "prune_heads", keep),
            prune_channels=lambda m, keep: self.cut(model, names[id(m)], "prune_channels", keep),
        )

    # --- mask hook points and unit weights ------------------------------------------------------------
    def head_output(self, attention: nn.Module) -> nn.Linear:
        if getattr(attention, "pre_only", False):
            raise TmpbenchError("a single-stream Flux attention has no output projection of its own; its heads are "
                                "columns of the block's proj_out (Layout.mask_columns)")
        return attention.to_out[0]

    def channel_output(self, ffn: nn.Module) -> nn.Linear:
        return _ff_linears(ffn)[1]

    def is_dense_ffn(self, module: nn.Module) -> bool:
        return True  # Flux has no routed experts: every channels component is dense

    def mask_columns(self, model: nn.Module, path: str, kind: str) -> list[tuple[nn.Linear, int, int]]:
        if _in_single(path):
            block = model.get_submodule(_split_path(path)[0])
            width = block.attn.to_q.out_features
            if kind == "heads":
                return [(block.proj_out, 0, width)]
            return [(block.proj_out, width, width + block.proj_mlp.out_features)]
        module = model.get_submodule(path)
        if kind == "heads":
            return [(lin, 0, lin.in_features) for lin in (module.to_out[0], module.to_add_out)]
        down = _ff_linears(module)[1]
        return [(down, 0, down.in_features)]

    def weight_slices(self, model: nn.Module, path: str, kind: str):
        cols = self.mask_columns(model, path, kind)
        module = model.get_submodule(path)
        if kind == "heads":
            lins = [module.to_q, module.to_k, module.to_v]
            if not _in_single(path):
                lins += [module.add_q_proj, module.add_k_proj, module.add_v_proj]
        else:
            lins = [module] if _in_single(path) else [_ff_linears(module)[0]]  # proj_mlp, or net[0].proj
        return [(lin, 0, lin.out_features) for lin in lins], cols

    def unit_weights(self, module: nn.Module, kind: str) -> tuple[list[tuple[nn.Linear, int, int]], list[nn.Linear]]:
        if kind == "heads":
            out = self.head_output(module)
            rows = [module.to_q, module.to_k, module.to_v, module.add_q_proj, module.add_k_proj, module.add_v_proj]
            return [(lin, 0, lin.out_features) for lin in rows], [out, module.to_add_out]
        up, down = _ff_linears(module)
        return [(up, 0, up.out_features)], [down]

    def identity_block(self, block: nn.Module) -> nn.Module:
        return FluxPassThrough()

    # --- save and reload ---------------------------------------------------------------------------
    def describe_block(self, block: nn.Module) -> dict[str, dict[str, Any]]:
        parts: dict[str, dict[str, Any]] = {"attn": {"kind": "attention", "heads": _heads(block.attn)[0]}}
        if hasattr(block, "proj_mlp"):
            parts["proj_mlp"] = {"kind": "ffn", "channels": block.proj_mlp.out_features}
        else:
            for name in ("ff", "ff_context"):
                parts[name] = {"kind": "ffn", "channels": _ff_linears(getattr(block, name))[0].out_features}
        return parts

    def reshape_block(self, block: nn.Module, parts: dict[str, dict[str, Any]]) -> bool:
        single = hasattr(block, "proj_mlp")
        expected = {"attn", "proj_mlp"} if single else {"attn", "ff", "ff_context"}
        if set(parts) != expected:
            raise TmpbenchError(f"a {'single' if single else 'double'}-stream Flux block has parts {sorted(expected)}, "
                                f"the spec names {sorted(parts)}")
        for path, part in parts.items():
            keep = range(int(part["heads"] if path == "attn" else part["channels"]))
            if path == "attn":
                prune_single_heads(block, keep) if single else prune_joint_heads(block.attn, keep)
            elif single:
                prune_single_mlp(block, keep)
            else:
                prune_ff_channels(getattr(block, path), keep)
        return True


LAYOUT = FluxMMDiT()
