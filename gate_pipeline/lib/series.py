"""The rollout series: every run over all days, one row each, sorted by (timestamp, run_id)."""

from __future__ import annotations

import io
from collections.abc import Callable

import orjson
import pandas as pd

from gate_pipeline.lib.normalize import resolve_duplicates

SERIES_COLUMNS = [
    "run_id",
    "timestamp",
    "date",
    "policy_hash",
    "outcome",
    "unknown_rate",
    "top_reasons",
    "stratum",
    "warn_count",
    "fail_count",
    "unknown_count",
    "overrides_count",
    "field_issues",
    "unknown_classes",
    "run_path",
]


def combine_days(tables: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All days' run tables → (unique runs sorted by timestamp, run_id; cross-day duplicate quarantine rows).

    A run_id seen on two days follows the same rule as within a day (latest timestamp, then path wins).
    """
    non_empty = [t for t in tables if not t.empty]
    if not non_empty:
        return (tables[0] if tables else pd.DataFrame()).iloc[0:0], pd.DataFrame()
    runs = pd.concat(non_empty, ignore_index=True)
    return resolve_duplicates(runs)


def update_union(
    cached: pd.DataFrame | None,
    cached_versions: dict[str, str],
    versions: dict[str, str],
    read_day: Callable[[str], pd.DataFrame],
) -> tuple[pd.DataFrame, list[str]]:
    """All days' rows (before cross-day dedupe), re-reading only the days whose version changed.

    `versions` maps each stored day to a content digest; `cached` is the previous union built from
    `cached_versions`. Returns the union sorted by (date, run_path), so its content never depends on
    the order of earlier updates, and the days that were read.
    """
    if cached is None:
        changed, keep = sorted(versions), []
    else:
        changed = sorted(day for day, version in versions.items() if cached_versions.get(day) != version)
        stale = set(changed) | (set(cached_versions) - set(versions))
        keep = [cached[~cached["date"].isin(stale)]]
    frames = [f for f in [*keep, *(read_day(day) for day in changed)] if not f.empty]
    if not frames:
        return (cached.iloc[0:0] if cached is not None else pd.DataFrame()), changed
    union = pd.concat(frames, ignore_index=True)
    return union.sort_values(["date", "run_path"], kind="stable").reset_index(drop=True), changed


def _join_json_list(text: str) -> str:
    return ";".join(orjson.loads(text))


def rollout_series(runs: pd.DataFrame) -> pd.DataFrame:
    """The published series columns; list fields become `;`-joined text for spreadsheet users."""
    # Sort on the datetime, not the formatted text ("…31Z" would sort after "…31.5Z").
    runs = runs.sort_values(["timestamp", "run_id"], kind="stable")
    out = pd.DataFrame(
        {
            "run_id": runs["run_id"].astype(str),
            "timestamp": runs["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").str.replace(".000000Z", "Z"),
            "date": runs["date"],
            "policy_hash": runs["policy_hash"],
            "outcome": runs["outcome"],
            "unknown_rate": runs["unknown_rate"].astype("float64"),
            "top_reasons": runs["top_reasons"].map(_join_json_list),
            "stratum": runs["stratum"],
            "warn_count": runs["warn_count"].astype("Int64"),
            "fail_count": runs["fail_count"].astype("Int64"),
            "unknown_count": runs["unknown_count"].astype("Int64"),
            "overrides_count": runs["overrides_count"].astype("Int64"),
            "field_issues": runs["field_issues"].map(_join_json_list),
            # Present once runs are classified against the whitelist (classified_runs); empty before.
            "unknown_classes": runs["unknown_classes"].map(_join_json_list)
            if "unknown_classes" in runs
            else "",
            "run_path": runs["run_path"],
        },
        columns=SERIES_COLUMNS,
    )
    return out.reset_index(drop=True)


def series_csv_bytes(series: pd.DataFrame) -> bytes:
    """CSV with fixed column order, `\\n` line ends and shortest round-trip floats: byte-stable."""
    buf = io.StringIO()
    series.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode()
