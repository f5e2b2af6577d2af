"""Intervals checked against oracles: order-statistic quantile intervals against scipy and a direct binomial
computation, Wilson / Newcombe / Katz against statsmodels."""

import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from gate_pipeline.lib import stats as S
from gate_pipeline.lib.stats.intervals import quantile_interval, quantile_min_n, quantile_ranks
from gate_pipeline_tests.lib.test_stats import classified


def coverage_by_hand(n: int, q: float, lo: int, hi: int) -> float:
    """P(lo <= B <= hi - 1), B ~ Binomial(n, q), summed term by term."""
    return sum(math.comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(lo, hi))


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
@pytest.mark.parametrize("level", [0.9, 0.95])
def test_quantile_interval_matches_scipy_quantile_test_and_covers(q, level):
    rng = np.random.default_rng(7)
    for n in [1, 2, 5, 6, 10, 34, 35, 58, 59, 71, 72, 73, 100, 250, 400]:
        x = np.sort(rng.random(n))
        ci = quantile_interval(x, q, level)
        oracle = sps.quantile_test(x, q=0.5, p=q).confidence_interval(level)
        for mine, theirs in ((ci.ci_low, oracle.low), (ci.ci_high, oracle.high)):
            assert (mine is None) == bool(np.isnan(theirs)), (n, q, level)
            assert mine is None or mine == theirs
        if ci.status == "ok":
            # exact coverage, by hand, is at least the level (ranks never clipped)
            assert ci.coverage == pytest.approx(coverage_by_hand(n, q, ci.rank_low, ci.rank_high), abs=1e-12)
            assert ci.coverage >= level
            assert n >= ci.min_n
        else:
            assert ci.status == "too_few_runs" and ci.coverage is None and n < ci.min_n


def test_p95_and_p99_need_enough_runs_for_an_interval():
    # The clipped interval called itself 95% at these n; its coverage was 0.82 (p95, n=34) and 0.29 (p99, n=35).
    p95 = quantile_interval(np.linspace(0, 1, 34), 0.95, 0.95)
    assert p95.status == "too_few_runs" and p95.ci_high is None and p95.rank_low == 29
    p99 = quantile_interval(np.linspace(0, 1, 35), 0.99, 0.95)
    assert p99.status == "too_few_runs" and p99.ci_high is None and p99.rank_low == 33
    assert (quantile_min_n(0.95, 0.95), quantile_min_n(0.99, 0.95), quantile_min_n(0.5, 0.95)) == (72, 368, 6)
    assert quantile_ranks(72, 0.95, 0.95)[1] == 72  # the largest value, not a clipped rank
    assert quantile_interval(np.zeros(0), 0.5, 0.95).status == "empty"


def test_z_comes_from_the_confidence_level():
    assert S.AnalysisConfig().z == pytest.approx(NormalDist().inv_cdf(0.975), abs=1e-15)
    assert S.AnalysisConfig(confidence_level=0.9).z == pytest.approx(1.6448536269514722, abs=1e-12)


def test_summary_reports_quantile_intervals_with_status_never_nan():
    rows = [
        {"policy_hash": "h1" if i < 80 else "h2", "unknown_rate": i / 100, "outcome": "PASS"}
        for i in range(100)
    ]
    table = S.unknown_rate_summary(classified(rows)).set_index(["group_by", "group"])
    overall = table.loc[("overall", "all")]
    assert (overall["median_ci_low"], overall["median_ci_high"]) == (0.39, 0.60)  # ranks 40 and 61
    assert (overall["p95_ci_low"], overall["p95_ci_high"], overall["p95_ci_status"]) == (0.89, 0.99, "ok")
    small = table.loc[("policy_hash", "h2")]  # 20 values: no upper bound for p95 at 95%
    assert small["p95_ci_status"] == "too_few_runs" and small["p95_ci_high"] is None
    assert small["p95_ci_low"] == 0.96 and small["median_ci_status"] == "ok"


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"),
    [(3, 10, 1, 10), (7, 40, 0, 12), (12, 12, 5, 30), (1, 3, 2, 3), (50, 400, 9, 35)],
)
def test_rate_difference_and_ratio_intervals_match_statsmodels(x1, n1, x2, n2):
    z = S.AnalysisConfig().z
    for x, n in ((x1, n1), (x2, n2)):
        r = S.wilson(x, n, z)
        assert (r.ci_low, r.ci_high) == pytest.approx(proportion_confint(x, n, method="wilson"), abs=1e-12)
    d = S.newcombe_diff(x1, n1, x2, n2, z)
    oracle = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff")
    assert (d.ci_low, d.ci_high) == pytest.approx(tuple(map(float, oracle)), abs=1e-12)
    if x1 > 0 and x2 > 0:  # the log interval needs both counts
        r = S.katz_ratio(x1, n1, x2, n2, z)
        oracle = confint_proportions_2indep(x1, n1, x2, n2, method="log", compare="ratio")
        assert (r.ci_low, r.ci_high) == pytest.approx(tuple(map(float, oracle)), rel=1e-10)
