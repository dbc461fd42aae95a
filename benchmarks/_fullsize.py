"""What the full-size CPU benchmarks share (fullsize_zimage_cpu.py, fullsize_hy3_cpu.py): random
weights for a meta model, materialised submodule by submodule, and the process's resident memory
with a resettable peak."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

GIB = 1024**3


def materialise(module: Any, dtype: Any, seed: int = 0, *, units: list[str] | None = None,
                done: Callable[[str], None] | None = None) -> None:
    """Allocate a meta module's tensors submodule by submodule on the CPU and fill them at random
    (normal, std 0.02; norms at 1, biases at 0; ``seed`` seeds the normal draws).

    With ``units`` (paths of submodules, e.g. every block) and ``done``, ``done(unit)`` is called as
    soon as the walk has left a unit, so the caller can write it out and send it back to meta: at most
    one unit is resident at a time (the submodules outside every unit stay, and ``done("")`` is called
    for them last). The values are the same as without ``units``: one generator, one order."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    units = units or []

    def unit_of(name: str) -> str:
        return next((u for u in units if name == u or name.startswith(u + ".")), "")

    current = ""
    for name, sub in module.named_modules():
        unit = unit_of(name)
        if unit != current and current and done is not None:
            done(current)
        current = unit
        own = list(sub.named_parameters(recurse=False)) + list(sub.named_buffers(recurse=False))
        if not own or all(t.device.type != "meta" for _, t in own):
            continue
        sub.to_empty(device="cpu", recurse=False)
        with torch.no_grad():
            for pname, p in sub.named_parameters(recurse=False):
                p.data = p.data.to(dtype)
                if "norm" in name.lower() or "norm" in pname.lower():
                    p.fill_(1.0) if pname == "weight" else p.zero_()
                elif pname == "bias":
                    p.zero_()
                else:
                    p.normal_(0.0, 0.02, generator=gen)
    if done is not None:
        if current:
            done(current)
        done("")


class Memory:
    """Resident memory of this process: now, the peak since the last :meth:`reset` and the peak of the run.

    On Linux the window peak is the kernel's high-water mark ``VmHWM``, reset by writing ``5`` to
    ``/proc/self/clear_refs``, so each window's peak is its own. Where that is not possible the window
    peak is the process's running maximum (``ru_maxrss``), which a later window can only repeat.
    """

    def __init__(self) -> None:
        self.run_peak = 0.0
        self.resettable = Path("/proc/self/clear_refs").exists()

    @staticmethod
    def _status() -> dict[str, float]:
        try:
            lines = Path("/proc/self/status").read_text().splitlines()
        except OSError:
            import psutil

            from tmpbench.pruning.cost import peak_rss_mb

            return {"VmRSS": psutil.Process().memory_info().rss / GIB, "VmHWM": peak_rss_mb() / 1024}
        out = {}
        for line in lines:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024 / GIB
        return out

    def read(self) -> tuple[float, float]:
        """``(current, window peak)`` in GiB; also moves the run's peak."""
        st = self._status()
        self.run_peak = max(self.run_peak, st["VmHWM"])
        return st["VmRSS"], st["VmHWM"]

    def split(self) -> dict[str, float]:
        """The resident memory now, split (Linux): ``anon`` (the process's own: tensors, buffers) and
        ``file`` (pages of mapped files, e.g. memory-mapped weights, which the kernel can drop and re-read),
        in GiB; ``{}`` where the kernel does not say."""
        st = self._status()
        return {"anon": st["RssAnon"], "file": st["RssFile"]} if "RssAnon" in st else {}

    def reset(self) -> None:
        self.read()
        if self.resettable:
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self.resettable = False
