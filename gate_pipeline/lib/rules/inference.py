"""From an aggregate and a threshold to a test: p-values for "violated" and "holds", the interval shown and
how many more runs would settle it. The interval maths itself lives in ``gate_pipeline.lib.intervals``.

A test's bad side is the side that stops the rollout (NO_GO or ROLLBACK): it is judged at the family-wise
level its family gives it (Holm or Bonferroni over the counted harmful tests); the good side at ``alpha_go``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gate_pipeline.lib import distributions
from gate_pipeline.lib import intervals as iv
from gate_pipeline.lib.rules.config import QUANTILES, DecisionSettings

_INF = float("inf")
_PRIOR_EDGE = 1e-6  # keeps the mixture prior's mean inside (0, 1) for thresholds at 0 or 1


@dataclass(frozen=True)
class Spec:
    """What the settings imply for every test: method, prior strength, runs-needed horizon."""

    method: str
    strength: float
    max_runs: int

    @staticmethod
    def of(s: DecisionSettings) -> Spec:
        return Spec(s.interval, s.mixture_strength, s.runs_needed_max)

    def prior(self, center: float) -> tuple[float, float]:
        c = min(max(center, _PRIOR_EDGE), 1 - _PRIOR_EDGE)
        return self.strength * c, self.strength * (1 - c)


def method_label(method: str) -> str:
    if method == "sequential":
        return "beta-binomial mixture confidence sequence (Howard et al. 2021), anytime-valid"
    return "exact binomial (Clopper-Pearson) interval, fixed-sample: valid for one look only"


class RateTest:
    """k of n against the rate p0; ``bad_above``: a rate above p0 is the bad side."""

    short = {"sequential": "mixture_cs", "fixed": "clopper_pearson"}

    def __init__(self, k: int, n: int, p0: float, bad_above: bool, spec: Spec):
        self.k, self.n, self.p0, self.bad_above, self.spec = k, n, p0, bad_above, spec
        self.a, self.b = spec.prior(p0)
        above, below = iv.rate_pvalues(k, n, p0, spec.method, self.a, self.b)
        self._bad = float(above if bad_above else below)
        self._good = float(below if bad_above else above)
        self.ci_method = self.short[spec.method]
        self.method = method_label(spec.method)

    def p_bad(self, levels: list[float]) -> float:
        return self._bad

    def good_at(self, alpha: float) -> bool:
        return self._good <= alpha

    def interval(self, alpha_bad: float, alpha_good: float) -> tuple[float | None, float | None]:
        a_lo, a_hi = (alpha_bad, alpha_good) if self.bad_above else (alpha_good, alpha_bad)
        lo, hi = iv.rate_bounds(self.k, self.n, a_lo, a_hi, self.spec.method, self.a, self.b)
        return float(lo), float(hi)

    def runs_more(self, alpha_bad: float, alpha_good: float) -> int | None:
        if self.n == 0:
            return None
        toward_bad = (self.k / self.n > self.p0) == self.bad_above
        alpha = alpha_bad if toward_bad else alpha_good
        return iv.runs_needed(
            self.k, self.n, self.p0, alpha, self.spec.method, self.a, self.b, self.spec.max_runs
        )


class QuantileTest:
    """The q-quantile against a threshold, as the rate of the indicator ``X <= t`` (or ``X < t``) against q."""

    def __init__(self, sorted_vals: np.ndarray, q: float, thr: float, bad_above: bool, spec: Spec):
        self.x, self.q, self.bad_above, self.spec = sorted_vals, q, bad_above, spec
        # quantile > t  <=>  P(X <= t) < q ;  quantile < t  <=>  P(X < t) > q
        side = "right" if bad_above else "left"
        k = int(np.searchsorted(sorted_vals, thr, side=side))
        self.rate = RateTest(k, len(sorted_vals), q, bad_above=not bad_above, spec=spec)
        self.ci_method = "quantile_cs" if spec.method == "sequential" else "order_statistic_exact"
        self.method = (
            f"{method_label(spec.method)}, on the indicator of values past the threshold against {q:g}; "
            "interval by inversion over the order statistics"
        )

    def p_bad(self, levels: list[float]) -> float:
        return self.rate.p_bad(levels)

    def good_at(self, alpha: float) -> bool:
        return self.rate.good_at(alpha)

    def interval(self, alpha_bad: float, alpha_good: float) -> tuple[float | None, float | None]:
        a_lo, a_hi = (alpha_bad, alpha_good) if self.bad_above else (alpha_good, alpha_bad)
        return quantile_interval(self.x, self.q, a_lo, a_hi, self.spec)

    def runs_more(self, alpha_bad: float, alpha_good: float) -> int | None:
        return self.rate.runs_more(alpha_bad, alpha_good)


def quantile_interval(x: np.ndarray, q: float, a_lo: float, a_hi: float, spec: Spec):
    a, b = spec.prior(q)
    return iv.quantile_bounds(x, q, a_lo, a_hi, spec.method, a, b)


class MeanTest:
    """Student t on the mean. There is no confidence sequence for an unbounded mean here: fixed-sample."""

    ci_method = "student_t"
    method = (
        "Student t interval, fixed-sample (not anytime-valid: no confidence sequence for unbounded means)"
    )

    def __init__(self, vals: np.ndarray, thr: float, bad_above: bool):
        self.x, self.thr, self.bad_above = vals, thr, bad_above
        n = len(vals)
        self.mean = float(vals.mean()) if n else float("nan")
        self.se = float(vals.std(ddof=1)) / np.sqrt(n) if n >= 2 else float("nan")
        self._bad, self._good = 1.0, 1.0
        if n >= 2 and self.se > 0:
            t = (self.mean - thr) / self.se
            above, below = float(distributions.t_sf(t, n - 1)), float(distributions.t_cdf(t, n - 1))
            self._bad, self._good = (above, below) if bad_above else (below, above)
        elif n >= 2 and self.mean != thr:  # no spread at all: the interval is the single observed value
            violated = self.mean > thr if bad_above else self.mean < thr
            self._bad, self._good = (0.0, 1.0) if violated else (1.0, 0.0)

    def p_bad(self, levels: list[float]) -> float:
        return self._bad

    def good_at(self, alpha: float) -> bool:
        return self._good <= alpha

    def interval(self, alpha_bad: float, alpha_good: float) -> tuple[float | None, float | None]:
        return mean_interval(
            self.x, *((alpha_bad, alpha_good) if self.bad_above else (alpha_good, alpha_bad))
        )

    def runs_more(self, alpha_bad: float, alpha_good: float) -> int | None:
        return None


def mean_interval(x: np.ndarray, a_lo: float, a_hi: float) -> tuple[float | None, float | None]:
    n = len(x)
    if n < 2:
        return None, None
    m, se = float(x.mean()), float(x.std(ddof=1)) / np.sqrt(n)
    return m - float(distributions.t_isf(a_lo, n - 1)) * se, m + float(distributions.t_isf(a_hi, n - 1)) * se


class ObservedTest:
    """count, sum, min, max: the observed value itself decides (no sampling interval)."""

    ci_method = "observed"
    method = "observed value (descriptive total, no sampling interval)"

    def __init__(self, value: float, thr: float, bad_above: bool):
        self.value = value
        violated = value > thr if bad_above else value < thr
        self._bad = 0.0 if violated else 1.0
        self._good = 1.0 - self._bad

    def p_bad(self, levels: list[float]) -> float:
        return self._bad

    def good_at(self, alpha: float) -> bool:
        return self._good <= alpha

    def interval(self, alpha_bad: float, alpha_good: float) -> tuple[float | None, float | None]:
        return self.value, self.value

    def runs_more(self, alpha_bad: float, alpha_good: float) -> int | None:
        return None


def component_bounds(agg, aggregate: str, spec: Spec, a_lo: float, a_hi: float) -> tuple[float, float]:
    """One side of a relative rule, bounded at (a_lo, a_hi); an unbounded side is -inf / +inf."""
    if aggregate == "rate":
        a, b = spec.prior(0.5)
        lo, hi = iv.rate_bounds(agg.k, agg.n, a_lo, a_hi, spec.method, a, b)
        return float(lo), float(hi)
    if aggregate in QUANTILES:
        lo, hi = quantile_interval(agg.arr, QUANTILES[aggregate], a_lo, a_hi, spec)
    elif aggregate == "mean":
        lo, hi = mean_interval(agg.arr, a_lo, a_hi)
    else:
        lo, hi = agg.value, agg.value
    return (-_INF if lo is None else lo), (_INF if hi is None else hi)


class RelativeTest:
    """measure(current, baseline) against a threshold, from one-sided bounds of each side at alpha/2
    (Bonferroni: valid for paired and independent samples, conservative). Fixed-sample rate differences of
    two independent samples use Newcombe's hybrid score interval instead."""

    def __init__(
        self, cur, base, cur_agg: str, base_agg: str, measure: str, thr: float, bad_above: bool, spec, paired
    ):
        self.cur, self.base, self.cur_agg, self.base_agg = cur, base, cur_agg, base_agg
        self.measure, self.thr, self.bad_above, self.spec = measure, thr, bad_above, spec
        self.newcombe = (
            spec.method == "fixed"
            and measure == "difference"
            and cur_agg == base_agg == "rate"
            and not paired
        )
        self.ci_method = "newcombe" if self.newcombe else f"combined_{spec.method}"
        how = (
            "Newcombe hybrid score interval" if self.newcombe else "one-sided bounds of each side at alpha/2"
        )
        self.method = f"{how} ({method_label(spec.method)} per side; conservative)"

    def bounds(self, a_lo: float, a_hi: float) -> tuple[float, float]:
        if self.measure == "reduction":  # 1 - ratio: the ratio's upper bound gives the lower one
            lo, hi = self._ratio_or_diff("ratio", a_hi, a_lo)
            return 1 - hi, 1 - lo
        lo, hi = self._ratio_or_diff("difference" if self.measure == "difference" else "ratio", a_lo, a_hi)
        return (lo - 1, hi - 1) if self.measure == "relative_change" else (lo, hi)

    def _ratio_or_diff(self, kind: str, a_lo: float, a_hi: float) -> tuple[float, float]:
        if self.newcombe:
            lo = iv.newcombe_difference(self.cur.k, self.cur.n, self.base.k, self.base.n, 2 * a_lo)[0]
            hi = iv.newcombe_difference(self.cur.k, self.cur.n, self.base.k, self.base.n, 2 * a_hi)[1]
            return float(lo), float(hi)
        c_lo, c_hi = component_bounds(self.cur, self.cur_agg, self.spec, a_lo / 2, a_hi / 2)
        b_lo, b_hi = component_bounds(self.base, self.base_agg, self.spec, a_hi / 2, a_lo / 2)
        fn = iv.difference_interval if kind == "difference" else iv.ratio_interval
        lo, hi = fn(c_lo, c_hi, b_lo, b_hi)
        return float(lo), float(hi)

    def _bad_at(self, alpha: float, good_alpha: float) -> bool:
        lo, hi = self.interval(alpha, good_alpha)
        return (lo > self.thr) if self.bad_above else (hi < self.thr)

    def p_bad(self, levels: list[float]) -> float:
        # Holm and Bonferroni only compare p with these levels: the smallest level that rejects is exact.
        for level in sorted(levels):
            if self._bad_at(level, 0.5):
                return level
        return 1.0

    def good_at(self, alpha: float) -> bool:
        lo, hi = self.interval(0.5, alpha)
        return (hi <= self.thr) if self.bad_above else (lo >= self.thr)

    def interval(self, alpha_bad: float, alpha_good: float) -> tuple[float, float]:
        a_lo, a_hi = (alpha_bad, alpha_good) if self.bad_above else (alpha_good, alpha_bad)
        return self.bounds(a_lo, a_hi)

    def runs_more(self, alpha_bad: float, alpha_good: float) -> int | None:
        return None


def make_test(agg, aggregate: str, thr: float, bad_above: bool, spec: Spec):
    """The test for an absolute or rollback rule on one aggregate (None without data)."""
    if agg.value is None:
        return None
    if aggregate == "rate":
        return RateTest(agg.k, agg.n, thr, bad_above, spec)
    if aggregate in QUANTILES:
        return QuantileTest(agg.arr, QUANTILES[aggregate], thr, bad_above, spec)
    if aggregate == "mean":
        return MeanTest(agg.arr, thr, bad_above)
    return ObservedTest(agg.value, thr, bad_above)
