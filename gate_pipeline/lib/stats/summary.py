"""unknown_rate min / median / p95 / max / mean overall, per policy_hash and per stratum (the target figures of the unknown-rate analysis)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from gate_pipeline.lib.stats.config import AnalysisConfig
from gate_pipeline.lib.stats.document import Section, to_jsonable
from gate_pipeline.lib.stats.intervals import quantile_interval
from gate_pipeline.lib.stats.runs import Runs, as_runs, labels_coded, no_nan, rates_of, strata_coded


def _quantile_sorted(seg: np.ndarray, q: float) -> float:
    """Linear-interpolation quantile of sorted values, computed as pandas' groupby quantile does."""
    q_idx = q * (len(seg) - 1)
    lo = int(q_idx)
    frac = q_idx % 1
    val = float(seg[lo])
    return val if frac == 0.0 else val + (float(seg[lo + 1]) - val) * frac


def _order_stats(ordered: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Per group code: min, median, p95, max of the non-null values, bit-identical to pandas' groupby
    min / median / quantile(0.95) / max (no signed zeros). ``ordered``: the non-null values by group code,
    then value (:func:`_by_group_and_value`). Groups without values get NaN."""
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
    "median_ci_low",
    "median_ci_high",
    "median_ci_status",
    "p95_ci_low",
    "p95_ci_high",
    "p95_ci_status",
]

#: The quantiles whose order-statistic interval the summary reports (column prefix, q).
INTERVAL_QUANTILES = (("median", 0.5), ("p95", 0.95))


def _by_group_and_value(values: np.ndarray, codes: np.ndarray, by_value: np.ndarray) -> np.ndarray:
    """The non-null values by group code, then value (then position). ``by_value``: positions of the non-null
    values, stably sorted by value."""
    return values[by_value[np.argsort(codes[by_value], kind="stable")]]


def _sorted_segments(ordered: np.ndarray, count: np.ndarray):
    """Per group code: its non-null values sorted ascending (views of ``ordered``)."""
    return np.split(ordered, np.cumsum(count)[:-1])


def _interval_cols(seg: np.ndarray, level: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, q in INTERVAL_QUANTILES:
        ci = quantile_interval(seg, q, level)
        out.update(
            {f"{name}_ci_low": ci.ci_low, f"{name}_ci_high": ci.ci_high, f"{name}_ci_status": ci.status}
        )
    return out


def unknown_rate_summary(
    runs: pd.DataFrame | Runs, cfg: AnalysisConfig | None = None, by: Sequence[str] | None = None
) -> pd.DataFrame:
    """min / median / p95 / max / mean of ``unknown_rate`` overall, per policy_hash and per stratum.

    ``by`` lists grouping columns (default ``["policy_hash", "stratum"]``); the name ``"stratum"`` means the
    configured strata (:func:`stratum_series`). median and p95 use linear interpolation between order
    statistics (numpy's default 'linear', Hyndman & Fan type 7). ``median_ci_*`` / ``p95_ci_*``: the exact
    binomial order-statistic interval at ``cfg.confidence_level`` (:func:`quantile_interval`); status
    ``too_few_runs`` with a None bound when the group has too few values for that level (p95 at 95%: 72),
    ``empty`` without values. Null rates are excluded from the statistics and counted in ``n_null``; a group without
    any rate has status ``empty`` and None statistics. Rows: group_by='overall' (group 'all') first, then
    groups sorted by (group_by, group). Null group values are labelled ``cfg.null_group_label``.
    """
    cfg = cfg or AnalysisConfig()
    runs = as_runs(runs)
    by = list(by) if by is not None else ["policy_hash", "stratum"]
    rates = rates_of(runs)
    n_runs = len(runs.df)
    # What pd.factorize of a column of "all" gives, without a hash table over every run.
    frames = [
        ("overall", (np.zeros(n_runs, dtype=np.intp), np.array(["all"] if n_runs else [], dtype=object)))
    ]
    for col in by:
        if col == "stratum":
            frames.append(("stratum", strata_coded(runs, cfg)))
        else:
            frames.append((col, labels_coded(runs, col, cfg.null_group_label)))
    rows = []
    values = rates.to_numpy()
    valid = ~np.isnan(values)
    by_value = np.argsort(values, kind="stable")  # once for every grouping; NaN last
    by_value = by_value[: int(valid.sum())]
    # 0.0 and -0.0 tie: which one a group's min / max / median is then depends on pandas' internals.
    signed_zero = bool((valid & (values == 0) & np.signbit(values)).any())
    for name, (codes, names) in frames:
        # The codes as a Categorical: pandas groups by them as they are (an integer key is hashed again).
        g = rates.groupby(
            pd.Categorical.from_codes(codes, categories=range(len(names))), sort=True, observed=True
        )
        size = np.bincount(codes, minlength=len(names))
        count = np.bincount(codes[valid], minlength=len(names))
        mean = g.mean().to_numpy()  # pandas' compensated per-group sum
        ordered = _by_group_and_value(values, codes, by_value)
        if signed_zero:
            order_stats = np.column_stack([g.min(), g.median(), g.quantile(0.95), g.max()])
        else:
            order_stats = _order_stats(ordered, count)
        segments = _sorted_segments(ordered, count)
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
                    **_interval_cols(segments[code], cfg.confidence_level),
                }
            )
        del g, ordered, segments  # not held while the next grouping computes its own
    if not rows:  # empty input: one explicit overall row
        rows.append(
            {
                "group_by": "overall",
                "group": "all",
                "runs": 0,
                "n": 0,
                "n_null": 0,
                "status": "empty",
                **_interval_cols(np.zeros(0), cfg.confidence_level),
            }
        )
    df = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    rank = df["group_by"].map(lambda v: 0 if v == "overall" else 1)
    df = df.assign(_r=rank).sort_values(["_r", "group_by", "group"], kind="mergesort").drop(columns="_r")
    return no_nan(df)


def unknown_rate_section(history: pd.DataFrame | Runs, cfg: AnalysisConfig) -> Section:
    table = unknown_rate_summary(history, cfg)  # overall row first, then per policy_hash and stratum
    numbers: dict[str, float | int | None] = {}
    for rec in table.itertuples(index=False):
        if rec.group_by == "overall":
            numbers.update(unknown_rate_median=rec.median, unknown_rate_p95=rec.p95, runs=int(rec.runs))
        elif rec.group_by == "policy_hash":
            numbers[f"unknown_rate_median[{rec.group}]"] = rec.median
    return Section("unknown_rate_by_group", to_jsonable(table), {"unknown_rate_by_group": table}, numbers)
