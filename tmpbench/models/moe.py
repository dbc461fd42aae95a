"""One view of a mixture-of-experts block, whatever the module layout behind it.

Expert-pruning code (scoring, surgery, strategy) is written once against :class:`MoEBlockView`
and runs on every MoE model the project knows:

* **expert modules** (``layout == "expert-modules"``): HunyuanImage-3.0's ``HunyuanMoE`` and the
  tiny-moe reference. ``gate.wg`` is the router ``Linear(hidden, E)``, ``gate.moe_topk`` the top-k,
  ``experts`` an ``nn.ModuleList`` whose items hold a fused ``gate_and_up_proj`` ``Linear(hidden, 2I)``
  and a ``down_proj`` ``Linear(I, hidden)``, ``shared_mlp`` the shared expert. The forward pass
  computes ``down(x1 * silu(x2))`` with ``x1, x2 = gate_and_up_proj(x).chunk(2)``: the first half
  of the fused rows is the *up* projection, the second half the *gate*.
* **fused 3-D experts** (``layout == "fused-3d"``): transformers 5.x ``HunYuanMoEV1Moe`` (Hunyuan-A13B).
  ``gate.wg`` and ``gate.top_k``; ``experts.gate_up_proj`` is one ``Parameter(E, 2I, hidden)`` and
  ``experts.down_proj`` one ``Parameter(E, hidden, I)``; the first half of the fused rows is the
  *gate*, the second the *up* projection; ``shared_mlp`` has separate gate/up/down Linears.

The per-expert tensors always come back in ``nn.Linear`` orientation (``gate_up``: ``(2I, hidden)``,
``down``: ``(hidden, I)``), so expert ``j`` of any layout is sliced the same way. Two layout-level
writes (:meth:`MoEBlockView.keep_experts`, :meth:`MoEBlockView.keep_intermediate`) are the only
places that know how to physically shrink each layout; strategy and index bookkeeping live elsewhere.

Example::

    >>> blocks = find_moe_blocks(model)                       # doctest: +SKIP
    >>> blocks[0].num_experts, blocks[0].top_k                # doctest: +SKIP
    (64, 8)
    >>> blocks[0].router_weight[3]                            # router row of expert 3  # doctest: +SKIP
    >>> blocks[0].keep_experts([0, 2, 5, 7])                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from tmpbench.errors import TmpbenchError

LAYOUT_EXPERT_MODULES = "expert-modules"
LAYOUT_FUSED_3D = "fused-3d"


def _is_moe_block(module: nn.Module) -> bool:
    gate = getattr(module, "gate", None)
    experts = getattr(module, "experts", None)
    if gate is None or experts is None or not isinstance(getattr(gate, "wg", None), nn.Linear):
        return False
    if isinstance(experts, nn.ModuleList):
        return len(experts) > 0 and all(hasattr(e, "gate_and_up_proj") and hasattr(e, "down_proj") for e in experts)
    return isinstance(getattr(experts, "gate_up_proj", None), torch.Tensor) and isinstance(
        getattr(experts, "down_proj", None), torch.Tensor
    )


def _layer_index(name: str, block: nn.Module) -> int | None:
    for holder in (block.gate, block):
        idx = getattr(holder, "layer_idx", None)
        if isinstance(idx, int):
            return idx
    parts = name.split(".")
    for before, part in zip(parts, parts[1:]):
        if before == "layers" and part.isdigit():
            return int(part)
    return None


class MoEBlockView:
    """Layout-independent access to one MoE block (router, routed experts, shared expert, top-k).

    ``name`` is the block's qualified module name, ``block`` the module itself, ``layer_idx`` its
    decoder-layer index (``None`` if unknown). Tensors returned by the ``expert_*`` accessors share
    storage with the model; edit them under ``torch.no_grad()``.
    """

    def __init__(self, name: str, block: nn.Module) -> None:
        if not _is_moe_block(block):
            raise TmpbenchError(
                f"module {name!r} ({type(block).__name__}) is not an MoE block: expected gate.wg and "
                f"experts (a ModuleList with gate_and_up_proj/down_proj, or fused gate_up_proj/down_proj)"
            )
        self.name = name
        self.block = block
        self.layout = LAYOUT_EXPERT_MODULES if isinstance(block.experts, nn.ModuleList) else LAYOUT_FUSED_3D
        self.layer_idx = _layer_index(name, block)

    def __repr__(self) -> str:
        return (
            f"MoEBlockView(name={self.name!r}, layout={self.layout!r}, num_experts={self.num_experts}, "
            f"top_k={self.top_k}, hidden={self.hidden_size}, intermediate={self.intermediate_size}, "
            f"shared={self.shared is not None})"
        )

    # routing ------------------------------------------------------------------------------
    @property
    def router(self) -> nn.Linear:
        """The router ``gate.wg``: ``Linear(hidden, num_experts)``; row ``j`` scores expert ``j``."""
        return self.block.gate.wg

    @property
    def router_weight(self) -> torch.Tensor:
        """Router weight ``(num_experts, hidden)`` (the Parameter itself)."""
        return self.router.weight

    @property
    def router_bias(self) -> torch.Tensor | None:
        return self.router.bias

    @property
    def num_experts(self) -> int:
        return int(self.router.out_features)

    @property
    def _top_k_attr(self) -> str:
        return "moe_topk" if hasattr(self.block.gate, "moe_topk") else "top_k"

    @property
    def top_k(self) -> int:
        """Experts each token is routed to (``gate.moe_topk`` or ``gate.top_k``)."""
        return int(getattr(self.block.gate, self._top_k_attr))

    @top_k.setter
    def top_k(self, value: int) -> None:
        check_top_k(value, self.num_experts, where=self.name)
        setattr(self.block.gate, self._top_k_attr, int(value))

    # sizes --------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return int(self.router.in_features)

    @property
    def intermediate_size(self) -> int:
        """Width ``I`` of one routed expert (half the fused gate/up rows)."""
        return int(self.expert_down(0).shape[1])

    @property
    def gate_up_halves(self) -> tuple[str, str]:
        """What the first and second half of the fused rows are: ``("up", "gate")`` or ``("gate", "up")``."""
        return ("up", "gate") if self.layout == LAYOUT_EXPERT_MODULES else ("gate", "up")

    # routed experts -----------------------------------------------------------------------
    def _check_expert(self, j: int) -> int:
        if not 0 <= j < self.num_experts:
            raise TmpbenchError(f"expert index {j} is out of range for {self.name!r}; use 0..{self.num_experts - 1}")
        return j

    def expert_gate_up(self, j: int) -> torch.Tensor:
        """Fused gate/up weight of expert ``j``, ``(2I, hidden)`` (a view into the model)."""
        self._check_expert(j)
        if self.layout == LAYOUT_EXPERT_MODULES:
            return self.block.experts[j].gate_and_up_proj.weight
        return self.block.experts.gate_up_proj[j]

    def expert_down(self, j: int) -> torch.Tensor:
        """Down-projection weight of expert ``j``, ``(hidden, I)`` (a view into the model)."""
        self._check_expert(j)
        if self.layout == LAYOUT_EXPERT_MODULES:
            return self.block.experts[j].down_proj.weight
        return self.block.experts.down_proj[j]

    def expert_tensors(self, j: int) -> dict[str, torch.Tensor]:
        """All tensors of expert ``j``: ``gate_up.weight``, ``down.weight`` and biases where present."""
        out = {"gate_up.weight": self.expert_gate_up(j), "down.weight": self.expert_down(j)}
        if self.layout == LAYOUT_EXPERT_MODULES:
            expert = self.block.experts[j]
            if expert.gate_and_up_proj.bias is not None:
                out["gate_up.bias"] = expert.gate_and_up_proj.bias
            if expert.down_proj.bias is not None:
                out["down.bias"] = expert.down_proj.bias
        return out

    def stacked_gate_up(self) -> torch.Tensor:
        """``(E, 2I, hidden)``: the Parameter itself for fused layouts, a detached stack otherwise."""
        if self.layout == LAYOUT_FUSED_3D:
            return self.block.experts.gate_up_proj
        return torch.stack([e.gate_and_up_proj.weight.detach() for e in self.block.experts])

    def stacked_down(self) -> torch.Tensor:
        """``(E, hidden, I)``: the Parameter itself for fused layouts, a detached stack otherwise."""
        if self.layout == LAYOUT_FUSED_3D:
            return self.block.experts.down_proj
        return torch.stack([e.down_proj.weight.detach() for e in self.block.experts])

    @property
    def expert_param_count(self) -> int:
        """Parameters of ONE routed expert (weights and biases)."""
        return sum(int(t.numel()) for t in self.expert_tensors(0).values())

    @property
    def routed_param_count(self) -> int:
        return self.num_experts * self.expert_param_count

    @property
    def router_param_count(self) -> int:
        return sum(int(p.numel()) for p in self.router.parameters())

    # shared expert ------------------------------------------------------------------------
    @property
    def shared(self) -> nn.Module | None:
        """The shared expert (``shared_mlp``), applied to every token; ``None`` if the block has none."""
        return getattr(self.block, "shared_mlp", None)

    @property
    def shared_intermediate_size(self) -> int:
        """Width of the shared expert (0 without one); both layouts name its output Linear ``down_proj``."""
        return 0 if self.shared is None else int(self.shared.down_proj.weight.shape[1])

    @property
    def shared_param_count(self) -> int:
        return 0 if self.shared is None else sum(int(p.numel()) for p in self.shared.parameters())

    @property
    def param_count(self) -> int:
        """Router + routed experts + shared expert."""
        return self.router_param_count + self.routed_param_count + self.shared_param_count

    # index helpers ------------------------------------------------------------------------
    def intermediate_rows(self, channels: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Rows of the fused gate/up weight that carry intermediate ``channels`` (both halves).

        Keep these rows of ``gate_up`` and the same ``channels`` as columns of ``down``.
        """
        idx = _as_index(channels, self.intermediate_size, "intermediate channel", self.name)
        return torch.cat([idx, idx + self.intermediate_size])

    # layout-level writes ------------------------------------------------------------------
    @torch.no_grad()
    def keep_experts(self, indices: Sequence[int] | torch.Tensor) -> None:
        """Physically keep only the routed experts ``indices`` (in that order) and their router rows.

        ``top_k`` must stay <= the number kept; lower it first if needed.
        """
        idx = _as_index(indices, self.num_experts, "expert", self.name)
        if len(idx) < self.top_k:
            raise TmpbenchError(
                f"keeping {len(idx)} experts in {self.name!r} leaves fewer than top_k={self.top_k}; "
                f"keep at least {self.top_k} or lower top_k first"
            )
        _slice_linear_rows(self.router, idx)
        block = self.block
        if self.layout == LAYOUT_EXPERT_MODULES:
            block.experts = nn.ModuleList([block.experts[int(i)] for i in idx])
        else:
            experts = block.experts
            experts.gate_up_proj = nn.Parameter(experts.gate_up_proj.data[idx])  # advanced indexing copies: no second transient copy
            experts.down_proj = nn.Parameter(experts.down_proj.data[idx])
            experts.num_experts = len(idx)
        for holder in (block, block.gate):
            if isinstance(getattr(holder, "num_experts", None), int):
                holder.num_experts = len(idx)

    @torch.no_grad()
    def keep_intermediate(self, channels: Sequence[int] | torch.Tensor) -> None:
        """Keep intermediate ``channels`` in EVERY routed expert (fused layouts need one width).

        ``channels`` is one index list for all experts, or an ``(experts, kept)`` table giving each
        expert its own kept channels (the same number for every expert).
        """
        table = torch.as_tensor(channels, dtype=torch.long)
        if table.dim() == 2:
            if table.shape[0] != self.num_experts:
                raise TmpbenchError(
                    f"per-expert channels for {self.name!r} have {table.shape[0]} rows; expected one per expert ({self.num_experts})"
                )
            idx = [_as_index(row, self.intermediate_size, "intermediate channel", self.name) for row in table]
        else:
            idx = [_as_index(channels, self.intermediate_size, "intermediate channel", self.name)] * self.num_experts
        width, full = len(idx[0]), self.intermediate_size  # read before the first cut changes it
        if self.layout == LAYOUT_EXPERT_MODULES:
            for expert, i in zip(self.block.experts, idx):
                _slice_linear_rows(expert.gate_and_up_proj, torch.cat([i, i + full]))
                _slice_linear_cols(expert.down_proj, i)
                if isinstance(getattr(expert, "intermediate_size", None), int):
                    # HunyuanMLP stores the fused (2I) width under this name
                    expert.intermediate_size = 2 * width
        else:
            experts = self.block.experts
            rows = torch.stack([torch.cat([i, i + full]) for i in idx])  # (E, 2I')
            gu = experts.gate_up_proj.data
            experts.gate_up_proj = nn.Parameter(torch.gather(gu, 1, rows[:, :, None].expand(-1, -1, gu.shape[2])))
            dn = experts.down_proj.data
            cols = torch.stack(idx)  # (E, I')
            experts.down_proj = nn.Parameter(torch.gather(dn, 2, cols[:, None, :].expand(-1, dn.shape[1], -1)))
            experts.intermediate_dim = width
            config = getattr(experts, "config", None)
            row_bytes = width * experts.down_proj.element_size()
            if row_bytes % 16 and getattr(config, "_experts_implementation", None) == "grouped_mm":
                # torch._grouped_mm needs 16-byte aligned strides; the eager loop computes the same result
                config._experts_implementation = "eager"


def check_top_k(top_k: Any, num_experts: int, where: str = "MoE block") -> None:
    """Raise a one-line TmpbenchError unless ``1 <= top_k <= num_experts``."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= num_experts:
        raise TmpbenchError(
            f"top_k={top_k!r} is invalid for {where} with {num_experts} experts; use an integer in 1..{num_experts}"
        )


def _as_index(values: Sequence[int] | torch.Tensor, size: int, what: str, where: str) -> torch.Tensor:
    idx = torch.as_tensor(values, dtype=torch.long).flatten()
    if idx.numel() == 0:
        raise TmpbenchError(f"no {what} indices given for {where!r}; keep at least one")
    if int(idx.min()) < 0 or int(idx.max()) >= size:
        raise TmpbenchError(f"{what} indices for {where!r} must be in 0..{size - 1}; got {idx.tolist()}")
    if len(torch.unique(idx)) != len(idx):
        raise TmpbenchError(f"{what} indices for {where!r} contain duplicates: {idx.tolist()}")
    return idx


def _slice_linear_rows(linear: nn.Linear, idx: torch.Tensor) -> None:
    linear.weight = nn.Parameter(linear.weight.data[idx])
    if linear.bias is not None:
        linear.bias = nn.Parameter(linear.bias.data[idx])
    linear.out_features = len(idx)


def _slice_linear_cols(linear: nn.Linear, idx: torch.Tensor) -> None:
    linear.weight = nn.Parameter(linear.weight.data[:, idx])
    linear.in_features = len(idx)


def find_moe_blocks(model: nn.Module) -> list[MoEBlockView]:
    """Every MoE block in ``model``, in module order (outermost match only).

    Works on HunyuanImage-3.0 (``model.layers.N.mlp``), transformers' HunYuanMoEV1 and tiny-moe
    (``layers.N.feed_forward``). Returns ``[]`` for a dense model.
    """
    views: list[MoEBlockView] = []
    taken: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in taken):
            continue
        if _is_moe_block(module):
            views.append(MoEBlockView(name, module))
            taken.append(name)
    return views


def moe_config_lists(blocks: Sequence[MoEBlockView]) -> dict[str, list[int]]:
    """Per-layer ``num_experts``, ``moe_topk``, ``moe_intermediate_size`` and ``shared_intermediate_size``.

    Write these into a pruned model's config so that it loads back with the pruned shapes
    (tiny-moe: ``model.register_to_config(**lists)``). transformers' HunYuanMoEV1Config cannot hold
    per-layer expert counts or widths (its experts read one ``num_experts``/``intermediate_size``).
    """
    return {
        "num_experts": [b.num_experts for b in blocks],
        "moe_topk": [b.top_k for b in blocks],
        "moe_intermediate_size": [b.intermediate_size for b in blocks],
        "shared_intermediate_size": [b.shared_intermediate_size for b in blocks],
    }
