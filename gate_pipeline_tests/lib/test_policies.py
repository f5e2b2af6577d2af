"""The candidate policy of a rollout: the most recently introduced policy_hash still in use, stable under
interleaving."""

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
    for i in range(30):  # a 50% phase: old and new alternate, either may be the latest run
        hashes.append("new" if i % 2 == 0 else "old")
        expected = ("new", "old") if hashes.count("new") >= 0.1 * len(hashes) else ("old", None)
        assert candidate_policy(_runs(hashes), 0.1, recent_runs=50) == expected
    assert candidate_policy(_runs(hashes), 0.1, recent_runs=50) == ("new", "old")
    assert introduction_order(_runs(hashes)) == ["old", "new"]


def test_a_stray_or_abandoned_newer_hash_is_passed_over_and_nulls_never_count():
    hashes = ["a"] * 10 + ["b"] * 30 + ["stray"] + ["b"] * 30 + [None] * 50
    # stray: 1 of the last 50 runs with a hash
    assert candidate_policy(_runs(hashes), 0.1, recent_runs=50) == ("b", "a")
    assert candidate_policy(_runs(hashes), 0.01, recent_runs=50) == ("stray", "b")
    # a rollout rolled back: the new hash ran, then only the old one for the last 50 runs
    rolled_back = ["old"] * 30 + ["new"] * 20 + ["old"] * 50
    assert candidate_policy(_runs(rolled_back), 0.1, recent_runs=50) == ("old", None)
    assert candidate_policy(_runs(rolled_back[:-45]), 0.1, recent_runs=50) == ("new", "old")
    assert candidate_policy(_runs([None, None]), 0.1, recent_runs=50) == (None, None)
    assert candidate_policy(_runs(["only"]), 0.1, recent_runs=50) == ("only", None)
    assert candidate_policy(_runs([]), 0.1, recent_runs=50) == (None, None)
    with pytest.raises(ValueError, match="min_share"):
        candidate_policy(_runs(["a"]), 0.0, recent_runs=50)
    with pytest.raises(ValueError, match="recent_runs"):
        candidate_policy(_runs(["a"]), 0.1, recent_runs=0)


def test_no_hash_reaching_the_share_falls_back_to_the_most_common_recent_one():
    hashes = ["a", "b", "c", "a", "b", "c", "b"]  # shares a 2/7, b 3/7, c 2/7: none reaches 0.5
    assert candidate_policy(_runs(hashes), 0.5, recent_runs=50) == ("b", "a")


def test_candidate_is_independent_of_row_order():
    df = _runs(["a"] * 5 + ["b", "a", "b"])
    expected = candidate_policy(df, 0.2, recent_runs=50)
    assert candidate_policy(df.iloc[::-1], 0.2, recent_runs=50) == expected == ("b", "a")


def test_first_runs_at_the_same_time_are_ranked_by_hash_and_null_timestamps_come_last():
    ts = pd.Timestamp("2026-03-01T10:00:00Z")
    df = pd.DataFrame(
        {
            "timestamp": [ts, ts, ts + pd.Timedelta(hours=1), pd.NaT],
            "run_id": ["r1", "r2", "r3", "r0"],
            "policy_hash": ["zeta", "alpha", "zeta", "late"],
        }
    )
    assert introduction_order(df) == ["alpha", "zeta", "late"]
    # recent shares: zeta 2/4, alpha 1/4, late 1/4
    assert candidate_policy(df, 0.25, recent_runs=50) == ("late", "zeta")
    assert candidate_policy(df, 0.5, recent_runs=50) == ("zeta", "alpha")
    assert candidate_policy(df, 0.5, recent_runs=1) == ("late", "zeta")  # the last run with a hash


def test_runs_at_the_same_time_are_ordered_by_run_id_when_only_those_are_out_of_order():
    """Timestamps non-decreasing but a tied pair's run_ids reversed (and a null run_id, sorted as ""): the
    order is (timestamp, run_id), so the last run is r9 with "b"; sorted ties keep the stored order."""
    ts = pd.Timestamp("2026-03-01T10:00:00Z")
    df = pd.DataFrame(
        {
            "timestamp": [
                ts,
                ts + pd.Timedelta(hours=1),
                ts + pd.Timedelta(hours=1),
                ts + pd.Timedelta(hours=2),
            ],
            "run_id": ["r1", "r9", "r2", None],
            "policy_hash": ["a", "b", "c", "a"],
        }
    )
    assert candidate_policy(df.iloc[:3], 0.5, recent_runs=1) == ("b", "a")  # r2 (c) before r9 (b)
    assert candidate_policy(df.iloc[[0, 2, 1]], 0.5, recent_runs=1) == ("b", "a")  # already sorted
    assert introduction_order(df) == ["a", "b", "c"]  # first runs at the same time: ranked by hash
