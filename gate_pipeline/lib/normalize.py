"""Normalization: raw run records (parsed JSON payloads) → typed run_table rows.

A missing or invalid field never drops the run: the field becomes null and the run carries an
unknown class naming the field (`unknown_field_missing:unknown_rate`, `unknown_field_invalid:outcome`;
drift-report fields are prefixed `drift_report.`).

Duplicate run_id rule (documented in README): within the rows given, the copy with the latest
timestamp wins; ties go to the lexicographically greatest (run_path). The others are returned as
quarantine rows with reason `duplicate_run_id`, so nothing is lost and the choice is deterministic
whatever order the files arrived in.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson
import pandas as pd

from gate_pipeline.lib.ingest import QUARANTINE_COLUMNS, canonical_json, quarantine_frame

OUTCOMES = frozenset({"PASS", "COMMENT", "WARN", "FAIL"})
POLICY_STATES = frozenset({"pinned", "unpinned"})
DRIFT_COUNTS = {
    "WARN_count": "warn_count",
    "FAIL_count": "fail_count",
    "Unknown_count": "unknown_count",
    "Overrides_count": "overrides_count",
}
RUN_TABLE_COLUMNS = [
    "run_id",
    "run_id_source",
    "timestamp",
    "timestamp_source",
    "date",
    "run_path",
    "policy_hash",
    "outcome",
    "unknown_rate",
    "top_reasons",
    "policy_state",
    "stratum",
    "drift_schema_version",
    "warn_count",
    "fail_count",
    "unknown_count",
    "overrides_count",
    "unknown_causes",
    "metrics",
    "has_drift_report",
    "has_metrics",
    "field_issues",
    "gate_sha256",
    "drift_sha256",
    "metrics_sha256",
    "duplicate_count",
]
_EMPTY_LIST = "[]"
_EMPTY_OBJ = "{}"


def _missing(issues: list[str], name: str) -> None:
    issues.append(f"unknown_field_missing:{name}")


def _invalid(issues: list[str], name: str) -> None:
    issues.append(f"unknown_field_invalid:{name}")


def _parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    # A timestamp without offset is taken as UTC, as CI runners write UTC.
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def normalize_run(
    gate: dict[str, Any], drift: dict[str, Any] | None, metrics: dict[str, Any] | None, folder: str, date: str
) -> dict[str, Any]:
    """One run's typed fields and its field issues (pure; no I/O)."""
    issues: list[str] = []
    row: dict[str, Any] = {}

    run_id = gate.get("run_id")
    if isinstance(run_id, str) and run_id.strip():
        row["run_id"], row["run_id_source"] = run_id.strip(), "file"
    else:
        if run_id is not None:
            _invalid(issues, "run_id")
        row["run_id"], row["run_id_source"] = folder, "folder"

    raw_ts = gate.get("timestamp")
    ts = _parse_timestamp(raw_ts)
    if ts is None:
        if raw_ts is not None:
            _invalid(issues, "timestamp")
        # The date folder is the UTC day the run finished; midnight keeps the row sortable and deterministic.
        ts = datetime.fromisoformat(date).replace(tzinfo=UTC)
        row["timestamp_source"] = "date_folder"
    else:
        row["timestamp_source"] = "file"
    row["timestamp"] = ts

    policy_hash = gate.get("policy_hash")
    if isinstance(policy_hash, str) and policy_hash.strip():
        row["policy_hash"] = policy_hash.strip()
    else:
        (_missing if policy_hash is None else _invalid)(issues, "policy_hash")
        row["policy_hash"] = None

    outcome = gate.get("outcome")
    if isinstance(outcome, str) and outcome.strip().upper() in OUTCOMES:
        row["outcome"] = outcome.strip().upper()
    else:
        (_missing if outcome is None else _invalid)(issues, "outcome")
        row["outcome"] = None

    rate = gate.get("unknown_rate")
    if (
        isinstance(rate, int | float)
        and not isinstance(rate, bool)
        and math.isfinite(rate)
        and 0 <= rate <= 1
    ):
        row["unknown_rate"] = float(rate)
    else:
        (_missing if rate is None else _invalid)(issues, "unknown_rate")
        row["unknown_rate"] = None

    reasons = gate.get("top_reasons")
    if reasons is None:
        _missing(issues, "top_reasons")
        row["top_reasons"] = _EMPTY_LIST
    elif isinstance(reasons, list):
        kept = [r.strip() for r in reasons if isinstance(r, str) and r.strip()]
        if len(kept) != len(reasons):
            _invalid(issues, "top_reasons")
        row["top_reasons"] = canonical_json(kept)
    else:
        _invalid(issues, "top_reasons")
        row["top_reasons"] = _EMPTY_LIST

    row.update(_normalize_drift(drift, row, issues))
    row["metrics"] = canonical_json(metrics) if metrics else _EMPTY_OBJ
    row["has_metrics"] = metrics is not None
    row["field_issues"] = canonical_json(sorted(set(issues)))
    return row


def _normalize_drift(drift: dict[str, Any] | None, row: dict[str, Any], issues: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "policy_state": None,
        "stratum": "unknown",
        "drift_schema_version": None,
        "unknown_causes": _EMPTY_OBJ,
        "has_drift_report": drift is not None,
        **dict.fromkeys(DRIFT_COUNTS.values()),
    }
    if drift is None:
        return out
    state = drift.get("policy_state")
    if isinstance(state, str) and state.strip():
        out["policy_state"] = state.strip().lower()
        if out["policy_state"] in POLICY_STATES:
            out["stratum"] = out["policy_state"]
        else:
            _invalid(issues, "drift_report.policy_state")
    else:
        (_missing if state is None else _invalid)(issues, "drift_report.policy_state")

    version = drift.get("schema_version")
    if isinstance(version, str | int) and not isinstance(version, bool):
        out["drift_schema_version"] = str(version)
    else:
        (_missing if version is None else _invalid)(issues, "drift_report.schema_version")

    for source, target in DRIFT_COUNTS.items():
        value = drift.get(source)
        out[target] = _count(value)
        if out[target] is None:
            (_missing if value is None else _invalid)(issues, f"drift_report.{source}")

    causes = drift.get("unknown_causes")
    if isinstance(causes, dict) and all(_count(v) is not None for v in causes.values()):
        out["unknown_causes"] = canonical_json({str(k): _count(v) for k, v in causes.items()})
    elif causes is not None:
        _invalid(issues, "drift_report.unknown_causes")

    # Cross-file consistency: a drift report for another run or policy is flagged, not trusted silently.
    for key in ("run_id", "policy_hash"):
        value = drift.get(key)
        if value is not None and row.get(key) is not None and value != row[key]:
            _invalid(issues, f"drift_report.{key}")
    return out


def normalize_day(raw_runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """raw_runs rows of one partition → (run_table, duplicate quarantine rows)."""
    rows = []
    loads = orjson.loads
    for rec in raw_runs.itertuples(index=False):
        gate = loads(rec.gate_result)
        drift = loads(rec.drift_report) if rec.drift_report is not None else None
        metrics = loads(rec.metrics) if rec.metrics is not None else None
        row = normalize_run(gate, drift, metrics, rec.run_folder, rec.date)
        row.update(
            date=rec.date,
            run_path=rec.run_path,
            gate_sha256=rec.gate_sha256,
            drift_sha256=rec.drift_sha256,
            metrics_sha256=rec.metrics_sha256,
        )
        rows.append(row)
    table = run_table_frame(rows)
    return resolve_duplicates(table)


def run_table_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=RUN_TABLE_COLUMNS)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    df["unknown_rate"] = df["unknown_rate"].astype("float64")
    for col in DRIFT_COUNTS.values():
        df[col] = df[col].astype("Int64")
    for col in ("has_drift_report", "has_metrics"):
        df[col] = df[col].astype(bool)
    df["duplicate_count"] = 1
    return df


def resolve_duplicates(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply the duplicate run_id rule; returns (unique rows sorted by timestamp, run_id; quarantine rows)."""
    if table.empty:
        return table.reset_index(drop=True), quarantine_frame([])
    ordered = table.sort_values(["run_id", "timestamp", "run_path"], kind="stable")
    counts = ordered.groupby("run_id", sort=False)["run_id"].transform("size").astype("int64")
    ordered = ordered.assign(duplicate_count=counts)
    keep_mask = ~ordered.duplicated("run_id", keep="last")
    kept, dropped = ordered[keep_mask], ordered[~keep_mask]
    winners = kept.set_index("run_id")["run_path"]
    qrows = [
        (
            row.date,
            row.run_path,
            row.run_path,
            "run",
            row.gate_sha256,
            0,
            "duplicate_run_id",
            f"run_id {row.run_id} also at {winners[row.run_id]}, which wins (latest timestamp, then path)",
        )
        for row in dropped.itertuples(index=False)
    ]
    kept = kept.sort_values(["timestamp", "run_id"], kind="stable").reset_index(drop=True)
    return kept, quarantine_frame(qrows)


__all__ = ["QUARANTINE_COLUMNS", "RUN_TABLE_COLUMNS", "normalize_day", "normalize_run", "resolve_duplicates"]
