"""Metric names whose implementation depends on the suite: the registry's factory picks it by trait.

``geneval`` on a suite with ``world: shapes`` is GenEval's rule over the exact analytic detector
(:class:`~tmpbench.scoring.shapes.ShapesGenEval`); on real photos it is the open-vocabulary
detector with CLIP colours (:class:`~tmpbench.scoring.geneval.open_vocab.OpenVocabGenEval`), whose
detector may be passed in code (``judges={"geneval": detector}``) or found in
``$TMPBENCH_GENEVAL_DETECTOR``.
"""

from __future__ import annotations

from typing import Any

from tmpbench.scoring.base import SampleScorer, refuse_mode
from tmpbench.scoring.geneval.open_vocab import OpenVocabGenEval
from tmpbench.scoring.shapes import ShapesGenEval


def geneval_scorer(suite, *, mode: str | None = None, device: str = "cpu", judge: Any = None) -> SampleScorer:
    """GenEval correctness for ``suite``: the analytic detector in ShapesWorld, else open-vocabulary detection."""
    refuse_mode("geneval", mode)
    if suite.world == "shapes":
        return ShapesGenEval()
    return OpenVocabGenEval(device=device, detector=judge)
