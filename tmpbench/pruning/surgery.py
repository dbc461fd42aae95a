"""Surgery: physically cut heads, channels, experts and blocks, with index checks.

Every function here makes tensors smaller (new, sliced Parameters), never masks, and leaves the
module runnable through its normal forward. Indices are validated first (sorted, unique, in range,
not empty; constraints such as top-k <= kept experts) and a bad one raises a one-line
TmpbenchError that names the value. Surgery decides nothing: which units go is a Plan's business
(:mod:`tmpbench.pruning.plan`), and :func:`apply_plan` replays a Plan on a fresh copy.

Supported layouts (recognised by attribute names, see :mod:`tmpbench.pruning.tree`):

* attention: diffusers ``Attention`` (to_q/to_k/to_v rows per head, to_out[0] columns);
* dense FFN: Z-Image ``FeedForward`` (w1/w3 rows, w2 columns) or a fused SwiGLU MLP
  (``gate_and_up_proj`` rows ``c`` and ``I + c``, ``down_proj`` columns), as in HunyuanImage-3.0's
  experts and ``shared_mlp``;
* MoE: ``gate.wg`` router rows, ``experts`` ModuleList, top-k in ``moe_topk``/``top_k``.

Merging experts (``merge_experts``): each group becomes one expert whose every weight is the
weighted average of its members' (weights e.g. routing frequencies; uniform by default). The
router needs one linear row per merged expert. ``router="lse"`` (default) uses the first-order
logsumexp: row = mean of the member rows, plus a bias of ``log(len(group))``, so the merged expert
keeps about the routing mass of the whole group (exact when the members' logits agree); the router
gains a bias vector. ``router="max"`` keeps the row of the member with the largest weight and no
bias (architecture unchanged, but the group's mass shrinks to one member's).
"""

from __future__ import annotations

import copy as copy_module
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from tmpbench.errors import TmpbenchError
from tmpbench.models.moe import MoEBlockView
from tmpbench.pruning.plan import BLOCK_POLICIES, Plan, check_groups, check_indices, validate_plan
from tmpbench.pruning.tree import (
    UnitTree,
    attention_geometry,
    build_unit_tree,
    ffn_hidden,
    is_attention,
    is_dense_ffn,
    is_moe,
)


# --------------------------------------------------------------------------------------------
# tensor helpers
# --------------------------------------------------------------------------------------------
def _index(idx: Sequence[int], device: torch.device) -> torch.Tensor:
    return torch.as_tensor(list(idx), dtype=torch.long, device=device)


def slice_linear(linear: nn.Linear, rows: Sequence[int] | None = None, cols: Sequence[int] | None = None) -> nn.Linear:
    """Keep only ``rows`` (output features) and ``cols`` (input features) of ``linear``, in place."""
    w = linear.weight.detach()
    b = linear.bias.detach() if linear.bias is not None else None
    if rows is not None:
        r = _index(rows, w.device)
        w = w.index_select(0, r)
        b = b.index_select(0, r) if b is not None else None
    if cols is not None:
        w = w.index_select(1, _index(cols, w.device))
    grad = linear.weight.requires_grad
    linear.weight = nn.Parameter(w.clone(), requires_grad=grad)
    if b is not None:
        linear.bias = nn.Parameter(b.clone(), requires_grad=grad)
    linear.out_features, linear.in_features = w.shape
    return linear


def _head_rows(keep: Sequence[int], head_dim: int) -> list[int]:
    return [h * head_dim + j for h in keep for j in range(head_dim)]


# --------------------------------------------------------------------------------------------
# width surgery
# --------------------------------------------------------------------------------------------
def prune_heads(attn: nn.Module, keep: Sequence[int]) -> nn.Module:
    """Keep attention heads ``keep`` of a diffusers Attention: to_q/to_k/to_v rows, to_out[0] columns.

    head_dim is untouched (norm_q/norm_k and RoPE work per head over head_dim), so whole heads go.
    Updates ``heads``, ``inner_dim``, ``inner_kv_dim`` and ``sliceable_head_dim``. Grouped-query
    attention is refused: Z-Image's processor runs k/v with ``attn.heads`` heads, so there is no
    GQA model to check the cut against.
    """
    if not is_attention(attn):
        raise TmpbenchError(f"prune_heads needs a diffusers Attention (to_q/to_k/to_v/to_out), got {type(attn).__name__}")
    heads, kv_heads, head_dim = attention_geometry(attn)
    keep = list(keep)
    check_indices(keep, heads, "prune_heads")
    if kv_heads != heads:
        raise TmpbenchError(
            f"prune_heads: grouped-query attention (heads={heads}, kv_heads={kv_heads}) is not supported by surgery yet"
        )
    if getattr(attn, "fused_projections", False):
        raise TmpbenchError("prune_heads: attention has fused projections; call attn.unfuse_projections() first")
    for extra in ("add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"):
        if getattr(attn, extra, None) is not None:
            raise TmpbenchError(f"prune_heads: attention with {extra} (joint/cross stream) is not supported")
    rows = _head_rows(keep, head_dim)
    for lin in (attn.to_q, attn.to_k, attn.to_v):
        slice_linear(lin, rows=rows)
    slice_linear(attn.to_out[0], cols=rows)
    attn.heads = len(keep)
    attn.inner_dim = attn.inner_kv_dim = len(keep) * head_dim
    attn.sliceable_head_dim = len(keep)
    return attn


def prune_ffn_channels(ffn: nn.Module, keep: Sequence[int]) -> nn.Module:
    """Keep hidden channels ``keep`` of a SwiGLU FFN: Z-Image (w1/w3 rows, w2 columns) or fused
    (``gate_and_up_proj`` rows c and I+c, ``down_proj`` columns)."""
    if not is_dense_ffn(ffn):
        raise TmpbenchError(
            f"prune_channels needs a SwiGLU FFN (w1/w2/w3 or gate_and_up_proj/down_proj), got {type(ffn).__name__}"
        )
    hidden = ffn_hidden(ffn)
    keep = list(keep)
    check_indices(keep, hidden, "prune_channels")
    if hasattr(ffn, "w1"):
        slice_linear(ffn.w1, rows=keep)
        slice_linear(ffn.w3, rows=keep)
        slice_linear(ffn.w2, cols=keep)
    else:
        if ffn.gate_and_up_proj.out_features != 2 * hidden:
            raise TmpbenchError(
                f"prune_channels: gate_and_up_proj has {ffn.gate_and_up_proj.out_features} rows, expected 2 x {hidden}"
            )
        slice_linear(ffn.gate_and_up_proj, rows=keep + [hidden + c for c in keep])
        slice_linear(ffn.down_proj, cols=keep)
    for name in ("intermediate_size", "hidden_dim"):
        if isinstance(getattr(ffn, name, None), int):
            setattr(ffn, name, len(keep))
    return ffn


def _moe_view(moe: nn.Module, what: str) -> MoEBlockView:
    if not is_moe(moe):
        raise TmpbenchError(f"{what} needs an MoE block with gate.wg and experts, got {type(moe).__name__}")
    return MoEBlockView(type(moe).__name__, moe)


def prune_expert_channels(moe: nn.Module, keep: Sequence[int]) -> nn.Module:
    """Keep routed-expert channels by flat id ``expert * I + channel`` (every expert must keep the
    same number: one width per layer); in place, returns ``moe``."""
    view = _moe_view(moe, "prune_channels on routed experts")
    experts, width = view.num_experts, view.intermediate_size
    check_indices(list(keep), experts * width, "prune_channels on routed experts")
    rows: list[list[int]] = [[] for _ in range(experts)]
    for i in keep:
        rows[i // width].append(i % width)
    sizes = {len(r) for r in rows}
    if len(sizes) != 1:
        raise TmpbenchError(
            f"prune_channels on routed experts keeps {sorted(sizes)} channels in different experts; every expert "
            "must keep the same number (one width per layer)"
        )
    view.keep_intermediate(rows)
    return moe


def prune_experts(moe: nn.Module, keep: Sequence[int]) -> nn.Module:
    """Keep experts ``keep``: router rows and the experts (modules or fused 3-D tensors). top_k must
    stay <= kept experts (an error otherwise; top-k is never clipped silently)."""
    view = _moe_view(moe, "prune_experts")
    keep = list(keep)
    check_indices(keep, view.num_experts, "prune_experts")
    if len(keep) < view.top_k:
        raise TmpbenchError(f"prune_experts keeps {len(keep)} experts but top_k is {view.top_k}; keep at least {view.top_k}")
    view.keep_experts(keep)
    return moe


def merge_experts(
    moe: nn.Module,
    groups: Sequence[Sequence[int]],
    weights: Sequence[float] | None = None,
    router: str = "lse",
) -> nn.Module:
    """Merge each group of experts into one (weighted average of weights; router rows by
    first-order logsumexp or max, see the module docstring). ``groups`` partition all experts;
    merged expert ``j`` is ``groups[j]``'s."""
    view = _moe_view(moe, "merge_experts")
    n, top_k = view.num_experts, view.top_k
    groups = [list(g) for g in groups]
    check_groups(groups, n, "merge_experts")
    if len(groups) < top_k:
        raise TmpbenchError(f"merge_experts leaves {len(groups)} experts but top_k is {top_k}; keep at least {top_k} groups")
    if router not in ("lse", "max"):
        raise TmpbenchError(f"merge_experts: router merge {router!r} is unknown; use 'lse' or 'max'")
    w = [1.0] * n if weights is None else [float(x) for x in weights]
    if len(w) != n or any(not math.isfinite(x) or x < 0 for x in w):
        raise TmpbenchError(f"merge_experts: weights must be {n} finite non-negative numbers, got {list(weights or [])[:8]}")

    wg = view.router
    old_w = wg.weight.detach()
    old_b = wg.bias.detach() if wg.bias is not None else None
    need_bias = old_b is not None or (router == "lse" and any(len(g) > 1 for g in groups))
    merged: list[dict[str, torch.Tensor]] = []
    rows, biases = [], []
    for g in groups:
        gw = [w[i] for i in g]
        total = sum(gw)
        coeff = [x / total for x in gw] if total > 0 else [1.0 / len(g)] * len(g)
        members = [view.expert_tensors(i) for i in g]
        merged.append({name: sum(c * m[name].detach() for c, m in zip(coeff, members)) for name in members[0]})
        if router == "lse":
            rows.append(old_w[g].mean(dim=0))
            base = old_b[g].mean() if old_b is not None else old_w.new_zeros(())
            biases.append(base + math.log(len(g)))
        else:
            lead = g[max(range(len(g)), key=lambda j: gw[j])]
            rows.append(old_w[lead])
            biases.append(old_b[lead] if old_b is not None else old_w.new_zeros(()))

    grad = wg.weight.requires_grad
    with torch.no_grad():
        # keep one expert per group (its first member) and overwrite it with the merged tensors
        view.keep_experts([g[0] for g in groups])
        for j, tensors in enumerate(merged):
            for name, value in tensors.items():
                _expert_param(view, j, name).copy_(value)
        new_router = nn.Linear(wg.in_features, len(groups), bias=need_bias, device=old_w.device, dtype=old_w.dtype)
        new_router.weight.copy_(torch.stack(rows))
        if need_bias:
            new_router.bias.copy_(torch.stack(biases))
    new_router.requires_grad_(grad)
    moe.gate.wg = new_router
    return moe


def _expert_param(view: MoEBlockView, j: int, name: str) -> torch.Tensor:
    """The tensor of expert ``j`` named as in ``MoEBlockView.expert_tensors`` (writable in place)."""
    return view.expert_tensors(j)[name]


# --------------------------------------------------------------------------------------------
# depth surgery
# --------------------------------------------------------------------------------------------
def _list_slot(model: nn.Module, path: str, what: str) -> tuple[nn.ModuleList, int]:
    parent_path, _, idx = path.rpartition(".")
    try:
        parent = model.get_submodule(parent_path) if parent_path else None
    except AttributeError:
        parent = None
    if not isinstance(parent, nn.ModuleList) or not idx.isdigit():
        raise TmpbenchError(f"{what}: {path!r} is not a block inside a ModuleList (expected e.g. 'layers.7')")
    i = int(idx)
    if i >= len(parent):
        raise TmpbenchError(f"{what}: {path!r} is out of range; {parent_path} has {len(parent)} blocks")
    return parent, i


def drop_block(model: nn.Module, path: str) -> nn.Module:
    """Remove block ``path`` (e.g. ``layers.7``) from its ModuleList: a residual block becomes the
    identity. Later blocks shift down by one index, so drop from the highest index first
    (:func:`apply_plan` does)."""
    parent, i = _list_slot(model, path, "drop_block")
    del parent[i]
    return model


class LinearBlock(nn.Module):
    """A transformer block replaced by a fitted linear map on the hidden state (FastFlux-style).

    Takes the block's call signature and ignores everything but the hidden state: the map is the
    same at every timestep, fitted across the timesteps of the calibration set.
    """

    def __init__(self, dim: int, bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.dim = dim
        self.linear = nn.Linear(dim, dim, bias=bias, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.linear(x)


def replace_with_linear(model: nn.Module, path: str, weight: torch.Tensor, bias: torch.Tensor | None = None) -> nn.Module:
    """Replace block ``path`` with ``LinearBlock`` computing ``x @ weight.T + bias``."""
    parent, i = _list_slot(model, path, "linear_replace")
    block = parent[i]
    ref = next(block.parameters(), None)
    dim = getattr(block, "dim", None) or weight.shape[1]
    if tuple(weight.shape) != (dim, dim):
        raise TmpbenchError(f"linear_replace at {path!r}: weight has shape {tuple(weight.shape)}, expected ({dim}, {dim})")
    if bias is not None and tuple(bias.shape) != (dim,):
        raise TmpbenchError(f"linear_replace at {path!r}: bias has shape {tuple(bias.shape)}, expected ({dim},)")
    # a block on the meta device (never read: tmpbench.pruning.families.apply_offloaded) takes the map's device
    device = ref.device if ref is not None and ref.device.type != "meta" else weight.device
    dtype = ref.dtype if ref is not None else weight.dtype
    new = LinearBlock(dim, bias=bias is not None, device=device, dtype=dtype)
    with torch.no_grad():
        new.linear.weight.copy_(weight.to(device=device, dtype=dtype))
        if bias is not None:
            new.linear.bias.copy_(bias.to(device=device, dtype=dtype))
    parent[i] = new
    return model


def fit_linear_map(inputs: torch.Tensor, outputs: torch.Tensor, ridge: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares ``outputs ~ inputs @ W.T + b`` over all leading dims (tokens, batch, timesteps).

    Solved in float64; ``ridge`` adds ``ridge * ||W||^2`` (not on the bias). Returns ``(W, b)`` in
    ``inputs``' dtype, W of shape (out_dim, in_dim).
    """
    if inputs.shape[:-1] != outputs.shape[:-1]:
        raise TmpbenchError(f"fit_linear_map: inputs {tuple(inputs.shape)} and outputs {tuple(outputs.shape)} differ in leading dims")
    if ridge < 0:
        raise TmpbenchError(f"fit_linear_map: ridge must be >= 0, got {ridge}")
    x = inputs.reshape(-1, inputs.shape[-1]).double()
    y = outputs.reshape(-1, outputs.shape[-1]).double()
    if x.shape[0] == 0:
        raise TmpbenchError("fit_linear_map: no samples")
    a = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    if ridge > 0:
        reg = torch.zeros(x.shape[1], a.shape[1], dtype=a.dtype, device=a.device)
        reg[:, : x.shape[1]] = torch.eye(x.shape[1], dtype=a.dtype, device=a.device) * math.sqrt(ridge)
        a = torch.cat([a, reg])
        y = torch.cat([y, y.new_zeros(x.shape[1], y.shape[1])])
    driver = "gelsd" if a.device.type == "cpu" else None
    sol = torch.linalg.lstsq(a, y, driver=driver).solution  # (in+1, out)
    weight = sol[:-1].T.contiguous().to(inputs.dtype)
    bias = sol[-1].contiguous().to(inputs.dtype)
    return weight, bias


# --------------------------------------------------------------------------------------------
# replay
# --------------------------------------------------------------------------------------------
def detach_cached_tensors(model: nn.Module) -> None:
    """Detach tensors modules keep from their last forward (e.g. an MoE block's ``aux_loss`` after a
    gradient-based scorer ran): deepcopy refuses non-leaf tensors, and surgery copies the model."""
    for module in model.modules():
        for key, value in list(vars(module).items()):
            if isinstance(value, torch.Tensor) and value.grad_fn is not None:
                setattr(module, key, value.detach())


def apply_plan(
    model: nn.Module,
    plan: Plan,
    *,
    linear_maps: Mapping[str, Any] | None = None,
    copy: bool = True,
) -> nn.Module:
    """Replay ``plan`` on ``model`` (on a deep copy unless ``copy=False``) and return the pruned model.

    The plan is validated against the model's unit tree first. Width cuts run first, then block
    replacements and drops from the highest index down, so every decision's indices refer to the
    original model. ``linear_maps[path]`` gives ``(weight, bias)`` (or ``{"weight", "bias"}``) for
    each ``linear_replace`` decision.
    """
    return replay_plan(
        model, plan, build_unit_tree(model), prune_heads=prune_heads, prune_channels=prune_ffn_channels,
        linear_maps=linear_maps, copy=copy,
    )


def replay_plan(
    model: nn.Module,
    plan: Plan,
    tree: UnitTree,
    *,
    prune_heads: Callable[[nn.Module, Sequence[int]], Any],
    prune_channels: Callable[[nn.Module, Sequence[int]], Any],
    linear_maps: Mapping[str, Any] | None = None,
    copy: bool = True,
) -> nn.Module:
    """The replay every layout shares (:func:`apply_plan`, ``apply_hunyuan_plan``): validate ``plan``
    against ``tree`` (the unit tree of ``model``), cut widths with the layout's own ``prune_heads``
    and ``prune_channels`` (experts are cut the same way in every layout), then replace and drop
    blocks from the highest index down. Returns the pruned model (a deep copy unless ``copy=False``).
    """
    validate_plan(plan, tree)
    if copy:
        model = copy_module.deepcopy(model)
    linear_maps = dict(linear_maps or {})
    # expert ops last: routed-expert channel ids name the ORIGINAL experts
    width_ops = sorted((d for d in plan.decisions if d.policy not in BLOCK_POLICIES),
                       key=lambda d: d.policy in ("prune_experts", "merge_experts"))
    block_ops = [d for d in plan.decisions if d.policy in BLOCK_POLICIES]
    for d in width_ops:
        channels = tree.expert_channels(d.path)
        if channels is not None:
            prune_expert_channels(model.get_submodule(channels.constraints["moe"]), d.keep)
            continue
        module = model.get_submodule(d.path)
        if d.policy == "prune_heads":
            prune_heads(module, d.keep)
        elif d.policy == "prune_channels":
            prune_channels(module, d.keep)
        elif d.policy == "prune_experts":
            prune_experts(module, d.keep)
        elif d.policy == "merge_experts":
            merge_experts(module, d.groups, d.weights, router=d.merge_router or "lse")
    for d in sorted(block_ops, key=lambda d: (d.path.rpartition(".")[0], int(d.path.rpartition(".")[2])), reverse=True):
        if d.policy == "drop_block":
            drop_block(model, d.path)
        else:
            if d.path not in linear_maps:
                raise TmpbenchError(
                    f"plan replaces {d.path!r} with a fitted linear map but no weights were given; pass "
                    "linear_maps={path: (weight, bias)} (saved beside the plan)"
                )
            m = linear_maps[d.path]
            w, b = (m["weight"], m.get("bias")) if isinstance(m, Mapping) else m
            replace_with_linear(model, d.path, w, b)
    return model
