"""The memory arithmetic of `tmpbench fit`: exact byte counts, the formulas and a hand-computed verdict."""

from __future__ import annotations

import pytest
import torch

from tmpbench.errors import TmpbenchError
from tmpbench.models import memory
from tmpbench.models.memory import GIB, GPU, MemoryEstimate, cheapest, verdicts


def test_module_bytes_groups_by_dtype_and_counts_shared_tensors_once():
    lin = torch.nn.Linear(4, 3).to(torch.bfloat16)
    model = torch.nn.Sequential(lin, lin, torch.nn.LayerNorm(3))
    model.register_buffer("table", torch.zeros(5, dtype=torch.float16))
    assert memory.module_bytes(model) == {"bfloat16": {"params": (12 + 3) * 2, "buffers": 0},
                                         "float32": {"params": 6 * 4, "buffers": 0},
                                         "float16": {"params": 0, "buffers": 10}}
    assert memory.total_bytes(memory.module_bytes(model)) == 30 + 24 + 10


def test_formulas_by_hand():
    # HunyuanImage-3.0 at 1024 px with CFG: 32 layers x 2 (K, V) x 2 sequences x 4224 tokens x 8 KV heads x 128 x 2 bytes
    assert memory.kv_cache_bytes(2, 4224, [(8, 128)] * 32, 2) == 32 * 2 * 2 * 4224 * 8 * 128 * 2
    assert memory.linear_transient(10, [6, 6, 4], 6) == 10 * 22
    assert memory.routed_transient(10, 2, 4, 8) == 10 * 2 * (8 + 24)
    assert memory.attention_scores_bytes(2, 3, 10, 2) == 2 * 3 * 100 * 6
    assert memory.vae_decode_bytes(8, 8, 256, 2) == 2 * 3 * 64 * 257
    assert memory.experts_hit(4, 4, 1) == 1.0


def test_unknown_gpu_is_one_line_with_a_suggestion():
    with pytest.raises(TmpbenchError, match=r"^unknown --gpu 'a100-80'; did you mean 'a100-80g'.*known: rtx4090"):
        memory.gpu("a100-80")
    assert memory.gpu("H100").name == "h100"


def _estimate(**over) -> MemoryEstimate:
    base = dict(denoiser={"bfloat16": {"params": 10 * GIB, "buffers": 0}},
                components={"text_encoder": 4 * GIB, "vae": 1 * GIB},
                blocks=8 * GIB, largest_block=1 * GIB, routed_experts=0, largest_layer_experts=0, expert_hit_share=0.0,
                activations=1 * GIB, kv_cache=0, text_activations=0, vae_activations=2 * GIB,
                flops_per_step=100e12, steps=10, batch=1, tokens=4096)
    return MemoryEstimate(**{**base, **over})


def test_verdicts_hand_computed():
    # a 16 GiB card, 100 dense TFLOPs, 8 GB/s: one step computes for 1 s
    card = GPU("toy", 16, 100.0, 8.0, "toy card")
    found = {v.strategy: v for v in verdicts(_estimate(), card)}
    ctx = memory.CUDA_CONTEXT_BYTES
    # none: 10 + 4 + 1 weights, max(1, 0, 2) activations = 17 GiB + context: misses by 1.5 GiB
    assert found["none"].peak_bytes == 17 * GIB + ctx and not found["none"].fits
    assert found["none"].headroom_bytes == -(GIB + ctx)
    # model: the largest phase is the denoiser (10 + 1) > text (4) > vae (1 + 2); weights (15 GiB) cross once per image
    assert found["model"].peak_bytes == 11 * GIB + ctx and found["model"].fits
    assert found["model"].moved_per_image == 15 * GIB
    assert found["model"].slowdown == pytest.approx((10 * 1.0 + 15 * GIB / 8e9) / 10.0)
    # group: 2 GiB outside blocks + 2 blocks in flight + 1 GiB activations = 5 GiB; text phase 4, vae phase 3
    assert found["group"].peak_bytes == 5 * GIB + ctx
    # 8 GiB per step at 8 GB/s = 1.07 s > 1 s compute, overlapped; text encoder and VAE cross once per image
    step = 8 * GIB / 8e9
    assert found["group"].slowdown == pytest.approx((10 * step + 7 * GIB / 8e9) / 10.0)
    assert "expert" not in found  # a dense model has no expert strategy
    # model x1.20 (15 GiB once over 10 s of compute) loses to group x1.17 (each step 1.07 s instead of 1 s)
    assert cheapest(list(found.values())).strategy == "group"


def test_expert_offload_caches_what_fits_and_streams_the_rest():
    card = GPU("toy", 16, 100.0, 8.0, "toy card")
    est = _estimate(denoiser={"bfloat16": {"params": 20 * GIB, "buffers": 0}}, blocks=18 * GIB, largest_block=2 * GIB,
                    routed_experts=16 * GIB, largest_layer_experts=1 * GIB, expert_hit_share=1.0)
    found = {v.strategy: v for v in verdicts(est, card)}
    # resident: 4 GiB non-expert + 2 layers of experts in flight + 1 GiB activations = 7 GiB; 9 GiB of cache fill the rest
    ctx = memory.CUDA_CONTEXT_BYTES
    cache = 16 * GIB - (7 * GIB + ctx)
    assert found["expert"].peak_bytes == 16 * GIB and found["expert"].fits
    assert found["expert"].moved_per_step == 16 * GIB - cache
    assert not found["none"].fits and not found["model"].fits


def test_nothing_fits_on_a_tiny_card():
    assert cheapest(verdicts(_estimate(), GPU("toy", 1, 1.0, 1.0, "toy"))) is None
