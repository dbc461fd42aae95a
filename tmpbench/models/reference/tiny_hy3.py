"""``tiny-hy3``: HunyuanImage-3.0's decoder layout at ShapesWorld size, as a Z-Image-pipeline denoiser.

HunyuanImage-3.0 is one decoder-only MoE transformer: text tokens and image tokens share one sequence,
the timestep enters as an embedding, attention is grouped-query (GQA), and every layer's feed-forward
routes tokens to experts beside a shared expert. ``tiny-hy3`` keeps exactly that layout, built from
transformers' own HunYuan MoE classes (``HunYuanMoEV1DecoderLayer``: ``self_attn`` with
``q_proj``/``k_proj``/``v_proj``/``o_proj`` and per-head RMS norms, ``mlp`` with router ``gate.wg``,
fused 3-D ``experts`` and ``shared_mlp``), under the module path ``model.layers`` the pruning layout
``hunyuan-decoder`` reads. So every pruner, the unit tree and the surgery treat it as they treat the
80B model, while it trains on this machine.

What it does not copy: HunyuanImage-3.0's autoregressive text head, its VAE (the pixel-shuffle
stand-in of :mod:`tmpbench.models.reference.tiny_zimage` serves all references) and its causal mask
over text (one bidirectional mask here: the tiny model only denoises images).

The sequence of one sample::

    [caption features] [timestep token] ([clean source-image tokens]) [noisy image tokens]

Caption features (the tiny Qwen3 encoder's, as for tiny-dit) are projected to the model width; image
tokens are 2x2 patches of the pixel-shuffled latents with learned row/column embeddings; each token
carries a type embedding (text, timestep, clean image, noisy image). Positions are 1-D RoPE over the
sequence. The timestep embedding is both a token and added to every noisy image token. The model
predicts the flow velocity of the noisy image tokens.

The forward has :class:`diffusers.ZImageTransformer2DModel`'s signature (``x``, ``t``, ``cap_feats``;
omni mode with ``image_noise_mask`` for edits), so the same ZImagePipeline, sampler, training recipe
and adapter drive all three references.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from tmpbench.errors import TmpbenchError
from tmpbench.models.moe import check_top_k

TEXT, TIMESTEP, CLEAN_IMAGE, NOISY_IMAGE = range(4)


def hunyuan_config(dim: int, n_layers: int, n_heads: int, n_kv_heads: int, num_experts: int, moe_topk: int,
                   moe_intermediate_size: int, num_shared_expert: int, rope_theta: float, norm_eps: float):
    """The transformers ``HunYuanMoEV1Config`` of the decoder stack (eager attention, no causal mask)."""
    from transformers import HunYuanMoEV1Config

    config = HunYuanMoEV1Config(
        vocab_size=8, hidden_size=dim, intermediate_size=moe_intermediate_size, num_hidden_layers=n_layers,
        num_attention_heads=n_heads, num_key_value_heads=n_kv_heads, head_dim=dim // n_heads,
        num_experts=num_experts, moe_topk=moe_topk, num_shared_expert=num_shared_expert,
        max_position_embeddings=512, rope_theta=rope_theta, rms_norm_eps=norm_eps,
    )
    config._attn_implementation = "eager"
    config._experts_implementation = "eager"
    return config


class HY3Decoder(nn.Module):
    """``layers`` (HunYuanMoEV1 decoder layers), the final ``norm`` and the rotary embedding."""

    def __init__(self, config) -> None:
        super().__init__()
        from transformers.models.hunyuan_v1_moe.modeling_hunyuan_v1_moe import (
            HunYuanMoEV1DecoderLayer,
            HunYuanMoEV1RMSNorm,
            HunYuanMoEV1RotaryEmbedding,
        )

        self.config = config
        self.layers = nn.ModuleList(HunYuanMoEV1DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        for layer in self.layers:
            layer.self_attn.is_causal = False  # image tokens attend both ways
        self.norm = HunYuanMoEV1RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = HunYuanMoEV1RotaryEmbedding(config=config)


def _timestep_features(t: torch.Tensor, dim: int = 256, scale: float = 1000.0) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (t.float() * scale)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _load_balance(module: nn.Module, _args: tuple, out: tuple) -> None:
    """Switch-style load-balancing loss of one router, kept on the gate as ``aux_loss`` while training."""
    if not (module.training and torch.is_grad_enabled()):
        module.aux_loss = None
        return
    logits, _weights, selected = out
    probs = F.softmax(logits.float(), dim=-1)
    experts = probs.shape[-1]
    routed = F.one_hot(selected, experts).float().sum(dim=1).mean(dim=0) / selected.shape[-1]
    module.aux_loss = experts * (routed * probs.mean(dim=0)).sum()


class TinyHY3Transformer(ModelMixin, ConfigMixin):
    """HunyuanImage-3.0's decoder layout as a flow-matching image denoiser (see the module docstring)."""

    _no_split_modules = ["HunYuanMoEV1DecoderLayer"]

    @register_to_config
    def __init__(
        self,
        in_channels: int = 12,
        patch_size: int = 2,
        dim: int = 128,
        n_layers: int = 4,
        n_heads: int = 4,
        n_kv_heads: int = 2,
        cap_feat_dim: int = 64,
        num_experts: int = 8,
        moe_topk: int = 2,
        moe_intermediate_size: int = 96,
        num_shared_expert: int = 1,
        max_image_side: int = 16,
        rope_theta: float = 10000.0,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if dim % n_heads or n_heads % n_kv_heads:
            raise TmpbenchError(f"tiny-hy3: dim {dim} must divide into {n_heads} heads, and heads into {n_kv_heads} KV groups")
        check_top_k(moe_topk, num_experts, where="tiny-hy3 (moe_topk)")
        token = in_channels * patch_size * patch_size
        self.cap_embedder = nn.Sequential(nn.LayerNorm(cap_feat_dim), nn.Linear(cap_feat_dim, dim))
        self.t_embedder = nn.Sequential(nn.Linear(256, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.x_embedder = nn.Linear(token, dim)
        self.row_embed = nn.Embedding(max_image_side, dim)
        self.col_embed = nn.Embedding(max_image_side, dim)
        self.type_embed = nn.Embedding(4, dim)
        self.model = HY3Decoder(hunyuan_config(dim, n_layers, n_heads, n_kv_heads, num_experts, moe_topk,
                                               moe_intermediate_size, num_shared_expert, rope_theta, norm_eps))
        self.final_layer = nn.Linear(dim, token)
        nn.init.zeros_(self.final_layer.weight)
        nn.init.zeros_(self.final_layer.bias)
        self._init_decoder()
        for layer in self.model.layers:
            if hasattr(layer.mlp, "gate"):
                layer.mlp.gate.register_forward_hook(_load_balance)

    @torch.no_grad()
    def _init_decoder(self) -> None:
        """transformers initialises in ``post_init``; these layers are built directly, so do it here
        (normal(0, 0.02) weights as HunYuan's ``initializer_range``, unit norms)."""
        for module in self.model.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif hasattr(module, "gate_up_proj") and isinstance(module.gate_up_proj, nn.Parameter):
                nn.init.normal_(module.gate_up_proj, std=0.02)
                nn.init.normal_(module.down_proj, std=0.02)
            elif type(module).__name__.endswith("RMSNorm"):
                module.weight.fill_(1.0)

    # -- the pipeline's view -------------------------------------------------------------------
    @property
    def in_channels(self) -> int:
        return self.config.in_channels

    @property
    def aux_loss(self) -> torch.Tensor:
        """Sum of the routers' load-balancing losses from the last training forward (0 otherwise)."""
        losses = [layer.mlp.gate.aux_loss for layer in self.model.layers
                  if getattr(getattr(layer.mlp, "gate", None), "aux_loss", None) is not None]
        return torch.stack(losses).sum() if losses else torch.zeros((), device=self.x_embedder.weight.device)

    # -- tokens --------------------------------------------------------------------------------
    def _image_tokens(self, latent: torch.Tensor, kind: int) -> tuple[torch.Tensor, tuple[int, int]]:
        """(C, 1, H, W) latent -> (H/p * W/p, dim) tokens with row/column and type embeddings."""
        p = self.config.patch_size
        c, _, h, w = latent.shape
        if h % p or w % p or h // p > self.config.max_image_side or w // p > self.config.max_image_side:
            raise TmpbenchError(f"tiny-hy3: latent {h}x{w} must be a multiple of {p} and at most "
                                f"{self.config.max_image_side * p} per side")
        x = latent[:, 0].reshape(c, h // p, p, w // p, p).permute(1, 3, 0, 2, 4).reshape((h // p) * (w // p), c * p * p)
        rows = torch.arange(h // p, device=x.device).repeat_interleave(w // p)
        cols = torch.arange(w // p, device=x.device).repeat(h // p)
        emb = self.x_embedder(x.to(self.x_embedder.weight.dtype)) + self.row_embed(rows) + self.col_embed(cols)
        return emb + self.type_embed.weight[kind], (h, w)

    def _unpatchify(self, tokens: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        p = self.config.patch_size
        h, w = hw
        c = self.config.in_channels
        x = tokens.reshape(h // p, w // p, c, p, p).permute(2, 0, 3, 1, 4).reshape(c, h, w)
        return x.unsqueeze(1)

    def forward(
        self,
        x: list,
        t: torch.Tensor,
        cap_feats: list,
        return_dict: bool = True,
        siglip_feats: list | None = None,
        image_noise_mask: list | None = None,
        **_: Any,
    ) -> Transformer2DModelOutput | tuple:
        """ZImageTransformer2DModel's call: ``x[i]`` a (C, 1, H, W) latent, or in omni mode a list of
        latents whose ``image_noise_mask[i]`` entry says which are noisy (1) or clean conditions (0);
        ``cap_feats[i]`` caption features (omni: a list of segments). Returns the velocity of each
        sample's noisy latent."""
        t = torch.as_tensor(t, device=self.x_embedder.weight.device).reshape(-1)
        if t.numel() == 1 and len(x) > 1:
            t = t.expand(len(x))
        t_emb = self.t_embedder(_timestep_features(t).to(self.x_embedder.weight.dtype))  # (B, dim)
        sequences, spans = [], []
        for i, sample in enumerate(x):
            images = sample if isinstance(sample, (list, tuple)) else [sample]
            noise = image_noise_mask[i] if image_noise_mask is not None else [1] * len(images)
            caps = cap_feats[i] if isinstance(cap_feats[i], (list, tuple)) else [cap_feats[i]]
            text = self.cap_embedder(torch.cat([c for c in caps if c is not None and c.numel()], dim=0)
                                     .to(self.x_embedder.weight.dtype))
            parts = [text + self.type_embed.weight[TEXT], (t_emb[i] + self.type_embed.weight[TIMESTEP])[None]]
            span, start = None, sum(p.shape[0] for p in parts)
            for latent, is_noisy in zip(images, noise):
                tokens, hw = self._image_tokens(latent, NOISY_IMAGE if is_noisy else CLEAN_IMAGE)
                if is_noisy:
                    tokens = tokens + t_emb[i]
                    span = (start, start + tokens.shape[0], hw)
                parts.append(tokens)
                start += tokens.shape[0]
            if span is None:
                raise TmpbenchError("tiny-hy3: every sample needs one noisy image (image_noise_mask 1)")
            sequences.append(torch.cat(parts, dim=0))
            spans.append(span)
        length = max(s.shape[0] for s in sequences)
        batch = len(sequences)
        hidden = sequences[0].new_zeros(batch, length, sequences[0].shape[-1])
        valid = torch.zeros(batch, length, dtype=torch.bool, device=hidden.device)
        for i, s in enumerate(sequences):
            hidden[i, : s.shape[0]] = s
            valid[i, : s.shape[0]] = True
        # additive mask: padded keys are never attended to (every query still sees its own sample)
        mask = torch.zeros(batch, 1, length, length, dtype=hidden.dtype, device=hidden.device)
        mask = mask.masked_fill(~valid[:, None, None, :], torch.finfo(hidden.dtype).min)
        positions = torch.arange(length, device=hidden.device)[None].expand(batch, length)
        rope = self.model.rotary_emb(hidden, positions)
        for layer in self.model.layers:
            hidden = layer(hidden, attention_mask=mask, position_ids=positions, position_embeddings=rope)
        hidden = self.model.norm(hidden)
        out = [self._unpatchify(self.final_layer(hidden[i, a:b]), hw) for i, (a, b, hw) in enumerate(spans)]
        if not return_dict:
            return (out,)
        return Transformer2DModelOutput(sample=out)


def tiny_hy3_kwargs(in_channels: int, dim: int, n_layers: int, n_heads: int, cap_feat_dim: int, hy3: dict) -> dict:
    """Constructor kwargs of a :class:`TinyHY3Transformer` from a reference config and its ``hy3`` fields."""
    return dict(in_channels=in_channels, dim=dim, n_layers=n_layers, n_heads=n_heads, cap_feat_dim=cap_feat_dim, **hy3)
