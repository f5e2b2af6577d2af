"""gate_pipeline.lib.intervals against scipy / statsmodels oracles and a seeded coverage simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from gate_pipeline.lib import intervals as iv

CASES = [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (7, 40), (1, 300), (150, 300)]


@pytest.mark.parametrize(("k", "n"), CASES)
def test_clopper_pearson_is_scipys_exact_interval(k, n):
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.90, method="exact")
    lo, hi = iv.clopper_pearson(k, n, 0.05, 0.05)
    assert (float(lo), float(hi)) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_clopper_pearson_vectorized_and_empty():
    lo, hi = iv.clopper_pearson(np.array([0, 3, 0]), np.array([10, 10, 0]), 0.05, 0.05)
    assert lo.shape == (3,) and (lo[2], hi[2]) == (0.0, 1.0)


@pytest.mark.parametrize(("k", "n"), CASES)
def test_wilson_is_statsmodels(k, n):
    lo, hi = iv.wilson(k, n, 0.05)
    assert (float(lo), float(hi)) == pytest.approx(proportion_confint(k, n, 0.05, method="wilson"), abs=1e-12)


@pytest.mark.parametrize(("k1", "n1", "k2", "n2"), [(5, 40, 2, 50), (0, 20, 3, 30), (30, 30, 10, 25)])
def test_newcombe_is_statsmodels(k1, n1, k2, n2):
    want = confint_proportions_2indep(k1, n1, k2, n2, method="newcomb", compare="diff", alpha=0.05)
    got = iv.newcombe_difference(k1, n1, k2, n2, 0.05)
    assert (float(got[0]), float(got[1])) == pytest.approx(want, abs=1e-12)


def test_difference_and_ratio_combine_bounds():
    assert tuple(map(float, iv.difference_interval(0.2, 0.4, 0.1, 0.15))) == pytest.approx((0.05, 0.3))
    lo, hi = iv.ratio_interval(0.2, 0.4, 0.1, 0.2)
    assert (float(lo), float(hi)) == pytest.approx((1.0, 4.0))
    assert float(iv.ratio_interval(0.2, 0.4, 0.0, 0.2)[1]) == np.inf


@pytest.mark.parametrize(
    ("n", "q"), [(20, 0.5), (34, 0.95), (35, 0.99), (100, 0.95), (200, 0.99), (59, 0.95)]
)
def test_fixed_quantile_interval_is_scipys_quantile_test_interval(n, q):
    x = np.sort(np.random.default_rng(n).normal(size=n))
    ci = stats.quantile_test(x, q=0.0, p=q).confidence_interval(confidence_level=0.95)
    lo, hi = iv.quantile_bounds(x, q, 0.025, 0.025, "fixed")
    # scipy gives NaN for a side the sample is too small to bound; we give None (never a clipped rank).
    assert lo == (None if np.isnan(ci.low) else pytest.approx(ci.low))
    assert hi == (None if np.isnan(ci.high) else pytest.approx(ci.high))


def test_order_statistic_ranks_have_exact_coverage_and_refuse_small_n():
    # p95 at n = 34: the old clipped ranks covered 82%; the upper rank does not exist at 97.5%.
    lower, upper = iv.order_statistic_ranks(34, 0.95, 0.025, 0.025)
    assert int(upper) == 35  # n + 1: no upper bound
    lower, upper = iv.order_statistic_ranks(100, 0.95, 0.025, 0.025)
    cover = stats.binom.cdf(int(upper) - 1, 100, 0.95) - stats.binom.cdf(int(lower) - 1, 100, 0.95)
    assert cover >= 0.95 and (int(lower), int(upper)) == (90, 100)


def _log_m(k, n, p, a, b, above):
    # the one-sided mixture written out: int over (p, 1] (or [0, p)) of the likelihood ratio against p,
    # prior Beta(a, b) restricted to that side: B(a+k, b+n-k) * tail(a+k, b+n-k) / (B(a, b) * tail(a, b))
    tail = special.betaincc if above else special.betainc
    log_lik = special.xlogy(k, p) + special.xlog1py(n - k, -p)
    num = special.betaln(a + k, b + n - k) + np.log(tail(a + k, b + n - k, p))
    return num - special.betaln(a, b) - np.log(tail(a, b, p)) - log_lik


@pytest.mark.parametrize(("k", "n"), [(0, 30), (2, 30), (12, 40), (40, 40), (5, 300)])
def test_mixture_bounds_invert_the_one_sided_martingales(k, n):
    a, b = 0.2, 1.8
    lo, hi = map(float, iv.mixture_bounds(k, n, 0.01, 0.05, a, b))
    grid = np.linspace(1e-6, 1 - 1e-6, 200_001)
    with np.errstate(divide="ignore"):
        kept_hi = _log_m(k, n, grid, a, b, above=False) < np.log(1 / 0.05)
        kept_lo = _log_m(k, n, grid, a, b, above=True) < np.log(1 / 0.01)
    # the kept sets are intervals: [lo, 1) for the lower test, (0, hi] for the upper one
    want_hi = grid[kept_hi][-1] if k < n else 1.0
    want_lo = grid[kept_lo][0] if k > 0 else 0.0
    assert (np.diff(kept_hi.astype(int)) <= 0).all() and (np.diff(kept_lo.astype(int)) >= 0).all()
    assert lo == pytest.approx(want_lo, abs=1e-5) and hi == pytest.approx(want_hi, abs=1e-5)


def test_pvalues_agree_with_bounds():
    k, n, p0 = np.array([0, 3, 9, 20, 1]), np.array([30, 40, 40, 40, 1]), 0.1
    for method in ("fixed", "sequential"):
        above, below = iv.rate_pvalues(k, n, p0, method, 0.1, 0.9)
        for alpha in (0.01, 0.05):
            lo, hi = iv.rate_bounds(k, n, alpha, alpha, method, 0.1, 0.9)
            np.testing.assert_array_equal(above <= alpha, lo > p0 + 1e-9)
            np.testing.assert_array_equal(below <= alpha, hi < p0 - 1e-9)
    # no runs: no evidence either way
    assert iv.rate_pvalues(0, 0, 0.1, "sequential") == (1.0, 1.0)


def test_one_run_is_never_decisive_at_one_percent():
    above, _ = iv.rate_pvalues(1, 1, 0.25, "sequential", 0.25, 0.75)
    assert float(above) > 0.01


def test_confidence_sequence_is_time_uniform_over_300_looks():
    """Seeded: the chance that the truth leaves the interval at ANY of 300 looks stays <= alpha (each side),
    where a fixed-sample interval checked at every look does not."""
    rng = np.random.default_rng(12)
    rollouts, looks, alpha = 2000, 300, 0.05
    for p in (0.02, 0.1, 0.4):
        x = rng.random((rollouts, looks)) < p
        k, n = np.cumsum(x, axis=1), np.arange(1, looks + 1)
        # the truth is outside a side of the interval exactly when that side's p-value at the truth is <= alpha
        above, below = iv.rate_pvalues(k, n, p, "sequential", 2 * p, 2 * (1 - p))
        miss_lo, miss_hi = (above <= alpha).any(axis=1).mean(), (below <= alpha).any(axis=1).mean()
        # Ville's inequality bounds each by alpha exactly; allow two Monte Carlo standard errors
        tol = alpha + 2 * np.sqrt(alpha * (1 - alpha) / rollouts)
        assert miss_lo <= tol and miss_hi <= tol, (p, miss_lo, miss_hi)
        if p == 0.1:
            fixed_above, _ = iv.rate_pvalues(k, n, p, "fixed")
            assert (fixed_above <= alpha).any(
                axis=1
            ).mean() > 2 * alpha  # peeking breaks a fixed-sample interval


def test_holm_matches_statsmodels_and_is_vectorized():
    rng = np.random.default_rng(3)
    p = rng.random((5, 40)) ** 3
    rejected, level = iv.holm_reject(p, 0.04)
    for j in range(p.shape[1]):
        want = multipletests(p[:, j], alpha=0.04, method="holm")[0]
        np.testing.assert_array_equal(rejected[:, j], want)
    # rejected tests were judged at their step's level; the rest at the level Holm stopped at
    col = np.array([0.001, 0.5, 0.009, 0.2])
    r, lv = iv.holm_reject(col, 0.04)
    assert r.tolist() == [True, False, True, False]
    assert lv.tolist() == pytest.approx([0.01, 0.02, 0.04 / 3, 0.02])
    b, blv = iv.familywise_reject(col, 0.04, "bonferroni")
    assert b.tolist() == [True, False, True, False] and blv.tolist() == [0.01] * 4
    # absent tests (e.g. a stratum not seen yet) are not counted: m = 2 here, so 0.009 <= 0.04 / 2
    r, lv = iv.holm_reject(col, 0.04, present=[False, True, True, False])
    assert r.tolist() == [False, False, True, False] and lv[2] == pytest.approx(0.02)
    many = np.stack([p, p], axis=0).reshape(10, -1)
    have = np.zeros_like(many, dtype=bool)
    have[:5] = True
    r2, _ = iv.holm_reject(many, 0.04, present=have)
    np.testing.assert_array_equal(r2[:5], iv.holm_reject(many[:5], 0.04)[0])
    assert not r2[5:].any()


def test_runs_needed_is_the_first_deciding_sample_size():
    # 0 of 10 FAIL against 10%: the rate test decides once (1 - 0.1)^n <= alpha for the fixed method,
    # i.e. n >= 29 (0.9^29 = 0.047): 19 more runs.
    assert iv.runs_needed(0, 10, 0.1, 0.05, "fixed") == 19
    more = iv.runs_needed(1, 10, 0.25, 0.05, "sequential", 0.25, 0.75)
    n = 10 + more
    _, below = iv.rate_pvalues(round(0.1 * n), n, 0.25, "sequential", 0.25, 0.75)
    _, before = iv.rate_pvalues(round(0.1 * (n - 1)), n - 1, 0.25, "sequential", 0.25, 0.75)
    assert below <= 0.05 < before
    assert iv.runs_needed(1, 10, 0.1, 0.05, "sequential") is None  # at the threshold: never settles
    assert iv.runs_needed(0, 0, 0.1, 0.05, "sequential") is None


@pytest.mark.parametrize("method", ["sequential", "fixed"])
def test_quantile_bounds_agree_with_the_indicator_test(method):
    """The quantile's upper bound is <= t exactly when the rate of 'x <= t' is shown to be above q, and its
    lower bound is >= t exactly when the rate of 'x < t' is shown to be below q: interval and verdict agree."""
    x = np.sort(np.random.default_rng(8).exponential(size=120))
    q, a, b = 0.5, 1.0, 1.0
    lo, hi = iv.quantile_bounds(x, q, 0.01, 0.05, method, a, b)
    for t in x[::3]:
        k = int(np.searchsorted(x, t, side="right"))
        above, below = iv.rate_pvalues(k, len(x), q, method, a, b)
        assert (hi <= t) == (above <= 0.05)
        k_below = int(np.searchsorted(x, t, side="left"))  # values < t
        _, below_lt = iv.rate_pvalues(k_below, len(x), q, method, a, b)
        assert (lo >= t) == (below_lt <= 0.01)


@pytest.mark.parametrize(
    ("n", "q", "strength"), [(1, 0.5, 1.0), (7, 0.9, 10.0), (40, 0.5, 1.0), (61, 0.99, 2.0)]
)
def test_rank_search_answers_as_the_bisection_would(n, q, strength):
    """quantile_bounds decides each probed rank from one martingale value at q; that answer is the full
    bisection's at every rank and level, including k/n == q and levels at the martingale's value."""
    a, b = strength * q, strength * (1 - q)
    for alpha in (0.001, 0.0125, 0.05, 0.5):
        for k in range(n + 1):
            for lower in (True, False):
                want = bool(iv.mixture_side(k, n, alpha, a, b, lower) >= q)
                assert iv._side_reaches(k, n, q, alpha, a, b, lower) is want, (k, alpha, lower)
    # at the level itself the bisection decides: alpha = 1 / M at q for a rank that is clear of k/n
    k = max(1, round(0.2 * n))
    if k / n < q:
        alpha = float(np.exp(-iv.log_mixture_one_sided(k, n, q, a, b, above=False)))
        want = bool(iv.mixture_side(k, n, alpha, a, b, lower=False) >= q)
        assert iv._side_reaches(k, n, q, alpha, a, b, lower=False) is want


def test_quantile_bounds_are_the_full_bisections_ranks():
    """The interval equals the one found by bisecting every probed rank's bound (the pre-shortcut method)."""
    x = np.sort(np.round(np.random.default_rng(3).exponential(size=300), 2))  # ties, as CI durations have
    for q, alo, ahi in [(0.5, 0.01, 0.05), (0.9, 0.0025, 0.5), (0.99, 0.05, 0.001)]:
        a, b = 2 * q, 2 * (1 - q)

        def bound(k, alpha, lower, q=q, a=a, b=b):
            return iv.mixture_side(k, 300, alpha, a, b, lower) >= q

        low = iv._first_true(lambda j, ahi=ahi, bound=bound: bound(j, ahi, True), 300)
        up = iv._first_true(lambda j, alo=alo, bound=bound: bound(j - 1, alo, False), 300) - 1
        want = (float(x[up - 1]) if up >= 1 else None, float(x[low - 1]) if low <= 300 else None)
        assert iv.quantile_bounds(x, q, alo, ahi, "sequential", a, b) == want
