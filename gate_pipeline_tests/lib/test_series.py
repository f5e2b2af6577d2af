"""The rollout series: ordering, cross-day duplicates, byte-stable CSV, and the incremental build.

The incremental build (`update_series`, cached per-day fragments) is held to byte equality with the
reference (`combine_days` + `rollout_series` + `series_csv_bytes` + `parquet_bytes` over all days), step by
step through a history of new, changed, reverted and vanished days.
"""

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest

from gate_pipeline.lib import series as series_lib
from gate_pipeline.lib import series_cache
from gate_pipeline.lib.normalize import normalize_run, run_table_frame
from gate_pipeline.lib.series import combine_days, in_series_order, rollout_series, series_csv_bytes
from gate_pipeline.lib.series_cache import SeriesSchemaError, update_series
from gate_pipeline.lib.storage import Store, parquet_bytes, sha256_bytes
from gate_pipeline.lib.tables import RolloutSeries, validate


def _row(run_id, ts, date, folder=None, rate=0.1, **fields):
    gate = {
        "run_id": run_id,
        "timestamp": ts,
        "policy_hash": fields.pop("policy_hash", "p"),
        "outcome": fields.pop("outcome", "PASS"),
        "unknown_rate": rate,
        "top_reasons": fields.pop("top_reasons", ["a", "b"]),
    }
    row = normalize_run(gate, fields.pop("drift", None), None, folder or run_id, date)
    row.update(
        date=date,
        run_path=f"{date}/{folder or run_id}",
        gate_sha256="0" * 64,
        drift_sha256=None,
        metrics_sha256=None,
    )
    row.update(fields)
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


# --------------------------------------------------------------------------------------------------------------
# Incremental build vs the reference
# --------------------------------------------------------------------------------------------------------------

_DRIFT = {
    "schema_version": "1",
    "policy_state": "pinned",
    "WARN_count": 1,
    "FAIL_count": 0,
    "Unknown_count": 2,
}


def _classified(rows):
    """A classified_runs-like day: the run table plus the classification columns."""
    df = run_table_frame(rows)
    df["unknown_classes"] = [
        orjson.dumps(sorted(f"cause:{r}" for r in orjson.loads(row["top_reasons"]))).decode() for row in rows
    ]
    df["whitelisted_classes"] = "[]"
    df["non_whitelisted_reasons"] = "[]"
    df["whitelist_sha256"] = "f" * 64
    return df


def _rows(day, *specs):
    """(run_id, "HH:MM:SS" or full timestamp or None, extra fields) → rows of `day`."""
    out = []
    for spec in specs:
        run_id, clock, *rest = spec
        fields = dict(rest[0]) if rest else {}
        ts = None if clock is None else clock if "T" in clock else f"{day}T{clock}Z"
        out.append(_row(run_id, ts, day, **fields))
    return out


class History:
    """Days written as classified_runs parquet files in a store, with their digests."""

    def __init__(self, root):
        self.store = Store.at(str(root))
        self.versions: dict[str, str] = {}
        self.reads: list[str] = []

    def put(self, day, rows):
        payload = parquet_bytes(_classified(rows) if rows else _classified([]).iloc[0:0])
        self.store.write_bytes(payload, "classified_runs", f"{day}.parquet")
        self.versions[day] = sha256_bytes(payload)

    def drop(self, day):
        del self.versions[day]

    def read_day(self, day):
        self.reads.append(day)
        return self.store.read_parquet("classified_runs", f"{day}.parquet")

    def reference(self):
        """The from-scratch bytes of the reference implementation (pandas, all days at once)."""
        days = [self.store.read_parquet("classified_runs", f"{d}.parquet") for d in sorted(self.versions)]
        runs, dups = combine_days(days)
        series = rollout_series(runs)
        return series_csv_bytes(series), parquet_bytes(series), parquet_bytes(runs), len(dups), len(series)

    def update(self, folder, **options):
        self.reads.clear()
        return update_series(self.store, folder, dict(self.versions), self.read_day, **options)


def _assert_matches_reference(history: History, built):
    csv, series_parquet, history_parquet, dups, rows = history.reference()
    assert built.csv == csv
    assert built.series_parquet == series_parquet
    assert built.history_parquet == history_parquet
    assert (built.cross_day_duplicates, built.rows) == (dups, rows)


def _steps():
    """A history of updates: (description, {day: rows or None to drop})."""
    d1, d2, d3, d4, d5, d6, d7 = (f"2026-03-0{i}" for i in range(1, 8))
    return [
        (
            "three days, one run timestamped from its date folder (midnight), a tie on timestamp",
            {
                d1: _rows(d1, ("r1", "10:00:00"), ("r2", "10:00:00"), ("r0", None), ("dup", "08:00:00")),
                d2: _rows(d2, ("r3", "09:00:00.5"), ("r4", "23:59:59", {"drift": _DRIFT})),
                d3: _rows(d3, ("r5", "12:00:00", {"policy_hash": None}), ("r6", "12:00:01")),
            },
        ),
        ("a new day", {d4: _rows(d4, ("r7", "01:00:00"), ("r8", "02:00:00", {"top_reasons": []}))}),
        (
            "a day changes (a late run, a changed value)",
            {d2: _rows(d2, ("r3", "09:00:00.5", {"rate": 0.5}), ("r4", "23:59:59"), ("r4b", "23:59:59"))},
        ),
        ("a day disappears", {d3: None}),
        ("a cross-day duplicate arrives later and wins", {d5: _rows(d5, ("dup", "09:00:00", {"rate": 0.9}))}),
        (
            "timestamps outside their date folder, before and inside older days",
            {
                d6: _rows(
                    d6,
                    ("early", "2026-02-27T10:00:00Z"),
                    ("mid", "2026-03-01T10:00:00Z"),
                    ("r00", "2026-03-01T10:00:00Z"),
                )
            },
        ),
        ("the winning duplicate's day disappears: the older copy wins again", {d5: None}),
        (
            "the changed day is reverted to its first content",
            {d2: _rows(d2, ("r3", "09:00:00.5"), ("r4", "23:59:59", {"drift": _DRIFT}))},
        ),
        ("an empty day", {d7: []}),
        ("the disappeared day comes back", {d3: _rows(d3, ("r5", "12:00:00", {"policy_hash": None}))}),
        ("the empty day gets a run", {d7: _rows(d7, ("r9", "00:00:01"))}),
    ]


@pytest.mark.parametrize("max_day_files", [0, 2, 100], ids=["always-compact", "compact-often", "day-files"])
def test_incremental_build_is_byte_identical_to_a_from_scratch_build(tmp_path, max_day_files):
    history = History(tmp_path)
    modes = set()
    for step, (description, changes) in enumerate(_steps()):
        for day, rows in changes.items():
            history.drop(day) if rows is None else history.put(day, rows)
        built = history.update("cache", max_day_files=max_day_files, max_day_share=1.0)
        _assert_matches_reference(history, built)
        modes.add(built.cache)
        # Only the days new or changed at this step were formatted and validated (a day reverted to content
        # its base still holds needs nothing).
        changed = sorted(day for day, rows in changes.items() if rows is not None)
        assert built.days_built == history.reads, description
        assert built.days_built == changed or ("reverted" in description and built.days_built == []), (
            description
        )
        # A cold build (no cache) gives the same bytes.
        cold = history.update(f"cold-{step}")
        assert (cold.csv, cold.series_parquet, cold.history_parquet) == (
            built.csv,
            built.series_parquet,
            built.history_parquet,
        ), description
        # Nothing changed: nothing is read or rewritten, same bytes.
        again = history.update("cache", max_day_files=max_day_files, max_day_share=1.0)
        assert again.cache == "unchanged" and history.reads == []
        assert again.csv == built.csv and again.history_parquet == built.history_parquet
    assert modes >= ({"compacted"} if max_day_files == 0 else {"compacted", "day_files"})
    # The cache folder holds only what its manifest names.
    manifest = orjson.loads(history.store.read_bytes("cache", "manifest.json"))
    named = {manifest["base"]["file"], *(e["file"] for e in manifest["days"].values()), "manifest.json"}
    assert set(history.store.list_names("cache")) == named - {None}


def test_the_cross_day_duplicate_rule_and_order_in_the_incremental_build(tmp_path):
    history = History(tmp_path)
    history.put("2026-03-01", _rows("2026-03-01", ("a", "10:00:00"), ("b", "11:00:00")))
    update = history.update("cache")
    history.put(
        "2026-03-02", _rows("2026-03-02", ("a", "2026-03-01T09:00:00Z"), ("c", "2026-03-01T10:30:00Z"))
    )
    built = history.update("cache")
    _assert_matches_reference(history, built)
    series = pd.read_csv(pd.io.common.BytesIO(built.csv))
    # "a" from 03-01 wins (later timestamp); "c" of the later folder sorts between the older rows.
    assert list(series["run_id"]) == ["a", "c", "b"]
    assert list(series["run_path"]) == ["2026-03-01/a", "2026-03-02/c", "2026-03-01/b"]
    assert built.cross_day_duplicates == 1 and update.cross_day_duplicates == 0
    runs = pd.read_parquet(pd.io.common.BytesIO(built.history_parquet))
    assert list(runs["duplicate_count"]) == [2, 1, 1]


def test_a_days_own_duplicates_still_count_after_the_cross_day_rule(tmp_path):
    history = History(tmp_path)
    first = _classified(_rows("2026-03-01", ("a", "10:00:00"), ("b", "11:00:00")))
    first["duplicate_count"] = first["duplicate_count"].where(first["run_id"] != "a", 3)  # won over 2 copies
    payload = parquet_bytes(first)
    history.store.write_bytes(payload, "classified_runs", "2026-03-01.parquet")
    history.versions["2026-03-01"] = sha256_bytes(payload)
    history.put("2026-03-02", _rows("2026-03-02", ("a", "2026-03-01T09:00:00Z")))
    built = history.update("cache")
    _assert_matches_reference(history, built)
    runs = pd.read_parquet(pd.io.common.BytesIO(built.history_parquet))
    assert dict(zip(runs["run_id"], runs["duplicate_count"], strict=True)) == {"a": 4, "b": 1}


def test_columns_without_values_keep_their_null_parquet_type(tmp_path):
    """An object column with no value anywhere (or only in a dropped duplicate) is written as from_pandas does."""
    history = History(tmp_path)
    history.put("2026-03-01", _rows("2026-03-01", ("a", "10:00:00", {"policy_hash": None})))
    _assert_matches_reference(history, history.update("cache"))
    # The only non-null drift_schema_version sits on a copy that loses the cross-day rule.
    history.put(
        "2026-03-02",
        _rows("2026-03-02", ("a", "2026-03-01T09:00:00Z", {"policy_hash": None, "drift": _DRIFT})),
    )
    built = history.update("cache")
    _assert_matches_reference(history, built)
    assert pd.read_parquet(pd.io.common.BytesIO(built.history_parquet))["drift_schema_version"].isna().all()


def test_csv_fields_with_separators_quotes_and_line_breaks(tmp_path):
    history = History(tmp_path)
    reasons = ["has,comma", 'has "quote"', "two\nlines", "crlf\r\nend", "ünïcödé"]
    history.put("2026-03-01", _rows("2026-03-01", ("a", "10:00:00", {"top_reasons": reasons, "rate": 1e-05})))
    history.put("2026-03-02", _rows("2026-03-02", ("b", "10:00:00", {"rate": 1 / 3})))
    built = history.update("cache")
    _assert_matches_reference(history, built)
    assert b'"has,comma;has ""quote"";two\nlines;crlf\r\nend;' in built.csv  # quoted, line breaks kept


def test_many_days_in_several_batches(tmp_path):
    history = History(tmp_path)
    for i in range(1, 10):
        day = f"2026-04-0{i}"
        history.put(
            day, _rows(day, *[(f"r{i}{j}", f"0{j}:00:00") for j in range(5)], (f"x{i % 3}", "12:00:00"))
        )
    built = history.update("cache", batch_rows=7)
    _assert_matches_reference(history, built)
    assert built.cross_day_duplicates == 6


def test_invalid_rows_fail_and_nothing_is_cached(tmp_path):
    history = History(tmp_path)
    history.put("2026-03-01", _rows("2026-03-01", ("a", "10:00:00")))
    history.update("cache")
    manifest = history.store.read_bytes("cache", "manifest.json")
    bad = _rows("2026-03-02", ("b", "10:00:00"))
    bad[0]["outcome"] = "MAYBE"
    history.put("2026-03-02", bad)
    with pytest.raises(SeriesSchemaError) as failure:
        history.update("cache")
    assert {case["day"] for case in failure.value.failures} == {"2026-03-02"}
    assert any(case["failure_case"] == "MAYBE" for case in failure.value.failures)
    assert history.store.read_bytes("cache", "manifest.json") == manifest


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_missing_or_damaged_cache_file_rebuilds_from_the_classified_days(tmp_path, damage):
    history = History(tmp_path)
    history.put("2026-03-01", _rows("2026-03-01", ("a", "10:00:00")))
    history.update("cache")
    history.put("2026-03-02", _rows("2026-03-02", ("b", "10:00:00")))
    history.update("cache", max_day_share=1.0)
    for name in history.store.list_names("cache"):
        if name != "manifest.json":
            if damage == "missing":
                series_cache.remove(history.store, "cache", name)
            else:
                history.store.write_bytes(history.store.read_bytes("cache", name)[:100], "cache", name)
    built = history.update("cache")
    _assert_matches_reference(history, built)
    assert built.days_built == ["2026-03-01", "2026-03-02"]
    assert history.update("cache").cache == "unchanged"


def test_a_new_day_is_a_small_day_file_until_compaction(tmp_path):
    history = History(tmp_path)
    for i in range(1, 5):
        history.put(f"2026-03-0{i}", _rows(f"2026-03-0{i}", *[(f"r{i}{j}", f"0{j}:00:00") for j in range(9)]))
    assert history.update("cache").cache == "compacted"
    base = orjson.loads(history.store.read_bytes("cache", "manifest.json"))["base"]["file"]
    history.put("2026-03-05", _rows("2026-03-05", ("n1", "01:00:00")))
    built = history.update("cache", max_day_files=1)
    assert built.cache == "day_files"
    assert base in history.store.list_names("cache")  # the base was not rewritten
    history.put("2026-03-06", _rows("2026-03-06", ("n2", "01:00:00")))
    assert history.update("cache", max_day_files=1).cache == "compacted"
    assert base not in history.store.list_names("cache")
    _assert_matches_reference(history, history.update("cache"))


def test_iso_timestamps_equal_strftime():
    values = pd.Series(
        pd.to_datetime(
            [0, 1, 999, 1000, 1_000_000, -1, -999, -1000, -1001, 1_772_359_199_999_999_999, -(2**62)],
            utc=True,
        )
    )
    values[11] = pd.NaT
    for series in (values, values.dt.tz_convert("Europe/Berlin"), values.dt.tz_localize(None)):
        expected = series.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").str.replace(".000000Z", "Z")
        pd.testing.assert_series_equal(series_lib.iso_timestamps(series), expected)


def test_json_lists_are_joined_once_per_distinct_value():
    column = pd.Series(['["a","b"]', "[]", '["a","b"]', '["x;y"]'] * 3, index=range(5, 17))
    expected = column.map(series_lib._join_json_list)
    pd.testing.assert_series_equal(series_lib._join_json_lists(column), expected)
    with pytest.raises(orjson.JSONDecodeError):  # a missing value fails as the plain map does
        series_lib._join_json_lists(pd.Series(["[]", None]))


def test_no_days_at_all(tmp_path):
    built = update_series(Store.at(str(tmp_path)), "cache", {}, lambda day: pd.DataFrame())
    assert built.rows == 0
    assert built.csv == series_csv_bytes(pd.DataFrame(columns=series_lib.SERIES_COLUMNS))


def test_arrow_parquet_writer_matches_parquet_bytes():
    df = _classified(_rows("2026-03-01", ("a", "10:00:00"), ("b", None, {"policy_hash": None})))
    table = series_cache.pa.Table.from_pandas(df, preserve_index=False)
    assert series_cache._parquet(table) == parquet_bytes(df)


@pytest.mark.s3
def test_incremental_build_on_s3_matches_local(s3_bucket, tmp_path):
    local, remote = History(tmp_path), History(tmp_path / "unused")
    remote.store = Store.at(s3_bucket.url("data"), s3_bucket.storage_options)
    for description, changes in _steps()[:5]:
        for day, rows in changes.items():
            for h in (local, remote):
                h.drop(day) if rows is None else h.put(day, rows)
        a = local.update("cache", max_day_files=1)
        b = remote.update("cache", max_day_files=1)
        assert (a.csv, a.series_parquet, a.history_parquet) == (b.csv, b.series_parquet, b.history_parquet)
        assert a.cache == b.cache, description
        assert local.store.list_names("cache") == remote.store.list_names("cache")


def test_large_days_spanning_several_parquet_pages(tmp_path):
    """Enough rows that the parquet writer cuts pages: the output must not depend on how the rows were chunked."""
    history = History(tmp_path)
    for day, count in (("2026-03-01", 12_000), ("2026-03-02", 9_000)):
        template = _classified(_rows(day, ("x", "00:00:00")))
        df = template.loc[[0] * count].reset_index(drop=True)
        df["run_id"] = [f"{day}-{i}" for i in range(count)]
        df["run_path"] = day + "/" + df["run_id"]
        df["gate_sha256"] = [sha256_bytes(f"{day}{i}".encode()) for i in range(count)]
        df["timestamp"] = df["timestamp"] + pd.to_timedelta(range(count), unit="s")
        payload = parquet_bytes(df)
        history.store.write_bytes(payload, "classified_runs", f"{day}.parquet")
        history.versions[day] = sha256_bytes(payload)
        built = history.update("cache", max_day_share=1.0)
    assert built.cache == "day_files"
    _assert_matches_reference(history, built)


def test_in_series_order_compares_timestamps_then_tied_run_ids():
    ts = np.array([1, 2, 2, 3], dtype=np.int64)
    ids = ["a", "b", "c", "a"]
    for run_id in (np.array(ids, dtype=object), pa.array(ids), pa.chunked_array([ids[:2], ids[2:]])):
        assert in_series_order(ts, run_id)
    assert not in_series_order(np.array([1, 3, 2]), np.array(["a", "b", "c"], dtype=object))
    assert not in_series_order(ts, np.array(["a", "c", "b", "a"], dtype=object))  # tie out of order
    equal = np.array(["a", "b", "b", "c"], dtype=object)
    assert not in_series_order(ts, equal) and in_series_order(ts, equal, strict=False)
    as_datetimes = ts.astype("datetime64[ns]")
    assert in_series_order(as_datetimes, np.array(ids, dtype=object))
    assert in_series_order(np.array([], dtype=np.int64), np.array([], dtype=object))


@pytest.mark.parametrize("max_day_files", [0, 100], ids=["always-compact", "day-files"])
def test_streamed_in_small_chunks_the_content_is_the_reference(tmp_path, max_day_files):
    """Chunks smaller than the history (one parquet row group each): the CSV is byte-identical, the parquet
    files hold the reference's table (schema and pandas metadata included), in one row group per chunk."""
    import pyarrow.parquet as pq

    history = History(tmp_path)
    for description, changes in _steps():
        for day, rows in changes.items():
            history.drop(day) if rows is None else history.put(day, rows)
        built = history.update("cache", max_day_files=max_day_files, max_day_share=1.0, chunk_rows=2)
        csv, series_parquet, history_parquet, dups, rows = history.reference()
        assert built.csv == csv, description
        assert built.csv_sha256 == sha256_bytes(csv)
        assert (built.cross_day_duplicates, built.rows) == (dups, rows)
        for got, want in ((built.series_parquet, series_parquet), (built.history_parquet, history_parquet)):
            got_table, want_table = (pq.read_table(pa.BufferReader(b)) for b in (got, want))
            assert got_table.equals(want_table, check_metadata=True), description
            assert pq.ParquetFile(pa.BufferReader(got)).num_row_groups == max(1, -(-rows // 2))


def test_a_failed_streamed_write_publishes_nothing(tmp_path):
    store = Store.at(str(tmp_path))
    store.write_bytes(b"old", "out.csv")
    with pytest.raises(RuntimeError), store.open_write("out.csv") as handle:
        handle.write(b"new, half")
        raise RuntimeError("cut short")
    assert store.read_bytes("out.csv") == b"old"
    assert store.list_names() == ["out.csv"]  # no temporary file left behind
    with store.open_write("out.csv") as handle:
        handle.write(b"new")
    assert store.read_bytes("out.csv") == b"new"
