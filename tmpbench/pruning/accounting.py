"""Size accounting: what a Plan leaves of a model, in parameters or FLOPs. The one size arithmetic.

Every size the project plans with or reports follows these rules, counted on the unit tree (see
:mod:`tmpbench.pruning.tree` for how a node's parameters and FLOPs are counted):

* a dropped block saves its whole size (:func:`block_saving`);
* a block replaced by a linear map saves its size less the map's: ``dim * dim + dim`` parameters,
  ``2 * tokens * dim * dim`` FLOPs (:func:`linear_map_params`, :func:`linear_map_flops`);
* removing ``n`` units (heads, channels, experts) saves ``n`` times the unit's size
  (:func:`unit_saving`);
* a routed-expert channel is one channel in each of the ``E`` experts: its FLOPs are per routed
  token, but its parameters count only the experts that stay, ``unit_params // E`` per kept expert;
* an ``lse`` expert merge gives a router that had no bias one bias entry per kept expert
  (:func:`merge_bias_params`).

Three places use them and tests hold them equal to the parameter (tests/pruning/test_accounting.py):
:func:`planned_size` (a Plan on a unit tree, no surgery, works at meta size; what the runner
records), ``pruners.allocate.Allocation`` (the same rules, incrementally, while a strategy
searches) and :func:`measured_size` (the model after surgery).

Example::

    >>> linear_map_params(4), block_saving("params", "linear_replace", params=100, flops=0.0, dim=4, tokens=8)
    (20, 80.0)
    >>> unit_saving("params", 2, unit_params=12, unit_flops=0.0, experts=4, kept_experts=3)  # 2 channels x 3 experts x 3
    18.0
"""

from __future__ import annotations

from torch import nn

from tmpbench.pruning.families import unit_tree
from tmpbench.pruning.plan import Plan
from tmpbench.pruning.tree import UnitTree, count_params

__all__ = [
    "block_saving",
    "count_params",
    "linear_map_flops",
    "linear_map_params",
    "measured_size",
    "merge_bias_params",
    "planned_size",
    "tree_size",
    "unit_saving",
]


def tree_size(tree: UnitTree, kind: str) -> float:
    """The unpruned size of ``tree`` in ``kind`` (``"params"``; anything else counts FLOPs)."""
    return float(tree.params if kind == "params" else tree.flops)


def linear_map_params(dim: int) -> int:
    """Parameters of the ``dim x dim`` linear map (with bias) that replaces a block."""
    return dim * dim + dim


def linear_map_flops(dim: int, tokens: float) -> float:
    """FLOPs of that map over ``tokens`` tokens."""
    return 2.0 * tokens * dim * dim


def block_saving(kind: str, policy: str | None, *, params: int, flops: float, dim: int, tokens: float) -> float:
    """What a block policy saves on a block of ``params``/``flops`` (``dim`` wide, ``tokens`` long):
    all of it for ``drop_block``, all but the map for ``linear_replace``, nothing for None."""
    if policy == "drop_block":
        return float(params if kind == "params" else flops)
    if policy == "linear_replace":
        return float(params - linear_map_params(dim) if kind == "params" else flops - linear_map_flops(dim, tokens))
    return 0.0


def unit_saving(kind: str, removed: int, *, unit_params: int, unit_flops: float, experts: int = 0,
                kept_experts: int | None = None) -> float:
    """What removing ``removed`` units of one unit group saves.

    ``experts`` > 0 marks routed-expert channels (a unit is one channel in each of ``experts``
    experts): their parameters count only the ``kept_experts`` that stay (default: all of them).
    """
    if kind != "params":
        return removed * unit_flops
    if experts:
        kept = experts if kept_experts is None else kept_experts
        return float(removed * (unit_params // experts) * kept)
    return float(removed * unit_params)


def merge_bias_params(kept: int, router_bias: bool, merge_router: str = "lse") -> int:
    """Parameters an expert merge that leaves ``kept`` experts adds to the router (call it only when
    some group merges two or more experts): a bias per kept expert when ``"lse"`` merging meets a
    router without one, else none."""
    return kept if merge_router == "lse" and not router_bias else 0


def planned_size(tree: UnitTree, plan: Plan, kind: str = "params") -> float:
    """Size ``plan`` leaves of the model ``tree`` describes, from the tree alone (no surgery; works at meta size)."""
    parent = {child.path: node for node in tree.walk() for child in node.children}
    total = tree_size(tree, kind)
    # MoE path -> experts left (routed-expert channels cost per kept expert)
    kept_experts = {d.path: len(d.keep or d.groups or []) for d in plan.decisions if d.policy in ("prune_experts", "merge_experts")}
    for d in plan.decisions:
        channels = tree.expert_channels(d.path)
        if channels is not None:
            experts = int(channels.constraints["experts"])
            total -= unit_saving(kind, channels.count - len(d.keep) // experts, unit_params=channels.unit_params,
                                 unit_flops=channels.unit_flops, experts=experts,
                                 kept_experts=kept_experts.get(channels.constraints["moe"], experts))
            continue
        node = tree[d.path]
        if d.policy in ("drop_block", "linear_replace"):
            total -= block_saving(kind, d.policy, params=node.params, flops=node.flops, dim=int(node.constraints.get("dim") or 0),
                                  tokens=parent[d.path].constraints.get("tokens", 0))
            continue
        unit = node.children[0]
        left = len(d.groups or []) if d.policy == "merge_experts" else len(d.keep or [])
        total -= unit_saving(kind, unit.count - left, unit_params=unit.unit_params, unit_flops=unit.unit_flops)
        if kind == "params" and d.policy == "merge_experts" and any(len(g) > 1 for g in d.groups):
            total += merge_bias_params(left, bool(node.constraints.get("router_bias", False)), d.merge_router or "lse")
    return total


def measured_size(model: nn.Module, kind: str, size: int | None) -> float:
    """Size of a (pruned) model as it stands: its parameters, or its unit tree's FLOPs at ``size`` px."""
    if kind == "params":
        return float(count_params(model))
    return float(unit_tree(model, size=size).flops)
