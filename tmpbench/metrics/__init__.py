"""Metrics: FID/KID, CLIPScore and edit similarities, fidelity to the teacher, efficiency figures.

Image metrics are torchmetrics ``Metric`` subclasses (``update`` / ``compute`` / ``reset``, declared
states, ``higher_is_better``) whose maths lives in small pure functions. Feature-based metrics take
a named, pinned feature mode (:mod:`tmpbench.metrics.features`); the networks with weights (CLIP
variants, Inception, the ShapesWorld CNN, OneIG's judges' encoders) live in
:mod:`tmpbench.metrics.backbones`, image-batch handling in :mod:`tmpbench.metrics.images`. Nothing here
knows about suites' scorers (:mod:`tmpbench.scoring`) or the runner. Every metric answers
``available() -> (bool, reason)`` without loading anything, raises
:class:`tmpbench.errors.OfflineError` / :class:`~tmpbench.errors.MissingDependencyError` (one line
naming where to put the weights) when used without them, and ``identity() -> dict`` (name, mode,
library version, weights path and sha256) for the results schema. A runner marks an unavailable
metric with :func:`not_scored`, never with a number.
"""

from __future__ import annotations


def not_scored(reason: str) -> str:
    """The value a results file records for a metric that could not be computed."""
    return f"not scored: {reason}"
