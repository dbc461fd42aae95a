"""The scoring engine: metric names -> scorers for a suite -> per-sample values -> results entries.

``tmpbench run`` (:mod:`tmpbench.run.pipeline`) and ``tmpbench score`` (:mod:`tmpbench.cli.score_cmd`)
both score through these functions and the same scorer objects:

1. :func:`parse_metric_list` / :func:`default_metrics` -- which metrics (``--metrics name[:mode],...``,
   default: the suite YAML's ``metrics``, plus fidelity to the teacher when a pruned model runs);
2. :func:`build_scorers` -- one scorer per metric from the :data:`tmpbench.catalog.SCORERS` registry,
   refusing (one line) a metric that cannot apply to the suite;
3. :func:`score_samples` -- every per-sample scorer over the samples (an unavailable scorer, or one
   that raises :class:`~tmpbench.scoring.base.NotScored`, is recorded as ``"not scored: <reason>"``);
4. :func:`summarise` / :func:`compute_set_metric` -- the ``results.json`` entry of a per-sample / set
   scorer, with its ``aggregation`` recorded.

Default metrics per suite (the suite YAMLs):

============  =========================================================================
shapes-t2i    geneval (analytic detector), fid (mode shapes vs ground truth), clipscore
shapes-edit   edit_success, preservation_psnr, preservation_l1
geneval       geneval (open-vocabulary detector + CLIP colours; "not scored" without them)
oneig(-zh)    clipscore, oneig_alignment, oneig_text, oneig_reasoning, oneig_style, oneig_diversity
imgedit/gedit clip_i, clip_t, clip_dir
any, pruned   psnr_teacher, ssim_teacher, lpips_teacher (teacher images from the same seeds)
============  =========================================================================
"""

from __future__ import annotations

import time
from typing import Any

from tmpbench.catalog import SCORERS
from tmpbench.errors import TmpbenchError, UnknownNameError, did_you_mean
from tmpbench.metrics import not_scored
from tmpbench.scoring.aggregate import aggregate
from tmpbench.scoring.base import NotScored, SampleScorer, SampleView, SetScorer

#: Metrics comparing a pruned model's images with its teacher's, added to the defaults of pruned runs.
FIDELITY_METRICS = ("psnr_teacher", "ssim_teacher", "lpips_teacher")


def parse_metric_list(text: str | None) -> list[tuple[str, str | None]]:
    """``"geneval,fid:inception"`` -> ``[("geneval", None), ("fid", "inception")]`` (names validated).

    Whether a metric takes a ``:mode`` is its factory's call (:func:`build_scorers` refuses it).
    """
    if text is None:
        return []
    out = []
    known = SCORERS.names()
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        name, _, mode = part.partition(":")
        if name not in SCORERS:
            raise UnknownNameError(f"unknown metric {name!r}{did_you_mean(name, known, n=2)} (known: {', '.join(known)})")
        out.append((name, mode or None))
    if not out:
        raise TmpbenchError(f"--metrics {text!r} names no metric; pass e.g. --metrics geneval,fid")
    return out


def default_metrics(suite, pruned: bool) -> list[tuple[str, str | None]]:
    """The suite's own metrics (its YAML's ``metrics``), plus :data:`FIDELITY_METRICS` for a pruned model."""
    names = [m for m in suite.metrics if m in SCORERS]
    if pruned:
        names += [m for m in FIDELITY_METRICS if m not in names]
    return [(n, None) for n in names]


def build_scorers(
    suite, metrics: list[tuple[str, str | None]], device: str = "cpu", pruned: bool = False, judges: dict | None = None
) -> dict:
    """Instantiate the scorers for ``suite``; refuse (one line) a metric that cannot apply to it.

    ``judges`` maps a metric name to an in-code judge or detector (tests, plug-ins). Returns
    ``{name: scorer}``; unavailable scorers are kept and reported as "not scored" when scoring.
    """
    out: dict[str, Any] = {}
    for name, mode in metrics:
        factory = SCORERS.get(name)
        scorer = factory(suite, mode=mode, device=device, judge=(judges or {}).get(name))
        if scorer.needs_teacher and not pruned:
            raise TmpbenchError(
                f"metric {name!r} compares a pruned model with its teacher; run a pruned spec (e.g. tiny-dit-50%) or drop it"
            )
        if suite.kind not in scorer.kinds:
            raise TmpbenchError(f"metric {name!r} scores {'/'.join(scorer.kinds)} suites; suite {suite.name!r} is {suite.kind}")
        out[name] = scorer
    return out


def score_samples(scorers: dict, samples: list[SampleView], batch_size: int = 32, progress: bool = False) -> tuple[list[dict], dict, dict]:
    """Run every available per-sample scorer over ``samples``.

    Returns ``(per-sample metric dicts, {name: "not scored: ..."} for scorers that could not run,
    {name: seconds})``.
    """
    from tqdm.auto import tqdm

    values: list[dict] = [{} for _ in samples]
    skipped: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for name, scorer in scorers.items():
        if not isinstance(scorer, SampleScorer):
            continue
        ok, reason = scorer.available()
        if not ok:
            skipped[name] = not_scored(reason)
            continue
        if scorer.needs_teacher and any(s.teacher is None for s in samples):
            skipped[name] = not_scored("no teacher images (fidelity needs a pruned model and its unpruned teacher)")
            continue
        t0 = time.perf_counter()
        try:
            for i in tqdm(range(0, len(samples), batch_size), desc=f"score {name}", disable=not progress, leave=False):
                for j, v in enumerate(scorer.score(samples[i : i + batch_size])):
                    values[i + j].update(v)
        except (NotScored, TmpbenchError) as exc:  # e.g. weights vanished / judge failed to load: one line, run goes on
            skipped[name] = not_scored(str(exc))
            for v in values:
                v.pop(name, None)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
    return values, skipped, seconds


def summarise(name: str, scorer: SampleScorer, rows: list[dict]) -> dict | str:
    """The results entry of a per-sample scorer from the merged rows (``metrics[name]`` per row).

    The value and CI come from :func:`~tmpbench.scoring.aggregate.aggregate` with the scorer's
    ``aggregation``; a benchmark formula (:meth:`SampleScorer.summary`) replaces the value.
    """
    ok, reason = scorer.available()
    if not ok:
        return not_scored(reason)
    agg = aggregate(name, rows, scorer.higher_is_better, scorer.aggregation)
    override = scorer.summary(rows)
    if override:
        agg["value"] = override["value"]
        agg["details"] = {**agg["details"], **override.get("details", {}), "ci95_of": "mean of per-sample values"}
    return agg


def compute_set_metric(scorer: SetScorer, samples: list[SampleView], suite) -> dict | str:
    """The results entry of a set-level scorer (FID, KID), or ``"not scored: <reason>"``."""
    ok, reason = scorer.available()
    if not ok:
        return not_scored(reason)
    try:
        result = scorer.compute(samples, suite)
    except (NotScored, TmpbenchError) as exc:
        return not_scored(str(exc))
    return {**result, "aggregation": result.get("aggregation", scorer.aggregation)}


__all__ = [
    "FIDELITY_METRICS",
    "build_scorers",
    "compute_set_metric",
    "default_metrics",
    "parse_metric_list",
    "score_samples",
    "summarise",
]
