"""Scorers: how important is each unit or block. Pure functions of (model, tree[, calibration]).

Each returns plain data keyed by tree path, higher = more important:

* :func:`weight_magnitude`    per unit group: L2 norm of the weights a unit owns (data-free);
* :func:`activation_importance` per unit group: mean activation norm a unit carries on calibration;
* :func:`taylor_importance`   per unit group: first-order Taylor ``(sum_{w in unit} w * dL/dw)^2``
  (Molchanov et al. 2019; variant ``sum |w * dL/dw|``), L the flow-matching loss on the teacher's
  own trajectory (:func:`flow_matching_loss`);
* :func:`block_influence`     per block: ShortGPT's ``1 - cos(input, output)``, mean over tokens;
* :func:`expert_frequency`    per expert group: share of routed (token, slot) pairs per expert;
* :func:`reap_saliency`       per expert group: mean over routed tokens of gate value x ||expert output||;
* :func:`masked_output_error` the quality cost TMP uses: relative output error of the denoiser
  with a mask applied (:func:`apply_masks`), over calibration inputs across timesteps.

Masks reproduce surgery exactly without cutting anything: a removed head or channel is zeroed at
the input of the output projection (``to_out[0]`` / ``w2`` / ``down_proj``; wherever the model's layout
says, :meth:`~tmpbench.pruning.layouts.Layout.mask_columns`), a removed expert gets a ``-inf`` router
logit, a merged MoE is swapped for a merged copy, a dropped block is swapped for the layout's identity
block and a linear-replaced block for its fitted map.

Routing scorers assume softmax -> top-k routing over ``gate.wg`` logits, as HunyuanImage-3.0 and
tiny-moe route.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tmpbench.errors import TmpbenchError
from tmpbench.models.moe import MoEBlockView
from tmpbench.pruning.calibration import Calibration, capture_blocks, offloaded, onloaded, relative_output_error, to_device
from tmpbench.pruning.families import layout
from tmpbench.pruning.layouts import Layout
from tmpbench.pruning.surgery import LinearBlock, detach_cached_tensors, merge_experts
from tmpbench.pruning.tree import UnitNode, UnitTree


def is_meta(model: nn.Module) -> bool:
    """True when the model's weights are not materialised (meta device): only shapes are known. A
    model accelerate offloads (its weights on meta between calls, loaded by its hooks) is not: it runs."""
    p = next(model.parameters(), None)
    return p is None or (p.is_meta and not offloaded(model))


def _refuse_offloaded(module: nn.Module, what: str, fix: str = "use a pruner that scores from calibration "
                      "activations (tmp, best-of-n)") -> None:
    """One line when accelerate offloads ``module``'s weights, which ``what`` reads or edits in place."""
    if offloaded(module):
        raise TmpbenchError(f"{what} reads or edits weights in place, and accelerate offloads this model's weights "
                            f"(device_map/offload_folder): load it without offloading, or {fix}")


def unit_groups(tree: UnitTree, kinds: tuple[str, ...] = ("heads", "channels", "experts")) -> list:
    return [n for n in tree.walk() if n.level == "unit" and n.kind in kinds and n.count > 0]


# --------------------------------------------------------------------------------------------
# per-unit reductions over the weights a unit owns
# --------------------------------------------------------------------------------------------
def unit_reduce(model: nn.Module, path: str, kind: str, fn, layout: Layout, n_units: int) -> torch.Tensor:
    """Sum of ``fn(param)`` (elementwise: squares for norms, signed ``w * grad`` for Taylor) over each of
    the ``n_units`` units' weights of the component at ``path``. ``fn`` is called on whole Parameters
    (so ``p.grad`` works) and sliced after.

    heads and channels: the row and column ranges the model's layout says a unit owns
    (:meth:`tmpbench.pruning.layouts.Layout.weight_slices`: e.g. rows of to_q and columns of to_out[0];
    a KV group's q/k/v rows and o_proj columns; w1/w3 rows and w2 columns; a Flux single-stream block's
    proj_mlp rows and its share of proj_out's columns); experts: every tensor of the expert plus its
    router row. ``n_units`` is the unit group's count in the tree.
    """
    with torch.no_grad():
        if kind in ("heads", "channels"):
            rows, cols = layout.weight_slices(model, path, kind)
            v = sum(_rows_range(lin, start, stop, fn, n_units) for lin, start, stop in rows)
            return (v + sum(_cols_range(lin, start, stop, fn, n_units) for lin, start, stop in cols)).float()
        if kind == "experts":
            view = MoEBlockView("", model.get_submodule(path))
            out = []
            for j in range(view.num_experts):
                total = sum(fn(t).sum() for t in view.expert_tensors(j).values())
                total = total + fn(view.router_weight[j]).sum()
                out.append(float(total))
            return torch.tensor(out)
    raise TmpbenchError(f"no unit reduction for unit kind {kind!r}")


def _rows_range(lin: nn.Linear, start: int, stop: int, fn, n_units: int) -> torch.Tensor:
    # fn sees the whole Parameter, sliced after: a slice of it has no .grad (Taylor's w * grad)
    v = fn(lin.weight)[start:stop].sum(dim=1)
    if lin.bias is not None:
        v = v + fn(lin.bias)[start:stop]
    return v.reshape(n_units, -1).sum(dim=1)


def _cols_range(lin: nn.Linear, start: int, stop: int, fn, n_units: int) -> torch.Tensor:
    return fn(lin.weight)[:, start:stop].sum(dim=0).reshape(n_units, -1).sum(dim=1)


def expert_channel_reduce(moe: nn.Module, fn) -> torch.Tensor:
    """Sum of ``fn(param)`` over each routed expert's intermediate channel (its gate row, up row and
    down column), shape ``(experts, I)``. ``fn`` sees the Parameters themselves (so ``p.grad`` works)
    in both layouts."""
    view = MoEBlockView("", moe)
    width = view.intermediate_size
    with torch.no_grad():
        if view.layout == "expert-modules":
            rows = []
            for expert in moe.experts:
                gu = fn(expert.gate_and_up_proj.weight).sum(dim=1)
                if expert.gate_and_up_proj.bias is not None:
                    gu = gu + fn(expert.gate_and_up_proj.bias)
                rows.append(gu[:width] + gu[width:] + fn(expert.down_proj.weight).sum(dim=0))
            return torch.stack(rows).float()
        gu = fn(moe.experts.gate_up_proj).sum(dim=-1)  # (E, 2I)
        return (gu[:, :width] + gu[:, width:] + fn(moe.experts.down_proj).sum(dim=1)).float()


def node_reduce(model: nn.Module, node: UnitNode, fn) -> torch.Tensor:
    """:func:`unit_reduce` for one unit-group node; expert channels give ``(experts, I)``."""
    if node.constraints.get("per_expert"):
        return expert_channel_reduce(model.get_submodule(node.constraints["moe"]), fn)
    return unit_reduce(model, node.module_path, node.kind, fn, layout(model), node.count)


def weight_magnitude(model: nn.Module, tree: UnitTree,
                     kinds: tuple[str, ...] = ("heads", "channels", "experts")) -> dict[str, torch.Tensor]:
    """L2 norm of each unit's weights, per unit group path (expert channels: ``(experts, I)``).
    Data-free; ``{}`` on a meta model (no values to read), where callers fall back to index order."""
    if is_meta(model):
        return {}
    _refuse_offloaded(model, "weight-magnitude scoring")
    out = {}
    for node in unit_groups(tree, kinds):
        out[node.path] = node_reduce(model, node, lambda p: p.float() ** 2).sqrt()
    return out


# --------------------------------------------------------------------------------------------
# calibration-driven scorers
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def activation_importance(model: nn.Module, tree: UnitTree, calibration: Calibration,
                          kinds: tuple[str, ...] = ("heads", "channels")) -> dict[str, torch.Tensor]:
    """Mean L2 norm per token of each head's output / each channel's activation, measured at the
    input of the output projection (the layout's :meth:`~tmpbench.pruning.layouts.Layout.mask_columns`),
    over all calibration inputs (all timesteps).

    Routed expert channels (expert-module layouts) are measured per expert over the tokens routed
    to it, giving ``(experts, I)``; fused 3-D experts have no per-expert hook point, so their
    channels get weight norms instead."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    handles = []
    lay = layout(model)
    nodes = unit_groups(tree, tuple(k for k in kinds if k in ("heads", "channels")))
    expert_nodes = [n for n in nodes if n.constraints.get("per_expert")]
    nodes = [n for n in nodes if not n.constraints.get("per_expert")]
    fallback: dict[str, torch.Tensor] = {}
    expert_sums: dict[str, torch.Tensor] = {}
    expert_counts: dict[str, torch.Tensor] = {}

    def make_expert(node, e):
        def hook(_m, args):
            x = args[0].detach().float().reshape(-1, node.count).abs()
            expert_sums[node.path][e] += x.sum(dim=0).cpu()
            expert_counts[node.path][e] += x.shape[0]
        return hook

    for node in expert_nodes:
        moe = model.get_submodule(node.constraints["moe"])
        if MoEBlockView("", moe).layout != "expert-modules":
            with onloaded(moe):  # read, not edited: an offloaded model's weights are loaded for the read
                fallback[node.path] = expert_channel_reduce(moe, lambda p: p.float() ** 2).sqrt()
            continue
        expert_sums[node.path] = torch.zeros(node.constraints["experts"], node.count)
        expert_counts[node.path] = torch.zeros(node.constraints["experts"], 1)
        for e, expert in enumerate(moe.experts):
            handles.append(expert.down_proj.register_forward_pre_hook(make_expert(node, e)))

    def make(node, start, stop):
        def hook(_m, args):
            x = args[0].detach().float()[..., start:stop]
            x = x.reshape(-1, node.count, (stop - start) // node.count).norm(dim=-1)  # (tokens, units)
            sums[node.path] = sums.get(node.path, 0) + x.sum(dim=0).cpu()
            counts[node.path] = counts.get(node.path, 0) + x.shape[0]
        return hook

    try:
        for node in nodes:
            # a unit may show in several projections (a joint attention's image and context outputs): the
            # mean runs over the tokens of all of them
            for lin, start, stop in lay.mask_columns(model, node.module_path, node.kind):
                handles.append(lin.register_forward_pre_hook(make(node, start, stop)))
        for i in range(len(calibration)):
            calibration.call(model, i)
    finally:
        for h in handles:
            h.remove()
    out = {p: sums[p] / max(1, counts[p]) for p in sums}
    out.update({p: expert_sums[p] / expert_counts[p].clamp_min(1.0) for p in expert_sums})
    out.update(fallback)
    return out


def _zimage_call(calibration: Calibration, i: int) -> tuple[list[torch.Tensor], list[int | None], torch.Tensor, tuple, dict]:
    """``(noisy latents, their index in an omni sample or None, t, args, kwargs)`` of calibration call ``i``.

    A T2I call has ``x[k]`` a latent; an edit (omni) call has ``x[k]`` a list of latents of which
    ``image_noise_mask[k]`` marks the noisy one (the others are clean conditions)."""
    args, kwargs = calibration.inputs[i]
    x = args[0] if args else kwargs.get("x")
    t = args[1] if len(args) > 1 else kwargs.get("t")
    masks = kwargs.get("image_noise_mask")
    latents: list[torch.Tensor] = []
    where: list[int | None] = []
    ok = isinstance(x, list) and isinstance(t, torch.Tensor)
    for k, xi in enumerate(x if ok else []):
        if isinstance(xi, torch.Tensor):
            latents.append(xi)
            where.append(None)
        elif isinstance(xi, list) and masks is not None and 1 in list(masks[k]):
            j = list(masks[k]).index(1)
            latents.append(xi[j])
            where.append(j)
        else:
            ok = False
    if not ok:
        raise TmpbenchError(
            "taylor's flow-matching loss needs the noisy latents and timestep an image pipeline hands its denoiser "
            "(Z-Image calls forward(x: list[Tensor], t, cap_feats)); these calibration calls carry none, so there is no "
            "loss to differentiate: use the taylor pruner with method='activation' for this model"
        )
    return latents, where, t, args, kwargs


def _with_noisy(x: list, where: list[int | None], noisy: list[torch.Tensor]) -> list:
    """``x`` with each sample's noisy latent replaced (omni samples keep their clean conditions)."""
    out = []
    for xi, j, n in zip(x, where, noisy):
        if j is None:
            out.append(n)
        else:
            parts = list(xi)
            parts[j] = n
            out.append(parts)
    return out


TAYLOR_SCORES = ("squared_sum", "abs_sum")


def flow_matching_loss(model: nn.Module, calibration: Calibration, i: int, gen: torch.Generator) -> torch.Tensor:
    """The flow-matching loss of calibration call ``i`` on the teacher's own trajectory (a scalar
    with a graph; the caller runs ``backward``).

    Z-Image convention: model time ``t = 1 - sigma``, prediction ``x0 - noise``. The teacher's clean
    estimate ``x0 = x_t + (1 - t) * f(x_t)`` is the data point, fresh noise ``n`` drawn from ``gen``
    gives ``x = (1 - t) * n + t * x0``, and ``L = mean_k ||f(x, t)_k - (x0_k - n_k)||^2`` (MSE per
    sample, mean over the call's samples). The teacher's own output would give zero gradient at the
    teacher; the re-noised pairs do not."""
    x, where, t, args, kwargs = _zimage_call(calibration, i)
    device = next(model.parameters()).device
    with torch.no_grad():
        out = calibration.call(model, i)
        out = out[0] if isinstance(out, tuple) else getattr(out, "sample", out)
        sig = (1.0 - t.float()).clamp(0, 1)
        x0 = [xi.to(device).float() + sig[k].item() * oi.float() for k, (xi, oi) in enumerate(zip(x, out))]
        noise = [torch.randn(xi.shape, generator=gen).to(device) for xi in x0]
        xt = [(sig[k].item() * n + (1 - sig[k].item()) * x0[k]).to(x[k].dtype) for k, n in enumerate(noise)]
        target = [x0[k] - noise[k] for k in range(len(x0))]
    full = _with_noisy(args[0] if args else kwargs["x"], where, xt)
    new_args = (full, *args[1:]) if args else args
    new_kwargs = dict(kwargs) if args else {**kwargs, "x": full}
    pred = model(*to_device(new_args, device), **to_device(new_kwargs, device))
    pred = pred[0] if isinstance(pred, tuple) else getattr(pred, "sample", pred)
    return sum(F.mse_loss(pk.float(), tk) for pk, tk in zip(pred, target)) / len(pred)


def _first_order_term(p: torch.Tensor) -> torch.Tensor:
    """``w * dL/dw`` elementwise (signed; zero where the parameter got no gradient)."""
    if p.grad is None:
        return torch.zeros_like(p, dtype=torch.float32)
    return (p.detach() * p.grad).float()


def taylor_importance(model: nn.Module, tree: UnitTree, calibration: Calibration, seed: int = 0,
                      kinds: tuple[str, ...] = ("heads", "channels"), score: str = "squared_sum") -> dict[str, torch.Tensor]:
    """First-order Taylor importance per unit (higher = keep), L the :func:`flow_matching_loss`
    (noise drawn from one generator seeded with ``seed``, call after call).

    ``score="squared_sum"`` (default) is the group score of Molchanov et al. 2019 ("Importance
    Estimation for Neural Network Pruning"): ``(sum_{w in unit} w * g_w)^2`` with ``g`` the gradient
    of the loss summed over the whole calibration set, ``g = d(sum_i L_i)/dw``: the square of the
    first-order change of the loss when the unit is zeroed. Signed terms cancel inside a unit and
    across calibration calls before the square.

    ``score="abs_sum"`` is the earlier variant ``sum_i sum_{w in unit} |w * dL_i/dw|``: absolute
    values per weight and per call, so no cancellation.

    The weights a unit owns are those of :func:`node_reduce` (routed-expert channels: one score per
    expert and channel, shape ``(experts, I)``).
    """
    if score not in TAYLOR_SCORES:
        raise TmpbenchError(f"taylor score {score!r} is unknown; use one of {list(TAYLOR_SCORES)}")
    nodes = unit_groups(tree, tuple(k for k in kinds if k in ("heads", "channels")))
    totals: dict[str, torch.Tensor] = {}
    gen = torch.Generator().manual_seed(int(seed))
    was_training = model.training
    model.eval()
    params = [p for p in model.parameters()]
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        model.zero_grad(set_to_none=True)
        for i in range(len(calibration)):
            if score == "abs_sum":
                model.zero_grad(set_to_none=True)
            flow_matching_loss(model, calibration, i, gen).backward()  # squared_sum: gradients accumulate
            if score == "abs_sum":
                for node in nodes:
                    v = node_reduce(model, node, lambda p: _first_order_term(p).abs())
                    totals[node.path] = totals.get(node.path, 0) + v.cpu()
        if score == "squared_sum":
            for node in nodes:
                totals[node.path] = node_reduce(model, node, _first_order_term).cpu().pow(2)
    finally:
        model.zero_grad(set_to_none=True)
        for p, f in zip(params, flags):
            p.requires_grad_(f)
        model.train(was_training)
        detach_cached_tensors(model)  # e.g. an MoE block's aux_loss: the model must stay deep-copyable
    return totals


@torch.no_grad()
def block_influence(model: nn.Module, tree: UnitTree, calibration: Calibration, kinds: tuple[str, ...] = ("block",)) -> dict[str, float]:
    """ShortGPT block influence ``1 - cos(x_in, x_out)`` per token, averaged over tokens and all
    calibration inputs; low influence = the block barely changes its input = cheap to drop."""
    paths = [n.path for n in tree.walk() if n.level == "block" and n.kind in kinds]
    with capture_blocks(model, paths) as records:
        for i in range(len(calibration)):
            calibration.call(model, i)
    out = {}
    for p in paths:
        vals = [1.0 - F.cosine_similarity(x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1]), dim=-1).mean().item()
                for x, y in records[p]]
        out[p] = float(sum(vals) / max(1, len(vals)))
    return out


def _moe_nodes(tree: UnitTree) -> list:
    return unit_groups(tree, ("experts",))


@contextmanager
def _router_capture(model: nn.Module, tree: UnitTree) -> Iterator[dict[str, list[tuple[torch.Tensor, torch.Tensor]]]]:
    """Records (MoE input tokens, router logits) of every MoE block at each forward."""
    rec: dict[str, list] = {n.module_path: [] for n in _moe_nodes(tree)}
    handles = []
    inputs: dict[str, torch.Tensor] = {}

    def pre(path):
        def hook(_m, args, kwargs):
            x = args[0] if args else next(iter(kwargs.values()))
            inputs[path] = x.detach()
        return hook

    def post(path):
        def hook(_m, _args, out):
            x = inputs[path]
            rec[path].append((x.reshape(-1, x.shape[-1]), out.detach().reshape(-1, out.shape[-1])))
        return hook

    try:
        for path in rec:
            moe = model.get_submodule(path)
            handles.append(moe.register_forward_pre_hook(pre(path), with_kwargs=True))
            handles.append(moe.gate.wg.register_forward_hook(post(path)))
        yield rec
    finally:
        for h in handles:
            h.remove()


def _routing(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    probs = F.softmax(logits.float(), dim=-1)
    w, idx = torch.topk(probs, top_k, dim=-1)
    return w / w.sum(dim=-1, keepdim=True).clamp_min(1e-8), idx


def _routed_calibration(
    model: nn.Module, tree: UnitTree, calibration: Calibration
) -> list[tuple[UnitNode, MoEBlockView, list[tuple[torch.Tensor, torch.Tensor]]]]:
    """Run every calibration call once and return, per MoE block, its experts node, its view and
    the (input tokens, router logits) of each forward (the input the expert scores share)."""
    nodes = {n.module_path: n for n in _moe_nodes(tree)}
    with _router_capture(model, tree) as rec:
        for i in range(len(calibration)):
            calibration.call(model, i)
    return [(nodes[path], MoEBlockView(path, model.get_submodule(path)), items) for path, items in rec.items()]


@torch.no_grad()
def expert_frequency(model: nn.Module, tree: UnitTree, calibration: Calibration) -> dict[str, torch.Tensor]:
    """Share of routed (token, slot) pairs each expert receives, per expert group path."""
    out: dict[str, torch.Tensor] = {}
    for node, view, items in _routed_calibration(model, tree, calibration):
        counts = torch.zeros(node.count)
        for _x, logits in items:
            _, idx = _routing(logits, view.top_k)
            counts += torch.bincount(idx.flatten().cpu(), minlength=node.count).float()
        out[node.path] = counts / counts.sum().clamp_min(1.0)
    return out


def expert_forward(view: MoEBlockView, j: int, x: torch.Tensor) -> torch.Tensor:
    """Output of routed expert ``j`` on tokens ``x`` (either layout): ``down(up * silu(gate))``."""
    if view.layout == "expert-modules":
        return view.block.experts[j](x)
    gu = x @ view.expert_gate_up(j).T
    first, second = gu.chunk(2, dim=-1)
    gate, up = (first, second) if view.gate_up_halves[0] == "gate" else (second, first)
    return (up * F.silu(gate)) @ view.expert_down(j).T


@torch.no_grad()
def reap_saliency(model: nn.Module, tree: UnitTree, calibration: Calibration) -> dict[str, torch.Tensor]:
    """REAP saliency per expert: mean over the tokens routed to it of gate value x ||expert output||
    (0 for an expert no token reaches)."""
    out: dict[str, torch.Tensor] = {}
    for node, view, items in _routed_calibration(model, tree, calibration):
        total = torch.zeros(node.count)
        count = torch.zeros(node.count)
        with onloaded(view.block):  # fused experts are read as tensors: an offloaded block's weights are loaded
            for x, logits in items:
                w, idx = _routing(logits, view.top_k)
                for j in range(node.count):
                    tok, slot = torch.where(idx == j)
                    if tok.numel() == 0:
                        continue
                    y = expert_forward(view, j, x[tok].to(view.router_weight.dtype)).float()
                    total[j] += (w[tok, slot] * y.norm(dim=-1)).sum().cpu()
                    count[j] += tok.numel()
        out[node.path] = total / count.clamp_min(1.0)
    return out


def expert_similarity(model: nn.Module, path: str) -> list[list[float]] | None:
    """Cosine similarity between experts' flattened weights (for choosing merge partners). Under
    accelerate's offloading the block's weights are loaded for the read (:func:`onloaded`)."""
    if is_meta(model):
        return None
    with onloaded(model.get_submodule(path)) as block, torch.no_grad():
        view = MoEBlockView(path, block)
        flat = torch.stack([torch.cat([t.detach().float().reshape(-1) for t in view.expert_tensors(j).values()])
                            for j in range(view.num_experts)])
        flat = F.normalize(flat, dim=-1)
        return (flat @ flat.T).tolist()


# --------------------------------------------------------------------------------------------
# masks and the masked-output sensitivity
# --------------------------------------------------------------------------------------------
class _Replay(nn.Module):
    """An untouched block replaced by its recorded outputs: the i-th call returns the i-th output."""

    def __init__(self, outputs: list[Any]) -> None:
        super().__init__()
        self.outputs = outputs
        self.calls = 0

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.outputs[self.calls % len(self.outputs)]
        self.calls += 1
        if isinstance(out, tuple):  # a copy, so an in-place op downstream cannot change the record
            return tuple(o.clone() if isinstance(o, torch.Tensor) else o for o in out)
        return out.clone() if isinstance(out, torch.Tensor) else out


def _list_slot(model: nn.Module, path: str) -> tuple[nn.ModuleList, int]:
    parent, _, idx = path.rpartition(".")
    return model.get_submodule(parent), int(idx)


@contextmanager
def apply_masks(
    model: nn.Module,
    *,
    keep: Mapping[str, tuple[str, list[int], int]] | None = None,
    merges: Mapping[str, tuple[list[list[int]], list[float] | None]] | None = None,
    blocks: Mapping[str, str] | None = None,
    linear_maps: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    merged_cache: dict | None = None,
    replay: Mapping[str, list[Any]] | None = None,
) -> Iterator[nn.Module]:
    """Temporarily make ``model`` behave as if pruned, without cutting anything.

    ``keep[component] = (kind, kept_ids, count)`` for heads/channels/experts; ``merges[moe] =
    (groups, weights)``; ``blocks[block] = "drop_block" | "linear_replace"`` (the latter needs
    ``linear_maps[block]``). ``replay[block]`` swaps an *untouched* block for its recorded outputs,
    the i-th call returning the i-th (:class:`tmpbench.pruning.calibration.BlockReplay`), so a
    forward over the calibration inputs in order skips the blocks before the first touched one.
    Everything is restored on exit.
    """
    lay = layout(model)
    handles = []
    swaps: list[tuple[nn.ModuleList, int, nn.Module]] = []
    restores: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        # merged copies first, from the clean model: built after the masks below, a deep copy would
        # carry their hooks (per-expert modules) or their zeroed weights (fused experts) into the cache
        stand_ins: dict[str, nn.Module] = {}  # merged MoE path -> the merged copy that computes its output
        for comp, (groups, weights) in (merges or {}).items():
            key = (comp, tuple(map(tuple, groups)))
            cache = merged_cache if merged_cache is not None else {}
            if key not in cache:
                _refuse_offloaded(model.get_submodule(comp), "scoring an expert merge",
                                  "leave merge_experts out of tmp's policy_mix")
                cache[key] = merge_experts(copy.deepcopy(model.get_submodule(comp)), groups, weights)
            merged = stand_ins[comp] = cache[key]
            handles.append(model.get_submodule(comp).register_forward_hook(
                lambda _m, a, _out, merged=merged: merged(*a)))

        def owner(path: str) -> tuple[nn.Module, str]:
            """Where a mask must sit: inside a merged MoE (e.g. its shared expert), on the merged copy
            that now computes the output; elsewhere on the model. Hooks go on exit, so the cache stays clean."""
            for comp, stand_in in stand_ins.items():
                if path.startswith(comp + "."):
                    return stand_in, path[len(comp) + 1:]
            return model, path

        for comp, (kind, kept, count) in (keep or {}).items():
            root, rel = owner(comp)
            module = root.get_submodule(rel)
            if kind == "channels" and not lay.is_dense_ffn(module):  # routed experts of an MoE (no single down Linear)
                _mask_expert_channels(root, rel, kept, count, handles, restores)
            elif kind in ("heads", "channels"):
                for lin, start, stop in lay.mask_columns(root, rel, kind):
                    # built where the weight lives, or on the CPU while an offload hook keeps it on meta;
                    # moved to the input's device in the hook (a no-op without offloading)
                    where = lin.weight.device if lin.weight.device.type != "meta" else torch.device("cpu")
                    units = torch.zeros(count, dtype=lin.weight.dtype, device=where)
                    units[list(kept)] = 1
                    mask = torch.ones(lin.in_features, dtype=lin.weight.dtype, device=where)
                    mask[start:stop] = units.repeat_interleave((stop - start) // count)
                    handles.append(lin.register_forward_pre_hook(
                        lambda _m, a, mask=mask: (a[0] * mask.to(a[0].device),) + tuple(a[1:])))
            elif kind == "experts":
                neg = torch.full((count,), float("-inf"))
                neg[list(kept)] = 0.0
                wg = module.gate.wg
                handles.append(wg.register_forward_hook(lambda _m, _a, out, neg=neg: out + neg.to(out.device, out.dtype)))
        for path, mode in (blocks or {}).items():
            parent, i = _list_slot(model, path)
            old = parent[i]
            if mode == "drop_block":
                new: nn.Module = lay.identity_block(old)
            else:
                if not linear_maps or path not in linear_maps:
                    raise TmpbenchError(f"masking linear_replace at {path!r} needs its fitted map")
                w, b = linear_maps[path]
                new = LinearBlock(w.shape[1], bias=b is not None, device=w.device, dtype=w.dtype)
                with torch.no_grad():
                    new.linear.weight.copy_(w)
                    if b is not None:
                        new.linear.bias.copy_(b)
            parent[i] = new
            swaps.append((parent, i, old))
        for path, outputs in (replay or {}).items():
            if path in (blocks or {}):
                raise TmpbenchError(f"block {path!r} cannot be both replayed and {blocks[path]}")
            parent, i = _list_slot(model, path)
            swaps.append((parent, i, parent[i]))
            parent[i] = _Replay(outputs)
        yield model
    finally:
        for h in handles:
            h.remove()
        with torch.no_grad():
            for param, saved in reversed(restores):
                param.copy_(saved)
        for parent, i, old in reversed(swaps):
            parent[i] = old


def _mask_expert_channels(model: nn.Module, experts_path: str, kept: list[int], count: int,
                          handles: list, restores: list) -> None:
    """Mask routed-expert channels (flat ids ``expert * I + channel``): zero each removed channel at
    its expert's down projection input (a pre-hook per expert module; fused 3-D experts get the
    down columns zeroed in place and restored on exit)."""
    view = MoEBlockView("", model.get_submodule(experts_path.rpartition(".")[0]))
    experts, width = view.num_experts, view.intermediate_size
    if count != experts * width:
        raise TmpbenchError(f"masking {experts_path!r}: {count} channel ids for {experts} experts x {width} channels")
    mask = torch.zeros(experts * width)
    mask[list(kept)] = 1
    mask = mask.reshape(experts, width)
    if view.layout == "expert-modules":
        for e, expert in enumerate(view.block.experts):
            lin = expert.down_proj
            m = mask[e].to(lin.weight.device if lin.weight.device.type != "meta" else "cpu", lin.weight.dtype)
            handles.append(lin.register_forward_pre_hook(lambda _m, a, m=m: (a[0] * m.to(a[0].device),) + tuple(a[1:])))
        return
    _refuse_offloaded(view.block, "masking fused experts' channels", "prune experts only (policy_mix without prune_channels)")
    down = view.block.experts.down_proj  # (E, hidden, I)
    restores.append((down, down.detach().clone()))
    with torch.no_grad():
        down.mul_(mask.to(down.device, down.dtype)[:, None, :])


def masked_output_error(
    model: nn.Module,
    calibration: Calibration,
    reference: list[torch.Tensor],
    weights: list[float] | None = None,
) -> float:
    """Relative output error of ``model`` (masked by the caller, e.g. inside :func:`apply_masks`) against
    the unpruned outputs ``reference``: :func:`tmpbench.pruning.calibration.relative_output_error`, the
    one definition the search and the check after surgery share."""
    return relative_output_error(model, calibration, reference, weights)
