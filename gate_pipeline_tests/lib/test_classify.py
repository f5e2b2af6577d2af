import json
from datetime import date

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate_pipeline.lib.classify import CLASSIFIED_COLUMNS, class_kind, classify_runs
from gate_pipeline.lib.normalize import RUN_TABLE_COLUMNS
from gate_pipeline.lib.whitelist import Whitelist, WhitelistEntry


def make_runs(rows: list[dict]) -> pd.DataFrame:
    """A run_table with exactly the documented columns; each row dict overrides defaults.

    Lists/dicts given for top_reasons, field_issues, unknown_causes, metrics are JSON-encoded canonically.
    """
    recs = []
    for i, r in enumerate(rows):
        day = r.get("date", "2026-03-01")
        rec = {
            "run_id": f"r{i:04d}",
            "run_id_source": "file",
            "timestamp": pd.Timestamp(f"{day}T10:00:00Z") + pd.Timedelta(minutes=i),
            "timestamp_source": "file",
            "date": day,
            "run_path": None,
            "policy_hash": "a6f53e",
            "outcome": "PASS",
            "unknown_rate": 0.0,
            "top_reasons": [],
            "policy_state": "pinned",
            "stratum": "pinned",
            "drift_schema_version": "1",
            "warn_count": 0,
            "fail_count": 0,
            "unknown_count": 0,
            "overrides_count": 0,
            "unknown_causes": {},
            "metrics": {},
            "has_drift_report": True,
            "has_metrics": False,
            "field_issues": [],
            "gate_sha256": "0" * 64,
            "drift_sha256": None,
            "metrics_sha256": None,
            "duplicate_count": 1,
        }
        rec.update(r)
        rec["run_path"] = rec["run_path"] or f"{rec['date']}/{rec['run_id']}"
        for col in ("top_reasons", "field_issues", "unknown_causes", "metrics"):
            if not isinstance(rec[col], str):
                rec[col] = json.dumps(rec[col], sort_keys=True, separators=(",", ":"))
        recs.append(rec)
    df = pd.DataFrame(recs, columns=RUN_TABLE_COLUMNS)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    for col in ("warn_count", "fail_count", "unknown_count", "overrides_count"):
        df[col] = df[col].astype("Int64")
    df["unknown_rate"] = df["unknown_rate"].astype("float64")
    df["duplicate_count"] = df["duplicate_count"].astype("int64")
    return df


WL = Whitelist(
    entries=[
        WhitelistEntry(reason="flaky_test", class_="flaky", owner="ci"),
        WhitelistEntry(reason="infra_timeout", class_="timeout", owner="ops"),
        WhitelistEntry(reason="infra_*", match="glob", class_="infra", owner="ops"),
        WhitelistEntry(reason="network_blip", class_="network", owner="net", expires="2026-03-01"),
    ]
)


def arr(s: str) -> list:
    return json.loads(s)


def test_classes_for_each_source():
    df = make_runs(
        [
            {"top_reasons": ["flaky_test", "db_lock"], "unknown_causes": {"contract": 2, "schema": 0}},
            {
                "top_reasons": ["infra_timeout", "infra_dns"],
                "field_issues": ["unknown_field_missing:unknown_rate"],
            },
            {"top_reasons": [], "unknown_causes": {"schema": 1}},
        ]
    )
    out = classify_runs(df, WL)
    assert arr(out.loc[0, "unknown_classes"]) == [
        "cause:contract",
        "non_whitelisted:db_lock",
        "whitelisted:flaky",
    ]
    assert arr(out.loc[0, "whitelisted_classes"]) == ["whitelisted:flaky"]
    assert arr(out.loc[0, "non_whitelisted_reasons"]) == ["db_lock"]
    assert arr(out.loc[1, "unknown_classes"]) == [
        "unknown_field_missing:unknown_rate",
        "whitelisted:infra",
        "whitelisted:timeout",
    ]
    assert arr(out.loc[1, "non_whitelisted_reasons"]) == []
    assert arr(out.loc[2, "unknown_classes"]) == ["cause:schema"]
    assert set(out["whitelist_sha256"]) == {WL.sha256}


def test_output_keeps_input_columns_rows_and_index():
    df = make_runs([{"top_reasons": ["flaky_test"]}, {"top_reasons": ["x"]}]).set_index(pd.Index([7, 3]))
    out = classify_runs(df, WL)
    assert list(out.columns) == list(df.columns) + CLASSIFIED_COLUMNS
    assert list(out.index) == [7, 3]
    assert arr(out.loc[3, "non_whitelisted_reasons"]) == ["x"]
    pd.testing.assert_frame_equal(out[df.columns], df)


def test_canonical_json_arrays_are_sorted_and_deduplicated():
    df = make_runs([{"top_reasons": '["z_reason","flaky_test","z_reason","a_reason"]'}])
    out = classify_runs(df, WL)
    assert out.loc[0, "unknown_classes"] == (
        '["non_whitelisted:a_reason","non_whitelisted:z_reason","whitelisted:flaky"]'
    )
    assert out.loc[0, "non_whitelisted_reasons"] == '["a_reason","z_reason"]'


def test_expiry_is_judged_against_run_date():
    df = make_runs(
        [
            {"date": "2026-03-01", "top_reasons": ["network_blip"]},
            {"date": "2026-03-02", "top_reasons": ["network_blip"]},
        ]
    )
    out = classify_runs(df, WL)
    assert arr(out.loc[0, "unknown_classes"]) == ["whitelisted:network"]
    assert arr(out.loc[1, "unknown_classes"]) == ["non_whitelisted:network_blip"]


def test_date_column_may_hold_dates_or_timestamps():
    df = make_runs(
        [
            {"date": "2026-03-01", "top_reasons": ["network_blip"]},
            {"date": "2026-03-02", "top_reasons": ["network_blip"]},
        ]
    )
    for conv in (lambda s: pd.to_datetime(s, utc=True), lambda s: pd.to_datetime(s).dt.date):
        out = classify_runs(df.assign(date=conv(df["date"])), WL)
        assert list(out["non_whitelisted_reasons"]) == ["[]", '["network_blip"]']


def test_empty_table_and_null_or_malformed_cells():
    empty = classify_runs(make_runs([]), WL)
    assert len(empty) == 0 and list(empty.columns)[-4:] == CLASSIFIED_COLUMNS
    df = make_runs([{"top_reasons": "not json"}, {"unknown_causes": "[1]"}, {}])
    df.loc[2, "top_reasons"] = None
    out = classify_runs(df, WL)
    assert arr(out.loc[0, "unknown_classes"]) == ["unknown_field_invalid:top_reasons"]
    assert arr(out.loc[1, "unknown_classes"]) == ["unknown_field_invalid:unknown_causes"]
    assert arr(out.loc[2, "unknown_classes"]) == []


def test_missing_column_is_named():
    with pytest.raises(KeyError, match="field_issues"):
        classify_runs(make_runs([{}]).drop(columns=["field_issues"]), WL)


def test_class_kind():
    assert [
        class_kind(x)
        for x in ("whitelisted:a", "non_whitelisted:b", "unknown_field_missing:c", "cause:d", "z")
    ] == [
        "whitelisted",
        "non_whitelisted",
        "field",
        "cause",
        "other",
    ]


REASONS = ["flaky_test", "infra_timeout", "infra_dns", "network_blip", "db_lock", "oom"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(REASONS), max_size=4),
            st.sampled_from(["2026-03-01", "2026-03-02"]),
            st.dictionaries(st.sampled_from(["contract", "schema"]), st.integers(0, 3), max_size=2),
        ),
        max_size=25,
    ),
    st.randoms(use_true_random=False),
)
def test_properties_rowwise_equivalence_and_order_independence(rows, rnd):
    df = make_runs([{"top_reasons": r, "date": d, "unknown_causes": c} for r, d, c in rows])
    out = classify_runs(df, WL)
    for i, (reasons, day, causes) in enumerate(rows):
        classes = arr(out.loc[i, "unknown_classes"])
        wl = arr(out.loc[i, "whitelisted_classes"])
        nwl = arr(out.loc[i, "non_whitelisted_reasons"])
        assert classes == sorted(set(classes))
        covered = {r: WL.match(r, date.fromisoformat(day)) for r in reasons}
        assert nwl == sorted({r for r, e in covered.items() if e is None})
        assert wl == sorted({e.label for e in covered.values() if e is not None})
        assert set(wl) <= set(classes)
        assert {f"non_whitelisted:{r}" for r in nwl} <= set(classes)
        assert {c for c in classes if c.startswith("cause:")} == {
            f"cause:{k}" for k, v in causes.items() if v > 0
        }
    perm = list(range(len(df)))
    rnd.shuffle(perm)
    shuffled = classify_runs(df.iloc[perm], WL)
    pd.testing.assert_frame_equal(shuffled.sort_index(), out)


def test_runs_are_classified_as_one_by_one_across_many_dates_and_expiries():
    """Classification keys on which expiring entries are active on a run's date, not on the date: over many
    days, two expiries and a date that cannot be read it gives what each run classified alone gives."""
    wl = Whitelist(
        entries=[
            WhitelistEntry(reason="net_*", match="glob", class_="net", owner="o", expires=date(2026, 3, 5)),
            WhitelistEntry(reason="net_blip", class_="blip", owner="o", expires=date(2026, 3, 9)),
            WhitelistEntry(reason="flaky", class_="flaky", owner="o"),
        ]
    )
    reasons = [["net_blip"], ["net_drop"], ["flaky", "net_blip"], ["other"]]
    rows = [
        {"date": f"2026-03-{day:02d}", "top_reasons": reasons[(day + i) % len(reasons)]}
        for day in range(1, 13)
        for i in range(3)
    ]
    df = make_runs(rows)
    df.loc[5, "date"] = "not a date"
    together = classify_runs(df, wl)
    alone = pd.concat([classify_runs(df.iloc[[i]], wl) for i in range(len(df))])
    pd.testing.assert_frame_equal(together, alone)
    blip = together[df["top_reasons"] == '["net_blip"]'].set_index("date")["unknown_classes"]
    assert blip["2026-03-03"] == '["whitelisted:blip"]'  # exact entries come first
    assert blip["2026-03-10"] == '["non_whitelisted:net_blip"]'  # both expired
    assert together.loc[5, "unknown_classes"] == classify_runs(df.iloc[[5]].assign(date=None), wl).iloc[0, -4]
