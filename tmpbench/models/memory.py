"""Peak GPU memory of one generation, and which offload strategy makes a model fit a GPU.

Pure arithmetic over byte counts: :mod:`tmpbench.fit` reads the counts off real (or meta-device,
or pruned) modules and hands them here. Nothing in this module loads a model.

**Weights** are exact: :func:`module_bytes` sums ``numel * element_size`` over a module's
parameters and buffers (each shared tensor once), grouped by dtype.

**Activations** are an inference-time model, not a measurement (``torch.no_grad``, no autograd
graph, so only the tensors alive at one moment count). With ``B`` the batch of one forward (2
when classifier-free guidance batches the conditional and unconditional pass), ``T`` the tokens
one block sees, ``d`` the residual width and ``a`` the activation bytes::

    denoiser  = B * a * (2 * T * d + max over the block's components of transient(component))
                + B * H * T * T * (a + 4)       only when attention is not SDPA-flash/mem-efficient
    transient(attention or dense MLP) = T * (sum of its linears' out_features + last linear's in_features)
                                        (q, k, v and the head outputs; or gate, up, their product and the output)
    transient(routed experts)         = T * k * (d + 2 * I + I + d)
                                        (every routed copy of a token alive at once, as in a grouped-GEMM
                                        kernel: input, gate/up, product, output; an eager per-expert loop needs less)
    kv_cache  = sum over decoder layers of 2 * B * T * kv_heads * head_dim * a
                (HunyuanImage-3.0 keeps text and image tokens in one causal-decoder sequence)
    text      = a * (2 * T_text * d_text + 3 * T_text * w_text)      w_text: the encoder's widest linear
    vae       = a * (3 * C_full * H * W + 3 * H * W)     C_full: block_out_channels[1] (256 for the FLUX
                VAE, 256 for HunyuanImage-3.0's): the widest tensor that reaches full resolution, alive
                with its normalised and activated copies; plus the output image

``2 * T * d`` is the residual stream entering and leaving the block. Norm outputs, RoPE tables,
the adaLN vectors, router logits and allocator fragmentation are not counted; a fixed
:data:`CUDA_CONTEXT_BYTES` stands for the CUDA context and library workspaces that sit outside
PyTorch's allocator.

**Offload strategies** (:func:`verdicts`), each a peak (the largest of its phases: text encoding,
denoising, VAE decode) and the bytes it moves over PCIe:

* ``none``: everything resident;
* ``model``: diffusers ``enable_model_cpu_offload``: one component at a time on the GPU; each
  component crosses PCIe once per image;
* ``group``: the denoiser's blocks one at a time plus the next one prefetched on a side stream
  (diffusers ``enable_group_offload(offload_type="block_level", num_blocks_per_group=1,
  use_stream=True)``); text encoder and VAE as in ``model``; every block crosses PCIe on every
  forward, overlapped with compute. ``tmpbench run --offload group`` applies diffusers' pipeline-level
  group offloading, which streams the text encoder's and the VAE's block lists too, so for those two
  phases this peak is an upper bound; the denoising phase (:func:`denoise_phase_bytes`) is the one
  ``benchmarks/gpu_check.py`` measures;
* ``expert`` (MoE only): everything but the routed experts resident, plus a static cache of as many
  routed-expert bytes as the free memory holds and one layer's experts in flight; the rest cross PCIe
  every forward, because at thousands of image tokens per forward every expert is hit
  (:func:`experts_hit`). ``tmpbench run --offload expert`` runs it without a cache (every MoE block's
  experts streamed, :func:`tmpbench.models.offload.expert_offload`): the peak is at most this
  strategy's floor (:func:`denoise_phase_bytes`), and it moves more per step than the cached estimate.

Slowdown: a denoising step computes for ``FLOPs / (bf16 dense TFLOPs)`` seconds (peak throughput,
so real compute is slower and real slowdowns smaller) and moves ``bytes / PCIe GB/s``;
overlapped strategies take the larger of the two, ``model`` adds its once-per-image transfer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tmpbench.errors import TmpbenchError, did_you_mean

GIB = 1024**3
# CUDA context, cuBLAS/cuDNN workspaces: outside the PyTorch allocator, typically 0.3-0.6 GiB
CUDA_CONTEXT_BYTES = GIB // 2


@dataclass(frozen=True)
class GPU:
    """One GPU: memory, dense bf16 tensor throughput (no sparsity) and host-to-device bandwidth."""

    name: str
    memory_gib: float
    bf16_tflops: float
    pcie_gbs: float  # achievable pinned host-to-device GB/s, not the link's nominal rate
    description: str

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * GIB)


# Sources:
# * RTX 4090: NVIDIA Ada Lovelace architecture whitepaper (v2.01), appendix table: 24 GB GDDR6X,
#   165.2 dense FP16/BF16 tensor TFLOPS with FP32 accumulate; PCIe 4.0 x16 (31.5 GB/s nominal,
#   about 25 GB/s measured for pinned host-to-device copies).
# * A100 40GB / 80GB: NVIDIA A100 datasheet: 312 dense BF16 tensor TFLOPS; host link PCIe 4.0 x16
#   (same 25 GB/s achievable as above).
# * H100 SXM5 80GB: NVIDIA H100 datasheet: 989 dense BF16 tensor TFLOPS (1,979 with sparsity); host
#   link PCIe 5.0 x16 (63 GB/s nominal, about 50 GB/s measured host-to-device).
GPUS: dict[str, GPU] = {
    "rtx4090": GPU("rtx4090", 24, 165.2, 25.0, "GeForce RTX 4090 24GB (PCIe 4.0)"),
    "a100-40g": GPU("a100-40g", 40, 312.0, 25.0, "A100 40GB (PCIe 4.0 host link)"),
    "a100-80g": GPU("a100-80g", 80, 312.0, 25.0, "A100 80GB (PCIe 4.0 host link)"),
    "h100": GPU("h100", 80, 989.0, 50.0, "H100 SXM5 80GB (PCIe 5.0 host link)"),
}


def gpu(name: str) -> GPU:
    """The :data:`GPUS` entry ``name``; an unknown name is one line with "did you mean"."""
    key = name.strip().lower()
    if key not in GPUS:
        raise TmpbenchError(f"unknown --gpu {name!r}{did_you_mean(key, GPUS)} (known: {', '.join(GPUS)})")
    return GPUS[key]


# --------------------------------------------------------------------------------------------
# exact weight bytes
# --------------------------------------------------------------------------------------------
def dtype_name(dtype: Any) -> str:
    """``torch.bfloat16 -> "bfloat16"``."""
    return str(dtype).removeprefix("torch.")


def module_bytes(module: Any) -> dict[str, dict[str, int]]:
    """``{dtype: {"params": bytes, "buffers": bytes}}`` of ``module`` (meta tensors count their size).

    >>> import torch
    >>> module_bytes(torch.nn.Linear(3, 2))
    {'float32': {'params': 32, 'buffers': 0}}
    """
    out: dict[str, dict[str, int]] = {}
    for kind, tensors in (("params", module.parameters()), ("buffers", module.buffers())):
        for t in tensors:  # parameters() and buffers() already yield a shared tensor once
            row = out.setdefault(dtype_name(t.dtype), {"params": 0, "buffers": 0})
            row[kind] += t.numel() * t.element_size()
    return out


def total_bytes(by_dtype: dict[str, dict[str, int]]) -> int:
    """Sum of a :func:`module_bytes` table."""
    return sum(row["params"] + row["buffers"] for row in by_dtype.values())


# --------------------------------------------------------------------------------------------
# activation formulas (see the module docstring)
# --------------------------------------------------------------------------------------------
def linear_transient(tokens: int, out_features: list[int], last_in_features: int) -> int:
    """Elements alive inside one attention or dense MLP: its linears' outputs plus the input of the last."""
    return tokens * (sum(out_features) + last_in_features)


def routed_transient(tokens: int, top_k: int, dim: int, intermediate: int) -> int:
    """Elements alive inside the routed experts: ``T * k * (d + 3I + d)``."""
    return tokens * top_k * (2 * dim + 3 * intermediate)


def attention_scores_bytes(batch: int, heads: int, tokens: int, act_bytes: int) -> int:
    """An eager attention's ``B * H * T * T`` scores plus their float32 softmax."""
    return batch * heads * tokens * tokens * (act_bytes + 4)


def kv_cache_bytes(batch: int, tokens: int, layers: list[tuple[int, int]], act_bytes: int) -> int:
    """``sum over layers of 2 * B * T * kv_heads * head_dim * a``; ``layers`` holds (kv_heads, head_dim).

    >>> kv_cache_bytes(1, 4096, [(8, 128)] * 32, 2) / 2**20   # HunyuanImage-3.0, one 1024 px image
    512.0
    """
    return sum(2 * batch * tokens * kv * hd * act_bytes for kv, hd in layers)


def text_encoder_bytes(tokens: int, dim: int, widest: int, act_bytes: int) -> int:
    """Text-encoder activations: residual in/out plus one MLP's gate, up and product."""
    return act_bytes * (2 * tokens * dim + 3 * tokens * widest)


def vae_decode_bytes(height: int, width: int, full_res_channels: int, act_bytes: int) -> int:
    """VAE decode activations at ``height x width``: three ``C_full``-channel maps plus the RGB output."""
    return act_bytes * 3 * height * width * (full_res_channels + 1)


def experts_hit(num_experts: int, top_k: int, tokens: int) -> float:
    """Expected share of experts that at least one of ``tokens`` tokens routes to (uniform routing).

    >>> round(experts_hit(64, 8, 4096), 6)
    1.0
    >>> round(experts_hit(64, 8, 1), 4)
    0.125
    """
    return 1.0 - (1.0 - top_k / num_experts) ** tokens


# --------------------------------------------------------------------------------------------
# the estimate and the verdicts
# --------------------------------------------------------------------------------------------
@dataclass
class MemoryEstimate:
    """Byte counts of one generation (one image, ``batch`` sequences per forward)."""

    denoiser: dict[str, dict[str, int]]  # module_bytes of the denoiser
    components: dict[str, int]  # other modules' weight bytes: text_encoder, vae, vision_encoder
    blocks: int  # bytes of all offloadable blocks of the denoiser
    largest_block: int  # bytes of its largest block
    routed_experts: int  # bytes of the routed experts (0 for dense models)
    largest_layer_experts: int  # routed-expert bytes of the layer holding the most
    expert_hit_share: float  # share of routed experts one forward touches (experts_hit)
    activations: int  # denoiser activation peak
    kv_cache: int  # decoder KV state (0 for DiTs)
    text_activations: int
    vae_activations: int
    flops_per_step: float  # FLOPs of one denoising step (all sequences of the batch)
    steps: int
    batch: int
    tokens: int
    notes: list[str] = field(default_factory=list)

    @property
    def denoiser_bytes(self) -> int:
        return total_bytes(self.denoiser)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["denoiser_bytes"] = self.denoiser_bytes
        return data


@dataclass(frozen=True)
class Verdict:
    """One offload strategy on one GPU: peak, whether it fits, and what the transfers cost."""

    strategy: str
    peak_bytes: int
    fits: bool
    headroom_bytes: int  # GPU memory minus the peak (negative: missing)
    moved_per_step: int  # bytes over PCIe per denoising step
    moved_per_image: int  # bytes over PCIe once per image
    step_seconds: float  # one denoising step with transfers
    compute_seconds: float  # one denoising step, compute only
    slowdown: float  # image time with transfers / without
    detail: str


def _phase_peak(phases: dict[str, int]) -> int:
    return CUDA_CONTEXT_BYTES + max(phases.values())


def _verdict(strategy: str, est: MemoryEstimate, card: GPU, peak: int, per_step: int, per_image: int,
             overlap: bool, detail: str) -> Verdict:
    compute = est.flops_per_step / (card.bf16_tflops * 1e12)
    transfer = per_step / (card.pcie_gbs * 1e9)
    step = max(compute, transfer) if overlap else compute + transfer
    once = per_image / (card.pcie_gbs * 1e9)
    base = compute * est.steps
    slowdown = (step * est.steps + once) / base if base > 0 else 1.0
    headroom = card.memory_bytes - peak
    return Verdict(strategy, peak, headroom >= 0, headroom, per_step, per_image, step, compute, slowdown, detail)


def denoise_weight_bytes(est: MemoryEstimate, strategy: str = "none") -> int:
    """Denoiser weight bytes on the GPU while denoising under ``strategy``: all of them (``none``,
    ``model``); the weights outside the blocks plus the running block and the prefetched one (``group``);
    every weight but the routed experts plus two layers' routed experts in flight (``expert``, no cache).
    The denoising phase adds the activations and the KV cache (:func:`denoise_phase_bytes`)."""
    if strategy == "group":
        return est.denoiser_bytes - est.blocks + 2 * est.largest_block
    if strategy == "expert":
        return est.denoiser_bytes - est.routed_experts + 2 * est.largest_layer_experts
    return est.denoiser_bytes


def denoise_phase_bytes(est: MemoryEstimate, strategy: str = "none") -> int:
    """The denoising phase under ``strategy``, without the CUDA context: its resident denoiser weights
    (:func:`denoise_weight_bytes`), the activations and the KV cache."""
    return denoise_weight_bytes(est, strategy) + est.activations + est.kv_cache


def verdicts(est: MemoryEstimate, card: GPU) -> list[Verdict]:
    """The four strategies for ``est`` on ``card`` (``expert`` only for MoE denoisers), in that order."""
    comps = est.components
    te = comps.get("text_encoder", 0)
    other = sum(v for k, v in comps.items() if k not in ("text_encoder", "vae"))
    den, act = est.denoiser_bytes, est.activations + est.kv_cache
    out: list[Verdict] = []
    # none: all weights resident, the largest activation phase on top
    peak = CUDA_CONTEXT_BYTES + den + sum(comps.values()) + max(act, est.text_activations, est.vae_activations)
    out.append(_verdict("none", est, card, peak, 0, 0, False, "all components resident"))
    # model: one component at a time
    phases = {"text": te + est.text_activations, "denoise": denoise_phase_bytes(est), "vae": comps.get("vae", 0) + est.vae_activations}
    if other:
        phases["other"] = other
    weights = den + sum(comps.values())
    out.append(_verdict("model", est, card, _phase_peak(phases), 0, weights, False,
                        "one component at a time (text encoder, denoiser, VAE)"))
    # group: resident non-block weights, the running block and the prefetched one
    phases_g = dict(phases, denoise=denoise_phase_bytes(est, "group"))
    out.append(_verdict("group", est, card, _phase_peak(phases_g), est.blocks, weights - est.blocks, True,
                        f"blocks streamed one at a time + 1 prefetched ({est.largest_block / GIB:.2f} GiB each)"))
    if est.routed_experts:
        phases_e = dict(phases, denoise=denoise_phase_bytes(est, "expert"))
        floor = _phase_peak(phases_e)
        cache = max(0, min(est.routed_experts, card.memory_bytes - floor))  # fill what is free, no more
        moved = max(0, int(est.routed_experts * est.expert_hit_share) - cache)
        out.append(_verdict("expert", est, card, floor + cache, moved, weights - est.routed_experts, True,
                            f"non-expert weights resident (peak {floor / GIB:.1f} GiB without a cache), {cache / GIB:.1f} of "
                            f"{est.routed_experts / GIB:.1f} GiB routed experts cached in the rest, "
                            f"{est.expert_hit_share:.0%} of experts hit per forward"))
    return out


def cheapest(found: list[Verdict]) -> Verdict | None:
    """The fitting strategy with the smallest slowdown (the earlier one on a tie); None if none fits."""
    fitting = [v for v in found if v.fits]
    return min(fitting, key=lambda v: v.slowdown) if fitting else None
