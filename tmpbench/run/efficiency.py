"""Efficiency figures of a (pruned) model: parameters, FLOPs, latency per image, peak memory, device.

* **Parameters** -- unique parameter tensors (tied weights counted once).
* **FLOPs** -- ``torch.utils.flop_counter.FlopCounterMode`` over one call (matmul/conv/attention
  FLOPs as PyTorch counts them; element-wise ops are not counted).
* **Latency per image** -- ``warmup`` untimed calls, then the median of ``repeats`` timed calls,
  divided by the images each call makes. CUDA is synchronised around every timed call.
* **Peak memory** -- on CUDA ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``;
  on the CPU the process's peak resident set size (``VmHWM``) after resetting it through
  ``/proc/self/clear_refs`` (Linux), else ``resource.getrusage`` ``ru_maxrss``, a peak over the
  process's whole life (the report says which).
* **Device name** -- ``torch.cuda.get_device_name`` or the CPU model from ``/proc/cpuinfo``.

Example::

    report = measure_efficiency(model, lambda: pipe(prompts, num_inference_steps=2), images_per_call=len(prompts))
    report.to_dict()
"""

from __future__ import annotations

import platform
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from tmpbench.errors import TmpbenchError


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters, each shared tensor counted once."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one ``fn()`` call as ``FlopCounterMode`` counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return int(counter.get_total_flops())


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def measure_latency(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, device: str = "cpu") -> list[float]:
    """Seconds of each of ``repeats`` timed ``fn()`` calls after ``warmup`` untimed ones."""
    if repeats < 1 or warmup < 0:
        raise TmpbenchError(f"latency needs repeats >= 1 and warmup >= 0, got repeats={repeats} warmup={warmup}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def _vm_hwm_bytes() -> int:
    with open("/proc/self/status") as f:
        match = re.search(r"VmHWM:\s+(\d+) kB", f.read())
    if match is None:
        raise OSError("no VmHWM in /proc/self/status")
    return int(match.group(1)) * 1024


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # "5" resets the peak RSS (VmHWM) of this process; Linux >= 4.0
        _vm_hwm_bytes()
        return True
    except OSError:
        return False


def peak_memory(fn: Callable[[], object], device: str = "cpu") -> tuple[int, str]:
    """Run ``fn()`` once; return ``(peak bytes, how it was measured)``."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_memory_allocated"
    if _reset_rss_peak():
        fn()
        return _vm_hwm_bytes(), "cpu_peak_rss_vmhwm"
    import resource

    fn()
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return int(kib) * 1024, "cpu_ru_maxrss_process_lifetime"


def device_name(device: str = "cpu") -> str:
    """Human-readable device name."""
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo") as f:
            match = re.search(r"model name\s*:\s*(.+)", f.read())
        if match:
            return match.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass
class EfficiencyReport:
    """One model's efficiency figures (the results schema stores :meth:`to_dict`)."""

    params: int  # unique parameters
    flops_per_call: int | None  # FlopCounterMode total for one call; None when not counted
    images_per_call: int
    latency_per_image_s: float  # median call time / images_per_call
    latency_median_s: float  # median seconds per call
    latency_s: list[float]  # every timed call
    warmup: int
    repeats: int
    peak_memory_bytes: int
    peak_memory_kind: str  # cuda_max_memory_allocated | cpu_peak_rss_vmhwm | cpu_ru_maxrss_process_lifetime
    device: str
    device_name: str
    torch_version: str
    threads: int  # torch intra-op threads during the measurement

    def to_dict(self) -> dict:
        return asdict(self)


def measure_efficiency(
    model: torch.nn.Module,
    fn: Callable[[], object],
    images_per_call: int = 1,
    repeats: int = 5,
    warmup: int = 1,
    device: str = "cpu",
    flops: bool = True,
) -> EfficiencyReport:
    """Parameters, FLOPs, latency and peak memory of ``fn`` (a generation call using ``model``)."""
    if images_per_call < 1:
        raise TmpbenchError(f"images_per_call must be >= 1, got {images_per_call}")
    with torch.no_grad():
        times = measure_latency(fn, repeats, warmup, device)
        peak, kind = peak_memory(fn, device)
    median = statistics.median(times)
    return EfficiencyReport(
        params=count_parameters(model),
        flops_per_call=count_flops(fn) if flops else None,
        images_per_call=images_per_call,
        latency_per_image_s=median / images_per_call,
        latency_median_s=median,
        latency_s=times,
        warmup=warmup,
        repeats=repeats,
        peak_memory_bytes=peak,
        peak_memory_kind=kind,
        device=str(device),
        device_name=device_name(device),
        torch_version=torch.__version__,
        threads=torch.get_num_threads(),
    )
