"""The unit tree: a model seen as nested prunable pieces, each with its cost, policies and constraints.

Levels (depth in brackets)::

    model (0) > stage (1) > block (2) > component (3) > unit group (4)

* **stage**: a contiguous range of blocks (the main ``layers`` split into ``num_stages`` ranges, by
  default quarters) or a whole refiner list (``noise_refiner``, ``context_refiner``,
  ``siglip_refiner``).
* **block**: one transformer block (``layers.7``); kinds ``block``, ``refiner_block``,
  ``context_block``.
* **component**: ``attention``, ``ffn`` (dense SwiGLU), ``moe`` (router + routed experts) and
  ``shared_expert`` (the MoE's always-on ``shared_mlp``).
* **unit group**: the units a component is made of, as one node with ``count`` units of equal
  cost: ``heads``, ``channels`` or ``experts``. Individual units are named by index in a Plan
  (``keep=[0, 3, 5]``), which keeps the tree small at full size (30 layers x 10240 channels would
  be 300k nodes otherwise).

Every node carries its parameters and its FLOPs for one forward pass at ``size`` pixels, the
policies it admits and its constraints. ``params == fixed_params + sum(child.params)`` holds at
every node, likewise for FLOPs; ``fixed_*`` is what no child accounts for (norms, adaLN,
embedders, the final layer).

FLOPs convention (documented because budgets depend on it): 2 FLOPs per multiply-add, counted for
linear layers and the two attention matmuls (``QK^T`` and ``AV``); norms, activations, RoPE and
softmax are left out. Token counts for a ``size`` x ``size`` image::

    image_tokens   = (size / vae_factor / patch) ** 2, padded up to a multiple of 32
    caption_tokens = caption_tokens argument (default 128), padded up to a multiple of 32
    main layers see image + caption tokens; noise_refiner image tokens; context_refiner caption
    tokens; adaLN and timestep embedders one token (per sample, not per token).

Z-Image pads both sequences to multiples of 32 (``SEQ_MULTI_OF``) before the blocks, so padding is
real compute. Routed experts cost ``top_k / num_experts`` of their dense FLOPs per token on
average; since top-k is fixed, removing or merging experts saves parameters but not FLOPs (only
the router row), which the ``experts`` node states with ``unit_flops``.

Example::

    >>> tree = build_unit_tree(model, size=1024)          # doctest: +SKIP
    >>> print(format_tree(tree, depth=2))                 # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from tmpbench.errors import TmpbenchError, UnknownNameError, did_you_mean
from tmpbench.models.moe import MoEBlockView

# every policy a node can admit; strategies and Plans use these names
POLICIES = ("drop_block", "linear_replace", "prune_heads", "prune_channels", "prune_experts", "merge_experts")
DEPTHS = {"model": 0, "stage": 1, "block": 2, "component": 3, "unit": 4}
BLOCK_KINDS = ("block", "refiner_block", "context_block")
COMPONENT_KINDS = ("attention", "ffn", "moe", "shared_expert")
UNIT_KINDS = ("heads", "channels", "experts")

SEQ_MULTI_OF = 32  # Z-Image pads every sequence to this multiple
DEFAULT_SIZE = 1024
DEFAULT_VAE_FACTOR = 8
DEFAULT_CAPTION_TOKENS = 128
ADALN_EMBED_DIM = 256

# block lists Z-Image-family transformers have: attribute -> (block kind, token stream)
BLOCK_LISTS = {
    "noise_refiner": ("refiner_block", "image"),
    "context_refiner": ("context_block", "caption"),
    "siglip_refiner": ("context_block", "caption"),
    "layers": ("block", "main"),
}


@dataclass
class UnitNode:
    """One node of the unit tree (plain data; the module itself is looked up by ``path``).

    ``path`` is the module name in ``model.named_modules()`` for blocks and components, a range
    such as ``layers[0:8]`` for stages, ``""`` for the model, and ``<component>#<unit kind>`` for
    unit groups (``layers.3.attention#heads``). ``module_path`` strips the ``#`` suffix.
    """

    path: str
    kind: str  # model | stage | block kinds | component kinds | unit kinds
    level: str  # model | stage | block | component | unit
    params: int
    flops: float
    policies: tuple[str, ...] = ()
    constraints: dict[str, Any] = field(default_factory=dict)
    children: list[UnitNode] = field(default_factory=list)
    fixed_params: int = 0  # parameters no child accounts for
    fixed_flops: float = 0.0
    count: int = 0  # unit groups: number of units (heads, channels, experts)
    unit_params: int = 0  # unit groups: parameters one unit carries (all of them removable)
    unit_flops: float = 0.0  # unit groups: FLOPs one unit costs per forward
    min_params: int = 0  # smallest size this subtree can reach under its policies and constraints
    min_flops: float = 0.0

    @property
    def depth(self) -> int:
        return DEPTHS[self.level]

    @property
    def module_path(self) -> str:
        return self.path.split("#", 1)[0]

    def walk(self) -> Iterator[UnitNode]:
        """This node and every descendant, depth first, in model order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def to_dict(self, depth: int | None = None) -> dict[str, Any]:
        """JSON-ready dict, children down to ``depth`` (absolute tree depth; None = all)."""
        out = {
            "path": self.path,
            "kind": self.kind,
            "level": self.level,
            "params": self.params,
            "flops": self.flops,
            "min_params": self.min_params,
            "policies": list(self.policies),
            "constraints": self.constraints,
        }
        if self.level == "unit":
            out.update(count=self.count, unit_params=self.unit_params, unit_flops=self.unit_flops)
        if depth is None or self.depth < depth:
            out["children"] = [c.to_dict(depth) for c in self.children]
        return out


@dataclass
class UnitTree:
    """The tree plus the resolution its FLOPs were counted at. Look nodes up with ``tree[path]``."""

    root: UnitNode
    size: int
    image_tokens: int
    caption_tokens: int
    model_class: str
    _index: dict[str, UnitNode] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {n.path: n for n in self.root.walk()}

    def __getitem__(self, path: str) -> UnitNode:
        try:
            return self._index[path]
        except KeyError:
            hint = did_you_mean(path, self._index, n=1, cutoff=0.6)
            raise UnknownNameError(f"no node {path!r} in the unit tree of {self.model_class}{hint}") from None

    def __contains__(self, path: str) -> bool:
        return path in self._index

    def expert_channels(self, path: str) -> UnitNode | None:
        """The routed-expert channels unit group a Plan names by the experts' module path
        (``layers.3.feed_forward.experts``), or None when ``path`` is not one."""
        node = self._index.get(f"{path}#channels")
        return node if node is not None and node.constraints.get("per_expert") else None

    def walk(self) -> Iterator[UnitNode]:
        return self.root.walk()

    def at_level(self, level: str) -> list[UnitNode]:
        """All nodes of one level (``"block"``, ``"component"``, ``"unit"`` ...), in model order."""
        if level not in DEPTHS:
            raise TmpbenchError(f"unknown tree level {level!r}; expected one of {', '.join(DEPTHS)}")
        return [n for n in self.walk() if n.level == level]

    @property
    def params(self) -> int:
        return self.root.params

    @property
    def flops(self) -> float:
        return self.root.flops

    @property
    def min_params(self) -> int:
        return self.root.min_params

    @property
    def min_flops(self) -> float:
        return self.root.min_flops

    def width_step(self, multiple: int, kind: str = "params") -> float:
        """Smallest size change allowed when unit counts are rounded to ``multiple`` (for budget checks).

        It is ``multiple`` units of the cheapest width-prunable unit group (heads and channels; experts
        are never rounded). Returns 0.0 when the tree has no width units.
        """
        if multiple < 1:
            raise TmpbenchError(f"rounding multiple must be >= 1, got {multiple}")
        costs = [
            (n.unit_params if kind == "params" else n.unit_flops) * multiple
            for n in self.walk()
            if n.kind in ("heads", "channels") and n.count >= multiple
        ]
        costs = [c for c in costs if c > 0]
        return float(min(costs)) if costs else 0.0

    def to_dict(self, depth: int | None = None) -> dict[str, Any]:
        return {
            "model_class": self.model_class,
            "size": self.size,
            "image_tokens": self.image_tokens,
            "caption_tokens": self.caption_tokens,
            "root": self.root.to_dict(depth),
        }


# --------------------------------------------------------------------------------------------
# recognising modules (by attribute layout, so meta-device and tiny models work alike)
# --------------------------------------------------------------------------------------------
def is_attention(module: nn.Module) -> bool:
    """diffusers ``Attention`` layout: to_q/to_k/to_v/to_out and ``heads``."""
    return all(hasattr(module, a) for a in ("to_q", "to_k", "to_v", "to_out", "heads"))


def is_dense_ffn(module: nn.Module) -> bool:
    """Z-Image ``FeedForward`` (w1, w2, w3) or a fused SwiGLU MLP (gate_and_up_proj, down_proj)."""
    zimage = all(isinstance(getattr(module, a, None), nn.Linear) for a in ("w1", "w2", "w3"))
    fused = all(isinstance(getattr(module, a, None), nn.Linear) for a in ("gate_and_up_proj", "down_proj"))
    return zimage or fused


def is_moe(module: nn.Module) -> bool:
    """An MoE block :class:`tmpbench.models.moe.MoEBlockView` understands (HunyuanImage-3.0 layout:
    ``gate.wg`` router and ``experts``, as modules or fused 3-D tensors)."""
    try:
        MoEBlockView("", module)
    except TmpbenchError:
        return False
    return True


def moe_top_k(moe: nn.Module) -> int:
    """The MoE's top-k (``gate.moe_topk`` or ``gate.top_k``)."""
    return MoEBlockView("", moe).top_k


def ffn_hidden(ffn: nn.Module) -> int:
    if hasattr(ffn, "w1"):
        return ffn.w1.out_features
    return ffn.down_proj.in_features


def attention_geometry(attn: nn.Module) -> tuple[int, int, int]:
    """(heads, kv_heads, head_dim) of a diffusers Attention."""
    heads = int(attn.heads)
    head_dim = attn.to_q.out_features // heads
    kv_heads = attn.to_k.out_features // head_dim
    return heads, kv_heads, head_dim


def count_params(module: nn.Module | None) -> int:
    """Parameters ``module`` holds (0 for None): the physical count every size is checked against."""
    if module is None:
        return 0
    return sum(p.numel() for p in module.parameters())


def _linear_flops(module: nn.Module | None, tokens: float) -> float:
    if module is None:
        return 0.0
    return float(sum(2.0 * tokens * m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear)))


def _pad(n: int) -> int:
    return int(math.ceil(n / SEQ_MULTI_OF) * SEQ_MULTI_OF) if n > 0 else 0


# --------------------------------------------------------------------------------------------
# node builders
# --------------------------------------------------------------------------------------------
def _attention_node(path: str, attn: nn.Module, tokens: int, rope_axes: list[int] | None) -> UnitNode:
    heads, kv_heads, head_dim = attention_geometry(attn)
    total = count_params(attn)
    mha = kv_heads == heads
    # one head owns head_dim rows of to_q (and of to_k/to_v when not grouped) and head_dim columns of to_out
    per_row = attn.to_q.in_features + (1 if attn.to_q.bias is not None else 0)
    unit_params = head_dim * per_row + head_dim * attn.to_out[0].out_features
    if mha:
        unit_params += head_dim * (attn.to_k.in_features + (attn.to_k.bias is not None))
        unit_params += head_dim * (attn.to_v.in_features + (attn.to_v.bias is not None))
    dim = attn.to_q.in_features
    # per head: projections (q, k, v, out for MHA; q and out for GQA) plus QK^T and AV
    projections = 4 if mha else 2
    unit_flops = 2.0 * projections * tokens * dim * head_dim + 4.0 * tokens * tokens * head_dim
    total_flops = _linear_flops(attn, tokens) + 4.0 * tokens * tokens * head_dim * heads
    group = heads // kv_heads if kv_heads else 1
    constraints = {
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "head_dim_fixed": True,  # norm_q/norm_k and RoPE act over head_dim; only whole heads go
        "rope_axes_dims": list(rope_axes) if rope_axes else None,
        "kept_heads_multiple_of": 1 if mha else kv_heads,  # GQA: every kv group keeps as many queries
        "min_heads": 1 if mha else kv_heads,
    }
    units = UnitNode(
        path=f"{path}#heads", kind="heads", level="unit", params=heads * unit_params, flops=heads * unit_flops,
        policies=("prune_heads",), constraints={"group_size": group, **constraints}, count=heads,
        unit_params=unit_params, unit_flops=unit_flops,
        min_params=constraints["min_heads"] * unit_params, min_flops=constraints["min_heads"] * unit_flops,
    )
    node = UnitNode(path=path, kind="attention", level="component", params=total, flops=total_flops,
                    policies=("prune_heads",), constraints=constraints, children=[units])
    return _close(node)


def _ffn_node(path: str, ffn: nn.Module, tokens: int, kind: str) -> UnitNode:
    hidden = ffn_hidden(ffn)
    total = count_params(ffn)
    if hasattr(ffn, "w1"):
        lins = (ffn.w1, ffn.w3)
        dim = ffn.w1.in_features
    else:
        lins = (ffn.gate_and_up_proj,)
        dim = ffn.gate_and_up_proj.in_features
    out = ffn.w2 if hasattr(ffn, "w2") else ffn.down_proj
    # per channel: a gate row and an up row (each in_features + bias) and one down column
    unit_params = 2 * (dim + (lins[0].bias is not None)) + out.out_features
    unit_flops = 6.0 * tokens * dim
    constraints = {"channels": hidden, "min_channels": 1}
    units = UnitNode(path=f"{path}#channels", kind="channels", level="unit", params=hidden * unit_params,
                     flops=hidden * unit_flops, policies=("prune_channels",), constraints=dict(constraints),
                     count=hidden, unit_params=unit_params, unit_flops=unit_flops,
                     min_params=unit_params, min_flops=unit_flops)
    node = UnitNode(path=path, kind=kind, level="component", params=total, flops=_linear_flops(ffn, tokens),
                    policies=("prune_channels",), constraints=constraints, children=[units])
    return _close(node)


def expert_units(path: str, view: MoEBlockView, tokens: float) -> UnitNode:
    """The ``#experts`` unit group of an MoE component (both tree builders use it), with the
    routed experts' intermediate width as its child unit group ``<moe>.experts#channels``.

    An ``experts`` unit is one whole expert plus its router row. A ``channels`` unit of the child is
    one intermediate channel *in every expert* (experts keep one width: fused 3-D layouts need it,
    and the saved architecture spec records one width per layer); which channels each expert keeps
    is chosen per expert, so a Plan names them by flat id ``expert * I + channel``. Its
    ``unit_params`` counts all ``E`` experts; once experts go, a channel costs ``unit_params / E``
    per kept expert (see :mod:`tmpbench.pruning.accounting`). Its ``unit_flops`` is the routed compute
    of one channel: ``top_k`` experts per token, unchanged by expert removal.
    """
    n, k = view.num_experts, view.top_k
    router = view.router
    width = view.intermediate_size
    gate_up = view.expert_tensors(0)
    gu_bias = 1 if "gate_up.bias" in gate_up else 0
    per_expert = 2 * (view.hidden_size + gu_bias) + view.hidden_size  # gate row + up row + down column
    channel_flops = 6.0 * tokens * view.hidden_size * k
    router_row = router.in_features + (router.bias is not None)
    ch_constraints = {"channels": width, "min_channels": 1, "per_expert": True, "experts": n, "moe": path}
    channels = UnitNode(path=f"{path}.experts#channels", kind="channels", level="unit", params=n * width * per_expert,
                        flops=width * channel_flops, policies=("prune_channels",), constraints=ch_constraints,
                        count=width, unit_params=n * per_expert, unit_flops=channel_flops,
                        min_params=n * per_expert, min_flops=channel_flops)
    unit_params = view.expert_param_count + router_row
    unit_flops = 2.0 * tokens * router.in_features  # the router row; routed compute stays k per token
    # router_bias: an "lse" merge adds a router bias only where there is none (the accounting needs it)
    constraints = {"experts": n, "top_k": k, "min_experts": k, "layout": view.layout, "router_bias": router.bias is not None}
    experts = UnitNode(path=f"{path}#experts", kind="experts", level="unit", params=n * unit_params,
                       flops=n * unit_flops + width * channel_flops, policies=("prune_experts", "merge_experts"),
                       constraints=constraints, children=[channels], count=n, unit_params=unit_params,
                       unit_flops=unit_flops)
    _close(experts)
    # smallest: top_k experts of one channel each (plus what no unit owns)
    other = view.expert_param_count - width * per_expert  # e.g. a down_proj bias
    experts.min_params = k * (router_row + other + per_expert)
    experts.min_flops = k * unit_flops + channel_flops
    return experts


def _moe_nodes(path: str, moe: nn.Module, tokens: int) -> list[UnitNode]:
    view = MoEBlockView(path, moe)
    k = view.top_k
    router = view.router
    # routed compute per token: k experts of (gate/up: 2I x hidden, down: hidden x I) each
    per_token = 2.0 * (view.expert_gate_up(0).numel() + view.expert_down(0).numel())
    shared = view.shared
    total = count_params(moe) - count_params(shared)
    units = expert_units(path, view, tokens)
    node = UnitNode(path=path, kind="moe", level="component", params=total,
                    flops=_linear_flops(router, tokens) + tokens * k * per_token,
                    policies=("prune_experts", "merge_experts"), constraints=dict(units.constraints),
                    children=[units])
    out = [_close(node)]
    if shared is not None and is_dense_ffn(shared):
        out.append(_ffn_node(f"{path}.shared_mlp", shared, tokens, "shared_expert"))
    elif shared is not None:  # a shared expert of unknown layout: counted, not prunable
        out[0].params += count_params(shared)
        out[0].flops += _linear_flops(shared, tokens)
        _close(out[0])
    return out


def _block_node(path: str, block: nn.Module, kind: str, tokens: int, rope_axes: list[int] | None) -> UnitNode:
    children: list[UnitNode] = []
    attn = getattr(block, "attention", None)
    if attn is not None and is_attention(attn):
        children.append(_attention_node(f"{path}.attention", attn, tokens, rope_axes))
    ffn = getattr(block, "feed_forward", None)
    if ffn is not None and is_moe(ffn):
        children.extend(_moe_nodes(f"{path}.feed_forward", ffn, tokens))
    elif ffn is not None and is_dense_ffn(ffn):
        children.append(_ffn_node(f"{path}.feed_forward", ffn, tokens, "ffn"))
    dim = getattr(block, "dim", None) or (attn.to_q.in_features if attn is not None else None)
    adaln = getattr(block, "adaLN_modulation", None)
    constraints: dict[str, Any] = {"dim": dim, "dim_prunable": False}
    if adaln is not None:
        # adaLN emits scale/gate for attention and FFN over the residual width: 4*dim rows that no
        # head or channel pruning touches, so the residual width stays whole
        constraints["adaln_out"] = _last_linear(adaln).out_features
    if kind == "block":
        policies: tuple[str, ...] = ("drop_block", "linear_replace")
    else:
        # Refiners are the only modality-specific blocks (two per stream in Z-Image); their output
        # feeds every main layer, so dropping one removes half of that stream's preparation. They
        # are a few % of parameters, so width pruning is allowed and dropping is not.
        policies = ()
    fixed_flops = _linear_flops(adaln, 1.0) if adaln is not None else 0.0
    if not children and adaln is None:  # a block replaced by a fitted linear map (surgery.LinearBlock): every token
        fixed_flops = _linear_flops(block, tokens)
    node = UnitNode(path=path, kind=kind, level="block", params=count_params(block), flops=0.0, policies=policies,
                    constraints=constraints, children=children)
    node.flops = sum(c.flops for c in children) + fixed_flops
    node = _close(node)
    if "drop_block" in policies:
        node.min_params, node.min_flops = 0, 0.0
    return node


def _last_linear(module: nn.Module) -> nn.Linear:
    lins = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return lins[-1]


def _close(node: UnitNode) -> UnitNode:
    """Fill fixed_* and min_* from the children (min of a unit group is set by its builder)."""
    node.fixed_params = node.params - sum(c.params for c in node.children)
    node.fixed_flops = node.flops - sum(c.flops for c in node.children)
    if node.fixed_params < 0:
        raise TmpbenchError(f"{node.path or 'model'}: children count more parameters than the node; shared weights?")
    if node.level != "unit":
        node.min_params = node.fixed_params + sum(c.min_params for c in node.children)
        node.min_flops = node.fixed_flops + sum(c.min_flops for c in node.children)
    return node


def _remainder_flops(model: nn.Module, block_lists: set[str], tokens: dict[str, int]) -> float:
    total = 0.0
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Linear) or name.split(".", 1)[0] in block_lists:
            continue
        if "adaLN" in name or name.startswith("t_embedder"):
            t = 1
        elif name.startswith("all_x_embedder"):
            t = tokens["image"]
        elif name.startswith(("cap_embedder", "siglip_embedder")):
            t = tokens["caption"]
        else:  # final layer and anything else acts on the unified sequence
            t = tokens["main"]
        total += 2.0 * t * mod.in_features * mod.out_features
    return total


def build_unit_tree(
    model: nn.Module,
    *,
    size: int | None = None,
    num_stages: int = 4,
    vae_factor: int = DEFAULT_VAE_FACTOR,
    caption_tokens: int = DEFAULT_CAPTION_TOKENS,
) -> UnitTree:
    """Build the unit tree of a Z-Image-family transformer (dense or MoE FFN), on any device.

    Only shapes are read, so a meta-device full-size model works. ``size`` is the image side in
    pixels the FLOPs are counted at (default 1024); ``num_stages`` splits the main ``layers``
    into that many contiguous stages. Raises TmpbenchError when the model has no block lists this
    module recognises.
    """
    size = DEFAULT_SIZE if size is None else int(size)
    if size <= 0:
        raise TmpbenchError(f"size must be a positive pixel count, got {size}")
    if num_stages < 1:
        raise TmpbenchError(f"num_stages must be >= 1, got {num_stages}")
    patch = int(getattr(model, "all_patch_size", (2,))[0])
    side = size / vae_factor / patch
    if side < 1 or side != int(side):
        raise TmpbenchError(
            f"size {size} is not a multiple of vae_factor*patch = {vae_factor * patch}; pick e.g. "
            f"{max(1, round(side)) * vae_factor * patch}"
        )
    img = _pad(int(side) ** 2)
    cap = _pad(int(caption_tokens))
    tokens = {"image": img, "caption": cap, "main": img + cap}
    rope_axes = list(getattr(model, "axes_dims", []) or []) or None

    lists = [(name, getattr(model, name)) for name in BLOCK_LISTS if isinstance(getattr(model, name, None), nn.ModuleList)]
    if not lists:
        raise TmpbenchError(
            f"{type(model).__name__} has none of the block lists {', '.join(BLOCK_LISTS)}; the unit tree "
            "supports Z-Image-family transformers (dense or MoE feed-forward)"
        )
    stages: list[UnitNode] = []
    for name, blocks in lists:
        kind, stream = BLOCK_LISTS[name]
        t = tokens[stream]
        nodes = [_block_node(f"{name}.{i}", b, kind, t, rope_axes) for i, b in enumerate(blocks)]
        if not nodes:
            continue
        ranges = _split(len(nodes), num_stages if name == "layers" else 1)
        for lo, hi in ranges:
            part = nodes[lo:hi]
            st = UnitNode(path=f"{name}[{lo}:{hi}]", kind="stage", level="stage",
                          params=sum(n.params for n in part), flops=sum(n.flops for n in part),
                          constraints={"blocks": [lo, hi], "list": name, "tokens": t}, children=part)
            stages.append(_close(st))
    total = count_params(model)
    in_blocks = {name for name, _ in lists}
    root = UnitNode(path="", kind="model", level="model", params=total,
                    flops=sum(s.flops for s in stages) + _remainder_flops(model, in_blocks, tokens),
                    constraints={"image_tokens": img, "caption_tokens": cap, "rope_axes_dims": rope_axes},
                    children=stages)
    _close(root)
    return UnitTree(root=root, size=size, image_tokens=img, caption_tokens=cap, model_class=type(model).__name__)


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    parts = max(1, min(parts, n))
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i] < bounds[i + 1]]


# --------------------------------------------------------------------------------------------
# printing
# --------------------------------------------------------------------------------------------
def human(n: float) -> str:
    """1234567 -> '1.23M' (k, M, G, T)."""
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.4g}"


def format_tree(tree: UnitTree, depth: int = 2) -> str:
    """Indented text view down to ``depth`` (0 = model only, 4 = unit groups)."""
    lines = [
        f"{tree.model_class}: {human(tree.params)} params, {human(tree.flops)} FLOPs at {tree.size}px "
        f"({tree.image_tokens} image + {tree.caption_tokens} caption tokens), min feasible {human(tree.min_params)}"
    ]

    def visit(node: UnitNode) -> None:
        if node.depth > depth or node.level == "model":
            for c in node.children if node.level == "model" else ():
                visit(c)
            return
        label = node.path.rsplit(".", 1)[-1] if node.level in ("component",) else node.path
        if node.level == "unit":
            label = f"{'expert ' if node.constraints.get('per_expert') else ''}{node.kind} x{node.count}"
        pol = ",".join(node.policies) or "-"
        extra = ""
        if node.level == "component":
            keys = {"attention": ("heads", "kv_heads", "head_dim"), "moe": ("experts", "top_k")}.get(node.kind, ("channels",))
            extra = " " + " ".join(f"{k}={node.constraints[k]}" for k in keys if k in node.constraints)
        lines.append(
            f"{'  ' * node.depth}{label:<28} {node.kind:<14} {human(node.params):>8}  {human(node.flops):>8} FLOPs  [{pol}]{extra}"
        )
        for c in node.children:
            visit(c)

    visit(tree.root)
    return "\n".join(lines)
