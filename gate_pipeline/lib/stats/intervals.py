"""Confidence intervals for rates and their comparisons, at the two-sided normal quantile ``z``
(:attr:`AnalysisConfig.z <gate_pipeline.lib.stats.config.AnalysisConfig.z>`).

Single rates: **Wilson score**; differences of independent rates: **Newcombe hybrid score** (1998, method 10);
differences of paired rates: Newcombe's paired method with the continuity-corrected phi (Newcombe 1998b,
Altman et al. 2000 p. 52); ratios: the **log method** (Katz for independent groups, var(ln RR) =
(b+c)/((a+b)(a+c)) for paired ones); quantiles (median, p95): the exact binomial **order-statistic**
interval (the ranks of ``scipy.stats.quantile_test``), or no interval when n is too small for the level.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gate_pipeline.lib.distributions import binom_cdf, norm_ppf
from gate_pipeline.lib.intervals import order_statistic_ranks


@dataclass(frozen=True)
class RateCI:
    """A proportion x/n with its Wilson score interval."""

    x: int
    n: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    status: str  # ok | empty_cell


@dataclass(frozen=True)
class DiffCI:
    """A difference of proportions p1 - p2 with a Newcombe interval."""

    diff: float | None
    ci_low: float | None
    ci_high: float | None
    status: str  # ok | empty_cell


@dataclass(frozen=True)
class RatioCI:
    """A ratio of proportions p1 / p2 with a log-method interval."""

    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    status: str  # ok | empty_cell | undefined (p2 = 0) | ci_undefined (p1 = 0: ratio 0, no log interval)


def wilson_bounds(x: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval bounds for x successes in n > 0 trials (the one implementation)."""
    p = x / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # Mathematically lo = 0 at x = 0 and hi = 1 at x = n, and lo <= p <= hi; pin these against float noise.
    lo = 0.0 if x == 0 else min(p, max(0.0, centre - half))
    hi = 1.0 if x == n else max(p, min(1.0, centre + half))
    return lo, hi


def wilson(x: int, n: int, z: float) -> RateCI:
    """Wilson score interval for x successes in n trials; n = 0 gives status ``empty_cell`` and Nones."""
    x, n = int(x), int(n)
    if n <= 0:
        return RateCI(x, n, None, None, None, "empty_cell")
    lo, hi = wilson_bounds(x, n, z)
    return RateCI(x, n, x / n, lo, hi, "ok")


def newcombe_diff(x1: int, n1: int, x2: int, n2: int, z: float) -> DiffCI:
    """Newcombe hybrid score interval (1998, method 10) for p1 - p2 of independent groups."""
    if n1 <= 0 or n2 <= 0:
        return DiffCI(None, None, None, "empty_cell")
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_bounds(x1, n1, z)
    l2, u2 = wilson_bounds(x2, n2, z)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return DiffCI(d, max(-1.0, lo), min(1.0, hi), "ok")


def newcombe_paired_diff(a: int, b: int, c: int, d: int, z: float) -> DiffCI:
    """Newcombe's paired interval for p1 - p2 with p1 = (a+b)/n, p2 = (a+c)/n on the same n runs.

    a = both events, b = only event 1, c = only event 2, d = neither. phi is the continuity-corrected
    correlation of the 2x2 table (0 when a margin is empty), as in Newcombe 1998b / Altman 2000.
    """
    n = a + b + c + d
    if n <= 0:
        return DiffCI(None, None, None, "empty_cell")
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_bounds(a + b, n, z)
    l2, u2 = wilson_bounds(a + c, n, z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    phi = 0.0
    if margins > 0:
        cross = a * d - b * c
        corrected = cross - n / 2 if cross > n / 2 else (cross if cross < 0 else 0.0)
        phi = corrected / math.sqrt(margins)
    diff = p1 - p2
    lo = diff - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    hi = diff + math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    return DiffCI(diff, max(-1.0, lo), min(1.0, hi), "ok")


def katz_ratio(x1: int, n1: int, x2: int, n2: int, z: float) -> RatioCI:
    """Risk ratio (x1/n1)/(x2/n2) with the Katz log interval exp(ln RR +- z*sqrt(1/x1-1/n1+1/x2-1/n2))."""
    if n1 <= 0 or n2 <= 0:
        return RatioCI(None, None, None, "empty_cell")
    if x2 == 0:
        return RatioCI(None, None, None, "undefined")
    rr = (x1 / n1) / (x2 / n2)
    if x1 == 0:
        return RatioCI(0.0, None, None, "ci_undefined")
    se = math.sqrt(max(0.0, 1 / x1 - 1 / n1 + 1 / x2 - 1 / n2))
    return RatioCI(rr, math.exp(math.log(rr) - z * se), math.exp(math.log(rr) + z * se), "ok")


def paired_ratio(a: int, b: int, c: int, d: int, z: float) -> RatioCI:
    """Ratio p1/p2 = (a+b)/(a+c) of paired proportions, log interval with var = (b+c)/((a+b)(a+c))."""
    n = a + b + c + d
    if n <= 0:
        return RatioCI(None, None, None, "empty_cell")
    if a + c == 0:
        return RatioCI(None, None, None, "undefined")
    rr = (a + b) / (a + c)
    if a + b == 0:
        return RatioCI(0.0, None, None, "ci_undefined")
    se = math.sqrt((b + c) / ((a + b) * (a + c)))
    return RatioCI(rr, math.exp(math.log(rr) - z * se), math.exp(math.log(rr) + z * se), "ok")


def estimate_cols(name: str, estimate: RateCI | DiffCI | RatioCI) -> dict[str, Any]:
    """Table columns of an estimate: ``name`` (``<name>rate`` for a rate), ``<name>_ci_low``,
    ``<name>_ci_high``, ``<name>_status``; a rate's prefix ``name`` carries its own separator (``fail_``)."""
    if isinstance(estimate, RateCI):
        value, sep, key = estimate.rate, "", f"{name}rate"
    else:
        value, sep, key = (estimate.diff if isinstance(estimate, DiffCI) else estimate.ratio), "_", name
    return {
        key: value,
        f"{name}{sep}ci_low": estimate.ci_low,
        f"{name}{sep}ci_high": estimate.ci_high,
        f"{name}{sep}status": estimate.status,
    }


def fail_comparison_columns(a: str, b: str) -> list[str]:
    """Column names of :func:`fail_comparison` for groups named ``a`` and ``b``."""
    per_group = [
        [f"{g}_runs_known", f"{g}_fail", *(f"{g}_fail_{k}" for k in ("rate", "ci_low", "ci_high", "status"))]
        for g in (a, b)
    ]
    estimates = [
        f"{e}{k}" for e in ("risk_difference", "risk_ratio") for k in ("", "_ci_low", "_ci_high", "_status")
    ]
    return [*per_group[0], *per_group[1], *estimates]


def fail_comparison(a: str, n_a: int, x_a: int, b: str, n_b: int, x_b: int, z: float) -> dict[str, Any]:
    """FAIL rates x/n of two independent groups (Wilson), their difference a - b (Newcombe hybrid score)
    and ratio a / b (Katz log), as table columns (:func:`fail_comparison_columns`)."""
    return {
        f"{a}_runs_known": n_a,
        f"{a}_fail": x_a,
        **estimate_cols(f"{a}_fail_", wilson(x_a, n_a, z)),
        f"{b}_runs_known": n_b,
        f"{b}_fail": x_b,
        **estimate_cols(f"{b}_fail_", wilson(x_b, n_b, z)),
        **estimate_cols("risk_difference", newcombe_diff(x_a, n_a, x_b, n_b, z)),
        **estimate_cols("risk_ratio", katz_ratio(x_a, n_a, x_b, n_b, z)),
    }


@dataclass(frozen=True)
class QuantileCI:
    """A distribution-free interval for the ``q`` quantile of n values: order statistics x_(rank_low) and
    x_(rank_high) (1-based ranks of the sorted values) with exact binomial coverage ``coverage`` >= level.

    Status ``ok``; ``empty`` (n = 0, everything None); ``too_few_runs`` when n is too small for the level:
    the bound that would need a rank outside 1..n is None (never clipped to n), ``min_n`` says how many values
    a two-sided interval at this level needs."""

    q: float
    n: int
    ci_low: float | None
    ci_high: float | None
    rank_low: int | None
    rank_high: int | None
    coverage: float | None
    min_n: int
    status: str  # ok | empty | too_few_runs


def quantile_ranks(n: int, q: float, level: float) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) of the exact two-sided order-statistic interval [x_(l), x_(u)] for the q quantile
    at ``level`` (:func:`gate_pipeline.lib.intervals.order_statistic_ranks` with alpha/2 on each side, the
    decision engine's function). A rank outside 1..n is None: at that n no order statistic gives the bound.
    Same ranks as ``scipy.stats.quantile_test(...).confidence_interval``.
    """
    half = (1 - level) / 2
    low, high = (int(r) for r in order_statistic_ranks(n, q, half, half))
    return (low if low >= 1 else None), (high if high <= n else None)


@functools.lru_cache(maxsize=64)
def quantile_min_n(q: float, level: float) -> int:
    """The fewest values for which both bounds of :func:`quantile_ranks` exist."""
    half = (1 - level) / 2
    n = max(1, math.ceil(math.log(half) / math.log(max(q, 1 - q))))
    while None in quantile_ranks(n, q, level):  # the log bound is exact up to ties at the boundary
        n += 1
    return n


def quantile_interval(sorted_values: np.ndarray, q: float, level: float) -> QuantileCI:
    """:class:`QuantileCI` of the ``q`` quantile from values sorted ascending (no NaN)."""
    n = len(sorted_values)
    min_n = quantile_min_n(q, level)
    if n == 0:
        return QuantileCI(q, 0, None, None, None, None, None, min_n, "empty")
    lo, hi = quantile_ranks(n, q, level)
    # P(lo <= B < hi), with a missing rank read as the end of the support (the bound is then open).
    coverage = float(
        binom_cdf((hi if hi is not None else n + 1) - 1, n, q)
        - binom_cdf((lo if lo is not None else 0) - 1, n, q)
    )
    return QuantileCI(
        q,
        n,
        float(sorted_values[lo - 1]) if lo is not None else None,
        float(sorted_values[hi - 1]) if hi is not None else None,
        lo,
        hi,
        coverage if lo is not None and hi is not None else None,
        min_n,
        "ok" if lo is not None and hi is not None else "too_few_runs",
    )


def z_for(level: float) -> float:
    """Two-sided standard normal quantile for a confidence level (1.959964 for 0.95)."""
    return float(norm_ppf(1 - (1 - level) / 2))
