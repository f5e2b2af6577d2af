"""The decision timeline: one decision per day end, by hand on a small history; incremental equals full."""

import numpy as np
import pandas as pd

from gate_pipeline.lib import analysis, lifecycle, policies, rules, timeline
from gate_pipeline.lib.reports.timeline_chart import render_timeline_chart
from gate_pipeline.lib.storage import Store
from gate_pipeline_tests.lib.test_rules import load, make_runs, metrics

T0 = pd.Timestamp("2026-03-01T08:00:00Z")


def history() -> pd.DataFrame:
    """p1: a run every 6 h from 03-01 08:00 (12 runs, the 6th FAILs), then p2 from 03-04 08:00 (8 runs)."""
    p1 = make_runs(12, hours=6, policy="p1", start=T0, outcome=lambda i: "FAIL" if i == 5 else "PASS")
    p2 = make_runs(8, hours=6, policy="p2", start=T0 + pd.Timedelta(days=3))
    return pd.concat([p1, p2], ignore_index=True)


def build(frame, cfg, entries=(), previous=None, config="c1", whitelist="w1"):
    return timeline.build_timeline(
        frame, cfg, list(entries), config_sha256=config, whitelist_sha256=whitelist, chart_rule="fail_rate",
        previous=previous,
    )  # fmt: skip


def test_one_row_per_day_end_with_the_candidate_policy_and_its_evidence():
    cfg = load("policy_constants.yaml")
    frame, evaluated = build(history(), cfg)
    assert evaluated == 6
    assert frame["date"].tolist() == [f"2026-03-0{d}" for d in range(1, 7)]
    assert frame["evaluated_at"].tolist()[0] == "2026-03-01T23:59:59Z"
    # Runs at 08, 14, 20 h, then 02 h the next day: p1 has 3, 7, 11 runs at the first three day ends (its
    # 12th run at 03-04 02:00); from 03-04 the latest policy is p2 (3 runs that day, 7, then 8).
    assert frame["policy_hash"].tolist() == ["p1", "p1", "p1", "p2", "p2", "p2"]
    assert frame["n_runs"].tolist() == [3, 7, 11, 3, 7, 8]
    assert frame["phase"].tolist() == ["observe"] * 6
    # Every day HOLDs: too little evidence, and the FAIL rate's interval straddles 10% (the first HOLD rule by name).
    assert frame["verdict"].tolist() == ["HOLD"] * 6
    assert set(frame["deciding_rule"]) == {"fail_rate"}
    assert (
        frame["why"].tolist()[1].startswith("FAIL rate 1/7 = 14.3%, but the interval 0.0% to 66.6% straddles")
    )
    # The FAIL rate the chart draws: 0/3, 1/7, 1/11 for p1, then 0 for p2; the observe threshold.
    assert frame["observed"].round(4).tolist() == [0.0, round(1 / 7, 4), round(1 / 11, 4), 0.0, 0.0, 0.0]
    assert set(frame["threshold"]) == {0.10}
    assert (frame["ci_low"] <= frame["observed"]).all() and (frame["observed"] <= frame["ci_high"]).all()
    assert render_timeline_chart(frame)[:8] == b"\x89PNG\r\n\x1a\n"


def test_incremental_equals_full_and_evaluates_only_new_days():
    cfg = load("policy_constants.yaml")
    full_history = history()
    cut = pd.Timestamp("2026-03-03T00:00:00Z")
    first, _ = build(full_history[full_history["timestamp"] < cut], cfg)
    assert len(first) == 2
    # Round-trip through the stored parquet, as the asset does.
    store = Store.at("memory://timeline-test")
    store.write_parquet(first, "t.parquet")
    again, evaluated = build(full_history, cfg, previous=store.read_parquet("t.parquet"))
    full, _ = build(full_history, cfg)
    # The first two days' runs are unchanged: reused; the four new days are evaluated.
    assert evaluated == 4
    assert analysis.table_csv_bytes(timeline.published(again)) == analysis.table_csv_bytes(
        timeline.published(full)
    )
    # A config change replays every day.
    _, evaluated = build(full_history, cfg, previous=full, config="c2")
    assert evaluated == 6
    # A run added to an old day changes that day and every later one.
    late = make_runs(1, policy="p1", start=pd.Timestamp("2026-03-02T12:00:00Z"), run_id="late")
    _, evaluated = build(pd.concat([full_history, late], ignore_index=True), cfg, previous=full)
    assert evaluated == 5


def test_a_whitelist_change_reuses_days_whose_runs_read_the_same():
    cfg = load("policy_constants.yaml")
    full_history = history()
    before, _ = build(full_history, cfg)
    # A new whitelist that leaves the runs the rules read as they were: nothing is evaluated again, and the
    # rows equal a timeline computed from scratch under the new whitelist (its hash stamped on every day).
    again, evaluated = build(full_history, cfg, previous=before, whitelist="w2")
    fresh, _ = build(full_history, cfg, whitelist="w2")
    assert evaluated == 0
    assert set(again["whitelist_sha256"]) == {"w2"}
    pd.testing.assert_frame_equal(again, fresh)
    # One that changes a column the rules read (here p1's 10th run, 03-03 14:00, FAILs) re-evaluates that
    # day and the three after it.
    changed = full_history.copy()
    assert changed.loc[9, "timestamp"] == T0 + pd.Timedelta(hours=54)
    changed.loc[9, "outcome"] = "FAIL"
    again, evaluated = build(changed, cfg, previous=before, whitelist="w2")
    fresh, _ = build(changed, cfg, whitelist="w2")
    assert evaluated == 4
    pd.testing.assert_frame_equal(again, fresh)


def test_a_transition_in_the_log_changes_the_phase_from_that_day_on(tmp_path):
    cfg = load("policy_constants.yaml")
    entry = lifecycle.LogEntry(
        seq=1, at="2026-03-04T12:00:00Z", policy_hash="p2", action="advance", from_phase="observe",
        to_phase="warn", by="ana", note="", auto=False, decision=None, evidence={}, prev_sha256="",
    )  # fmt: skip
    full, _ = build(history(), cfg)
    frame, evaluated = build(history(), cfg, entries=[entry], previous=full)
    assert evaluated == 3  # the days ending after the transition
    assert frame["phase"].tolist() == ["observe"] * 3 + ["warn"] * 3
    assert frame["log_lines"].tolist() == [0, 0, 0, 1, 1, 1]
    assert frame["threshold"].tolist() == [0.10] * 3 + [0.05] * 3  # the warn phase's FAIL-rate threshold


def test_max_days_keeps_the_last_days_and_evaluates_only_them():
    cfg = load("policy_constants.yaml")
    full, _ = build(history(), cfg)
    frame, evaluated = timeline.build_timeline(
        history(), cfg, [], config_sha256="c1", whitelist_sha256="w1", chart_rule="fail_rate", max_days=2
    )
    assert evaluated == 2
    assert frame["date"].tolist() == ["2026-03-05", "2026-03-06"]
    # The same rows a full timeline has for those days: a window, not another computation.
    pd.testing.assert_frame_equal(frame, full.tail(2).reset_index(drop=True))


def mixed_history() -> pd.DataFrame:
    """Three policies interleaved, runs without a hash, tied timestamps, metrics, strata and overrides: every
    per-run path the rules have."""
    rng = np.random.default_rng(17)
    n = 400
    hashes = np.where(np.arange(n) < 150, "p1", np.where(rng.random(n) < 0.5, "p2", "p3")).astype(object)
    hashes[rng.random(n) < 0.05] = None
    frame = pd.DataFrame(
        {
            "run_id": [f"r{i:04d}" for i in range(n)],
            # two runs per timestamp, 3 h apart: days with 8 to 16 runs, ties decided by run_id
            "timestamp": [T0 + pd.Timedelta(hours=3 * (i // 2)) for i in range(n)],
            "policy_hash": hashes,
            "outcome": rng.choice(["PASS", "FAIL", "WARN", None], n, p=[0.8, 0.1, 0.05, 0.05]),
            "unknown_rate": np.where(rng.random(n) < 0.03, np.nan, rng.random(n) * 0.2),
            "stratum": rng.choice(["pinned", "unpinned", None], n),
            "overrides_count": pd.array(rng.integers(0, 3, n), dtype="Int64"),
            "metrics": [metrics(p95_ms=float(rng.integers(50, 500))) if i % 7 else "" for i in range(n)],
        }
    )
    return frame


def test_prefix_cache_evaluations_equal_plain_ones():
    """The timeline's shared per-run work (rules.prefix_cache) changes no decision: every leading part of the
    history evaluates to the very same Decision with and without it, and the built timeline equals one built
    day by day on copies of the runs."""
    cfg = load("policy_constants.yaml")
    frame = mixed_history()
    cache = rules.prefix_cache(frame)
    assert cache is not None
    ts = frame["timestamp"]
    for end in sorted(set(ts.dt.floor("D")))[1:] + [ts.max() + pd.Timedelta(hours=1)]:
        upto = frame.iloc[: int(ts.searchsorted(end))]
        now = end.to_pydatetime()
        for phase in ("observe", "enforce"):
            phased = cfg.model_copy(update={"current_phase": phase})
            plain = rules.evaluate(upto.copy(), phased, now=now)
            assert rules.evaluate(upto, phased, now=now, cache=cache) == plain
    # Out of (timestamp, run_id) order: no cache, and the timeline takes the plain path with the same rows.
    shuffled = frame.sample(frac=1, random_state=3).reset_index(drop=True)
    assert rules.prefix_cache(shuffled) is None
    assert build(shuffled, cfg)[0].equals(build(frame, cfg)[0])


def test_leading_hashes_answer_as_the_policy_functions_do():
    frame = mixed_history()
    index = policies.LeadingHashes(frame)
    for n in (0, 1, 2, 149, 150, 151, 233, 399, 400):
        part, leading = frame.iloc[:n], index.upto(n)
        assert leading.introduction_order() == policies.introduction_order(part)
        for share, recent in ((0.2, 50), (0.6, 10), (1.0, 1)):
            expected = policies.ordered_candidate(part, share, recent_runs=recent) if n else ([], None, None)
            assert leading.ordered_candidate(share, recent_runs=recent) == expected
        for h in ("p1", "p2", "p3", "p4"):
            mask = (part["policy_hash"] == h).to_numpy(dtype=bool)
            assert leading.positions_of(h).tolist() == np.flatnonzero(mask).tolist()
