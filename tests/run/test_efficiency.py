"""Efficiency figures: parameter and FLOP counts, latency statistics, peak memory, device name."""

import statistics

import pytest
import torch

from tmpbench.errors import TmpbenchError
from tmpbench.run.efficiency import (
    count_flops,
    count_parameters,
    device_name,
    measure_efficiency,
    measure_latency,
    peak_memory,
)


def test_parameter_count_counts_tied_weights_once():
    a = torch.nn.Linear(4, 3)  # 15
    model = torch.nn.Sequential(a, torch.nn.ReLU(), torch.nn.Linear(3, 2))  # + 8
    assert count_parameters(model) == 23
    tied = torch.nn.Sequential(a, torch.nn.ReLU(), a)  # wrong shapes for a forward, fine for counting
    assert count_parameters(tied) == 15


def test_flops_of_a_linear_layer():
    layer = torch.nn.Linear(8, 4, bias=False)
    x = torch.randn(2, 8)
    assert count_flops(lambda: layer(x)) == 2 * 2 * 8 * 4


def test_latency_counts_calls_and_warmup():
    calls = []
    times = measure_latency(lambda: calls.append(1), repeats=4, warmup=2)
    assert len(times) == 4 and len(calls) == 6 and all(t >= 0 for t in times)
    with pytest.raises(TmpbenchError, match="repeats >= 1 and warmup >= 0, got repeats=0 warmup=1"):
        measure_latency(lambda: None, repeats=0)


def test_cpu_peak_memory_sees_an_allocation():
    baseline, kind = peak_memory(lambda: None)
    big, _ = peak_memory(lambda: torch.ones(64 * 1024 * 1024 // 4).add_(1))  # 64 MiB, touched
    assert kind.startswith("cpu_")
    if kind == "cpu_peak_rss_vmhwm":  # resettable peak: the difference is the allocation
        assert big - baseline > 48 * 1024 * 1024
    else:
        assert big >= baseline


def test_measure_efficiency_report():
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))
    x = torch.randn(4, 16)
    report = measure_efficiency(model, lambda: model(x), images_per_call=4, repeats=3, warmup=1)
    d = report.to_dict()
    assert d["params"] == 16 * 16 + 16 + 16 * 4 + 4
    assert d["flops_per_call"] == 2 * 4 * (16 * 16 + 16 * 4)
    assert d["latency_median_s"] == statistics.median(d["latency_s"])
    assert d["latency_per_image_s"] == pytest.approx(d["latency_median_s"] / 4)
    assert d["device"] == "cpu" and d["device_name"] == device_name("cpu") and d["device_name"]
    with pytest.raises(TmpbenchError, match="images_per_call must be >= 1, got 0"):
        measure_efficiency(model, lambda: model(x), images_per_call=0)


@pytest.mark.gpu
def test_cuda_peak_memory():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    peak, kind = peak_memory(lambda: torch.ones(1024 * 1024, device="cuda"), "cuda")
    assert kind == "cuda_max_memory_allocated" and peak >= 4 * 1024 * 1024
    assert device_name("cuda")
