"""The scorer interface: what a scorer is given (:class:`SampleView`) and what it answers.

Two kinds of scorer, both answering ``available() -> (bool, reason)`` and ``identity() -> dict``:

* :class:`SampleScorer` -- one number per generated image (GenEval correctness, CLIPScore, PSNR to
  the teacher, a OneIG judge's verdict, ...), computed by the process that generated the image;
* :class:`SetScorer` -- one number for the whole set (FID, KID), computed after the merge.

Each declares how its per-sample values become the reported value (``aggregation``, recorded in
``results.json`` next to the value; see :data:`AGGREGATIONS`). A scorer that cannot produce a
number for this set raises :class:`NotScored`; the engine records ``"not scored: <reason>"``.

Scorers are built per suite by a factory registered in :data:`tmpbench.catalog.SCORERS`:
``factory(suite, *, mode=None, device="cpu", judge=None) -> scorer``. The default factory of
both base classes is the classmethod :meth:`SampleScorer.for_suite`, which refuses a ``:mode``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tmpbench.errors import TmpbenchError

#: How a metric's reported value is formed (``MetricResult.aggregation`` in results.json):
#: ``mean`` -- the mean over samples; ``category_mean`` -- the unweighted mean of per-category means
#: (GenEval's and the edit benchmarks' convention); ``set`` -- one statistic of the whole set (FID,
#: KID: no per-sample values); ``benchmark_formula`` -- the benchmark's own formula over per-sample
#: parts (OneIG's text score from the set means of ED, CR and WAC; its ci95 is of the sample mean).
AGGREGATIONS: tuple[str, ...] = ("mean", "category_mean", "set", "benchmark_formula")


class NotScored(Exception):
    """Raised inside a scorer when it cannot produce a number for this set (becomes "not scored: <reason>")."""


@dataclass
class SampleView:
    """One generated image with what scorers may compare it with."""

    item: Any  # tmpbench.suites.core.SuiteItem
    n: int  # sample number (seed index)
    seed: int | None  # the seed the image was generated with (None: not known, e.g. a folder scored by `tmpbench score`)
    image: np.ndarray  # (H, W, 3) uint8
    teacher: np.ndarray | None = None  # the unpruned model's image from the same seed (pruned runs)
    source: np.ndarray | None = None  # edit suites: the input image
    cells: list | None = None  # OneIG grids: all four cells of the item (diversity judges them together)


def refuse_mode(name: str, mode: str | None) -> None:
    """One line for ``name:mode`` on a metric that has no feature mode."""
    if mode is not None:
        raise TmpbenchError(f"metric {name!r} takes no mode (got {name + ':' + mode!r}); only fid:MODE and kid:MODE do")


class SampleScorer:
    """One value per sample. Subclasses set ``name``/``kinds`` and implement :meth:`score`."""

    name = "sample"
    higher_is_better = True
    aggregation = "mean"  # one of AGGREGATIONS except "set"
    kinds: tuple[str, ...] = ("t2i", "edit")
    needs_teacher = False

    @classmethod
    def for_suite(cls, suite, *, mode: str | None = None, device: str = "cpu", judge: Any = None) -> SampleScorer:
        """The scorer for ``suite`` (the registry's factory); this default takes no mode, device or judge."""
        refuse_mode(cls.name, mode)
        return cls()

    def available(self) -> tuple[bool, str]:
        return True, ""

    def identity(self) -> dict:
        return {"name": self.name, "library": "tmpbench", "weights_path": None, "weights_sha256": None}

    def score(self, samples: list[SampleView]) -> list[dict]:
        """Per sample a dict holding at least ``{self.name: value}`` (extra keys go to samples.jsonl)."""
        raise NotImplementedError

    def summary(self, rows: list[dict]) -> dict | None:
        """Override the aggregate's ``value``/``details`` where the benchmark defines its own formula."""
        return None


class SetScorer:
    """One value for the whole set, computed by the main process after the merge."""

    name = "set"
    higher_is_better = False
    aggregation = "set"
    kinds: tuple[str, ...] = ("t2i", "edit")
    needs_teacher = False

    @classmethod
    def for_suite(cls, suite, *, mode: str | None = None, device: str = "cpu", judge: Any = None) -> SetScorer:
        refuse_mode(cls.name, mode)
        return cls()

    def available(self) -> tuple[bool, str]:
        return True, ""

    def identity(self) -> dict:
        return {"name": self.name}

    def compute(self, samples: list[SampleView], suite) -> dict:
        """A ``MetricResult`` dict for the whole set (the engine adds ``aggregation``)."""
        raise NotImplementedError
