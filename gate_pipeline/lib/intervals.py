"""Intervals and tests for rates and quantiles, fixed-sample and anytime-valid; vectorized over many rollouts.

Pure numpy/scipy, no pandas, no Dagster. Every function takes numpy arrays (or scalars) of counts ``k`` of
``n`` and broadcasts, so the decision benchmark evaluates thousands of simulated rollouts at every look with
the same functions the pipeline calls.

Methods (``method`` argument):

* ``fixed``: exact (Clopper-Pearson) binomial intervals and the exact one-sided binomial test. Valid for ONE
  look at the data (a one-off analysis), not under repeated looks.
* ``sequential``: the beta-binomial mixture confidence sequence for a Bernoulli mean (Howard, Ramdas,
  McAuliffe, Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist. 2021).
  For a mixing prior Beta(a, b) over the true rate,
  ``M_n(p) = B(a + k, b + n - k) / B(a, b) / (p^k (1 - p)^(n - k))`` is a nonnegative martingale with mean 1
  when the rate is ``p``; by Ville's inequality ``P(exists n: M_n(p) >= 1/alpha) <= alpha``. Each side is its
  own one-sided test at its own alpha, with the prior restricted to that side (``log_mixture_one_sided``):
  ``min(1, 1/M_n^+(p0))`` is an anytime-valid p-value for "rate <= p0", and the lower bound
  ``{p: M_n^+(p) < 1/alpha}`` covers the true rate at every n at once with probability >= 1 - alpha.

Quantiles reduce to Bernoulli indicators: ``q-quantile <= t`` iff ``P(X <= t) >= q``, so a threshold rule on a
quantile is a rate test of the indicator ``X <= t`` against ``q``, and an interval for the quantile itself
comes from inverting the rate bounds over the order statistics (for ``fixed`` this is exactly the classical
distribution-free order-statistic interval with binomial ranks).

Two-sample intervals (difference, ratio) combine one-sample intervals at alpha/2 each (Bonferroni): valid
for dependent samples too, conservative. Newcombe's hybrid score interval is the fixed-sample alternative
for the difference of two independent rates.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from gate_pipeline.lib import distributions

Array = np.ndarray
METHODS = ("sequential", "fixed")
_BISECT_STEPS = 60  # halves [0, 1] to 1e-18: below float resolution of a rate


def _arr(*xs):
    return np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in xs))


# ------------------------------------------------------------------------------------------ fixed-sample


def clopper_pearson(k, n, alpha_lo, alpha_hi) -> tuple[Array, Array]:
    """Exact binomial bounds: lower at one-sided level alpha_lo, upper at alpha_hi (n = 0 gives [0, 1])."""
    k, n, alo, ahi = _arr(k, n, alpha_lo, alpha_hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k > 0, distributions.beta_ppf(alo, np.maximum(k, 1), n - k + 1), 0.0)
        hi = np.where(k < n, distributions.beta_ppf(1 - ahi, k + 1, np.maximum(n - k, 1)), 1.0)
    return np.where(n > 0, lo, 0.0), np.where(n > 0, hi, 1.0)


def wilson(k, n, alpha) -> tuple[Array, Array]:
    """Two-sided Wilson score interval at level 1 - alpha (n = 0 gives [0, 1])."""
    k, n, alpha = _arr(k, n, alpha)
    z = distributions.norm_isf(alpha / 2)
    nn = np.maximum(n, 1)
    p = k / nn
    den = 1 + z**2 / nn
    center = (p + z**2 / (2 * nn)) / den
    half = z * np.sqrt(p * (1 - p) / nn + z**2 / (4 * nn**2)) / den
    return np.where(n > 0, np.clip(center - half, 0, 1), 0.0), np.where(
        n > 0, np.clip(center + half, 0, 1), 1.0
    )


def newcombe_difference(k1, n1, k2, n2, alpha) -> tuple[Array, Array]:
    """Newcombe's hybrid score interval (his method 10) for p1 - p2 of two independent samples, level 1 - alpha."""
    k1, n1, k2, n2, alpha = _arr(k1, n1, k2, n2, alpha)
    l1, u1 = wilson(k1, n1, alpha)
    l2, u2 = wilson(k2, n2, alpha)
    p1, p2 = k1 / np.maximum(n1, 1), k2 / np.maximum(n2, 1)
    d = p1 - p2
    lo = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return lo, hi


def difference_interval(lo1, hi1, lo2, hi2) -> tuple[Array, Array]:
    """Bounds for x1 - x2 from bounds for each (each at alpha/2 gives level 1 - alpha for the difference)."""
    lo1, hi1, lo2, hi2 = _arr(lo1, hi1, lo2, hi2)
    return lo1 - hi2, hi1 - lo2


def ratio_interval(lo1, hi1, lo2, hi2) -> tuple[Array, Array]:
    """Bounds for x1 / x2 (x1 >= 0, x2 > 0) from bounds for each; an upper bound of +inf when x2 may be 0."""
    lo1, hi1, lo2, hi2 = _arr(lo1, hi1, lo2, hi2)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(hi2 > 0, np.maximum(lo1, 0) / hi2, 0.0)
        hi = np.where(lo2 > 0, hi1 / lo2, np.inf)
    return lo, hi


# ------------------------------------------------------------------------------- anytime-valid (mixture)


def log_mixture(k, n, p, a, b) -> Array:
    """log M_n(p) of the two-sided beta-binomial mixture martingale (Howard et al. 2021), in log space."""
    k, n, p, a, b = _arr(k, n, p, a, b)
    loglik = special.xlogy(k, p) + special.xlog1py(n - k, -p)
    return special.betaln(a + k, b + n - k) - special.betaln(a, b) - loglik


def log_mixture_one_sided(k, n, p, a, b, above: bool) -> Array:
    """log M_n^+(p) (``above``: the Beta(a, b) prior restricted to (p, 1]) or log M_n^-(p) (restricted to
    [0, p)). A mixture of likelihood ratios against p over a fixed prior is a nonnegative martingale under
    p, and a supermartingale under any rate on the other side of p, so 1 / M_n^+(p0) is an anytime-valid
    p-value for "the rate is <= p0" (and M^- for ">= p0"). It spends no prior mass on the side that cannot
    reject, which makes each one-sided bound tighter than the two-sided mixture's."""
    k, n, p, a, b = _arr(k, n, p, a, b)
    tail = special.betaincc if above else special.betainc
    with np.errstate(divide="ignore"):
        mass = np.log(tail(a + k, b + n - k, p)) - np.log(tail(a, b, p))
    return log_mixture(k, n, p, a, b) + mass


def mixture_bounds(k, n, alpha_lo, alpha_hi, a, b) -> tuple[Array, Array]:
    """Confidence-sequence bounds by inverting the one-sided mixture tests: the lower bound at alpha_lo is
    where log M^+(p) falls below log(1/alpha_lo) (left of k/n), the upper bound at alpha_hi where log M^-(p)
    does (right of k/n); found by vectorized bisection, each side on its own (:func:`mixture_side`)."""
    k, n, alo, ahi, a, b = _arr(k, n, alpha_lo, alpha_hi, a, b)
    return mixture_side(k, n, alo, a, b, lower=True), mixture_side(k, n, ahi, a, b, lower=False)


def mixture_side(k, n, alpha, a, b, lower: bool) -> Array:
    """One side of :func:`mixture_bounds`: the lower bound at ``alpha`` (``lower``) or the upper bound.

    Bisection over [0, k/n] (lower) or [k/n, 1] (upper), ``_BISECT_STEPS`` halvings. The parts of the
    martingale that do not depend on p (the two log-beta terms) are computed once, in the same order of
    operations as :func:`log_mixture_one_sided`, so every step sees the same floats as that function."""
    k, n, alpha, a, b = _arr(k, n, alpha, a, b)
    phat = np.where(n > 0, k / np.maximum(n, 1), 0.5)
    above = lower  # the lower bound inverts the test against rates above p, with the prior on (p, 1]
    tail = special.betaincc if above else special.betainc
    # The step's operands that do not change (each the same float as computed inside the step).
    ak, bnk, nk = a + k, b + n - k, n - k
    log_beta = special.betaln(ak, bnk) - special.betaln(a, b)
    target = -np.log(alpha)
    lo, hi = (np.zeros_like(phat), phat.copy()) if lower else (phat.copy(), np.ones_like(phat))
    with np.errstate(divide="ignore"):
        for _ in range(_BISECT_STEPS):
            mid = (lo + hi) / 2
            loglik = special.xlogy(k, mid) + special.xlog1py(nk, -mid)
            mass = np.log(tail(ak, bnk, mid)) - np.log(tail(a, b, mid))
            rejected = log_beta - loglik + mass >= target
            # lower side: p rejected -> the bound is right of mid; upper side: rejected -> left of mid
            move_lo = rejected if above else ~rejected
            lo, hi = np.where(move_lo, mid, lo), np.where(move_lo, hi, mid)
    if lower:
        return np.where((k > 0) & (n > 0), hi, 0.0)
    return np.where((k < n) & (n > 0), lo, 1.0)


#: How far (in log M) the martingale at q must be from the level for :func:`_side_reaches` to decide without
#: the bisection. Rounding in log M is ~1e-10 at a million runs, and the bisection's last bracket moves log M
#: by less than that; inside this band the bisection decides.
_DECIDE_MARGIN = 1e-6


def _side_reaches(k: int, n: int, q: float, alpha: float, a: float, b: float, lower: bool) -> bool:
    """``mixture_side(k, n, alpha, a, b, lower) >= q``, mostly from one evaluation of the martingale at q.

    The bound is where the one-sided test at alpha stops rejecting, and the rejected rates are an interval
    ([0, bound) for the lower side, (bound, 1] for the upper one; the tests check this against a grid), so
    whether the bound lies past q is whether q itself is rejected. When log M at q is within
    ``_DECIDE_MARGIN`` of the level, or q is k/n itself, the full bisection answers, so the result is always
    the bisection's."""
    if n <= 0 or (k <= 0 if lower else k >= n):
        return (0.0 if lower else 1.0) >= q
    phat = k / n
    if q != phat:
        if (q > phat) if lower else (q < phat):  # the bound never crosses k/n
            return not lower
        log_m = float(log_mixture_one_sided(k, n, q, a, b, above=lower))
        level = float(-np.log(np.asarray(alpha, dtype=float)))
        if np.isfinite(log_m) and abs(log_m - level) > _DECIDE_MARGIN:
            return (log_m >= level) == lower  # lower: q rejected -> bound > q; upper: rejected -> bound < q
    return bool(mixture_side(k, n, alpha, a, b, lower) >= q)


# --------------------------------------------------------------------------------------- rates, dispatch


def rate_bounds(k, n, alpha_lo, alpha_hi, method: str, a: float = 1.0, b: float = 1.0) -> tuple[Array, Array]:
    """Lower bound at one-sided alpha_lo, upper at alpha_hi, for a rate k/n: ``fixed`` (Clopper-Pearson) or
    ``sequential`` (beta-binomial mixture confidence sequence with prior Beta(a, b))."""
    if method == "fixed":
        return clopper_pearson(k, n, alpha_lo, alpha_hi)
    if method == "sequential":
        return mixture_bounds(k, n, alpha_lo, alpha_hi, a, b)
    raise ValueError(f"unknown interval method {method!r}; expected one of {METHODS}")


def rate_pvalues(k, n, p0, method: str, a: float = 1.0, b: float = 1.0) -> tuple[Array, Array]:
    """One-sided p-values (above, below) for "the rate is > p0" and "the rate is < p0".

    ``above <= alpha`` exactly when the lower bound at alpha lies above p0 (and ``below`` likewise for the
    upper bound): the tests and the intervals of ``rate_bounds`` agree. ``sequential`` p-values are
    anytime-valid (1 / M_n(p0) on the side of the estimate, 1 on the other); n = 0 gives (1, 1)."""
    k, n, p0 = _arr(k, n, p0)
    if method == "fixed":
        above = np.where(k > 0, distributions.binom_sf(k - 1, n, p0), 1.0)
        below = np.where(k < n, distributions.binom_cdf(k, n, p0), 1.0)
    elif method == "sequential":
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            p_above = np.minimum(1.0, np.exp(-log_mixture_one_sided(k, n, p0, a, b, above=True)))
            p_below = np.minimum(1.0, np.exp(-log_mixture_one_sided(k, n, p0, a, b, above=False)))
            phat = k / np.maximum(n, 1)
        above = np.where(phat > p0, p_above, 1.0)
        below = np.where(phat < p0, p_below, 1.0)
    else:
        raise ValueError(f"unknown interval method {method!r}; expected one of {METHODS}")
    empty = n <= 0
    return np.where(empty, 1.0, above), np.where(empty, 1.0, below)


# ------------------------------------------------------------------------------------------------ quantiles


def quantile_bounds(
    sorted_vals, q: float, alpha_lo: float, alpha_hi: float, method: str, a: float = 1.0, b: float = 1.0
) -> tuple[float | None, float | None]:
    """Interval for the q-quantile from the sorted sample by inverting the rate bounds over the order
    statistics; None for a side that the sample is too small to bound at its level (never clipped).

    Upper bound: the smallest x_(j) whose count j of values <= it gives a lower bound on P(X <= x_(j)) of at
    least q. Lower bound: the largest x_(j) whose count j - 1 of values below it gives an upper bound on
    P(X < x_(j)) below q. For ``fixed`` these are the exact binomial order-statistic ranks."""
    x = np.asarray(sorted_vals, dtype=float)
    n = len(x)
    if n == 0:
        return None, None

    if method == "sequential":  # one martingale evaluation per probed rank instead of two bisections

        def low_reaches(j: int) -> bool:  # lower bound on P(X <= x_(j)) >= q, increasing in j
            return _side_reaches(j, n, q, alpha_hi, a, b, lower=True)

        def up_reaches(j: int) -> bool:  # upper bound on P(X < x_(j)) >= q, increasing in j
            return _side_reaches(j - 1, n, q, alpha_lo, a, b, lower=False)

    else:

        def low_reaches(j: int) -> bool:
            return float(rate_bounds(j, n, alpha_hi, 0.5, method, a, b)[0]) >= q

        def up_reaches(j: int) -> bool:
            return float(rate_bounds(j - 1, n, 0.5, alpha_lo, method, a, b)[1]) >= q

    j_hi = _first_true(low_reaches, n)  # smallest j with low_f(j) >= q
    j_lo = _first_true(up_reaches, n) - 1  # largest j with up_f(j) < q
    hi = float(x[j_hi - 1]) if j_hi <= n else None
    lo = float(x[j_lo - 1]) if j_lo >= 1 else None
    return lo, hi


def _first_true(pred, n: int) -> int:
    """Smallest j in 1..n with pred(j) for a monotone pred (False ... True); n + 1 when none."""
    lo, hi = 1, n + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def order_statistic_ranks(n, q: float, alpha_lo: float, alpha_hi: float) -> tuple[Array, Array]:
    """1-based ranks (l, u) of the exact fixed-sample interval [x_(l), x_(u)] for the q-quantile:
    P(x_(l) > quantile) <= alpha_lo and P(x_(u) < quantile) <= alpha_hi. l = 0 means no lower bound and
    u = n + 1 no upper bound at that level (the sample is too small)."""
    n = np.asarray(n)
    lower = distributions.binom_ppf(alpha_lo, n, q).astype(
        int
    )  # largest l with P(Bin(n, q) <= l - 1) < alpha_lo
    upper = (
        distributions.binom_ppf(1 - alpha_hi, n, q).astype(int) + 1
    )  # smallest u with P(Bin >= u) <= alpha_hi
    return lower, np.minimum(upper, n + 1)


# ----------------------------------------------------------------------------------------- multiplicity


def holm_reject(pvalues, alpha: float, present=None) -> tuple[Array, Array]:
    """Holm's step-down over axis 0 (the tests): (rejected, level each test was judged at).

    Controls the family-wise error at ``alpha`` under any dependence; with anytime-valid p-values it does so
    at every look at once. Vectorized over the other axes (e.g. rollouts x looks); ``present`` (same shape,
    optional) marks the tests that exist in each column (e.g. strata seen so far): the others are not
    counted in m and never rejected."""
    p = np.asarray(pvalues, dtype=float)
    have = np.ones(p.shape, dtype=bool) if present is None else np.asarray(present, dtype=bool)
    m = have.sum(axis=0)  # tests per column
    order = np.argsort(np.where(have, p, np.inf), axis=0, kind="stable")
    ps = np.take_along_axis(np.where(have, p, np.inf), order, axis=0)
    steps = np.arange(p.shape[0]).reshape((p.shape[0],) + (1,) * (p.ndim - 1))
    with np.errstate(divide="ignore"):
        levels = np.where(steps < m, alpha / np.maximum(m - steps, 1), 0.0)
    ok_sorted = np.logical_and.accumulate(ps <= levels, axis=0)
    # Each test is judged at the level of its step; the first not rejected stops everyone after it there.
    stop = ok_sorted.sum(axis=0)
    stop_level = alpha / np.maximum(m - np.minimum(stop, np.maximum(m - 1, 0)), 1)
    level_sorted = np.where(ok_sorted, levels, stop_level)
    rejected = np.empty_like(ok_sorted)
    level = np.empty_like(level_sorted)
    np.put_along_axis(rejected, order, ok_sorted, axis=0)
    np.put_along_axis(level, order, level_sorted, axis=0)
    return rejected & have, level


def bonferroni_reject(pvalues, alpha: float, present=None) -> tuple[Array, Array]:
    """Each present test at alpha / m (m = present tests in its column)."""
    p = np.asarray(pvalues, dtype=float)
    have = np.ones(p.shape, dtype=bool) if present is None else np.asarray(present, dtype=bool)
    level = np.broadcast_to(alpha / np.maximum(have.sum(axis=0), 1), p.shape)
    return (p <= level) & have, level


def familywise_reject(pvalues, alpha: float, procedure: str, present=None) -> tuple[Array, Array]:
    if procedure == "holm":
        return holm_reject(pvalues, alpha, present)
    if procedure == "bonferroni":
        return bonferroni_reject(pvalues, alpha, present)
    raise ValueError(f"unknown multiplicity procedure {procedure!r}")


# --------------------------------------------------------------------------------------------- runs needed


def runs_needed(
    k: int, n: int, p0: float, alpha: float, method: str, a: float = 1.0, b: float = 1.0, max_n: int = 100_000
) -> int | None:
    """How many more runs, at the current rate k/n, until the rate test against p0 at ``alpha`` decides
    (on the side the estimate is on). None when it never would (estimate equal to p0, no runs, or beyond
    ``max_n`` runs in total)."""
    if n <= 0 or k * 1.0 == p0 * n or max_n <= n:
        return None
    phat = k / n
    grid = np.unique(
        np.concatenate([np.arange(n + 1, min(n + 200, max_n) + 1), np.geomspace(n + 1, max_n, 400)])
    )
    grid = grid.astype(int)
    kk = np.round(phat * grid)
    above, below = rate_pvalues(kk, grid, p0, method, a, b)
    pv = above if phat > p0 else below
    hit = np.flatnonzero(pv <= alpha)
    return int(grid[hit[0]] - n) if len(hit) else None
