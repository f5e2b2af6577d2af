"""The chart cache: a stored PNG is reused while everything it draws from is unchanged.

The key hashes the plotted columns, the lines, the chart module's source (reports/chart.py only, so editing
the Markdown or JSON code keeps the cache) and the matplotlib/Pillow versions.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from gate_pipeline.lib.reports import chart
from gate_pipeline.lib.rules import AbsoluteRule, Decision, DecisionConfig
from gate_pipeline.lib.storage import Store, sha256_bytes


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def chart_key(
    series: pd.DataFrame,
    median: float | None,
    threshold: float | None,
    *,
    max_points: int = chart.CHART_MAX_POINTS,
    rule: tuple[str, float] | None = None,
) -> str | None:
    """sha256 of everything :func:`render_chart` draws from: the plotted columns as it reads them, the lines,
    ``max_points``, the source of the chart module (reports/chart.py, not the
    Markdown or JSON code) and the matplotlib/Pillow versions. Same key, same PNG bytes, so a
    stored chart can be reused without importing matplotlib. None when a run_id is not text (then render)."""
    h = hashlib.sha256()
    for part in (
        Path(chart.__file__).read_bytes(),
        _package_version("matplotlib").encode(),
        _package_version("pillow").encode(),
        repr((median, threshold, max_points, len(series), rule)).encode(),
    ):
        h.update(_digest(part))
    ts = chart.utc(series["timestamp"])
    h.update(_digest(ts.to_numpy(dtype="datetime64[ns]").view("i8").tobytes()))
    rate = pd.to_numeric(series["unknown_rate"], errors="coerce").to_numpy(dtype=float)
    h.update(_digest(np.ascontiguousarray(rate).tobytes()))
    spikes = series["is_spike"].fillna(False).astype(bool).to_numpy()
    h.update(_digest(np.ascontiguousarray(spikes).tobytes()))
    run_ids = series["run_id"].to_numpy(dtype=object)
    if len(run_ids) and pd.api.types.infer_dtype(run_ids, skipna=False) != "string":
        return None
    h.update(_digest(orjson.dumps(run_ids.tolist())))
    return h.hexdigest()


#: Data-store file holding the last chart: "<chart key> <png sha256>\n" + PNG bytes.
CHART_CACHE = "rollout_chart_cache.bin"


def chart_png(
    data: Store,
    series: pd.DataFrame,
    median: float | None,
    threshold: float | None,
    rule: tuple[str, float] | None = None,
) -> tuple[bytes, bool]:
    """The chart PNG and whether it was reused: rendering (and importing matplotlib) only when what it
    draws changed since the stored chart (same key, same bytes; e.g. a whitelist backfill or a decision
    config edit). A cache entry whose PNG does not match its recorded hash is ignored."""
    key = chart_key(series, median, threshold, rule=rule)
    if key is not None and data.exists(CHART_CACHE):
        head, _, png = data.read_bytes(CHART_CACHE).partition(b"\n")
        if head == f"{key} {sha256_bytes(png)}".encode():
            return png, True
    png = chart.render_chart(series, median, threshold, rule=rule)
    if key is not None:
        data.write_bytes(f"{key} {sha256_bytes(png)}\n".encode() + png, CHART_CACHE)
    return png, False


def chart_inputs(history: pd.DataFrame, statistics: dict) -> tuple[pd.DataFrame, float | None, float | None]:
    """The series with spikes (per policy_hash) marked, and the candidate policy's median and recommended WARN
    threshold (None until it has enough runs)."""
    # Every run above its policy's spike bound (the statistics document lists only the highest spikes).
    spikes = statistics.get("spikes", {})
    bounds = {p["policy_hash"]: p["bound"] for p in spikes.get("by_policy", []) if p.get("bound") is not None}
    if bounds:
        # Each run's bound through the codes of its policy (null: the null label), not a lookup per run.
        hashes = history["policy_hash"].to_numpy(dtype=object)
        codes, uniques = pd.factorize(hashes, use_na_sentinel=True, size_hint=1024)
        labels = [*uniques.tolist(), spikes["null_group_label"]]  # code -1 reads the null label
        bound = np.array([bounds.get(label, np.nan) for label in labels], dtype=float)[codes]
        rates = history["unknown_rate"].to_numpy(dtype=float, na_value=np.nan)
        is_spike = rates > bound  # NaN on either side: not a spike
    else:
        is_spike = np.zeros(len(history), dtype=bool)
    # The columns themselves (selecting a list of columns, then assign, copied them twice).
    columns = {c: history[c] for c in ("timestamp", "run_id", "unknown_rate")}
    series = pd.DataFrame({**columns, "is_spike": is_spike}, index=history.index, copy=False)
    threshold = statistics.get("warn_threshold", {}).get("threshold")
    median = statistics.get("warn_threshold", {}).get("median")
    return series, median, threshold


def chart_rule_line(decision: Decision, cfg: DecisionConfig) -> tuple[str, float] | None:
    """The decision rule the chart's unknown_rate is judged by (an absolute rule on the unknown_rate median of
    the decided phase), as a legend label and threshold, e.g. ``("rule unknown_rate_median <= 0.15", 0.15)``."""
    judged = {
        r.name
        for r in cfg.rules_for(decision.current_phase)
        if isinstance(r, AbsoluteRule)
        and r.metric.column == "unknown_rate"
        and r.metric.aggregate == "median"
    }
    for result in decision.rules:
        if result.name in judged and result.threshold is not None:
            return f"rule {result.name} {result.comparator or ''} {result.threshold:.3g}", result.threshold
    return None
