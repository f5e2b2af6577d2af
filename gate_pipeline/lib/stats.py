"""Rollout statistics from classified runs (seeds 000, 001, 003, 004). Pure pandas, no Dagster.

Conventions shared by every function here:

- Input is ``classified_runs`` (run_table columns + ``unknown_classes``, ``whitelisted_classes``,
  ``non_whitelisted_reasons``); ``unknown_rate_summary`` needs only run_table columns.
- Rates of an outcome (WARN, FAIL) use the runs whose ``outcome`` is not null as denominator; runs with a null
  outcome are counted in an ``outcome_null`` column, never silently dropped.
- Every result table is sorted deterministically (documented per function) and contains no NaN: an undefined
  number is ``None`` with a ``*status`` column that says why (``empty_cell``, ``undefined``, ``ci_undefined``).
- Confidence intervals (level ``AnalysisConfig.confidence_level``, default 0.95):
  single rates use the **Wilson score** interval; differences of independent rates the **Newcombe hybrid score**
  interval (Newcombe 1998, method 10); differences of paired rates (same runs) Newcombe's paired method with the
  continuity-corrected phi (Newcombe 1998b, as worked in Altman et al. 2000 p. 52); risk ratios the
  **log method**: Katz for independent groups, var(ln RR) = (b+c)/((a+b)(a+c)) for paired groups.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import orjson
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gate_pipeline.lib.classify import class_kind, parse_json_array

__all__ = [
    "AnalysisConfig",
    "AnalysisConfigError",
    "DiffCI",
    "RateCI",
    "RatioCI",
    "RiskResult",
    "Runs",
    "SpikeResult",
    "StratumResult",
    "WarnThresholdResult",
    "class_frequencies",
    "dumps_canonical",
    "katz_ratio",
    "load_analysis_config",
    "newcombe_diff",
    "newcombe_paired_diff",
    "paired_ratio",
    "recurring_patterns",
    "risk_measures",
    "spikes",
    "stratum_metrics",
    "stratum_series",
    "to_jsonable",
    "unknown_rate_summary",
    "warn_threshold",
    "wilson",
]

METRICS_PREFIX = "metrics."


# --------------------------------------------------------------------------------------------------- config
class AnalysisConfigError(ValueError):
    """Bad analysis config; the message names the file, the key and the problem."""


class AnalysisConfig(BaseModel):
    """Parameters of the rollout statistics (``config/analysis.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: str = Field("1", description="Config format version.")
    strata_column: str = Field(
        "stratum",
        description="Run column defining strata, or 'metrics.<key>' for a string value of metrics.json.",
    )
    strata_missing_label: str = Field("unknown", min_length=1, description="Stratum for null/missing values.")
    strata_comparisons: list[tuple[str, str]] = Field(
        default_factory=lambda: [("unpinned", "pinned")],
        description="Pairs (a, b): delta = combined WARN+FAIL rate of a minus that of b. Always reported.",
    )
    strata_all_pairs: bool = Field(True, description="Also compare every other pair of observed strata.")
    recurrence_min_runs: int = Field(3, ge=1, description="k: a reason recurring in >= k runs is a pattern.")
    recurrence_min_share: float = Field(
        0.2, gt=0, le=1, description="...or in >= this share of the policy_hash's runs."
    )
    spike_mad_k: float = Field(3.0, gt=0, description="Spike bound = median + k * scale * MAD.")
    spike_mad_scale: float = Field(1.4826, gt=0, description="MAD scale (1.4826 = consistent with sigma).")
    spike_min_excess: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Minimum bound - median, so MAD = 0 does not flag every run above median.",
    )
    warn_threshold_multiplier: float = Field(
        2.0, gt=0, description="Recommended WARN threshold = multiplier * median unknown_rate ..."
    )
    warn_threshold_floor: float = Field(0.0, ge=0, le=1, description="... but at least this value.")
    confidence_level: float = Field(0.95, gt=0, lt=1, description="Level of every confidence interval.")
    fail_outcomes: list[str] = Field(default_factory=lambda: ["FAIL"], min_length=1)
    warn_outcomes: list[str] = Field(default_factory=lambda: ["WARN"], min_length=1)
    no_reason_label: str = Field("(none)", min_length=1, description="Reason label for runs without reasons.")
    null_group_label: str = Field("(null)", min_length=1, description="Group label for a null policy_hash.")

    @field_validator("strata_column")
    @classmethod
    def _strata_column(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        if v.startswith(METRICS_PREFIX) and not v[len(METRICS_PREFIX) :]:
            raise ValueError("'metrics.' needs a key, e.g. 'metrics.arm'")
        return v

    @field_validator("fail_outcomes", "warn_outcomes")
    @classmethod
    def _upper(cls, v: list[str]) -> list[str]:
        return sorted({x.upper() for x in v})

    @model_validator(mode="after")
    def _disjoint(self) -> AnalysisConfig:
        both = set(self.fail_outcomes) & set(self.warn_outcomes)
        if both:
            raise ValueError(f"fail_outcomes and warn_outcomes overlap: {sorted(both)}")
        return self

    @property
    def z(self) -> float:
        """Two-sided normal quantile for ``confidence_level`` (1.959964 for 0.95)."""
        return NormalDist().inv_cdf(1 - (1 - self.confidence_level) / 2)


def load_analysis_config(raw: bytes, source: str) -> AnalysisConfig:
    """Parse YAML (or JSON) bytes into :class:`AnalysisConfig`; empty file = all defaults.

    Raises :class:`AnalysisConfigError` naming ``source``, the key and the problem.
    """
    try:
        data = yaml.safe_load(raw) if raw.strip() else {}
    except yaml.YAMLError as exc:
        raise AnalysisConfigError(f"{source}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AnalysisConfigError(f"{source}: top level must be a mapping of settings")
    try:
        return AnalysisConfig.model_validate(data)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "<root>"
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{key}: {msg}")
        raise AnalysisConfigError(f"{source}: " + "; ".join(parts)) from exc


# ---------------------------------------------------------------------------------------- intervals
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


def wilson(x: int, n: int, z: float = 1.959963984540054) -> RateCI:
    """Wilson score interval for x successes in n trials; n = 0 gives status ``empty_cell`` and Nones."""
    x, n = int(x), int(n)
    if n <= 0:
        return RateCI(x, n, None, None, None, "empty_cell")
    lo, hi = wilson_bounds(x, n, z)
    return RateCI(x, n, x / n, lo, hi, "ok")


def newcombe_diff(x1: int, n1: int, x2: int, n2: int, z: float = 1.959963984540054) -> DiffCI:
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


def newcombe_paired_diff(a: int, b: int, c: int, d: int, z: float = 1.959963984540054) -> DiffCI:
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


def katz_ratio(x1: int, n1: int, x2: int, n2: int, z: float = 1.959963984540054) -> RatioCI:
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


def paired_ratio(a: int, b: int, c: int, d: int, z: float = 1.959963984540054) -> RatioCI:
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


def _rate_cols(prefix: str, r: RateCI) -> dict[str, Any]:
    return {
        f"{prefix}rate": r.rate,
        f"{prefix}ci_low": r.ci_low,
        f"{prefix}ci_high": r.ci_high,
        f"{prefix}status": r.status,
    }


def _diff_cols(prefix: str, d: DiffCI) -> dict[str, Any]:
    return {
        f"{prefix}": d.diff,
        f"{prefix}_ci_low": d.ci_low,
        f"{prefix}_ci_high": d.ci_high,
        f"{prefix}_status": d.status,
    }


def _ratio_cols(prefix: str, r: RatioCI) -> dict[str, Any]:
    return {
        f"{prefix}": r.ratio,
        f"{prefix}_ci_low": r.ci_low,
        f"{prefix}_ci_high": r.ci_high,
        f"{prefix}_status": r.status,
    }


# ------------------------------------------------------------------------------------------- helpers
class Runs:
    """A classified history with the per-run arrays the statistics derive from it (outcome flags, group
    labels, strata, parsed JSON arrays), each computed once and shared by every function given this object.

    Every statistics function takes a DataFrame or a ``Runs``; a DataFrame gets its own ``Runs``, so results
    are the same either way. Do not modify ``df`` while the ``Runs`` is in use."""

    def __init__(self, df: pd.DataFrame):
        self.df = df
        self._memo: dict[tuple[Any, ...], Any] = {}

    def derived(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


def _as_runs(classified: pd.DataFrame | Runs) -> Runs:
    return classified if isinstance(classified, Runs) else Runs(classified)


def _is_null(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _no_nan(df: pd.DataFrame) -> pd.DataFrame:
    """Replace NaN/NA in any column by None (column becomes object) so outputs never carry NaN."""
    out = df.copy()
    has_null = out.isna().any(axis=0).to_numpy()  # one pass per block, not one Series per column
    for i in np.flatnonzero(has_null).tolist():
        s = out.iloc[:, i]
        out.isetitem(i, s.astype(object).where(s.notna(), None))
    return out.reset_index(drop=True)


def _json_sets(runs: Runs, column: str) -> tuple[np.ndarray, list[list[str]]]:
    """A column of JSON array strings as per-row codes of its distinct strings (-1 = null) and, per code, the
    array's items de-duplicated and sorted. Each distinct string is parsed once, and counting over the few
    distinct (code, ...) combinations replaces exploding every row."""

    def compute() -> tuple[np.ndarray, list[list[str]]]:
        codes, uniques = pd.factorize(runs.df[column].astype(object), use_na_sentinel=True)
        return codes, [sorted(set(parse_json_array(u)[0])) for u in uniques]

    return runs.derived(("json_sets", column), compute)


def _has_items(runs: Runs, column: str) -> np.ndarray:
    """Per row: does its JSON array hold at least one string?"""
    codes, items = _json_sets(runs, column)
    return np.array([bool(i) for i in items] + [False], dtype=bool)[codes]  # code -1 reads the sentinel


def _combos(*columns: np.ndarray) -> list[tuple[tuple[int, ...], int]]:
    """The distinct rows of some integer columns (codes >= -1, flags) with how many rows each occurs in."""
    n = len(columns[0])
    if n == 0:
        return []
    shifted = [np.asarray(c, dtype=np.int64) + 1 for c in columns]
    dims = tuple(int(c.max()) + 1 for c in shifted)
    cells = math.prod(dims)
    if cells > max(4 * n, 1 << 16):
        # Too many possible combinations for a dense count: the rare, slower path.
        counts = pd.DataFrame(dict(enumerate(shifted))).groupby(list(range(len(shifted))), sort=False).size()
        keys = [k if isinstance(k, tuple) else (k,) for k in counts.index]
        return [(tuple(int(v) - 1 for v in k), int(c)) for k, c in zip(keys, counts.to_numpy(), strict=True)]
    counts = np.bincount(np.ravel_multi_index(tuple(shifted), dims), minlength=cells)
    present = np.flatnonzero(counts)
    parts = [p - 1 for p in np.unravel_index(present, dims)]
    return list(zip(zip(*(p.tolist() for p in parts), strict=True), counts[present].tolist(), strict=True))


def _item_outcome_counts(
    codes: np.ndarray,
    items: list[list[str]],
    known: np.ndarray,
    is_fail: np.ndarray,
    empty_label: str | None = None,
) -> list[tuple[str, int, int, int]]:
    """Per item (sorted): (item, runs listing it, of those with a known outcome, FAIL runs).

    A run listing no item counts under ``empty_label`` when given, else nowhere."""
    totals: dict[str, list[int]] = {}
    for (code, k, f), n in _combos(codes, known.astype(np.int8), (known & is_fail).astype(np.int8)):
        listed = items[code] if code >= 0 else []
        if not listed and empty_label is not None:
            listed = [empty_label]
        for item in listed:
            t = totals.setdefault(item, [0, 0, 0])
            t[0] += n
            t[1] += n * k
            t[2] += n * f
    return [(item, *totals[item]) for item in sorted(totals)]


def _group_labels(series: pd.Series, null_label: str) -> pd.Series:
    values = series.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        # Text (or null) cells: str() of a str is itself, so only the nulls change; no str() per cell.
        labels = np.where(pd.isna(values), null_label, values).astype(object)
        return pd.Series(labels, index=series.index, name=series.name, dtype=object)
    return series.astype(object).where(series.notna(), null_label).astype(str)


def _labels(runs: Runs, column: str, null_label: str) -> np.ndarray:
    """:func:`_group_labels` of a run column as an array (computed once per ``runs``)."""
    return runs.derived(
        ("labels", column, null_label), lambda: _group_labels(runs.df[column], null_label).to_numpy()
    )


def _strata(runs: Runs, cfg: AnalysisConfig) -> np.ndarray:
    """:func:`stratum_series` as an array (computed once per ``runs``)."""
    key = ("strata", cfg.strata_column, cfg.strata_missing_label)
    return runs.derived(key, lambda: stratum_series(runs.df, cfg).to_numpy())


Coded = tuple[np.ndarray, np.ndarray]  # (per-row code, label per code), as pd.factorize returns them


def _labels_coded(runs: Runs, column: str, null_label: str) -> Coded:
    """:func:`_labels` factorized (computed once per ``runs``)."""
    key = ("labels_coded", column, null_label)
    return runs.derived(key, lambda: pd.factorize(_labels(runs, column, null_label)))


def _policy_coded(runs: Runs, cfg: AnalysisConfig) -> Coded:
    return _labels_coded(runs, "policy_hash", cfg.null_group_label)


def _strata_coded(runs: Runs, cfg: AnalysisConfig) -> Coded:
    """:func:`_strata` factorized (computed once per ``runs``)."""
    key = ("strata_coded", cfg.strata_column, cfg.strata_missing_label)
    return runs.derived(key, lambda: pd.factorize(_strata(runs, cfg)))


def _code_counts(coded: Coded) -> dict[str, int]:
    """How many rows carry each label."""
    codes, names = coded
    return dict(zip(names.tolist(), np.bincount(codes, minlength=len(names)).tolist(), strict=True))


def stratum_series(df: pd.DataFrame, cfg: AnalysisConfig) -> pd.Series:
    """The stratum of each run per ``cfg.strata_column`` (a run column or ``metrics.<key>`` string value).

    Null, missing or (for metrics) non-string values become ``cfg.strata_missing_label``.
    """
    col = cfg.strata_column
    if col.startswith(METRICS_PREFIX):
        key = col[len(METRICS_PREFIX) :]
        if "metrics" not in df.columns:
            raise KeyError(f"strata_column {col!r}: the run table has no 'metrics' column")
        codes, uniques = pd.factorize(df["metrics"].astype(object), use_na_sentinel=True)
        vals = []
        for u in uniques:
            try:
                obj = orjson.loads(u)
            except (orjson.JSONDecodeError, TypeError):
                obj = None
            v = obj.get(key) if isinstance(obj, dict) else None
            vals.append(v if isinstance(v, str) and v != "" else cfg.strata_missing_label)
        arr = np.array(vals + [cfg.strata_missing_label], dtype=object)
        return pd.Series(arr[codes], index=df.index, name="stratum", dtype=object)
    if col not in df.columns:
        raise KeyError(f"strata_column {col!r} is not a run table column (columns: {sorted(df.columns)})")
    values = df[col].to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        # Text (or null) cells: str() of a str is itself, so only null and "" change; no str() per cell.
        keep = ~pd.isna(values) & (values != "")
        return pd.Series(
            np.where(keep, values, cfg.strata_missing_label), index=df.index, name="stratum", dtype=object
        )
    s = df[col].astype(object)
    s = s.where(s.notna() & (s.astype(str) != ""), cfg.strata_missing_label).astype(str)
    return s.rename("stratum").astype(object)


def _outcome_flags(runs: Runs, cfg: AnalysisConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(known, is_warn, is_fail) boolean arrays from the outcome column (upper-cased)."""

    def compute() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # upper-case each distinct value once, not every row
        codes, uniques = pd.factorize(runs.df["outcome"].astype(object), use_na_sentinel=True)
        up = [str(u).upper() for u in uniques]
        warn = np.array([u in cfg.warn_outcomes for u in up] + [False], dtype=bool)
        fail = np.array([u in cfg.fail_outcomes for u in up] + [False], dtype=bool)
        return codes >= 0, warn[codes], fail[codes]

    return runs.derived(("outcome", tuple(cfg.warn_outcomes), tuple(cfg.fail_outcomes)), compute)


def _rates(runs: Runs) -> pd.Series:
    return runs.derived(
        ("rates",), lambda: pd.to_numeric(runs.df["unknown_rate"], errors="coerce").astype(float)
    )


def _in_order(df: pd.DataFrame, cols: list[str]) -> bool:
    """True when the rows are already in (cols) order and no key is null, so a stable sort keeps every row
    where it is (spike runs come from the history, which is stored in (timestamp, run_id) order)."""
    if len(df) < 2:
        return True
    tie = np.ones(len(df) - 1, dtype=bool)  # rows i, i+1 equal on every key so far
    for c in cols:
        s = df[c]
        if s.isna().any():
            return False
        if s.dtype == object:
            v = s.to_numpy()
            if pd.api.types.infer_dtype(v, skipna=False) != "string":
                return False
        elif isinstance(s.dtype, pd.DatetimeTZDtype):
            v = s.to_numpy(dtype="datetime64[ns]")  # the UTC instants, which is what sorting compares
        else:
            v = s.to_numpy()
        prev, nxt = v[:-1][tie], v[1:][tie]
        if (nxt < prev).any():
            return False
        tie[tie] = nxt == prev
        if not tie.any():
            break
    return True


def _sort_cols(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    if _in_order(df, cols):
        return df.reset_index(drop=True)
    # None sorts first via a string key; mergesort keeps it stable and deterministic
    keys = {
        c: df[c].map(lambda v: "" if _is_null(v) else v) if df[c].dtype == object else df[c] for c in cols
    }
    order = pd.DataFrame(keys).sort_values(cols, kind="mergesort").index
    return df.loc[order].reset_index(drop=True)


def _quantile_sorted(seg: np.ndarray, q: float) -> float:
    """Linear-interpolation quantile of sorted values, computed as pandas' groupby quantile does."""
    q_idx = q * (len(seg) - 1)
    lo = int(q_idx)
    frac = q_idx % 1
    val = float(seg[lo])
    return val if frac == 0.0 else val + (float(seg[lo + 1]) - val) * frac


def _order_stats(
    values: np.ndarray, codes: np.ndarray, by_value: np.ndarray, count: np.ndarray
) -> np.ndarray:
    """Per group code: min, median, p95, max of the non-null values, bit-identical to pandas' groupby
    min / median / quantile(0.95) / max (no signed zeros). ``by_value``: positions of the non-null values,
    stably sorted by value. Groups without values get NaN."""
    order = by_value[np.argsort(codes[by_value], kind="stable")]  # by group, then value, then position
    ordered = values[order]
    out = np.full((len(count), 4), np.nan)
    start = 0
    for code, n in enumerate(count.tolist()):
        if n:
            seg = ordered[start : start + n]
            mid = n // 2
            median = float(seg[mid]) if n % 2 else (float(seg[mid]) + float(seg[mid - 1])) / 2
            out[code] = (seg[0], median, _quantile_sorted(seg, 0.95), seg[-1])
            start += n
    return out


# ------------------------------------------------------------------------------- unknown_rate summary
SUMMARY_COLUMNS = [
    "group_by",
    "group",
    "runs",
    "n",
    "n_null",
    "min",
    "median",
    "p95",
    "max",
    "mean",
    "status",
]


def unknown_rate_summary(
    runs: pd.DataFrame | Runs, cfg: AnalysisConfig | None = None, by: Sequence[str] | None = None
) -> pd.DataFrame:
    """min / median / p95 / max / mean of ``unknown_rate`` overall, per policy_hash and per stratum.

    ``by`` lists grouping columns (default ``["policy_hash", "stratum"]``); the name ``"stratum"`` means the
    configured strata (:func:`stratum_series`). p95 uses linear interpolation between order statistics
    (numpy's default). Null rates are excluded from the statistics and counted in ``n_null``; a group without
    any rate has status ``empty`` and None statistics. Rows: group_by='overall' (group 'all') first, then
    groups sorted by (group_by, group). Null group values are labelled ``cfg.null_group_label``.
    """
    cfg = cfg or AnalysisConfig()
    runs = _as_runs(runs)
    by = list(by) if by is not None else ["policy_hash", "stratum"]
    rates = _rates(runs)
    overall = np.full(len(runs.df), "all", dtype=object)
    frames = [("overall", pd.factorize(overall))]
    for col in by:
        if col == "stratum":
            frames.append(("stratum", _strata_coded(runs, cfg)))
        else:
            frames.append((col, _labels_coded(runs, col, cfg.null_group_label)))
    rows = []
    values = rates.to_numpy()
    valid = ~np.isnan(values)
    by_value = np.argsort(values, kind="stable")  # once for every grouping; NaN last
    by_value = by_value[: int(valid.sum())]
    # 0.0 and -0.0 tie: which one a group's min / max / median is then depends on pandas' internals.
    signed_zero = bool((valid & (values == 0) & np.signbit(values)).any())
    for name, (codes, names) in frames:
        g = rates.groupby(codes, sort=True)  # integer codes group faster than the label strings
        size = np.bincount(codes, minlength=len(names))
        count = np.bincount(codes[valid], minlength=len(names))
        mean = g.mean().to_numpy()  # pandas' compensated per-group sum
        if signed_zero:
            order_stats = np.column_stack([g.min(), g.median(), g.quantile(0.95), g.max()])
        else:
            order_stats = _order_stats(values, codes, by_value, count)
        for code, label in enumerate(names):
            n = int(count[code])
            stat = [*order_stats[code], mean[code]]
            rows.append(
                {
                    "group_by": name,
                    "group": str(label),
                    "runs": int(size[code]),
                    "n": n,
                    "n_null": int(size[code]) - n,
                    **{
                        k: (float(v) if n else None)
                        for k, v in zip(("min", "median", "p95", "max", "mean"), stat, strict=True)
                    },
                    "status": "ok" if n else "empty",
                }
            )
    if not rows:  # empty input: one explicit overall row
        rows.append(
            {"group_by": "overall", "group": "all", "runs": 0, "n": 0, "n_null": 0, "status": "empty"}
        )
    df = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    rank = df["group_by"].map(lambda v: 0 if v == "overall" else 1)
    df = df.assign(_r=rank).sort_values(["_r", "group_by", "group"], kind="mergesort").drop(columns="_r")
    return _no_nan(df)


# ------------------------------------------------------------------------------- class frequencies
FREQ_COLUMNS = ["scope", "policy_hash", "class", "kind", "runs", "total_runs", "share"]


def class_frequencies(classified: pd.DataFrame | Runs, cfg: AnalysisConfig | None = None) -> pd.DataFrame:
    """How many runs carry each unknown class, overall and per policy_hash.

    ``runs`` counts runs having the class (a class counts once per run); ``share = runs / total_runs`` where
    total_runs is the number of runs in the scope (all runs, or the policy_hash's runs). ``kind`` is
    whitelisted / non_whitelisted / field / cause / other. Sorted by (scope, policy_hash, class) with the
    'overall' rows (policy_hash None) first.
    """
    cfg = cfg or AnalysisConfig()
    runs = _as_runs(classified)
    codes, items = _json_sets(runs, "unknown_classes")
    ph_codes, ph_names = ph_coded = _policy_coded(runs, cfg)
    total = len(runs.df)
    totals_ph = _code_counts(ph_coded)
    overall: dict[str, int] = {}
    per: dict[tuple[str, str], int] = {}
    for (code, p), n in _combos(codes, ph_codes):
        h = ph_names[p]
        for cls in items[code] if code >= 0 else []:
            overall[cls] = overall.get(cls, 0) + n
            per[(h, cls)] = per.get((h, cls), 0) + n
    out = [("overall", None, cls, overall[cls], total) for cls in sorted(overall)]
    out += [("policy_hash", h, cls, per[(h, cls)], totals_ph[h]) for h, cls in sorted(per)]
    df = pd.DataFrame(out, columns=["scope", "policy_hash", "class", "runs", "total_runs"])
    df["kind"] = df["class"].map(class_kind) if len(df) else pd.Series([], dtype=object)
    df["share"] = df["runs"] / df["total_runs"] if len(df) else pd.Series([], dtype=float)
    df = df[FREQ_COLUMNS]
    return _no_nan(_sort_cols(df, ["scope", "policy_hash", "class"]))


# ------------------------------------------------------------------------------ recurring patterns
RECUR_COLUMNS = [
    "policy_hash",
    "reason",
    "runs",
    "total_runs",
    "share",
    "whitelisted_runs",
    "non_whitelisted_runs",
    "criterion",
]


def recurring_patterns(classified: pd.DataFrame | Runs, cfg: AnalysisConfig | None = None) -> pd.DataFrame:
    """Top reasons recurring per policy_hash: in >= ``recurrence_min_runs`` runs OR in
    >= ``recurrence_min_share`` of that policy_hash's runs.

    Columns: policy_hash, reason, runs (runs listing the reason), total_runs, share, whitelisted_runs /
    non_whitelisted_runs (in how many of those runs the whitelist covered it; they differ only around an
    expiry date), criterion ('min_runs', 'min_share' or 'min_runs+min_share'). Sorted by (policy_hash, reason).
    """
    cfg = cfg or AnalysisConfig()
    runs = _as_runs(classified)
    ph_codes, ph_names = ph_coded = _policy_coded(runs, cfg)
    r_codes, r_items = _json_sets(runs, "top_reasons")
    n_codes, n_items = _json_sets(runs, "non_whitelisted_reasons")
    listed: dict[tuple[str, str], int] = {}  # (policy_hash, reason) -> runs listing the reason
    not_covered: dict[tuple[str, str], int] = {}  # ... of which list it as non-whitelisted too
    for (rc, nc, p), n in _combos(r_codes, n_codes, ph_codes):
        if rc < 0:
            continue
        h = ph_names[p]
        non_wl = set(n_items[nc]) if nc >= 0 else set()
        for reason in r_items[rc]:
            listed[(h, reason)] = listed.get((h, reason), 0) + n
            if reason in non_wl:
                not_covered[(h, reason)] = not_covered.get((h, reason), 0) + n
    totals = _code_counts(ph_coded)
    out = []
    for h, reason in sorted(listed):
        runs, tot, nwl = listed[(h, reason)], totals[h], not_covered.get((h, reason), 0)
        share = runs / tot
        by_k, by_s = runs >= cfg.recurrence_min_runs, share >= cfg.recurrence_min_share
        if not (by_k or by_s):
            continue
        crit = "+".join(x for x, ok in (("min_runs", by_k), ("min_share", by_s)) if ok)
        out.append((h, reason, runs, tot, share, runs - nwl, nwl, crit))
    df = pd.DataFrame(out, columns=RECUR_COLUMNS)
    return _no_nan(_sort_cols(df, ["policy_hash", "reason"]))


# ------------------------------------------------------------------------------------------- spikes
@dataclass
class SpikeResult:
    """Spikes of unknown_rate above median + k*scale*MAD (bound at least median + spike_min_excess).

    ``by_reason``: per top reason of the spike runs (``no_reason_label`` if a spike run lists none), the FAIL
    rate among spike runs with that reason vs the FAIL rate among all other runs with a known outcome
    ("elsewhere" = every run that is not a spike run listing this reason, spikes with other reasons included),
    with Wilson CIs, Newcombe risk difference and Katz risk ratio (spike minus/over elsewhere).
    """

    n_runs: int
    median: float | None
    mad: float | None
    bound: float | None
    n_spikes: int
    status: str  # ok | empty
    spike_runs: pd.DataFrame = field(repr=False)
    by_reason: pd.DataFrame = field(repr=False)


SPIKE_RUN_COLUMNS = ["run_id", "timestamp", "date", "policy_hash", "unknown_rate", "outcome", "top_reasons"]


def spikes(classified: pd.DataFrame | Runs, cfg: AnalysisConfig | None = None) -> SpikeResult:
    """Find unknown_rate spikes (seed 000 outlier definition) and relate them, by top reason, to FAIL.

    A run is a spike when ``unknown_rate > bound`` with bound = median + max(k * scale * MAD,
    spike_min_excess) over all non-null rates, MAD = median(|x - median|). ``spike_runs`` is sorted by
    (timestamp, run_id); ``by_reason`` by reason. See :class:`SpikeResult` for the FAIL comparison.
    """
    cfg = cfg or AnalysisConfig()
    z = cfg.z
    runs = _as_runs(classified)
    classified = runs.df
    rates = _rates(runs)
    valid = rates.dropna()
    n = int(len(valid))
    cols = [c for c in SPIKE_RUN_COLUMNS if c in classified.columns]
    br_cols = _SPIKE_REASON_COLUMNS
    if n == 0:
        return SpikeResult(
            0,
            None,
            None,
            None,
            0,
            "empty",
            _no_nan(classified[cols].iloc[0:0]),
            pd.DataFrame(columns=br_cols),
        )
    med = float(valid.median())
    mad = float((valid - med).abs().median())
    bound = med + max(cfg.spike_mad_k * cfg.spike_mad_scale * mad, cfg.spike_min_excess)
    is_spike = (rates > bound).fillna(False).to_numpy()
    sort_keys = [c for c in ("timestamp", "run_id") if c in cols]
    spike_runs = classified.loc[is_spike, cols]
    spike_runs = _sort_cols(spike_runs.reset_index(drop=True), sort_keys) if sort_keys else spike_runs

    known, _, is_fail = _outcome_flags(runs, cfg)
    r_codes, r_items = _json_sets(runs, "top_reasons")
    total_known = int(known.sum())
    total_fail = int((known & is_fail).sum())
    out = []
    per_reason = _item_outcome_counts(
        r_codes[is_spike], r_items, known[is_spike], is_fail[is_spike], cfg.no_reason_label
    )
    for reason, size, n_s, f_s in per_reason:
        n_o, f_o = total_known - n_s, total_fail - f_s
        out.append(
            {
                "reason": reason,
                "spike_runs": size,
                "spike_runs_known": n_s,
                "spike_fail": f_s,
                **_rate_cols("spike_fail_", wilson(f_s, n_s, z)),
                "other_runs_known": n_o,
                "other_fail": f_o,
                **_rate_cols("other_fail_", wilson(f_o, n_o, z)),
                **_diff_cols("risk_difference", newcombe_diff(f_s, n_s, f_o, n_o, z)),
                **_ratio_cols("risk_ratio", katz_ratio(f_s, n_s, f_o, n_o, z)),
            }
        )
    by_reason = _no_nan(pd.DataFrame(out, columns=br_cols))
    return SpikeResult(n, med, mad, bound, int(is_spike.sum()), "ok", _no_nan(spike_runs), by_reason)


_SPIKE_REASON_COLUMNS = [
    "reason",
    "spike_runs",
    "spike_runs_known",
    "spike_fail",
    "spike_fail_rate",
    "spike_fail_ci_low",
    "spike_fail_ci_high",
    "spike_fail_status",
    "other_runs_known",
    "other_fail",
    "other_fail_rate",
    "other_fail_ci_low",
    "other_fail_ci_high",
    "other_fail_status",
    "risk_difference",
    "risk_difference_ci_low",
    "risk_difference_ci_high",
    "risk_difference_status",
    "risk_ratio",
    "risk_ratio_ci_low",
    "risk_ratio_ci_high",
    "risk_ratio_status",
]


# ---------------------------------------------------------------------------------------- risk measures
@dataclass
class RiskResult:
    """Risk differences / ratios. See :func:`risk_measures` for definitions."""

    whitelist_comparison: dict[str, Any]
    by_reason: pd.DataFrame = field(repr=False)


_RISK_REASON_COLUMNS = [
    "reason",
    "with_runs_known",
    "with_fail",
    "with_fail_rate",
    "with_fail_ci_low",
    "with_fail_ci_high",
    "with_fail_status",
    "without_runs_known",
    "without_fail",
    "without_fail_rate",
    "without_fail_ci_low",
    "without_fail_ci_high",
    "without_fail_status",
    "risk_difference",
    "risk_difference_ci_low",
    "risk_difference_ci_high",
    "risk_difference_status",
    "risk_ratio",
    "risk_ratio_ci_low",
    "risk_ratio_ci_high",
    "risk_ratio_status",
]


def risk_measures(classified: pd.DataFrame | Runs, cfg: AnalysisConfig | None = None) -> RiskResult:
    """Risk difference and risk ratio (seed 000), each with a CI at ``cfg.confidence_level``.

    1. ``whitelist_comparison`` - "unknown rate of whitelisted vs non-whitelisted classes":
       p_W = share of runs with >= 1 whitelisted class, p_N = share of runs with >= 1 non-whitelisted reason,
       both over ALL runs of the table. Why this definition: gate_result.json gives one unknown_rate per run
       with no split per reason, so a per-class unknown rate cannot be attributed; the share of runs in which
       a class of unknowns shows up is observable, binomial, and uses one denominator for both sides.
       Both shares come from the same runs (paired data), so the difference p_W - p_N uses Newcombe's paired
       hybrid score interval and the ratio p_W / p_N the paired log method (var = (b+c)/((a+b)(a+c))), with
       a = runs with both kinds, b = whitelisted only, c = non-whitelisted only, d = neither.
       RD > 0 means known noise shows up in more runs than unexplained unknowns.
    2. ``by_reason`` - per top reason: P(FAIL | reason listed) vs P(FAIL | reason not listed) over runs with a
       known outcome (independent groups): Wilson per rate, Newcombe hybrid score for the difference, Katz
       log interval for the ratio. Sorted by reason.

    Empty cells give status ``empty_cell`` and None; a ratio with a zero denominator rate ``undefined``.
    """
    cfg = cfg or AnalysisConfig()
    z = cfg.z
    runs = _as_runs(classified)
    n = len(runs.df)
    has_w = _has_items(runs, "whitelisted_classes")
    has_n = _has_items(runs, "non_whitelisted_reasons")
    a = int((has_w & has_n).sum())
    b = int((has_w & ~has_n).sum())
    c = int((~has_w & has_n).sum())
    d = n - a - b - c
    rw, rn = wilson(a + b, n, z), wilson(a + c, n, z)
    comp: dict[str, Any] = {
        "definition": "share of runs with >=1 whitelisted class vs share with >=1 non-whitelisted reason",
        "runs": n,
        "runs_both": a,
        "runs_whitelisted_only": b,
        "runs_non_whitelisted_only": c,
        "runs_neither": d,
        "whitelisted_runs": a + b,
        "non_whitelisted_runs": a + c,
        **_rate_cols("whitelisted_", rw),
        **_rate_cols("non_whitelisted_", rn),
        **_diff_cols("risk_difference", newcombe_paired_diff(a, b, c, d, z)),
        **_ratio_cols("risk_ratio", paired_ratio(a, b, c, d, z)),
        "methods": {
            "rate": "wilson",
            "risk_difference": "newcombe_paired_hybrid_score",
            "risk_ratio": "log_paired",
        },
    }

    known, _, is_fail = _outcome_flags(runs, cfg)
    r_codes, r_items = _json_sets(runs, "top_reasons")
    total_known = int(known.sum())
    total_fail = int((known & is_fail).sum())
    out = []
    for reason, _size, n1, x1 in _item_outcome_counts(r_codes, r_items, known, is_fail):
        n0, x0 = total_known - n1, total_fail - x1
        out.append(
            {
                "reason": reason,
                "with_runs_known": n1,
                "with_fail": x1,
                **_rate_cols("with_fail_", wilson(x1, n1, z)),
                "without_runs_known": n0,
                "without_fail": x0,
                **_rate_cols("without_fail_", wilson(x0, n0, z)),
                **_diff_cols("risk_difference", newcombe_diff(x1, n1, x0, n0, z)),
                **_ratio_cols("risk_ratio", katz_ratio(x1, n1, x0, n0, z)),
            }
        )
    return RiskResult(comp, _no_nan(pd.DataFrame(out, columns=_RISK_REASON_COLUMNS)))


# ------------------------------------------------------------------------------------------ strata
@dataclass
class StratumResult:
    """Per-stratum metrics (``table``) and pairwise deltas of the combined WARN+FAIL rate (``deltas``)."""

    strata_column: str
    table: pd.DataFrame = field(repr=False)
    deltas: pd.DataFrame = field(repr=False)


STRATUM_COLUMNS = [
    "scope",
    "policy_hash",
    "stratum",
    "runs",
    "outcome_known",
    "outcome_null",
    "warn_runs",
    "fail_runs",
    "warn_rate",
    "fail_rate",
    "warn_fail_runs",
    "warn_fail_rate",
    "warn_fail_ci_low",
    "warn_fail_ci_high",
    "warn_fail_status",
    "unknown_rate_n",
    "unknown_rate_mean",
    "unknown_causes",
    "drift_warn_count",
    "drift_fail_count",
    "drift_unknown_count",
    "overrides_runs",
    "overrides_null_runs",
    "overrides_total",
    "overrides_per_run",
]

DELTA_COLUMNS = [
    "scope",
    "policy_hash",
    "stratum_a",
    "stratum_b",
    "runs_a",
    "warn_fail_a",
    "rate_a",
    "runs_b",
    "warn_fail_b",
    "rate_b",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "delta_status",
]


def _scope_sorted(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    # overall ('stratum') rows first, then per policy_hash
    df = df.assign(_scope_rank=(df["scope"] != "stratum").astype(int))
    return _sort_cols(df, ["_scope_rank", *cols]).drop(columns="_scope_rank")


class _CauseCounter:
    """Summed ``unknown_causes`` counts of row groups as canonical JSON; each distinct JSON string is parsed
    once. Non-JSON values, non-objects and non-numeric (or boolean) counts are skipped; counts truncate to int."""

    def __init__(self, values: pd.Series | None, n: int):
        if values is None:
            self.codes, self.parsed = np.full(n, -1, dtype=np.intp), []
            return
        self.codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
        self.parsed = [self._parse(u) for u in uniques]

    @staticmethod
    def _parse(raw: Any) -> list[tuple[str, int]]:
        try:
            obj = orjson.loads(raw)
        except (orjson.JSONDecodeError, TypeError):
            return []
        if not isinstance(obj, dict):
            return []
        return [(c, int(v)) for c, v in obj.items() if isinstance(v, int | float) and not isinstance(v, bool)]

    def totals(self, idx: np.ndarray) -> str:
        codes = self.codes[idx]
        per_value = np.bincount(codes[codes >= 0], minlength=len(self.parsed))
        totals: dict[str, int] = {}
        for u in np.flatnonzero(per_value).tolist():
            cnt = int(per_value[u])
            for cause, v in self.parsed[u]:
                totals[cause] = totals.get(cause, 0) + v * cnt
        return orjson.dumps(totals, option=orjson.OPT_SORT_KEYS).decode()


def _sum_int(values: np.ndarray) -> int:
    """int of the sum with nulls as 0 (same values, same order as a pandas ``fillna(0).sum()``)."""
    return int(np.where(np.isnan(values), 0.0, values).sum())


def _groups(*keys: Coded) -> list[tuple[tuple[Any, ...], np.ndarray]]:
    """(key values, row positions ascending) per distinct combination of the factorized key columns."""
    codes = np.zeros(len(keys[0][0]), dtype=np.int64)
    names = []
    for c, uniq in keys:
        codes = codes * len(uniq) + c
        names.append(uniq)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    out = []
    for idx in np.split(order, bounds) if len(order) else []:
        code = int(codes[idx[0]])
        parts = []
        for uniq in reversed(names):
            code, c = divmod(code, len(uniq))
            parts.append(uniq[c])
        out.append((tuple(reversed(parts)), idx))
    return out


def stratum_metrics(classified: pd.DataFrame | Runs, cfg: AnalysisConfig | None = None) -> StratumResult:
    """Seed 001 metrics per stratum (scope 'stratum', policy_hash None) and per (policy_hash, stratum)
    (scope 'policy_hash_stratum').

    Outcome-based: warn_runs / fail_runs are runs whose ``outcome`` is in warn_outcomes / fail_outcomes;
    rates divide by ``outcome_known`` (runs with a non-null outcome); ``warn_fail_rate`` = (warn + fail) /
    outcome_known with a Wilson CI. Drift-report totals: drift_warn_count / drift_fail_count /
    drift_unknown_count are sums of the drift counts (nulls as 0), ``unknown_causes`` the summed cause counts
    as canonical JSON. Overrides: ``overrides_per_run`` = mean of overrides_count over runs where it is not
    null (``overrides_runs``); runs without it are counted in ``overrides_null_runs``.

    ``deltas``: for each configured pair (a, b) and, if ``strata_all_pairs``, every other pair of observed
    strata (alphabetical a < b): delta = warn_fail_rate(a) - warn_fail_rate(b) with a Newcombe hybrid score CI,
    overall (scope 'stratum') and within each policy_hash. A stratum without runs gives ``empty_cell``.
    Both tables: scope 'stratum' rows first, then by (policy_hash, stratum) resp. (policy_hash, stratum_a,
    stratum_b).
    """
    cfg = cfg or AnalysisConfig()
    z = cfg.z
    runs = _as_runs(classified)
    classified = runs.df
    ph = _labels(runs, "policy_hash", cfg.null_group_label)
    strata = _strata(runs, cfg)
    known, is_warn, is_fail = _outcome_flags(runs, cfg)
    warn, fail = known & is_warn, known & is_fail
    rate = _rates(runs).to_numpy()
    drift = {
        dst: pd.to_numeric(classified[src], errors="coerce").astype(float).to_numpy()
        if src in classified
        else np.full(len(classified), np.nan)
        for src, dst in (
            ("warn_count", "dw"),
            ("fail_count", "df"),
            ("unknown_count", "du"),
            ("overrides_count", "ov"),
        )
    }
    causes = _CauseCounter(classified.get("unknown_causes"), len(ph))

    rows = []
    counts: dict[tuple[str, str | None, str], tuple[int, int]] = {}

    def summarise(scope: str, h: str | None, s: str, idx: np.ndarray) -> None:
        # idx: the group's row positions in input order, so every float sum adds the same values in the same
        # order as the pandas per-group Series did (bit-identical means).
        n_known = int(known[idx].sum())
        w, f = int(warn[idx].sum()), int(fail[idx].sum())
        wf = wilson(w + f, n_known, z)
        r = rate[idx]
        r_ok = ~np.isnan(r)
        n_rate = int(r_ok.sum())
        ov = drift["ov"][idx]
        ov = ov[~np.isnan(ov)]
        ov_sum = ov.sum()
        counts[(scope, h, s)] = (n_known, w + f)
        rows.append(
            {
                "scope": scope,
                "policy_hash": h,
                "stratum": s,
                "runs": len(idx),
                "outcome_known": n_known,
                "outcome_null": len(idx) - n_known,
                "warn_runs": w,
                "fail_runs": f,
                "warn_rate": w / n_known if n_known else None,
                "fail_rate": f / n_known if n_known else None,
                "warn_fail_runs": w + f,
                "warn_fail_rate": wf.rate,
                "warn_fail_ci_low": wf.ci_low,
                "warn_fail_ci_high": wf.ci_high,
                "warn_fail_status": wf.status,
                "unknown_rate_n": n_rate,
                "unknown_rate_mean": float(np.where(r_ok, r, 0.0).sum() / np.float64(n_rate))
                if n_rate
                else None,
                "unknown_causes": causes.totals(idx),
                "drift_warn_count": _sum_int(drift["dw"][idx]),
                "drift_fail_count": _sum_int(drift["df"][idx]),
                "drift_unknown_count": _sum_int(drift["du"][idx]),
                "overrides_runs": len(ov),
                "overrides_null_runs": len(idx) - len(ov),
                "overrides_total": int(ov_sum),
                "overrides_per_run": float(ov_sum / np.float64(len(ov))) if len(ov) else None,
            }
        )

    for (s,), idx in _groups(_strata_coded(runs, cfg)):
        summarise("stratum", None, s, idx)
    for (h, s), idx in _groups(_policy_coded(runs, cfg), _strata_coded(runs, cfg)):
        summarise("policy_hash_stratum", h, s, idx)
    table = _no_nan(_scope_sorted(pd.DataFrame(rows, columns=STRATUM_COLUMNS), ["policy_hash", "stratum"]))

    observed = sorted(pd.unique(strata).tolist())
    pairs: list[tuple[str, str]] = []
    for a, b in cfg.strata_comparisons:
        if (a, b) not in pairs and a != b:
            pairs.append((a, b))
    if cfg.strata_all_pairs:
        for i, a in enumerate(observed):
            for b in observed[i + 1 :]:
                if (a, b) not in pairs and (b, a) not in pairs:
                    pairs.append((a, b))
    scopes: list[tuple[str, str | None]] = [("stratum", None)] + [
        ("policy_hash_stratum", h) for h in sorted(pd.unique(ph).tolist())
    ]
    drows = []
    for scope, h in scopes:
        for a, b in pairs:
            na, xa = counts.get((scope, h, a), (0, 0))
            nb, xb = counts.get((scope, h, b), (0, 0))
            d = newcombe_diff(xa, na, xb, nb, z)
            drows.append(
                {
                    "scope": scope,
                    "policy_hash": h,
                    "stratum_a": a,
                    "stratum_b": b,
                    "runs_a": na,
                    "warn_fail_a": xa,
                    "rate_a": xa / na if na else None,
                    "runs_b": nb,
                    "warn_fail_b": xb,
                    "rate_b": xb / nb if nb else None,
                    **_diff_cols("delta", d),
                }
            )
    deltas = _no_nan(
        _scope_sorted(pd.DataFrame(drows, columns=DELTA_COLUMNS), ["policy_hash", "stratum_a", "stratum_b"])
    )
    return StratumResult(cfg.strata_column, table, deltas)


# -------------------------------------------------------------------------------------- WARN threshold
@dataclass
class WarnThresholdResult:
    """Recommended WARN threshold for unknown_rate and its false-positive rate on history.

    Definitions (runs with a null unknown_rate or null outcome are excluded and counted in ``excluded_runs``):
    - threshold = max(warn_threshold_multiplier * median(unknown_rate), warn_threshold_floor); a run is
      *flagged* when its (effective) unknown_rate > threshold.
    - false positive = a flagged run whose outcome is not FAIL. ``fp_rate`` = false positives / flagged runs
      (the share of WARNs that would have been noise; Wilson CI). ``fp_rate_of_non_fail`` = false positives /
      non-FAIL runs (the classical FPR) is reported alongside.
    - *without* whitelist: effective rate = unknown_rate as is.
      *with* whitelist: runs whose unknowns are fully whitelisted (>= 1 top reason, every one covered, i.e.
      whitelisted_classes non-empty and non_whitelisted_reasons empty) get effective rate 0, the others keep
      their rate. The threshold is the same on both sides (from the raw history) so the difference isolates
      the whitelist's effect.
    - ``fp_runs_avoided`` = fp_without - fp_with; ``fp_rate_reduction`` = fp_rate without - with (None if either
      is undefined); ``fp_relative_reduction`` = fp_runs_avoided / fp_without (None if fp_without = 0).
    """

    n_runs: int
    excluded_runs: int
    median: float | None
    threshold: float | None
    without_whitelist: dict[str, Any]
    with_whitelist: dict[str, Any]
    fp_runs_avoided: int | None
    fp_rate_reduction: float | None
    fp_relative_reduction: float | None
    status: str  # ok | empty


def _fp_block(flagged: np.ndarray, fail: np.ndarray, z: float) -> dict[str, Any]:
    n_flag = int(flagged.sum())
    fp = int((flagged & ~fail).sum())
    non_fail = int((~fail).sum())
    r = wilson(fp, n_flag, z)
    return {
        "flagged_runs": n_flag,
        "false_positives": fp,
        "true_positives": n_flag - fp,
        "fp_rate": r.rate,
        "fp_rate_ci_low": r.ci_low,
        "fp_rate_ci_high": r.ci_high,
        "fp_rate_status": r.status,
        "non_fail_runs": non_fail,
        "fp_rate_of_non_fail": fp / non_fail if non_fail else None,
    }


def warn_threshold(classified: pd.DataFrame | Runs, cfg: AnalysisConfig | None = None) -> WarnThresholdResult:
    """Median-based WARN threshold and its false-positive rate with / without whitelist.

    See :class:`WarnThresholdResult` for the exact definitions.
    """
    cfg = cfg or AnalysisConfig()
    z = cfg.z
    runs = _as_runs(classified)
    classified = runs.df
    rates = _rates(runs).to_numpy()
    known, _, is_fail = _outcome_flags(runs, cfg)
    use = known & ~np.isnan(rates)
    n = int(use.sum())
    excluded = len(classified) - n
    if n == 0:
        empty = _fp_block(np.zeros(0, bool), np.zeros(0, bool), z)
        return WarnThresholdResult(0, excluded, None, None, empty, dict(empty), None, None, None, "empty")
    r = rates[use]
    fail = is_fail[use]
    med = float(np.median(r))
    thr = max(cfg.warn_threshold_multiplier * med, cfg.warn_threshold_floor)
    has_w = _has_items(runs, "whitelisted_classes")
    has_n = _has_items(runs, "non_whitelisted_reasons")
    fully_wl = (has_w & ~has_n)[use]
    without = _fp_block(r > thr, fail, z)
    with_ = _fp_block(np.where(fully_wl, 0.0, r) > thr, fail, z)
    with_["fully_whitelisted_runs"] = int(fully_wl.sum())
    avoided = without["false_positives"] - with_["false_positives"]
    red = (
        without["fp_rate"] - with_["fp_rate"]
        if without["fp_rate"] is not None and with_["fp_rate"] is not None
        else None
    )
    rel = avoided / without["false_positives"] if without["false_positives"] else None
    return WarnThresholdResult(n, excluded, med, thr, without, with_, avoided, red, rel, "ok")


# ------------------------------------------------------------------------------------------- JSON
def _round(x: float) -> float | None:
    if math.isnan(x) or math.isinf(x):
        return None
    y = float(f"{x:.10g}")
    return 0.0 if y == 0 else y  # no "-0.0" in the bytes


def to_jsonable(obj: Any) -> Any:
    """Convert results (dataclasses, DataFrames, dicts, numpy/pandas scalars) to plain JSON values.

    Dicts get sorted keys; a DataFrame becomes a list of row objects in its (already deterministic) row order;
    floats are rounded to 10 significant digits; NaN/inf/NA/NaT become None; dates become ISO strings.
    """
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, pd.DataFrame):
        return [to_jsonable(rec) for rec in obj.to_dict(orient="records")]
    if isinstance(obj, pd.Series):
        return [to_jsonable(v) for v in obj.tolist()]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    if isinstance(obj, BaseModel):
        return to_jsonable(obj.model_dump(mode="json", by_alias=True))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(obj[k]) for k in sorted(obj, key=str)}
    if isinstance(obj, list | tuple | np.ndarray):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _round(float(obj))
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    if isinstance(obj, dt.date | dt.datetime):
        return obj.isoformat()
    raise TypeError(f"to_jsonable: unsupported type {type(obj).__name__}")


def dumps_canonical(obj: Any) -> bytes:
    """Canonical JSON bytes of :func:`to_jsonable` (sorted keys, 2-space indent, trailing newline)."""
    return orjson.dumps(to_jsonable(obj), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
