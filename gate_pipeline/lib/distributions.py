"""The few distribution functions the statistics and the decision rules use, computed by the very ufuncs
``scipy.stats`` calls for them, without importing ``scipy.stats``.

Importing ``scipy.stats`` costs ~0.6 s (it rewrites hundreds of docstrings at import), a seventh of a
what-if replay and of every CLI call that decides. ``scipy.special`` holds the functions those
distributions evaluate: ``norm`` is ``ndtri``, Student's t is ``stdtr``/``stdtrit``, the beta quantile and
the binomial cdf, survival function and quantile are Boost ufuncs that ``scipy.stats.beta``/``binom`` call
by name. Each function here returns, bit for bit, what the ``scipy.stats`` call in its docstring returns on
the domain the callers use; the tests hold them to that, with ``scipy.stats`` as the oracle. Should a later
SciPy move the Boost ufuncs, ``scipy.stats`` itself is used (slower to import, same values).
"""

from __future__ import annotations

import numpy as np
from scipy import special

try:  # the Boost ufuncs behind scipy.stats.beta.ppf and scipy.stats.binom.{cdf,sf,ppf}
    from scipy.special._ufuncs import _beta_ppf, _binom_cdf, _binom_ppf, _binom_sf
except ImportError:  # pragma: no cover - only on a SciPy that moved them
    _beta_ppf = _binom_cdf = _binom_ppf = _binom_sf = None


def norm_ppf(q):
    """``scipy.stats.norm.ppf(q)``."""
    return special.ndtri(q)


def norm_isf(q):
    """``scipy.stats.norm.isf(q)``."""
    return -special.ndtri(q)


def t_cdf(x, df):
    """``scipy.stats.t.cdf(x, df)`` for df > 0."""
    return special.stdtr(df, x)


def t_sf(x, df):
    """``scipy.stats.t.sf(x, df)`` for df > 0."""
    return special.stdtr(df, -np.asarray(x))


def t_isf(q, df):
    """``scipy.stats.t.isf(q, df)`` for 0 < q < 1, df > 0."""
    return -special.stdtrit(df, q)


def beta_ppf(q, a, b):
    """``scipy.stats.beta.ppf(q, a, b)`` for 0 < q < 1, a, b > 0."""
    if _beta_ppf is None:  # pragma: no cover
        from scipy import stats

        return stats.beta.ppf(q, a, b)
    return _beta_ppf(q, a, b)


def binom_cdf(k, n, p):
    """``scipy.stats.binom.cdf(k, n, p)`` for integer n >= 0 and 0 <= p <= 1: 0 below the support, 1 from n."""
    return _on_support(_binom_cdf, "cdf", k, n, p, below=0.0, beyond=1.0)


def binom_sf(k, n, p):
    """``scipy.stats.binom.sf(k, n, p)`` for integer n >= 0 and 0 <= p <= 1: 1 below the support, 0 from n."""
    return _on_support(_binom_sf, "sf", k, n, p, below=1.0, beyond=0.0)


def _on_support(ufunc, method: str, k, n, p, *, below: float, beyond: float):
    """A binomial tail as ``scipy.stats.binom`` evaluates it: the ufunc at floor(k) for 0 <= k < n, the
    constants outside (k < 0: ``below``; k >= n: ``beyond``)."""
    if ufunc is None:  # pragma: no cover
        from scipy import stats

        return getattr(stats.binom, method)(k, n, p)
    k, n, p = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (k, n, p)))
    inside = (k >= 0) & (k < n)
    with np.errstate(invalid="ignore"):
        value = ufunc(np.floor(np.where(inside, k, 0.0)), n, p)
    out = np.where(inside, value, np.where(k < 0, below, beyond))
    return out[()] if out.ndim == 0 else out


def binom_ppf(q, n, p):
    """``scipy.stats.binom.ppf(q, n, p)`` for 0 < q < 1, integer n >= 0 and 0 <= p <= 1 (a float, as there)."""
    if _binom_ppf is None:  # pragma: no cover
        from scipy import stats

        return stats.binom.ppf(q, n, p)
    return _binom_ppf(q, n, p)


def median_abs_deviation(x) -> float:
    """``scipy.stats.median_abs_deviation(x, scale=1.0)`` of a 1-d array: the median of |x - median(x)|."""
    x = np.asarray(x)
    return np.median(np.abs(x - np.median(x))) / 1.0
