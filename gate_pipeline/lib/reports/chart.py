"""The unknown_rate chart (PNG): one point per run for small histories, a daily band for large ones.

Byte-stable for any input row order. The chart cache (chart_cache.py) hashes this module's source, so only
an edit here invalidates stored charts.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pandas as pd

CHART_SIZE_INCHES = (10.0, 4.0)
CHART_DPI = 100
#: Above this many runs the chart shows per-day aggregates instead of one point per run.
CHART_MAX_POINTS = 2000
#: The daily band (p5, p95) around the daily median.
CHART_BAND_QUANTILES: tuple[float, float, float] = (0.05, 0.5, 0.95)
CHART_MARGINS = {"left": 0.07, "right": 0.985, "bottom": 0.14, "top": 0.92}

_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def utc(ts: pd.Series) -> pd.Series:
    """Timestamps as UTC; a column that already is (the stored history) is returned as is, since
    ``to_datetime`` would build a Timestamp per value only to find that out."""
    return ts if ts.dtype == _UTC_NS else pd.to_datetime(ts, utc=True)


def render_chart(
    series: pd.DataFrame,
    median: float | None,
    threshold: float | None,
    *,
    max_points: int = CHART_MAX_POINTS,
    rule: tuple[str, float] | None = None,
) -> bytes:
    """PNG of unknown_rate with the median line, the recommended WARN threshold, the decision rule's threshold
    (``rule``: label and value, e.g. the unknown_rate_median rule's ``<= 0.15``) and spikes (``is_spike``).

    Up to ``max_points`` runs: one point per run (ordered by timestamp, run_id). Above: per-day aggregates
    by the timestamp's UTC date (median line and p5–p95 band) plus every spike run as a marker at its
    timestamp, because 100k individual points are slow to draw and unreadable. Byte-stable for any input
    row order: fixed size/dpi, default style, no PNG metadata."""
    # Imported here: matplotlib costs ~0.8 s at import and only the report step draws.
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    aggregated = len(series) > max_points
    with matplotlib.style.context("default"):
        # style.context("default") shields the output from rcParams changed elsewhere in the process.
        fig = Figure(figsize=CHART_SIZE_INCHES, dpi=CHART_DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        if aggregated:
            _plot_daily(ax, series)
        else:
            _plot_runs(ax, series)
        if median is not None and math.isfinite(median):
            ax.axhline(median, color="#2ca02c", linestyle="--", linewidth=1.0, label=f"median {median:.3g}")
        if threshold is not None and math.isfinite(threshold):
            ax.axhline(
                threshold,
                color="#ff7f0e",
                linestyle=":",
                linewidth=1.5,
                label=f"recommended WARN threshold {threshold:.3g}",
            )
        if rule is not None and math.isfinite(rule[1]):
            ax.axhline(rule[1], color="#d62728", linestyle="--", linewidth=1.5, label=rule[0])
        ax.set_ylabel("unknown_rate")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize="small")
        if aggregated:
            # Fixed margins: tight_layout lays the text out twice and was ~40% of the large chart's time.
            fig.subplots_adjust(**CHART_MARGINS)
        else:
            fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=CHART_DPI, metadata={"Software": None})
    return buf.getvalue()


def _plot_runs(ax: Any, series: pd.DataFrame) -> None:
    """One point per run, x = position in (timestamp, run_id) order (small histories)."""
    df = series.copy()
    if len(df):
        df["timestamp"] = utc(df["timestamp"])
        df = df.sort_values(["timestamp", "run_id"], kind="mergesort").reset_index(drop=True)
    x = np.arange(len(df), dtype=float)
    y = pd.to_numeric(df["unknown_rate"], errors="coerce").to_numpy(dtype=float) if len(df) else np.array([])
    spikes = df["is_spike"].fillna(False).astype(bool).to_numpy() if len(df) else np.array([], dtype=bool)
    if len(df):
        ax.plot(x, y, color="#1f77b4", linewidth=1.0, marker="o", markersize=3, label="unknown_rate")
        mask = spikes & np.isfinite(y)
        if mask.any():
            ax.scatter(x[mask], y[mask], color="#d62728", marker="x", s=60, zorder=3, label="spike")
    else:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("run (ordered by timestamp, run_id)")
    ax.set_title("unknown_rate over runs")


def daily_unknown_rate(series: pd.DataFrame) -> pd.DataFrame:
    """Per UTC date of ``timestamp``: n (runs with a finite unknown_rate), p5, median, p95 (linear
    interpolation), indexed by the day (tz-naive midnight UTC), sorted by day. Row order does not matter."""
    ts = utc(series["timestamp"])
    y = pd.to_numeric(series["unknown_rate"], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(y) & ts.notna().to_numpy()
    frame = pd.DataFrame({"day": ts.dt.floor("D").dt.tz_localize(None).to_numpy()[ok], "y": y[ok]})
    grouped = frame.groupby("day", sort=True)["y"]
    out = grouped.quantile(list(CHART_BAND_QUANTILES)).unstack()
    out.columns = ["p5", "median", "p95"]
    out.insert(0, "n", grouped.size())
    return out


def _plot_daily(ax: Any, series: pd.DataFrame) -> None:
    """Per-day median with a p5–p95 band, plus every spike run at its own timestamp (large histories)."""
    import matplotlib.dates as mdates

    daily = daily_unknown_rate(series)
    # Daily values sit at noon so a day's spike markers scatter around its point.
    x = daily.index.to_numpy(dtype="datetime64[ns]") + np.timedelta64(12, "h")
    ax.fill_between(
        x,
        daily["p5"].to_numpy(),
        daily["p95"].to_numpy(),
        color="#1f77b4",
        alpha=0.25,
        linewidth=0,
        label="daily p5–p95",
    )
    ax.plot(x, daily["median"].to_numpy(), color="#1f77b4", linewidth=1.0, label="daily median")
    spikes = series[series["is_spike"].fillna(False).astype(bool).to_numpy()]
    sy = pd.to_numeric(spikes["unknown_rate"], errors="coerce").to_numpy(dtype=float)
    spikes = spikes.assign(_y=sy, timestamp=utc(spikes["timestamp"]))
    spikes = spikes[np.isfinite(sy) & spikes["timestamp"].notna().to_numpy()]
    if len(spikes):
        # Sorted so the draw order (and so every pixel) is independent of the input row order.
        spikes = spikes.sort_values(["timestamp", "run_id"], kind="mergesort")
        ax.scatter(
            spikes["timestamp"].dt.tz_localize(None).to_numpy(dtype="datetime64[ns]"),
            spikes["_y"].to_numpy(),
            color="#d62728",
            marker="x",
            s=12,
            linewidths=0.8,
            zorder=3,
            label=f"spike ({len(spikes)} runs)",
        )
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("date (UTC)")
    ax.set_title(f"unknown_rate per day ({len(series)} runs, {len(daily)} days)")


# --------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------
