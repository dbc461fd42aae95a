"""Pure statistics: McNemar, paired bootstrap, bootstrap CI agreement with the run, Pareto front."""

import math

import numpy as np
import pytest

from tmpbench.report.stats import (
    binomial_tail,
    bootstrap_ci,
    format_p,
    holm,
    is_binary,
    mcnemar_exact,
    normal_tail,
    paired_bootstrap,
    pareto_front,
)


def test_binomial_tail_exact_values():
    assert binomial_tail(0, 5) == 1.0
    assert binomial_tail(6, 5) == 0.0
    assert binomial_tail(5, 5) == 1 / 32
    assert binomial_tail(4, 5) == 6 / 32
    assert math.isclose(binomial_tail(3, 6), 42 / 64)


def test_mcnemar_counts_and_p_values():
    base = [1, 1, 1, 1, 1, 1, 1, 0, 0, 1]
    cand = [0, 0, 0, 0, 0, 0, 1, 0, 1, 1]
    r = mcnemar_exact(base, cand)
    assert (r.both, r.lost, r.gained, r.neither) == (2, 6, 1, 1)
    # discordant 7: two-sided 2 * P(X >= 6) = 2 * 8/128; one-sided P(X >= 6) = 8/128
    assert math.isclose(r.p_value, 16 / 128)
    assert math.isclose(r.p_worse, 8 / 128)
    assert math.isclose(r.mean_diff, -0.5)


def test_mcnemar_identical_runs_cannot_fail():
    r = mcnemar_exact([1, 0, 1, 1], [1, 0, 1, 1])
    assert (r.lost, r.gained, r.p_value, r.p_worse) == (0, 0, 1.0, 1.0)


def test_mcnemar_refuses_continuous_values():
    with pytest.raises(ValueError, match="McNemar needs 0/1 outcomes, got 0.5"):
        mcnemar_exact([1, 0.5], [1, 1])
    with pytest.raises(ValueError, match="equal 1-D lengths"):
        mcnemar_exact([1, 0], [1])


def test_paired_bootstrap_detects_a_consistent_drop():
    rng = np.random.default_rng(0)
    base = rng.normal(30, 2, size=40)
    r = paired_bootstrap(base, base - 1.0 + rng.normal(0, 0.1, size=40))
    assert r.mean_diff < -0.9 and r.ci95[1] < 0
    assert r.p_worse < 0.01
    # the same drop is no regression for a lower-is-better metric
    assert paired_bootstrap(base, base - 1.0, higher_is_better=False).p_worse == 1.0


def test_paired_bootstrap_unchanged_and_nan_pairs():
    r = paired_bootstrap([0.2, 0.4, float("nan")], [0.2, 0.4, 0.9])
    assert (r.n, r.mean_diff, r.p_worse) == (2, 0.0, 1.0)


def test_reports_use_the_run_estimator_and_its_estimates():
    from tmpbench.scoring import aggregate

    assert bootstrap_ci is aggregate.bootstrap_ci  # one implementation, not a copy that could drift
    v, c = [1, 0, 1, 1, 0, 1], ["a", "a", "b", "b", "c", "c"]
    point, ci = bootstrap_ci(v, c, True)
    assert math.isclose(point, (0.5 + 1.0 + 0.5) / 3)  # mean of category means, by hand
    assert math.isclose(bootstrap_ci(v, c, False)[0], 4 / 6)  # plain mean, by hand
    assert 0.0 <= ci[0] < point < ci[1] <= 1.0


def test_pareto_front():
    # (ratio, quality): (0.5, 0.6) is dominated by (0.5, 0.7); (0.25, 0.5) by (0.5, 0.7)
    assert pareto_front([0.25, 0.5, 0.5, 0.25], [0.8, 0.6, 0.7, 0.5]) == [0, 2]
    assert pareto_front([0.25, 0.5], [10.0, 12.0], higher_is_better=False) == [0, 1]
    assert pareto_front([0.25, 0.5], [10.0, 9.0], higher_is_better=False) == [1]
    assert pareto_front([0.1, 0.2], [float("nan"), 0.3]) == [1]
    with pytest.raises(ValueError, match="differ in length"):
        pareto_front([0.1], [0.1, 0.2])


def test_is_binary():
    assert is_binary([0, 1, 1.0, float("nan")])
    assert not is_binary([0, 0.5])
    assert not is_binary([])


def test_paired_bootstrap_p_beyond_the_resampling_floor():
    # a drop of 1.0 with spread 1.0 over 400 pairs: z is about 20, so no resample of 1,000 reaches 0 and
    # the share's floor (1/1001) would survive no Holm correction across a table; the p-value is the
    # normal tail with the bootstrap's standard error instead (about sd / sqrt(n) = 0.05)
    rng = np.random.default_rng(1)
    base = rng.normal(20, 1, size=400)
    d = -1.0 + rng.normal(0, 1, size=400)
    r = paired_bootstrap(base, base + d)
    z = abs(d.mean()) / (d.std(ddof=1) / math.sqrt(d.size))
    assert r.p_worse < 1e-50
    assert math.isclose(math.log(r.p_worse), math.log(normal_tail(z)), rel_tol=0.15)
    assert normal_tail(1.959964) == pytest.approx(0.025, abs=1e-6)
    # 27 such comparisons in one table still reject after Holm (the floor gave 27/1001 = 0.027 at best)
    assert holm([r.p_worse] * 27)[0] < 0.05


def test_format_p_floors_what_no_decision_needs():
    assert format_p(0.0123456) == "0.0123"
    assert format_p(0.0) == "<1e-12" and format_p(3e-13) == "<1e-12"
    assert format_p(1e-12) == "1e-12"
