"""Statistics sections: each computed from the classified history, as JSON-able data and tables.

One function per statistics asset; the decision embeds every section in rollout_metrics.json under the
same name, and the report reads `unknown_rate_by_group`, `class_frequencies` and `strata` from there.
Pass every section the same ``Runs(history)`` so the per-run arrays they share are derived once.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gate_pipeline.lib import stats
from gate_pipeline.lib.escape import csv_frame
from gate_pipeline.lib.stats import AnalysisConfig, Runs


@dataclass
class Section:
    """One statistics section: JSON for rollout_metrics.json, tables for CSV, headline numbers for the UI."""

    name: str
    document: Any  # JSON-able: a list of rows or an object
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    numbers: dict[str, float | int | None] = field(default_factory=dict)


#: Run columns the statistics sections and the whitelist health check read (the strata column comes from the
#: config). The history has ~30 columns; the file hashes and metrics JSON are most of its bytes and unused here.
STATISTICS_COLUMNS: tuple[str, ...] = (
    "run_id",
    "timestamp",
    "date",
    "policy_hash",
    "outcome",
    "unknown_rate",
    "top_reasons",
    "unknown_causes",
    "warn_count",
    "fail_count",
    "unknown_count",
    "overrides_count",
    "unknown_classes",
    "whitelisted_classes",
    "non_whitelisted_reasons",
)


def statistics_columns(cfg: AnalysisConfig) -> list[str]:
    """Every history column :data:`SECTIONS` can read under ``cfg``."""
    strata = cfg.strata_column
    return [*STATISTICS_COLUMNS, "metrics" if strata.startswith(stats.METRICS_PREFIX) else strata]


def read_history(raw: bytes, columns: Iterable[str] | None = None) -> pa.Table:
    """Parquet bytes as an Arrow table holding only ``columns`` (all when None) that the file has, in file order.

    A column the file lacks stays absent, exactly as in a full read; call ``.to_pandas()`` for the frame."""
    source = io.BytesIO(raw)
    if columns is None:
        return pq.read_table(source)
    wanted = set(columns)
    names = [n for n in pq.read_schema(source).names if n in wanted]
    return pq.read_table(source, columns=names)


def _utc_seconds_text(col: pd.Series) -> pd.Series | None:
    """The exact text ``to_csv`` writes for a UTC timestamp column whose values are whole seconds
    (``2026-03-01 00:05:16+00:00``, NaT as empty), built with numpy; None for any other column. pandas
    formats tz-aware timestamps one by one, which was half the time of writing tables/spike_runs.csv."""
    dtype = col.dtype
    if not (isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC") or len(col) == 0:
        return None
    naive = col.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    nat = np.isnat(naive)
    if (naive[~nat].view("i8") % 1_000_000_000).any():
        return None
    text = np.char.add(np.char.replace(np.datetime_as_string(naive, unit="s"), "T", " "), "+00:00")
    return pd.Series(np.where(nat, "", text).astype(object), index=col.index, name=col.name)


def table_csv_bytes(df: pd.DataFrame) -> bytes:
    if df.columns.is_unique:
        texts = {c: t for c in df.columns if (t := _utc_seconds_text(df[c])) is not None}
        df = df.assign(**texts) if texts else df
    buf = io.StringIO()
    csv_frame(df).to_csv(buf, index=False, lineterminator="\n")  # formula / control chars neutralized
    return buf.getvalue().encode()


def unknown_rate_section(history: pd.DataFrame | Runs, cfg: AnalysisConfig) -> Section:
    table = stats.unknown_rate_summary(history, cfg)  # overall row first, then per policy_hash and stratum
    numbers: dict[str, float | int | None] = {}
    for rec in table.itertuples(index=False):
        if rec.group_by == "overall":
            numbers.update(unknown_rate_median=rec.median, unknown_rate_p95=rec.p95, runs=int(rec.runs))
        elif rec.group_by == "policy_hash":
            numbers[f"unknown_rate_median[{rec.group}]"] = rec.median
    return Section(
        "unknown_rate_by_group", stats.to_jsonable(table), {"unknown_rate_by_group": table}, numbers
    )


def class_section(history: pd.DataFrame | Runs, cfg: AnalysisConfig) -> Section:
    freq = stats.class_frequencies(history, cfg)
    patterns = stats.recurring_patterns(history, cfg)
    doc = {"frequencies": stats.to_jsonable(freq), "recurring_patterns": stats.to_jsonable(patterns)}
    numbers = {
        "distinct_classes": int(freq["class"].nunique()) if not freq.empty else 0,
        "recurring_patterns": len(patterns),
    }
    return Section(
        "class_frequencies", doc, {"class_frequencies": freq, "recurring_patterns": patterns}, numbers
    )


SPIKE_RUNS_IN_DOCUMENT = 100  # the highest ones; tables/spike_runs.csv has every spike run


def spike_section(history: pd.DataFrame | Runs, cfg: AnalysisConfig) -> Section:
    result = stats.spikes(history, cfg)
    numbers = {"spike_bound": result.bound, "spikes": result.n_spikes, "unknown_rate_median": result.median}
    top = result.spike_runs.sort_values(["unknown_rate", "run_id"], ascending=[False, True], kind="stable")
    # Only the listed spike runs become JSON (converting every spike run cell by cell, to drop all but
    # the first SPIKE_RUNS_IN_DOCUMENT, cost ~0.3 s at 100k runs).
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    document = stats.to_jsonable({**fields, "spike_runs": top.head(SPIKE_RUNS_IN_DOCUMENT)})
    document["spike_runs_listed"] = min(SPIKE_RUNS_IN_DOCUMENT, len(top))
    return Section(
        "spikes", document, {"spike_runs": result.spike_runs, "spikes_by_reason": result.by_reason}, numbers
    )


def risk_section(history: pd.DataFrame | Runs, cfg: AnalysisConfig) -> Section:
    result = stats.risk_measures(history, cfg)
    comparison = result.whitelist_comparison
    numbers = {
        "whitelisted_vs_non_whitelisted_risk_difference": comparison.get("risk_difference"),
        "whitelisted_vs_non_whitelisted_risk_ratio": comparison.get("risk_ratio"),
    }
    return Section("risk_measures", stats.to_jsonable(result), {"risk_by_reason": result.by_reason}, numbers)


def strata_section(history: pd.DataFrame | Runs, cfg: AnalysisConfig) -> Section:
    result = stats.stratum_metrics(history, cfg)
    overall = result.table[result.table["scope"] == "stratum"] if not result.table.empty else result.table
    numbers: dict[str, float | int | None] = {
        f"warn_fail_rate[{rec.stratum}]": rec.warn_fail_rate for rec in overall.itertuples(index=False)
    }
    doc = {
        "strata_column": result.strata_column,
        "rows": stats.to_jsonable(result.table),
        "deltas": stats.to_jsonable(result.deltas),
    }
    return Section("strata", doc, {"strata": result.table, "strata_deltas": result.deltas}, numbers)


def warn_threshold_section(history: pd.DataFrame | Runs, cfg: AnalysisConfig) -> Section:
    result = stats.warn_threshold(history, cfg)
    numbers = {
        "recommended_threshold": result.threshold,
        "fp_rate_without_whitelist": result.without_whitelist.get("fp_rate"),
        "fp_rate_with_whitelist": result.with_whitelist.get("fp_rate"),
        "fp_runs_avoided": result.fp_runs_avoided,
    }
    return Section("warn_threshold", stats.to_jsonable(result), {}, numbers)


SECTIONS = {
    "unknown_rate_summary": unknown_rate_section,
    "unknown_class_frequencies": class_section,
    "unknown_spikes": spike_section,
    "unknown_risk_measures": risk_section,
    "stratum_metrics": strata_section,
    "warn_threshold_recommendation": warn_threshold_section,
}


COUNT_KEYS = [
    "files_discovered",
    "files_accepted",
    "files_quarantined",
    "files_ignored",
    "runs_discovered",
    "runs_with_gate_result",
    "runs_quarantined",
]


ROOT_ENTRY_REASONS = ("not_a_date_folder", "symlink_refused", "date_outside_window", "date_folder_not_built")


def counts_section(
    ingest_counts: list[dict],
    table_counts: list[dict],
    cross_day_duplicates: int,
    accepted: int,
    root_entries: list[tuple] = (),
) -> dict:
    """discovered = accepted + quarantined, at file and run level, over all stored days; and every top-level
    entry of the artifact root: date folders built + entries not built (by reason)."""
    totals = {k: sum(int(c.get(k, 0)) for c in ingest_counts) for k in COUNT_KEYS}
    in_day_duplicates = sum(int(c.get("duplicates_quarantined", 0)) for c in table_counts)
    runs = {
        "discovered": totals["runs_discovered"],
        "accepted": accepted,
        "quarantined_no_usable_gate_result": totals["runs_quarantined"],
        "quarantined_duplicate_run_id": in_day_duplicates + cross_day_duplicates,
        "quarantined_normalize_failed": sum(int(c.get("runs_failed", 0)) for c in table_counts),
    }
    files = {
        "discovered": totals["files_discovered"],
        "accepted": totals["files_accepted"],
        "quarantined": totals["files_quarantined"],
        "ignored_not_an_artifact": totals["files_ignored"],
    }
    balanced = (
        runs["discovered"]
        == accepted
        + runs["quarantined_no_usable_gate_result"]
        + runs["quarantined_duplicate_run_id"]
        + runs["quarantined_normalize_failed"]
    )
    balanced = (
        balanced
        and files["discovered"] == files["accepted"] + files["quarantined"] + files["ignored_not_an_artifact"]
    )
    by_reason = {reason: sum(1 for e in root_entries if e[6] == reason) for reason in ROOT_ENTRY_REASONS}
    entries = {
        "discovered": len(ingest_counts) + len(root_entries),
        "date_folders_built": len(ingest_counts),
        **by_reason,
    }
    return {
        "days": len(ingest_counts),
        "entries": entries,
        "files": files,
        "runs": runs,
        "balanced": balanced,
    }
