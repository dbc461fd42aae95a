"""Parameter and FLOP counting: meta-device skeletons and the analytic FLOP formula."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

pytest.importorskip("diffusers")

from test_flux_adapter import tiny_flux_pipeline  # noqa: E402
from test_zimage_adapter import tiny_zimage_pipeline  # noqa: E402

from tmpbench.errors import TmpbenchError  # noqa: E402
from tmpbench.models.counting import build_meta, count_flops, count_params, flop_table  # noqa: E402
from tmpbench.models.flux import FluxGenerator  # noqa: E402
from tmpbench.models.zimage import ZImageGenerator  # noqa: E402


def matmul_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """SDPA written with matmuls, so FlopCounterMode sees the attention FLOPs on CPU."""
    scale = scale if scale is not None else query.shape[-1] ** -0.5
    scores = query @ key.transpose(-2, -1) * scale
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    return scores.softmax(-1) @ value


def measured_flops(fn, monkeypatch) -> int:
    monkeypatch.setattr(F, "scaled_dot_product_attention", matmul_attention)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_zimage_meta_is_6_15b_and_cheap():
    start = time.perf_counter()
    meta = build_meta("zimage")
    elapsed = time.perf_counter() - start
    assert next(meta.parameters()).device.type == "meta"
    assert count_params(meta) == 6_154_908_736
    assert count_params("zimage") == 6_154_908_736
    assert math.isclose(count_params("zimage"), 6.15e9, rel_tol=0.005)
    assert elapsed < 30


def test_flux_meta_matches_the_published_12b():
    assert count_params("flux") == 11_891_178_560


def test_zimage_analytic_flops_match_a_flop_counter(monkeypatch):
    gen = ZImageGenerator(tiny_zimage_pipeline(), max_sequence_length=16)
    tr = gen.denoiser
    latents = [torch.randn(4, 1, 8, 8)]  # 32 px through the tiny VAE (factor 4)
    caps = [torch.randn(20, 32)]
    measured = measured_flops(lambda: tr(latents, torch.tensor([0.5]), caps, return_dict=False), monkeypatch)
    analytic = count_flops(tr, 32, text_tokens=20, latent_factor=4)
    assert analytic == measured
    # the generator form reads the latent factor from its pipeline
    assert count_flops(gen, 32, text_tokens=20) == analytic


def test_flux_analytic_flops_match_a_flop_counter(monkeypatch):
    gen = FluxGenerator(tiny_flux_pipeline(), max_sequence_length=16)
    tr = gen.denoiser
    img, txt = 16, 16  # 32 px -> 8x8 latents -> 4x4 packed tokens
    kwargs = dict(
        hidden_states=torch.randn(1, img, 16),
        encoder_hidden_states=torch.randn(1, txt, 32),
        pooled_projections=torch.randn(1, 32),
        timestep=torch.tensor([0.5]),
        img_ids=torch.zeros(img, 3),
        txt_ids=torch.zeros(txt, 3),
        return_dict=False,
    )
    measured = measured_flops(lambda: tr(**kwargs), monkeypatch)
    assert count_flops(gen, 32, text_tokens=txt) == measured


def test_flops_follow_the_formula_and_scale_with_resolution():
    meta = build_meta("zimage")
    table = flop_table(meta, 1024, text_tokens=128)
    img, txt = (1024 // 16) ** 2, 128
    dim = 3840
    # a main layer's attention: 4 * seq^2 * dim; its first FFN projection: 2 * dim * hidden per token
    assert table["layers.0.attention.<attention>"] == 4 * (img + txt) ** 2 * dim
    assert table["layers.0.feed_forward.w1"] == 2 * dim * int(dim / 3 * 8) * (img + txt)
    assert table["noise_refiner.0.attention.to_q"] == 2 * dim * dim * img
    total_1024 = count_flops(meta, 1024)
    assert 5.2e13 < total_1024 < 6.5e13  # ~2 * 6.15B params * 4224 tokens, plus attention
    assert count_flops(meta, 512) < total_1024 / 3


def test_counting_errors_are_one_line():
    with pytest.raises(TmpbenchError, match="no FLOP counter for Linear"):
        count_flops(torch.nn.Linear(2, 2), 32)
    with pytest.raises(TmpbenchError, match=r"'zimage-4b' is a pruned spec"):
        count_params("zimage-4b")
    with pytest.raises(TmpbenchError, match="cannot count parameters of int"):
        count_params(3)
