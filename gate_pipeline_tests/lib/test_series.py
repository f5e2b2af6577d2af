"""The rollout series: ordering, cross-day duplicates, byte-stable CSV."""

import pandas as pd

from gate_pipeline.lib.normalize import normalize_run, run_table_frame
from gate_pipeline.lib.series import combine_days, rollout_series, series_csv_bytes, update_union
from gate_pipeline.lib.tables import RolloutSeries, validate


def _row(run_id, ts, date, folder=None, rate=0.1):
    gate = {
        "run_id": run_id,
        "timestamp": ts,
        "policy_hash": "p",
        "outcome": "PASS",
        "unknown_rate": rate,
        "top_reasons": ["a", "b"],
    }
    row = normalize_run(gate, None, None, folder or run_id, date)
    row.update(
        date=date,
        run_path=f"{date}/{folder or run_id}",
        gate_sha256="0" * 64,
        drift_sha256=None,
        metrics_sha256=None,
    )
    return row


def test_series_sorted_by_timestamp_then_run_id_across_days():
    day1 = run_table_frame(
        [_row("r2", "2026-03-01T10:00:00Z", "2026-03-01"), _row("r1", "2026-03-01T10:00:00Z", "2026-03-01")]
    )
    day2 = run_table_frame([_row("r0", "2026-03-01T09:59:59.5Z", "2026-03-02")])
    runs, dups = combine_days([day2, day1])
    series = rollout_series(runs)
    assert list(series["run_id"]) == ["r0", "r1", "r2"]
    assert list(series["timestamp"]) == [
        "2026-03-01T09:59:59.500000Z",
        "2026-03-01T10:00:00Z",
        "2026-03-01T10:00:00Z",
    ]
    assert list(series["top_reasons"]) == ["a;b"] * 3
    assert dups.empty
    assert validate(RolloutSeries, series) == []


def test_cross_day_duplicate_keeps_latest_and_reports_the_other():
    day1 = run_table_frame([_row("r1", "2026-03-01T10:00:00Z", "2026-03-01", rate=0.1)])
    day2 = run_table_frame([_row("r1", "2026-03-02T10:00:00Z", "2026-03-02", rate=0.2)])
    runs, dups = combine_days([day1, day2])
    assert list(runs["unknown_rate"]) == [0.2]
    assert list(dups["path"]) == ["2026-03-01/r1"]


def test_csv_bytes_are_stable_and_exact():
    runs, _ = combine_days([run_table_frame([_row("r1", "2026-03-01T10:00:00Z", "2026-03-01", rate=0.1234)])])
    csv = series_csv_bytes(rollout_series(runs))
    assert csv == (
        b"run_id,timestamp,date,policy_hash,outcome,unknown_rate,top_reasons,stratum,warn_count,fail_count,"
        b"unknown_count,overrides_count,field_issues,unknown_classes,run_path\n"
        b"r1,2026-03-01T10:00:00Z,2026-03-01,p,PASS,0.1234,a;b,unknown,,,,,,,2026-03-01/r1\n"
    )


def test_no_days_gives_an_empty_series():
    runs, dups = combine_days([])
    assert runs.empty and dups.empty
    assert isinstance(runs, pd.DataFrame)


def test_incremental_union_equals_a_cold_union_and_rereads_only_changed_days():
    days = {
        "2026-03-01": run_table_frame([_row("r1", "2026-03-01T10:00:00Z", "2026-03-01")]),
        "2026-03-02": run_table_frame([_row("r2", "2026-03-02T10:00:00Z", "2026-03-02")]),
        "2026-03-03": run_table_frame([_row("r3", "2026-03-03T10:00:00Z", "2026-03-03")]),
    }
    reads: list[str] = []

    def read_day(day):
        reads.append(day)
        return days[day]

    v1 = {"2026-03-01": "a", "2026-03-02": "b"}
    first, read = update_union(None, {}, v1, read_day)
    assert read == ["2026-03-01", "2026-03-02"] and list(first["run_id"]) == ["r1", "r2"]

    # Day 2 changed (a late run), day 3 is new: only those two are read again.
    days["2026-03-02"] = run_table_frame(
        [_row("r2", "2026-03-02T10:00:00Z", "2026-03-02"), _row("r2b", "2026-03-02T11:00:00Z", "2026-03-02")]
    )
    v2 = {"2026-03-01": "a", "2026-03-02": "b2", "2026-03-03": "c"}
    reads.clear()
    second, read = update_union(first, v1, v2, read_day)
    assert read == reads == ["2026-03-02", "2026-03-03"]
    cold, _ = update_union(None, {}, v2, read_day)
    pd.testing.assert_frame_equal(second, cold)
    assert list(second["run_id"]) == ["r1", "r2", "r2b", "r3"]

    # A day that disappeared from storage disappears from the union; nothing is read.
    v3 = {"2026-03-01": "a", "2026-03-03": "c"}
    third, read = update_union(second, v2, v3, read_day)
    assert read == [] and list(third["run_id"]) == ["r1", "r3"]
