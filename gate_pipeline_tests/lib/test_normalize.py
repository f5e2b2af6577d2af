"""Normalization: field fallbacks, unknown field classes, the duplicate rule."""

import orjson
import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gate_pipeline.lib.ingest import RAW_RUN_COLUMNS, canonical_json, quarantine_frame
from gate_pipeline.lib.normalize import normalize_day, normalize_run, resolve_duplicates, run_table_frame
from gate_pipeline.lib.storage import parquet_bytes
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


# --- normalize_day fast path == the plain row-by-row reference --------------------------------------------
# The reference below is the straightforward implementation normalize_day replaced (one normalize_run per
# row, a frame from row dicts, the duplicate rule by sorting the full frame); the fast path must give the
# same frames and the same parquet bytes for any input, valid or not.


def _reference_resolve(table):
    if table.empty:
        return table.reset_index(drop=True), quarantine_frame([])
    ordered = table.sort_values(["run_id", "timestamp", "run_path"], kind="stable")
    counts = ordered.groupby("run_id", sort=False)["duplicate_count"].transform("sum").astype("int64")
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


def _reference_normalize_day(raw):
    rows = []
    for rec in raw.itertuples(index=False):
        gate = orjson.loads(rec.gate_result)
        drift = orjson.loads(rec.drift_report) if rec.drift_report is not None else None
        metrics = orjson.loads(rec.metrics) if rec.metrics is not None else None
        row = normalize_run(gate, drift, metrics, rec.run_folder, rec.date)
        row.update(
            date=rec.date,
            run_path=rec.run_path,
            gate_sha256=rec.gate_sha256,
            drift_sha256=rec.drift_sha256,
            metrics_sha256=rec.metrics_sha256,
        )
        rows.append(row)
    return _reference_resolve(run_table_frame(rows))


def _assert_same(got, want, *, parquet=True):
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert list(got.dtypes) == list(want.dtypes) and list(got.index) == list(want.index)
    if parquet:  # what Store.write_parquet writes (slow-ish, so only for the run_table itself)
        assert parquet_bytes(got) == parquet_bytes(want)


_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 3),
    st.floats(-1, 2, allow_nan=False),
    st.sampled_from(["", " ", "x", " PASS ", "warn", "Pinned", "unpinned", "1", "floating"]),
    st.lists(st.sampled_from(["a", " b", "", 3]), max_size=3),
    st.dictionaries(st.sampled_from(["k", "schema"]), st.integers(0, 2), max_size=2),
)
_timestamps = st.one_of(
    st.sampled_from(
        [
            "2026-03-01T10:22:31Z",
            "2026-03-01T10:22:31z",
            "2026-03-01T12:00:00+02:00",
            "2026-03-01T10:00:00",
            "2026-03-01 10:22:31Z",
            "2026-03-01T10:22:31.250Z",
            "2026-02-30T10:22:31Z",
            "2026-03-01T24:00:00Z",
            "2026-03-01T10:22:3xZ",
            "2026-03-01",
            "yesterday",
            "",
        ]
    ),
    st.datetimes(
        min_value=pd.Timestamp("2000-01-01").to_pydatetime(),
        max_value=pd.Timestamp("2100-01-01").to_pydatetime(),
    ).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    _junk,
)


def _payload(valid, odd):
    """A payload that is mostly valid (so the fast path is exercised), with 0-3 fields missing or odd."""

    @st.composite
    def build(draw):
        payload = {key: draw(strategy) for key, strategy in valid.items()}
        for key in draw(st.lists(st.sampled_from(sorted(valid)), max_size=3, unique=True)):
            how = draw(st.sampled_from(["drop", "odd", "junk"]))
            if how == "drop":
                del payload[key]
            else:
                payload[key] = draw(odd.get(key, _junk) if how == "odd" else _junk)
        return payload

    return build()


_count_ok = st.integers(0, 5)
_gate = _payload(
    {
        "run_id": st.sampled_from(["r1", "r2", "r3"]),
        "timestamp": _timestamps,
        "policy_hash": st.sampled_from(["a6f53e", "b7"]),
        "outcome": st.sampled_from(["PASS", "COMMENT", "WARN", "FAIL"]),
        "unknown_rate": st.floats(0, 1),
        "top_reasons": st.lists(st.sampled_from(["flaky_test", "infra", "x"]), max_size=3),
    },
    {
        "run_id": st.sampled_from([" r1 ", "", "  "]),
        "policy_hash": st.sampled_from([" a6f53e ", ""]),
        "outcome": st.sampled_from(["fail", " WARN", "MAYBE"]),
        "unknown_rate": st.sampled_from([0, 1, 1.5, -0.1]),
        "top_reasons": st.lists(st.sampled_from(["flaky_test", " infra ", "", 3]), max_size=3),
    },
)
_drift = _payload(
    {
        "run_id": st.sampled_from(["r1", "r2", "r3"]),
        "policy_hash": st.sampled_from(["a6f53e", "b7"]),
        "policy_state": st.sampled_from(["pinned", "unpinned"]),
        "schema_version": st.sampled_from(["1", "2"]),
        "WARN_count": _count_ok,
        "FAIL_count": _count_ok,
        "Unknown_count": _count_ok,
        "Overrides_count": _count_ok,
        "unknown_causes": st.dictionaries(
            st.sampled_from(["schema", "contract", "Z", "a b"]), _count_ok, max_size=3
        ),
    },
    {
        "policy_state": st.sampled_from(["Pinned", " unpinned", "floating"]),
        "schema_version": st.integers(1, 2),
        **dict.fromkeys(
            ["WARN_count", "FAIL_count", "Unknown_count", "Overrides_count"],
            st.sampled_from([2.0, 1.5, -1, True]),
        ),
        "unknown_causes": st.dictionaries(
            st.sampled_from(["schema", "Z"]),
            st.sampled_from([-1, 1.0, 0.5, "2", True]),
            min_size=1,
            max_size=2,
        ),
    },
)
_metrics = st.dictionaries(
    st.sampled_from(["latency_ms", "arm", "success", "b"]),
    st.one_of(
        st.integers(0, 9), st.floats(0, 1e3), st.text(max_size=3), st.lists(st.integers(0, 2), max_size=2)
    ),
    max_size=4,
)
_run = st.tuples(_gate, st.one_of(st.none(), _drift), st.one_of(st.none(), _metrics))


def _raw_day(runs):
    rows = []
    for i, (gate, drift, metrics) in enumerate(runs):
        folder = f"f{i:02d}"
        rows.append(
            (
                "2026-03-01",
                f"2026-03-01/{folder}",
                folder,
                canonical_json(gate),  # ingest stores payloads as canonical JSON
                None if drift is None else canonical_json(drift),
                None if metrics is None else canonical_json(metrics),
                f"{i:064x}",
                None if drift is None else "d" * 64,
                None if metrics is None else "m" * 64,
                0,
            )
        )
    return _raw(rows)


_RUN = {**GOOD, "outcome": "PASS"}
_DRIFT_OK = {**DRIFT, "policy_state": "pinned"}
# One field off in an otherwise fast-path run each: these must take the fallback, not pass through.
_NEAR_MISSES = [
    ({**_RUN, "outcome": "fail"}, None, None),
    ({**_RUN, "run_id": " r2 "}, {**_DRIFT_OK, "run_id": "r2"}, None),
    ({**_RUN, "run_id": "r3"}, {**_DRIFT_OK, "run_id": "r3", "unknown_causes": {"s": -1}}, None),
    ({**_RUN, "run_id": "r4"}, {**_DRIFT_OK, "run_id": "r4", "WARN_count": 1.0}, {}),
    ({**_RUN, "run_id": "r5"}, {**_DRIFT_OK, "run_id": "r1"}, None),
    ({**_RUN, "run_id": "r6", "top_reasons": ["a", " b", ""]}, None, None),
    ({**_RUN, "run_id": "r7", "timestamp": "2026-02-30T10:22:31Z"}, None, None),
    ({**_RUN, "run_id": "r8", "unknown_rate": 1}, None, None),
    ({**_RUN, "run_id": "r1", "timestamp": "2026-03-01T23:00:00Z"}, None, None),  # duplicate of the first
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_run, max_size=8))
@example(_NEAR_MISSES)
def test_normalize_day_equals_row_by_row_reference(runs):
    raw = _raw_day(runs)
    table, dups = normalize_day(raw)
    want_table, want_dups = _reference_normalize_day(raw)
    _assert_same(table, want_table)
    _assert_same(dups, want_dups, parquet=False)
    # Cross-day use (series): counts already set, the same run_ids again under other paths.
    both = pd.concat(
        [table, table.assign(run_path=table["run_path"] + "-b", duplicate_count=2)], ignore_index=True
    )
    for got, want in zip(resolve_duplicates(both), _reference_resolve(both), strict=True):
        _assert_same(got, want, parquet=False)
    if len(table):  # each winner stands for its own copy plus the two the "-b" rows stood for
        assert (resolve_duplicates(both)[0]["duplicate_count"] == table["duplicate_count"] + 2).all()


def test_normalize_day_mixed_fast_and_fallback_rows_by_hand():
    gate_ok = {**GOOD, "outcome": "COMMENT"}
    gate_odd = {
        "run_id": " r2 ",
        "timestamp": "2026-03-01T12:00:00+02:00",
        "outcome": "warn",
        "unknown_rate": 1,
    }
    drift_odd = {**DRIFT, "run_id": "r2", "WARN_count": 2.0, "unknown_causes": {"b": 1, "a": 0}}
    raw = _raw_day([(gate_odd, drift_odd, None), (gate_ok, DRIFT, {"z": 1, "a": [1, 2]})])
    table, dups = normalize_day(raw)
    assert dups.empty and list(dups.columns) == [
        "date",
        "path",
        "run_path",
        "file_kind",
        "sha256",
        "size_bytes",
        "reason",
        "detail",
    ]
    # Sorted by timestamp: r2 (10:00 UTC after the +02:00 offset) before r1 (10:22:31).
    assert list(table["run_id"]) == ["r2", "r1"]
    assert [t.isoformat() for t in table["timestamp"]] == [
        "2026-03-01T10:00:00+00:00",
        "2026-03-01T10:22:31+00:00",
    ]
    assert list(table["outcome"]) == ["WARN", "COMMENT"]
    assert list(table["unknown_rate"]) == [1.0, 0.08]
    assert list(table["top_reasons"]) == ["[]", '["flaky_test","infra_timeout"]']
    assert list(table["warn_count"]) == [2, 1] and str(table["warn_count"].dtype) == "Int64"
    assert list(table["unknown_causes"]) == ['{"a":0,"b":1}', '{"contract":1,"schema":1}']
    assert list(table["metrics"]) == ["{}", '{"a":[1,2],"z":1}']
    assert list(table["has_metrics"]) == [False, True]
    assert list(table["stratum"]) == ["pinned", "pinned"]
    assert list(table["field_issues"]) == [
        '["unknown_field_missing:policy_hash","unknown_field_missing:top_reasons"]',
        "[]",
    ]
    assert list(table["duplicate_count"]) == [1, 1]
