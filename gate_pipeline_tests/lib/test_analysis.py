"""Tests for gate_pipeline.lib.analysis: sections from a column subset of the stored history, CSV bytes."""

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gate_pipeline.lib import analysis
from gate_pipeline.lib.escape import csv_frame
from gate_pipeline.lib.stats import AnalysisConfig, Runs
from gate_pipeline.lib.storage import parquet_bytes
from gate_pipeline_tests.lib.test_stats import classified

REASONS = ["flaky_test", "infra_dns", "db_lock", "oom"]


def _history(n: int = 300, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {
            "date": f"2026-03-0{1 + i % 5}",
            "policy_hash": rng.choice(["h1", "h2", None]),
            "outcome": rng.choice(["PASS", "COMMENT", "WARN", "FAIL", None]),
            "unknown_rate": None if i % 17 == 0 else float(rng.random() ** 3),
            "top_reasons": sorted(rng.choice(REASONS, int(rng.integers(0, 3)), replace=False).tolist()),
            "stratum": rng.choice(["pinned", "unpinned", "unknown"]),
            "policy_state": rng.choice(["pinned", "unpinned", None]),
            "overrides_count": None if i % 11 == 0 else int(rng.integers(0, 3)),
            "unknown_causes": {"contract": int(rng.integers(0, 3))},
            "metrics": {"arm": str(rng.choice(["a", "b"]))},
        }
        for i in range(n)
    ]
    return classified(rows)


def _section_bytes(history, cfg: AnalysisConfig) -> dict:
    out = {}
    for name, compute in analysis.SECTIONS.items():
        section = compute(history, cfg)
        out[name] = (
            section.document,
            section.numbers,
            {t: analysis.table_csv_bytes(df) for t, df in section.tables.items()},
        )
    return out


@pytest.mark.parametrize(
    "cfg",
    [
        AnalysisConfig(),
        AnalysisConfig(strata_column="metrics.arm", recurrence_min_runs=1),
        AnalysisConfig(
            strata_column="policy_state", fail_outcomes=["FAIL", "WARN"], warn_outcomes=["COMMENT"]
        ),
    ],
)
def test_sections_from_the_stored_columns_and_shared_runs_equal_the_full_history(cfg):
    history = _history()
    expected = _section_bytes(history, cfg)
    stored = analysis.read_history(parquet_bytes(history), analysis.statistics_columns(cfg)).to_pandas()
    assert set(stored.columns) < set(history.columns)
    assert _section_bytes(Runs(stored), cfg) == expected
    # One Runs shared across configs derives per config what depends on it.
    runs = Runs(history)
    for other in (AnalysisConfig(strata_column="policy_state", null_group_label="-"), cfg):
        assert _section_bytes(runs, other) == _section_bytes(history, other)


def _stored(history: pd.DataFrame, row_group_size: int = 64) -> io.BytesIO:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(history, preserve_index=False), buf, row_group_size=row_group_size)
    buf.seek(0)
    return buf


def test_history_frame_is_the_frame_of_the_arrow_table():
    history = _history()
    source = _stored(history)
    columns = [*analysis.statistics_columns(AnalysisConfig()), "metrics", "nowhere"]
    expected = analysis.read_history(source, columns).to_pandas()
    for unique in ([], ["run_id"], ["run_id", "outcome", "top_reasons"]):
        frame = analysis.history_frame(source, columns, unique=unique)
        pd.testing.assert_frame_equal(frame, expected, check_exact=True)
        for c in expected.columns:  # the same cells: str and None, not NaN
            assert list(map(type, frame[c])) == list(map(type, expected[c])), c


@pytest.mark.parametrize(
    "cfg",
    [
        AnalysisConfig(),
        AnalysisConfig(strata_column="metrics.arm", recurrence_min_runs=1),
        AnalysisConfig(strata_column="policy_state", candidate_recent_runs=5),
    ],
)
@pytest.mark.parametrize("null_run_id", [False, True])
def test_sections_one_at_a_time_from_their_own_columns_equal_compute_statistics(cfg, null_run_id):
    history = _history(500)
    if null_run_id:  # out of stored order; compared_runs.csv reads "None" (the run ids come from Arrow)
        history.loc[history.index[7], "run_id"] = None
    expected = analysis.compute_statistics(history, cfg)
    source = _stored(history)
    read: list[list[str]] = []

    def frame(columns, arrow=()):
        read.append(columns)
        return analysis.history_frame(source, columns, unique=["run_id"], arrow=arrow)

    documents = {"methods": analysis.methods_bytes(cfg)}
    tables = {}
    for asset_name, section, document in analysis.compute_sections(frame, cfg):
        assert section.name == expected.sections[asset_name].name
        documents[section.name] = document
        tables |= {name: analysis.table_csv_bytes(df) for name, df in section.tables.items()}
    assert documents == expected.documents and list(documents) == list(expected.documents)
    assert tables == expected.tables()
    assert all(len(columns) < len(analysis.statistics_columns(cfg)) for columns in read)


def test_table_csv_chunks_join_to_the_whole_table():
    ts = pd.Series(pd.to_datetime(["2026-03-01T00:00:01Z", None, "2026-03-02T10:00:00Z"] * 5, utc=True))
    frame = pd.DataFrame(
        {
            "t": ts,
            "s": ["a", "=1+2", None, "b,c", 'q"', "x\ny", "", "+z", "ok", "-1", "é", "a", "b", "c", "d"],
            "x": [1.5, None, 2.0, 1e-20, 3.0] * 3,
            "i": range(15),
            "b": [True, False, True] * 5,
        }
    )
    whole = analysis.table_csv_bytes(frame)
    assert whole == _pandas_csv(csv_frame(frame).assign(t=frame["t"].dt.strftime("%Y-%m-%d %H:%M:%S+00:00")))
    for rows in (1, 2, 4, 14):
        pieces = list(analysis.table_csv_chunks(frame, rows))
        assert b"".join(pieces) == whole and len(pieces) == -(-len(frame) // rows)
    # A column pandas formats as a whole (sub-second timestamps) is written in one piece.
    finer = frame.assign(t=ts + pd.Timedelta(milliseconds=5))
    assert list(analysis.table_csv_chunks(finer, 2)) == [_pandas_csv(csv_frame(finer))]


def test_read_history_keeps_absent_columns_absent():
    history = _history(20).drop(columns=["unknown_causes"])
    table = analysis.read_history(parquet_bytes(history), ["run_id", "unknown_causes", "outcome"])
    assert table.column_names == ["run_id", "outcome"]  # file order, only what the file has
    assert analysis.read_history(parquet_bytes(history)).column_names == list(history.columns)


def _pandas_csv(df: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode()


def test_table_csv_bytes_writes_utc_timestamps_exactly_like_pandas():
    ts = pd.Series(
        pd.to_datetime(
            [
                "2026-03-01T00:00:00Z",
                "2026-03-01T23:59:59Z",
                None,
                "1970-01-01T00:00:00Z",
                "2262-04-11T00:00:00Z",
            ],
            utc=True,
            format="ISO8601",
        )
    )
    frames = [
        pd.DataFrame({"t": ts, "x": [1.5, None, 2.0, 3.0, 4.0], "s": ["a", "b,c", None, 'q"', ""]}),
        pd.DataFrame({"t": ts.iloc[2:3]}),  # only NaT
        pd.DataFrame({"t": ts.iloc[0:0]}),  # no rows
        pd.DataFrame({"t": ts + pd.Timedelta(milliseconds=500)}),  # sub-second: pandas formats it
        pd.DataFrame({"t": ts.dt.tz_convert("Europe/Berlin")}),  # another zone: pandas formats it
        pd.DataFrame({"t": ts.dt.tz_localize(None)}),  # naive: pandas formats it
        pd.DataFrame([[ts[0], ts[1]]], columns=["a", "a"]),  # duplicate names: pandas formats it
    ]
    for df in frames:
        assert analysis.table_csv_bytes(df) == _pandas_csv(df)
    assert b"2026-03-01 23:59:59+00:00" in analysis.table_csv_bytes(frames[0])
