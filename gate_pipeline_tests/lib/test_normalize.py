"""Normalization: field fallbacks, unknown field classes, the duplicate rule."""

import pandas as pd

from gate_pipeline.lib.ingest import RAW_RUN_COLUMNS
from gate_pipeline.lib.normalize import normalize_day, normalize_run, resolve_duplicates, run_table_frame
from gate_pipeline.lib.tables import RunTable, validate

GOOD = {
    "run_id": "r1",
    "timestamp": "2026-03-01T10:22:31Z",
    "policy_hash": "a6f53e",
    "outcome": "comment",
    "unknown_rate": 0.08,
    "top_reasons": ["flaky_test", "infra_timeout"],
}
DRIFT = {
    "run_id": "r1",
    "policy_hash": "a6f53e",
    "schema_version": "1",
    "policy_state": "Pinned",
    "WARN_count": 1,
    "FAIL_count": 0,
    "Unknown_count": 2,
    "Overrides_count": 0,
    "unknown_causes": {"schema": 1, "contract": 1},
}


def test_good_run_is_normalized():
    row = normalize_run(GOOD, DRIFT, {"latency_ms": 12.5, "arm": "a"}, "folder", "2026-03-01")
    assert row["run_id"] == "r1" and row["run_id_source"] == "file"
    assert row["timestamp"].isoformat() == "2026-03-01T10:22:31+00:00" and row["timestamp_source"] == "file"
    assert row["outcome"] == "COMMENT"
    assert row["unknown_rate"] == 0.08
    assert row["top_reasons"] == '["flaky_test","infra_timeout"]'
    assert row["stratum"] == "pinned" and row["policy_state"] == "pinned"
    assert (row["warn_count"], row["fail_count"], row["unknown_count"], row["overrides_count"]) == (
        1,
        0,
        2,
        0,
    )
    assert row["unknown_causes"] == '{"contract":1,"schema":1}'
    assert row["metrics"] == '{"arm":"a","latency_ms":12.5}'
    assert row["field_issues"] == "[]"


def test_missing_run_id_and_timestamp_fall_back_to_folder_and_date():
    gate = {k: v for k, v in GOOD.items() if k not in ("run_id", "timestamp")}
    row = normalize_run(gate, None, None, "r-folder", "2026-03-02")
    assert (row["run_id"], row["run_id_source"]) == ("r-folder", "folder")
    assert row["timestamp"].isoformat() == "2026-03-02T00:00:00+00:00"
    assert row["timestamp_source"] == "date_folder"
    assert row["field_issues"] == "[]"  # absent run_id/timestamp are documented fallbacks, not unknowns
    assert row["stratum"] == "unknown" and row["has_drift_report"] is False


def test_missing_and_invalid_fields_keep_the_run_with_named_classes():
    gate = {
        "run_id": 7,
        "timestamp": "yesterday",
        "outcome": "MAYBE",
        "unknown_rate": 1.5,
        "top_reasons": "x",
    }
    drift = {
        "policy_state": "floating",
        "WARN_count": -1,
        "FAIL_count": "2",
        "Unknown_count": 1.0,
        "run_id": "other",
        "unknown_causes": [1],
    }
    row = normalize_run(gate, drift, None, "r9", "2026-03-03")
    assert row["run_id"] == "r9" and row["policy_hash"] is None and row["outcome"] is None
    assert row["unknown_rate"] is None and row["top_reasons"] == "[]"
    assert row["unknown_count"] == 1 and row["warn_count"] is None and row["stratum"] == "unknown"
    assert row["field_issues"] == (
        '["unknown_field_invalid:drift_report.FAIL_count","unknown_field_invalid:drift_report.WARN_count",'
        '"unknown_field_invalid:drift_report.policy_state",'
        '"unknown_field_invalid:drift_report.run_id","unknown_field_invalid:drift_report.unknown_causes",'
        '"unknown_field_invalid:outcome","unknown_field_invalid:run_id","unknown_field_invalid:timestamp",'
        '"unknown_field_invalid:top_reasons","unknown_field_invalid:unknown_rate",'
        '"unknown_field_missing:drift_report.Overrides_count","unknown_field_missing:drift_report.schema_version",'
        '"unknown_field_missing:policy_hash"]'
    )


def test_timestamp_offsets_are_converted_to_utc():
    row = normalize_run({**GOOD, "timestamp": "2026-03-01T12:00:00+02:00"}, None, None, "f", "2026-03-01")
    assert row["timestamp"].isoformat() == "2026-03-01T10:00:00+00:00"


def _raw(rows):
    return pd.DataFrame(rows, columns=RAW_RUN_COLUMNS)


def test_duplicate_rule_latest_timestamp_then_path_wins_whatever_the_order():
    import orjson

    def raw_row(folder, ts):
        gate = orjson.dumps({**GOOD, "timestamp": ts}).decode()
        return ("2026-03-01", f"2026-03-01/{folder}", folder, gate, None, None, "a" * 64, None, None, 0)

    rows = [
        raw_row("a", "2026-03-01T10:00:00Z"),
        raw_row("b", "2026-03-01T11:00:00Z"),
        raw_row("c", "2026-03-01T11:00:00Z"),
    ]
    for order in (rows, rows[::-1], [rows[1], rows[0], rows[2]]):
        table, dups = normalize_day(_raw(order))
        assert list(table["run_path"]) == ["2026-03-01/c"]
        assert table.iloc[0]["duplicate_count"] == 3
        assert sorted(dups["path"]) == ["2026-03-01/a", "2026-03-01/b"]
        assert set(dups["reason"]) == {"duplicate_run_id"}
        assert validate(RunTable, table) == []


def test_empty_day_is_valid():
    table, dups = resolve_duplicates(run_table_frame([]))
    assert table.empty and dups.empty
    assert validate(RunTable, table) == []


def test_schema_reports_all_failures_at_once():
    row = normalize_run(GOOD, DRIFT, None, "f", "2026-03-01")
    row.update(
        date="2026-03-01",
        run_path="2026-03-01/f",
        gate_sha256="a" * 64,
        drift_sha256=None,
        metrics_sha256=None,
    )
    table = run_table_frame([row, {**row, "run_path": "2026-03-01/g"}])
    table.loc[0, "unknown_rate"] = 3.0
    table.loc[1, "outcome"] = "BOGUS"
    failures = validate(RunTable, table)
    failed_columns = {f["column"] for f in failures}
    assert {"unknown_rate", "outcome"} <= failed_columns
    # The same run_id twice on one day breaks the (date, run_id) uniqueness, reported in the same pass.
    assert any(f["check"] == "multiple_fields_uniqueness" for f in failures), failures
