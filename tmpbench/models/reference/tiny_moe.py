"""tiny-moe: a Z-Image DiT whose main-layer FFNs are HunyuanImage-3.0-style MoE blocks.

:class:`TinyMoETransformer` subclasses diffusers' ``ZImageTransformer2DModel`` and keeps its
interface, forward signature, config round trip and omni (editing) mode; only each
``layers[i].feed_forward`` becomes a :class:`TinyMoEBlock` in the HunyuanImage-3.0 module layout:

* ``gate.wg``: router ``Linear(dim, E, bias=False)``; ``gate.moe_topk``: experts per token;
* ``experts``: ``ModuleList`` of :class:`TinyMoEMLP` (fused ``gate_and_up_proj`` ``Linear(dim, 2I)``,
  ``down_proj`` ``Linear(I, dim)``, ``down(x1 * silu(x2))`` as in HunyuanImage-3.0's ``HunyuanMLP``);
* ``shared_mlp``: a :class:`TinyMoEMLP` of width ``num_shared_expert * I`` seen by every token.

Routing is softmax -> top-k -> renormalise (HunyuanImage-3.0's ``easy_topk``). After a forward pass
each block holds ``aux_loss`` (the Switch-style load-balancing loss ``E * sum_e f_e * P_e``, 1.0 when
perfectly balanced) and ``expert_counts``; the model's :attr:`TinyMoETransformer.aux_loss` sums
them over layers. Expert-pruning code sees these blocks through :mod:`tmpbench.models.moe`.

This module holds the architecture only: the tiny pipeline around it (tokenizer, text encoder,
pixel-space autoencoder, sampler) is :mod:`tmpbench.models.reference.tiny_zimage`'s, and the
``tiny-moe`` registry entry is in :mod:`tmpbench.models.reference.entries`.

Example::

    >>> model = TinyMoETransformer(**tiny_moe_config())      # doctest: +SKIP
    >>> out = model(x=[latent], t=t, cap_feats=[caption]).sample  # doctest: +SKIP
    >>> loss = mse + 0.01 * model.aux_loss                    # doctest: +SKIP
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from diffusers.models.transformers.transformer_z_image import ZImageTransformer2DModel
from torch import nn

from tmpbench.errors import TmpbenchError
from tmpbench.models.moe import check_top_k


class TinyMoEMLP(nn.Module):
    """SiLU-gated MLP with a fused gate/up projection (HunyuanImage-3.0 ``HunyuanMLP`` layout)."""

    def __init__(self, dim: int, intermediate_size: int, bias: bool = False) -> None:
        super().__init__()
        self.gate_and_up_proj = nn.Linear(dim, 2 * intermediate_size, bias=bias)
        self.down_proj = nn.Linear(intermediate_size, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up, gate = self.gate_and_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(up * F.silu(gate))


class TinyMoEGate(nn.Module):
    """Router: ``wg`` scores the experts, the top ``moe_topk`` are kept and renormalised."""

    def __init__(self, dim: int, num_experts: int, moe_topk: int, layer_idx: int | None = None) -> None:
        super().__init__()
        self.wg = nn.Linear(dim, num_experts, bias=False)
        self.moe_topk = moe_topk
        self.layer_idx = layer_idx

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``tokens`` (T, dim) -> (router probabilities (T, E), top-k weights (T, k), top-k indices (T, k))."""
        check_top_k(self.moe_topk, self.wg.out_features, where=f"tiny-moe layer {self.layer_idx}")
        probs = F.softmax(self.wg(tokens).float(), dim=-1)
        weights, index = torch.topk(probs, self.moe_topk, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-8)
        return probs, weights.to(tokens.dtype), index


class TinyMoEBlock(nn.Module):
    """Shared expert + top-k routed experts, HunyuanImage-3.0 ``HunyuanMoE`` layout.

    After ``forward``: ``aux_loss`` (scalar tensor, differentiable) and ``expert_counts``
    (``(E,)`` tokens routed to each expert, detached).
    """

    def __init__(
        self,
        dim: int,
        num_experts: int,
        moe_topk: int,
        intermediate_size: int,
        num_shared_expert: int = 1,
        layer_idx: int | None = None,
        shared_intermediate_size: int | None = None,
    ) -> None:
        super().__init__()
        check_top_k(moe_topk, num_experts, where=f"tiny-moe layer {layer_idx}")
        self.layer_idx = layer_idx
        self.num_experts = num_experts
        self.gate = TinyMoEGate(dim, num_experts, moe_topk, layer_idx)
        self.experts = nn.ModuleList([TinyMoEMLP(dim, intermediate_size) for _ in range(num_experts)])
        shared_width = intermediate_size * num_shared_expert
        if shared_intermediate_size is not None:
            shared_width = shared_intermediate_size
        self.shared_mlp = TinyMoEMLP(dim, shared_width) if num_shared_expert > 0 and shared_width > 0 else None
        self.aux_loss: torch.Tensor | None = None
        self.expert_counts: torch.Tensor | None = None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        shape = hidden_states.shape
        tokens = hidden_states.reshape(-1, shape[-1])
        probs, weights, index = self.gate(tokens)
        num_experts = probs.shape[-1]

        routed = torch.zeros_like(tokens)
        for j, expert in enumerate(self.experts):
            token_idx, slot = torch.where(index == j)
            if token_idx.numel() == 0:
                continue
            out = expert(tokens[token_idx]) * weights[token_idx, slot, None]
            routed.index_add_(0, token_idx, out.to(routed.dtype))

        counts = torch.bincount(index.flatten(), minlength=num_experts)
        fraction = counts.to(probs.dtype) / max(index.numel(), 1)
        self.aux_loss = num_experts * torch.sum(fraction * probs.mean(dim=0))
        self.expert_counts = counts.detach()

        out = routed.reshape(shape)
        if self.shared_mlp is not None:
            out = out + self.shared_mlp(hidden_states)
        return out


def _per_layer(value: Any, n_layers: int, name: str) -> list[int]:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n_layers
    if len(values) != n_layers:
        raise TmpbenchError(f"{name} has {len(values)} entries but n_layers={n_layers}; give one per layer or an int")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise TmpbenchError(f"{name}={value!r} must hold positive integers")
    return values


class TinyMoETransformer(ZImageTransformer2DModel):
    """``ZImageTransformer2DModel`` with MoE FFNs in the main layers (see the module docstring).

    Extra config fields (int, or a per-layer list): ``num_experts``, ``moe_topk``,
    ``moe_intermediate_size``, ``num_shared_expert`` and ``shared_intermediate_size`` (default
    ``None``: ``moe_intermediate_size * num_shared_expert`` as in HunyuanImage-3.0; set it when the
    shared expert is pruned to its own width). Everything else is Z-Image's.
    """

    _no_split_modules = ["ZImageTransformerBlock"]

    @register_to_config
    def __init__(
        self,
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=12,
        dim=128,
        n_layers=4,
        n_refiner_layers=1,
        n_heads=4,
        n_kv_heads=4,
        norm_eps=1e-5,
        qk_norm=True,
        cap_feat_dim=64,
        siglip_feat_dim=None,
        rope_theta=256.0,
        t_scale=1000.0,
        axes_dims=[8, 12, 12],
        axes_lens=[512, 64, 64],
        num_experts=8,
        moe_topk=2,
        moe_intermediate_size=96,
        num_shared_expert=1,
        shared_intermediate_size=None,
    ) -> None:
        experts = _per_layer(num_experts, n_layers, "num_experts")
        topks = _per_layer(moe_topk, n_layers, "moe_topk")
        widths = _per_layer(moe_intermediate_size, n_layers, "moe_intermediate_size")
        shared = (
            [num_shared_expert] * n_layers
            if isinstance(num_shared_expert, int) and not isinstance(num_shared_expert, bool)
            else list(num_shared_expert)
        )
        if len(shared) != n_layers or any(not isinstance(s, int) or s < 0 for s in shared):
            raise TmpbenchError(f"num_shared_expert={num_shared_expert!r} must be an int >= 0 or one per layer")
        shared_widths = (
            [None] * n_layers
            if shared_intermediate_size is None
            else _per_layer(shared_intermediate_size, n_layers, "shared_intermediate_size")
        )
        for i, (e, k) in enumerate(zip(experts, topks)):
            check_top_k(k, e, where=f"tiny-moe layer {i} (moe_topk)")
        if dim % n_heads or dim // n_heads != sum(axes_dims):
            raise TmpbenchError(
                f"axes_dims={list(axes_dims)} must sum to the head dim dim/n_heads={dim}/{n_heads}; adjust them"
            )
        super().__init__(
            all_patch_size=all_patch_size,
            all_f_patch_size=all_f_patch_size,
            in_channels=in_channels,
            dim=dim,
            n_layers=n_layers,
            n_refiner_layers=n_refiner_layers,
            n_heads=n_heads,
            n_kv_heads=n_kv_heads,
            norm_eps=norm_eps,
            qk_norm=qk_norm,
            cap_feat_dim=cap_feat_dim,
            siglip_feat_dim=siglip_feat_dim,
            rope_theta=rope_theta,
            t_scale=t_scale,
            axes_dims=axes_dims,
            axes_lens=axes_lens,
        )
        for i, layer in enumerate(self.layers):
            layer.feed_forward = TinyMoEBlock(
                dim, experts[i], topks[i], widths[i], shared[i], layer_idx=i, shared_intermediate_size=shared_widths[i]
            )

    @property
    def moe_blocks(self) -> list[TinyMoEBlock]:
        return [layer.feed_forward for layer in self.layers]

    @property
    def aux_loss(self) -> torch.Tensor:
        """Sum of the blocks' load-balancing losses from the last forward pass (0 before any)."""
        losses = [b.aux_loss for b in self.moe_blocks if b.aux_loss is not None]
        if not losses:
            return torch.zeros((), device=self.x_pad_token.device)
        return torch.stack(losses).sum()


def tiny_moe_config(**overrides: Any) -> dict[str, Any]:
    """Default tiny-moe kwargs (~2.7M params): 32 px RGB pixel-shuffled by 2 -> 12 x 16 x 16 "latents".

    dim 128, 4 main layers with 8 experts (top-2, width 96) + 1 shared expert each, 4 heads of 32
    (RoPE axes 8+12+12), 1 noise- and 1 context-refiner layer, 64-d caption features.
    """
    # the constructor's defaults are the single source of truth
    params = inspect.signature(TinyMoETransformer.__init__).parameters
    config: dict[str, Any] = {n: p.default for n, p in params.items() if n != "self"}
    unknown = set(overrides) - set(config)
    if unknown:
        raise TmpbenchError(f"unknown tiny-moe config keys {sorted(unknown)}; known: {', '.join(sorted(config))}")
    config.update(overrides)
    return config


def build_tiny_moe(seed: int = 0, **overrides: Any) -> TinyMoETransformer:
    """A freshly initialised tiny-moe transformer (seeded)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyMoETransformer(**tiny_moe_config(**overrides))
