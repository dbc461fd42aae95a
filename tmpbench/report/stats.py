"""The statistics behind reports and gates: small pure functions over per-sample values.

* :func:`bootstrap_ci` -- mean (or mean of category means) with a percentile bootstrap CI; the same
  function ``tmpbench run`` uses for ``results.json`` (:func:`tmpbench.scoring.aggregate.bootstrap_ci`), so a
  report recomputed from ``samples.jsonl`` reproduces the run's own intervals.
* :func:`paired_bootstrap` -- the mean per-item difference of two runs scored on the same items and
  seeds, its CI and a one-sided p-value; for continuous metrics.
* :func:`mcnemar_exact` -- McNemar's exact (binomial) test on paired binary outcomes (GenEval
  correctness): only the discordant pairs carry information.
* :func:`holm` -- Holm-Bonferroni adjusted p-values for the comparisons of one table.
* :func:`min_detectable_effect` -- the smallest paired difference a table's n can detect (two-sided
  5% level, 80% power, normal approximation with the observed spread of the paired differences).
* :func:`pareto_front` -- which (ratio, quality) points no other point beats on both axes.

Example::

    >>> mcnemar_exact([1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]).p_value  # 6 losses, 0 wins
    0.03125
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# one bootstrap for reports and results.json (re-exported, so both always agree)
from tmpbench.scoring.aggregate import BOOTSTRAP_SEED, N_BOOTSTRAP, bootstrap_ci  # noqa: F401


@dataclass(frozen=True)
class PairedResult:
    """Candidate minus baseline on paired samples (positive = candidate larger)."""

    n: int  # pairs with both values finite
    mean_diff: float  # mean of (candidate - baseline)
    ci95: tuple[float, float] | None  # percentile bootstrap CI of mean_diff (None below 2 pairs)
    p_worse: float  # one-sided bootstrap p-value for "candidate is NOT worse" (small = significantly worse)
    test: str = "paired-bootstrap"


def _paired(baseline: Sequence[float], candidate: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(baseline, dtype=np.float64)
    b = np.asarray(candidate, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need equal 1-D lengths, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def paired_bootstrap(
    baseline: Sequence[float],
    candidate: Sequence[float],
    higher_is_better: bool = True,
    n_boot: int = N_BOOTSTRAP,
    seed: int = BOOTSTRAP_SEED,
) -> PairedResult:
    """Paired bootstrap of ``mean(candidate - baseline)`` over items (resampling pairs, not runs).

    ``p_worse`` is the bootstrap share of resampled mean differences on the "not worse" side
    (>= 0 when higher is better, <= 0 otherwise), a one-sided p-value for a regression; it is 1.0
    when every difference is 0 (an unchanged rerun can never fail). When no resample lands on that
    side, the share cannot resolve the tail (its floor is ``1/(n_boot+1)``, which no Holm correction
    over a table of comparisons lets through), so ``p_worse`` is then the normal tail
    ``P(Z >= |mean| / se)`` with ``se`` the standard deviation of the resampled means.

    >>> r = paired_bootstrap([0.5, 0.6, 0.7, 0.8], [0.5, 0.6, 0.7, 0.8])
    >>> r.mean_diff, r.p_worse
    (0.0, 1.0)
    """
    a, b = _paired(baseline, candidate)
    d = b - a
    if d.size == 0:
        return PairedResult(0, float("nan"), None, 1.0)
    mean = float(d.mean())
    if d.size < 2 or np.all(d == d[0]):
        not_worse = mean >= 0 if higher_is_better else mean <= 0
        ci = None if d.size < 2 else (mean, mean)
        return PairedResult(int(d.size), mean, ci, 1.0 if not_worse else 0.0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(n_boot, d.size))
    boot = d[idx].mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    side = boot >= 0 if higher_is_better else boot <= 0
    if side.any():
        # the +1s keep a p-value of a finite bootstrap away from an impossible exact 0
        p = float((side.sum() + 1) / (n_boot + 1))
    else:
        # no resample reached the "not worse" side: the tail is beyond what n_boot resamples resolve
        # (their floor, 1/(n_boot+1), would survive no multiple-comparison correction), so its size comes
        # from the normal approximation with the bootstrap's own standard error
        se = float(boot.std(ddof=1))
        z = abs(mean) / se if se > 0 else math.inf
        p = normal_tail(z)
    return PairedResult(int(d.size), mean, (float(low), float(high)), p)


P_DISPLAY_FLOOR = 1e-12  # below this, a p-value comes from a normal tail or an exact binomial far beyond any alpha


def format_p(p: float) -> str:
    """A p-value for a table: three significant digits, or ``<1e-12`` below :data:`P_DISPLAY_FLOOR`
    (the normal approximation has no accuracy that far out, and no decision depends on it)."""
    return f"<{P_DISPLAY_FLOOR:g}" if p < P_DISPLAY_FLOOR else f"{p:.3g}"


def normal_tail(z: float) -> float:
    """``P(Z >= z)`` for a standard normal ``Z``."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's exact test on paired binary outcomes."""

    n: int  # pairs
    both: int  # correct in both runs
    lost: int  # correct in the baseline, wrong in the candidate
    gained: int  # wrong in the baseline, correct in the candidate
    neither: int  # wrong in both
    p_value: float  # two-sided exact binomial p-value on the discordant pairs
    p_worse: float  # one-sided: P(lost >= observed | no difference), small = significantly worse
    test: str = "mcnemar-exact"

    @property
    def mean_diff(self) -> float:
        """Candidate accuracy minus baseline accuracy."""
        return (self.gained - self.lost) / self.n if self.n else float("nan")


def binomial_tail(k: int, n: int) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, 1/2)`` (exact, with integers)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n


def mcnemar_exact(baseline: Sequence[float], candidate: Sequence[float]) -> McNemarResult:
    """Exact McNemar test: under "no difference" each discordant pair is a fair coin.

    Values must be 0/1 (NaN pairs are dropped). ``p_value = min(1, 2 * P(X >= max(lost, gained)))``.

    >>> r = mcnemar_exact([1, 1, 0, 0], [1, 0, 0, 1])
    >>> (r.lost, r.gained, r.p_value)
    (1, 1, 1.0)
    """
    a, b = _paired(baseline, candidate)
    bad = sorted({float(v) for v in np.concatenate([a, b]) if v not in (0.0, 1.0)})
    if bad:
        raise ValueError(f"McNemar needs 0/1 outcomes, got {bad[0]!r}; use paired_bootstrap for continuous metrics")
    a, b = a.astype(bool), b.astype(bool)
    both = int((a & b).sum())
    lost = int((a & ~b).sum())
    gained = int((~a & b).sum())
    neither = int((~a & ~b).sum())
    discordant = lost + gained
    p_two = min(1.0, 2.0 * binomial_tail(max(lost, gained), discordant)) if discordant else 1.0
    p_worse = binomial_tail(lost, discordant) if discordant else 1.0
    return McNemarResult(int(a.size), both, lost, gained, neither, float(p_two), float(p_worse))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values, in the input order (NaN stays NaN).

    >>> [round(p, 6) for p in holm([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
    """
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    order = sorted(idx, key=lambda i: pvalues[i])
    m = len(order)
    out = [float("nan")] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def min_detectable_effect(differences: Sequence[float], alpha: float = 0.05, power: float = 0.8) -> float:
    """``(z_{1-alpha/2} + z_power) * sd(d) / sqrt(n)`` over the finite paired differences ``d``: the
    smallest true mean difference a paired test at this n detects with ``power`` (normal approximation;
    for 0/1 outcomes ``sd(d)`` reflects the discordance rate). NaN below 2 pairs.

    >>> round(min_detectable_effect([1, -1] * 50), 3)
    0.282
    """
    from statistics import NormalDist

    d = np.asarray(differences, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return float("nan")
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return float(z * d.std(ddof=1) / math.sqrt(d.size))


def is_binary(values: Sequence[float]) -> bool:
    """True when every finite value is 0 or 1 (GenEval-style correctness)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return bool(v.size) and bool(np.all((v == 0.0) | (v == 1.0)))


def pareto_front(ratios: Sequence[float], quality: Sequence[float], higher_is_better: bool = True) -> list[int]:
    """Indices of the points no other point dominates: more removed (ratio) AND better quality.

    A point is dominated when another has ratio >= and quality at least as good, one of them
    strictly. NaN qualities are never on the front. Returned in increasing ratio.

    >>> pareto_front([0.25, 0.5, 0.5], [0.8, 0.6, 0.7])
    [0, 2]
    """
    r = np.asarray(ratios, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if r.shape != q.shape:
        raise ValueError(f"ratios and quality differ in length ({r.size} vs {q.size})")
    q = q if higher_is_better else -q
    front = []
    for i in range(r.size):
        if not (np.isfinite(q[i]) and np.isfinite(r[i])):
            continue
        dominated = False
        for j in range(r.size):
            if j == i or not (np.isfinite(q[j]) and np.isfinite(r[j])):
                continue
            if r[j] >= r[i] and q[j] >= q[i] and (r[j] > r[i] or q[j] > q[i]):
                dominated = True
                break
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (r[i], -q[i]))


__all__ = [
    "McNemarResult",
    "PairedResult",
    "binomial_tail",
    "bootstrap_ci",
    "is_binary",
    "format_p",
    "mcnemar_exact",
    "normal_tail",
    "paired_bootstrap",
    "pareto_front",
]
