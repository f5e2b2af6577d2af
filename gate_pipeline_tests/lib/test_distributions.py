"""lib/distributions.py returns exactly what scipy.stats returns (the oracle), bit for bit, on the domain the
statistics and rules use; and the CLI's decision path never imports scipy.stats."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from gate_pipeline.lib import distributions as d

RNG = np.random.default_rng(20261202)


def _counts(size: int, small: bool) -> tuple[np.ndarray, np.ndarray]:
    n = RNG.integers(0, 300, size) if small else RNG.integers(1, 3_000_000, size)
    k = np.minimum(np.floor(RNG.random(size) * (n + 1)), n)
    return k.astype(float), n.astype(float)


LEVELS = np.array([1e-6, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 0.8, 0.95, 0.99])


def _same(ours, oracle) -> None:
    ours, oracle = np.asarray(ours), np.asarray(oracle)
    assert ours.dtype == oracle.dtype
    assert ours.shape == oracle.shape
    diff = np.flatnonzero(~((ours == oracle) | (np.isnan(ours) & np.isnan(oracle))).ravel())
    assert not len(diff), (
        f"{len(diff)} values differ, e.g. {ours.ravel()[diff[:3]]} vs {oracle.ravel()[diff[:3]]}"
    )


@pytest.mark.parametrize("small", [True, False])
def test_binomial_functions_equal_scipy_stats(small):
    k, n = _counts(40_000, small)
    p = RNG.choice(np.r_[0.0, 1.0, LEVELS, RNG.random(20)], len(k))
    for shift in (-2, -1, 0, 1):  # below, inside and past the support
        _same(d.binom_cdf(k + shift, n, p), stats.binom.cdf(k + shift, n, p))
        _same(d.binom_sf(k + shift, n, p), stats.binom.sf(k + shift, n, p))
    q = RNG.choice(LEVELS, len(k))
    _same(d.binom_ppf(q, n, p), stats.binom.ppf(q, n, p))


def test_binomial_scalars_equal_scipy_stats():
    for k, n, p in [(-1, 10, 0.5), (0, 10, 0.5), (9, 10, 0.5), (10, 10, 0.5), (11, 10, 0.5), (3, 0, 0.2)]:
        assert d.binom_cdf(k, n, p) == stats.binom.cdf(k, n, p)
        assert d.binom_sf(k, n, p) == stats.binom.sf(k, n, p)
        assert type(d.binom_cdf(k, n, p)) is type(stats.binom.cdf(k, n, p))
    assert d.binom_ppf(0.025, 1000, 0.95) == stats.binom.ppf(0.025, 1000, 0.95) == 936.0


def test_beta_quantile_equals_scipy_stats():
    k, n = _counts(60_000, small=False)
    a, b = np.maximum(k, 1), n - k + 1
    q = RNG.choice(LEVELS, len(k))
    _same(d.beta_ppf(q, a, b), stats.beta.ppf(q, a, b))
    k, n = _counts(20_000, small=True)
    _same(
        d.beta_ppf(q[: len(k)], np.maximum(k, 1), n - k + 1),
        stats.beta.ppf(q[: len(k)], np.maximum(k, 1), n - k + 1),
    )


def test_normal_and_t_equal_scipy_stats():
    q = np.r_[LEVELS, RNG.random(5_000)]
    _same(d.norm_ppf(q), stats.norm.ppf(q))
    _same(d.norm_isf(q), stats.norm.isf(q))
    x = RNG.normal(0, 4, 20_000)
    df = RNG.integers(1, 200_000, len(x)).astype(float)
    _same(d.t_cdf(x, df), stats.t.cdf(x, df))
    _same(d.t_sf(x, df), stats.t.sf(x, df))
    qq = RNG.choice(LEVELS, len(x))
    _same(d.t_isf(qq, df), stats.t.isf(qq, df))
    assert d.norm_ppf(0.975) == stats.norm.ppf(0.975) == pytest.approx(1.959963984540054)


def test_median_abs_deviation_equals_scipy_stats():
    for size in (1, 2, 7, 1000):
        x = RNG.random(size) * RNG.choice([1e-9, 1.0, 1e6])
        assert d.median_abs_deviation(x) == stats.median_abs_deviation(x, scale=1.0)
    assert d.median_abs_deviation(np.array([0.0, 0.0, 1.0, 5.0])) == 0.5


def test_deciding_does_not_import_scipy_stats():
    """The CLI, the decision rules and the statistics import without scipy.stats (its import alone is ~0.6 s
    of every what-if and CLI call); tests and benchmarks may use it as an oracle."""
    code = (
        "import sys, gate_pipeline.cli, gate_pipeline.lib.whatif, gate_pipeline.lib.stats.sections; "
        "print('scipy.stats' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
