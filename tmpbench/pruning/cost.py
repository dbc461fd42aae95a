"""What pruning cost in compute: denoiser forwards, backward passes, wall seconds and peak memory.

Every prune records ``pruning_cost`` per stage (calibration, planning, apply, recovery) and in total,
so a table can put each method's quality beside what it spent to get it. A :class:`ComputeMeter`
counts by a forward hook on the denoiser's class, so it needs nothing from the pruner:

* ``denoiser_forwards``: calls of any module of a metered denoiser's class (so the teacher copy that
  recovery distils from and the pruned student count too), one per call whatever its batch; a search
  that evaluates only part of a forward still counts one call here, and reports its FLOPs-weighted
  count itself (TMP's ``forward_equivalents``, copied into the planning stage);
* ``backward_passes``: backward passes through a metered denoiser's output (Taylor scores, recovery);
* ``seconds``: wall time of the stage;
* ``peak_rss_mb``: the process's peak resident memory at the end of the stage (a running maximum over
  the process's life, so a later stage never reads lower); ``peak_cuda_mb`` on CUDA, reset per stage.

    >>> import torch
    >>> lin = torch.nn.Linear(2, 2)
    >>> with ComputeMeter(lin) as meter:
    ...     lin(torch.ones(1, 2)).sum().backward()
    >>> meter.as_dict()["denoiser_forwards"], meter.as_dict()["backward_passes"]
    (1, 1)
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import torch
from torch import nn

STAGES = ("calibration", "planning", "apply", "recovery")


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    for attr in ("sample", "logits", "last_hidden_state"):
        if isinstance(getattr(out, attr, None), torch.Tensor):
            return getattr(out, attr)
    if isinstance(out, (tuple, list)):
        for o in out:
            t = _first_tensor(o)
            if t is not None:
                return t
    return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024, 1)


class ComputeMeter:
    """Count forwards and backward passes of ``modules`` and time one stage (module docstring)."""

    def __init__(self, *modules: nn.Module | None) -> None:
        self.modules = [m for m in modules if m is not None]
        self.forwards = 0
        self.backwards = 0
        self.seconds = 0.0
        self.extra: dict[str, Any] = {}
        self._handles: list = []
        self._cuda = torch.cuda.is_available() and any(
            p.is_cuda for m in self.modules for p in m.parameters()
        )

    def _hook(self, _m: nn.Module, _a: tuple, out: Any) -> None:
        self.forwards += 1
        t = _first_tensor(out)
        if t is not None and t.requires_grad:
            t.register_hook(self._on_backward)

    def _on_backward(self, grad: torch.Tensor) -> None:
        self.backwards += 1

    def __enter__(self) -> ComputeMeter:
        # a global hook filtered by class: copies made inside the stage (recovery's teacher) count as well
        classes = tuple({type(m) for m in self.modules})

        def hook(m: nn.Module, a: tuple, out: Any) -> None:
            if type(m) in classes:
                self._hook(m, a, out)

        if classes:
            self._handles.append(nn.modules.module.register_module_forward_hook(hook))
        if self._cuda:
            torch.cuda.reset_peak_memory_stats()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self._t0
        for h in self._handles:
            h.remove()
        self._handles = []
        self.rss = peak_rss_mb()
        self.cuda = round(torch.cuda.max_memory_allocated() / 2**20, 1) if self._cuda else None

    def as_dict(self) -> dict[str, Any]:
        out = {"denoiser_forwards": self.forwards, "backward_passes": self.backwards,
               "seconds": round(self.seconds, 3), "peak_rss_mb": getattr(self, "rss", None)}
        if getattr(self, "cuda", None) is not None:
            out["peak_cuda_mb"] = self.cuda
        out.update(self.extra)
        return out


def total(stages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Sum of forwards, backward passes, forward-equivalents and seconds over ``stages``; the peak memory
    is the largest stage peak."""
    out: dict[str, Any] = {"denoiser_forwards": 0, "backward_passes": 0, "forward_equivalents": 0.0, "seconds": 0.0}
    for st in stages.values():
        out["denoiser_forwards"] += st.get("denoiser_forwards", 0)
        out["backward_passes"] += st.get("backward_passes", 0)
        out["forward_equivalents"] += st.get("forward_equivalents", st.get("denoiser_forwards", 0))
        out["seconds"] += st.get("seconds", 0.0)
    out["forward_equivalents"] = round(out["forward_equivalents"], 2)
    out["seconds"] = round(out["seconds"], 3)
    peaks = [st["peak_rss_mb"] for st in stages.values() if st.get("peak_rss_mb") is not None]
    out["peak_rss_mb"] = max(peaks) if peaks else None
    return out


__all__ = ["STAGES", "ComputeMeter", "peak_rss_mb", "total"]
