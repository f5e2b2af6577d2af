"""Number, percentage and timestamp formatting shared by the config and the "why" sentences."""

from __future__ import annotations

import pandas as pd


def fmt_num(x: float | None, unit: str | None = None) -> str:
    if x is None:
        return "n/a"
    s = f"{x:.4g}"
    return f"{s} {unit}" if unit else s


def fmt_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def iso(ts: pd.Timestamp | None) -> str | None:
    if ts is None or pd.isna(ts):
        return None
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
