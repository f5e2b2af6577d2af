"""The rollout series: ordering, cross-day duplicates, byte-stable CSV."""

import pandas as pd

from gate_pipeline.lib.normalize import normalize_run, run_table_frame
from gate_pipeline.lib.series import combine_days, rollout_series, series_csv_bytes
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
