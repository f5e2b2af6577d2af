"""The candidate policy of a rollout: the most recently introduced policy_hash, stable under interleaving."""

import pandas as pd
import pytest

from gate_pipeline.lib.policies import candidate_policy, introduction_order


def _runs(hashes: list[str | None]) -> pd.DataFrame:
    ts = pd.date_range("2026-03-01", periods=len(hashes), freq="h", tz="UTC")
    return pd.DataFrame(
        {"timestamp": ts, "run_id": [f"r{i:03d}" for i in range(len(hashes))], "policy_hash": hashes}
    )


def test_interleaving_never_flips_the_candidate():
    hashes = ["old"] * 20
    for i in range(20):  # a 50% phase: old and new alternate, either may be the latest run
        hashes.append("new" if i % 2 == 0 else "old")
        assert candidate_policy(_runs(hashes), 0.1) == ("new", "old")
    assert introduction_order(_runs(hashes)) == ["old", "new"]


def test_a_stray_newer_hash_below_the_share_is_passed_over_and_nulls_never_count():
    hashes = ["a"] * 10 + ["b"] * 30 + ["stray"] + ["b"] * 30 + [None] * 50
    assert candidate_policy(_runs(hashes), 0.1) == ("b", "a")  # stray: 1 of 31 runs since its first
    assert candidate_policy(_runs(hashes), 0.01) == ("stray", "b")
    assert candidate_policy(_runs([None, None]), 0.1) == (None, None)
    assert candidate_policy(_runs(["only"]), 0.1) == ("only", None)
    assert candidate_policy(_runs([]), 0.1) == (None, None)
    with pytest.raises(ValueError, match="min_share"):
        candidate_policy(_runs(["a"]), 0.0)


def test_candidate_is_independent_of_row_order():
    df = _runs(["a"] * 5 + ["b", "a", "b"])
    assert candidate_policy(df.iloc[::-1], 0.3) == candidate_policy(df, 0.3) == ("b", "a")


def test_runs_at_the_same_time_are_ordered_by_run_id_and_null_timestamps_come_last():
    ts = pd.Timestamp("2026-03-01T10:00:00Z")
    df = pd.DataFrame(
        {
            "timestamp": [ts, ts, ts + pd.Timedelta(hours=1), pd.NaT],
            "run_id": ["r2", "r1", "r3", "r0"],
            "policy_hash": ["second", "first", "second", "late"],
        }
    )
    assert introduction_order(df) == ["first", "second", "late"]
    assert candidate_policy(df, 0.5) == ("late", "second")  # 1 of 1 run since its first
    assert candidate_policy(df, 1.0) == ("late", "second")
    assert candidate_policy(df.iloc[:3], 0.5) == ("second", "first")
