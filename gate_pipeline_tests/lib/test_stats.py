import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate_pipeline.lib import stats as S
from gate_pipeline.lib.classify import classify_runs
from gate_pipeline.lib.stats import AnalysisConfig, AnalysisConfigError, load_analysis_config
from gate_pipeline.lib.whitelist import Whitelist, WhitelistEntry
from gate_pipeline_tests.lib.test_classify import make_runs

ROOT = Path(__file__).resolve().parents[2]
Z = 1.959963984540054  # two-sided 95% normal quantile
WL = Whitelist(
    entries=[
        WhitelistEntry(reason="flaky_test", class_="flaky", owner="ci"),
        WhitelistEntry(reason="infra_*", match="glob", class_="infra", owner="ops"),
    ]
)


def classified(rows: list[dict]) -> pd.DataFrame:
    return classify_runs(make_runs(rows), WL)


# Reference formulas, written out independently of the module under test.
def wilson_ref(x, n, z=Z):
    p = x / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = (z / (1 + z**2 / n)) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


def newcombe_ref(x1, n1, x2, n2, z=Z):
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_ref(x1, n1, z)
    l2, u2 = wilson_ref(x2, n2, z)
    return p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), p1 - p2 + math.sqrt(
        (u1 - p1) ** 2 + (p2 - l2) ** 2
    )


def close(a, b, tol=1e-12):
    return a is not None and b is not None and abs(a - b) <= tol


def no_nan_anywhere(obj) -> bool:
    if isinstance(obj, float):
        return not (math.isnan(obj) or math.isinf(obj))
    if isinstance(obj, dict):
        return all(no_nan_anywhere(v) for v in obj.values())
    if isinstance(obj, list):
        return all(no_nan_anywhere(v) for v in obj)
    return True


# ------------------------------------------------------------------------------------------- intervals
def test_wilson_3_of_10_by_hand():
    r = S.wilson(3, 10)
    p = 0.3
    z2 = Z * Z
    centre = (p + z2 / 20) / (1 + z2 / 10)
    half = Z / (1 + z2 / 10) * math.sqrt(p * 0.7 / 10 + z2 / 400)
    assert r.rate == 0.3 and r.status == "ok"
    assert close(r.ci_low, centre - half) and close(r.ci_high, centre + half)
    assert abs(r.ci_low - 0.1078) < 1e-4 and abs(r.ci_high - 0.6032) < 1e-4  # textbook values


def test_wilson_edges():
    assert S.wilson(0, 0) == S.RateCI(0, 0, None, None, None, "empty_cell")
    zero = S.wilson(0, 1)
    assert zero.ci_low == 0.0 and close(zero.ci_high, Z * Z / (1 + Z * Z))
    one = S.wilson(1, 1)
    assert one.ci_high == 1.0 and close(one.ci_low, 1 / (1 + Z * Z))


def test_newcombe_independent_by_hand():
    d = S.newcombe_diff(3, 10, 1, 10)
    lo, hi = newcombe_ref(3, 10, 1, 10)
    assert close(d.diff, 0.2) and close(d.ci_low, lo) and close(d.ci_high, hi)
    assert S.newcombe_diff(1, 0, 1, 5).status == "empty_cell"
    assert S.newcombe_diff(1, 5, 0, 0).diff is None


def test_katz_ratio_by_hand_and_edges():
    r = S.katz_ratio(3, 10, 1, 10)
    se = math.sqrt(1 / 3 - 1 / 10 + 1 / 1 - 1 / 10)
    assert close(r.ratio, 3.0)
    assert close(r.ci_low, math.exp(math.log(3) - Z * se)) and close(
        r.ci_high, math.exp(math.log(3) + Z * se)
    )
    assert S.katz_ratio(3, 10, 0, 10) == S.RatioCI(None, None, None, "undefined")
    assert S.katz_ratio(0, 10, 2, 10) == S.RatioCI(0.0, None, None, "ci_undefined")
    assert S.katz_ratio(0, 0, 2, 10).status == "empty_cell"
    full = S.katz_ratio(4, 4, 2, 2)  # both rates 1: zero variance
    assert full.ratio == 1.0 and close(full.ci_low, 1.0) and close(full.ci_high, 1.0)


def test_newcombe_paired_by_hand():
    a, b, c, d = 10, 8, 3, 19  # n = 40
    n = 40
    p1, p2 = 18 / n, 13 / n
    l1, u1 = wilson_ref(18, n)
    l2, u2 = wilson_ref(13, n)
    cross = a * d - b * c  # 166 > n/2 -> continuity correction
    phi = (cross - n / 2) / math.sqrt(18 * 22 * 13 * 27)
    lo = p1 - p2 - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    hi = p1 - p2 + math.sqrt((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2)
    res = S.newcombe_paired_diff(a, b, c, d)
    assert close(res.diff, 0.125) and close(res.ci_low, lo) and close(res.ci_high, hi)
    # negative association: phi = (ad - bc) / sqrt(...) without correction
    res2 = S.newcombe_paired_diff(1, 9, 8, 2)
    phi2 = (1 * 2 - 9 * 8) / math.sqrt(10 * 10 * 9 * 11)
    l1, u1 = wilson_ref(10, 20)
    l2, u2 = wilson_ref(9, 20)
    lo2 = 0.05 - math.sqrt((0.5 - l1) ** 2 - 2 * phi2 * (0.5 - l1) * (u2 - 0.45) + (u2 - 0.45) ** 2)
    assert close(res2.ci_low, lo2)
    assert S.newcombe_paired_diff(0, 0, 0, 0).status == "empty_cell"
    # an empty margin: phi = 0, i.e. the independent formula
    res3 = S.newcombe_paired_diff(0, 0, 3, 7)
    l2, u2 = wilson_ref(3, 10)
    assert close(res3.ci_low, -0.3 - math.sqrt(0 + (u2 - 0.3) ** 2))


def test_paired_ratio_by_hand_and_edges():
    r = S.paired_ratio(10, 8, 3, 19)
    se = math.sqrt((8 + 3) / (18 * 13))
    assert close(r.ratio, 18 / 13) and close(r.ci_low, 18 / 13 * math.exp(-Z * se))
    assert S.paired_ratio(0, 4, 0, 6).status == "undefined"
    assert S.paired_ratio(0, 0, 4, 6) == S.RatioCI(0.0, None, None, "ci_undefined")
    assert S.paired_ratio(0, 0, 0, 0).status == "empty_cell"


@given(st.integers(1, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_rate_within_unit_interval(xn):
    x, n = xn
    r = S.wilson(x, n)
    assert 0.0 <= r.ci_low <= r.rate <= r.ci_high <= 1.0


@given(
    st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
)
def test_newcombe_contains_difference(g1, g2):
    d = S.newcombe_diff(*g1, *g2)
    assert -1.0 <= d.ci_low <= d.diff + 1e-12 and d.diff - 1e-12 <= d.ci_high <= 1.0


@given(st.lists(st.integers(0, 30), min_size=4, max_size=4).filter(lambda v: sum(v) > 0))
def test_paired_newcombe_contains_difference(v):
    d = S.newcombe_paired_diff(*v)
    assert -1.0 <= d.ci_low <= d.diff + 1e-12 and d.diff - 1e-12 <= d.ci_high <= 1.0


# -------------------------------------------------------------------------------------------- config
def test_repo_analysis_yaml_equals_defaults():
    cfg = load_analysis_config((ROOT / "config" / "analysis.yaml").read_bytes(), "config/analysis.yaml")
    assert cfg == AnalysisConfig()
    assert close(cfg.z, Z, 1e-9)
    assert load_analysis_config(b"", "x.yaml") == AnalysisConfig()


def test_config_values_are_used():
    cfg = load_analysis_config(
        b"strata_column: metrics.arm\nrecurrence_min_runs: 5\nfail_outcomes: [fail]\n", "a"
    )
    assert (cfg.strata_column, cfg.recurrence_min_runs, cfg.fail_outcomes) == ("metrics.arm", 5, ["FAIL"])


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        (b"a: [", ["cfg.yaml", "not valid YAML"]),
        (b"- 1\n- 2\n", ["cfg.yaml", "mapping"]),
        (b"recurrence_min_runs: 0\n", ["recurrence_min_runs", "greater than or equal to 1"]),
        (b"confidence_level: 1.5\n", ["confidence_level", "less than 1"]),
        (b"spike_mad_k: -1\n", ["spike_mad_k", "greater than 0"]),
        (b"strata_column: 'metrics.'\n", ["strata_column", "needs a key"]),
        (b"strata_column: ''\n", ["strata_column", "must not be empty"]),
        (b"spike_k: 3\n", ["spike_k", "Extra inputs"]),
        (b"warn_outcomes: [FAIL]\n", ["overlap", "FAIL"]),
        (b"strata_comparisons: [[a]]\n", ["strata_comparisons.0"]),
    ],
)
def test_config_errors_name_file_key_problem(raw, fragments):
    with pytest.raises(AnalysisConfigError) as exc:
        load_analysis_config(raw, "cfg.yaml")
    msg = str(exc.value)
    assert msg.startswith("cfg.yaml: ")
    for f in fragments:
        assert f in msg, msg


# ------------------------------------------------------------------------------------------- strata col
def test_stratum_series_from_column_and_metrics():
    df = make_runs(
        [
            {"stratum": "pinned", "metrics": {"arm": "A"}},
            {"stratum": "unpinned", "metrics": {"arm": 3}},
            {"stratum": "unknown", "metrics": {}},
        ]
    )
    df.loc[2, "policy_state"] = None
    assert list(S.stratum_series(df, AnalysisConfig())) == ["pinned", "unpinned", "unknown"]
    assert list(S.stratum_series(df, AnalysisConfig(strata_column="metrics.arm"))) == [
        "A",
        "unknown",
        "unknown",
    ]
    ps = S.stratum_series(df, AnalysisConfig(strata_column="policy_state", strata_missing_label="none"))
    assert list(ps) == ["pinned", "pinned", "none"]
    with pytest.raises(KeyError, match="nope"):
        S.stratum_series(df, AnalysisConfig(strata_column="nope"))


# ------------------------------------------------------------------------------ unknown_rate_summary
def test_unknown_rate_summary_by_hand():
    df = make_runs(
        [
            {"unknown_rate": 0.0, "policy_hash": "h1"},
            {"unknown_rate": 0.1, "policy_hash": "h1"},
            {"unknown_rate": 0.2, "policy_hash": "h1", "stratum": "unpinned"},
            {"unknown_rate": 0.3, "policy_hash": "h2"},
            {"unknown_rate": 1.0, "policy_hash": "h2"},
            {"unknown_rate": None, "policy_hash": None},
        ]
    )
    s = S.unknown_rate_summary(df)
    assert [(r.group_by, r.group) for r in s.itertuples()] == [
        ("overall", "all"),
        ("policy_hash", "(null)"),
        ("policy_hash", "h1"),
        ("policy_hash", "h2"),
        ("stratum", "pinned"),
        ("stratum", "unpinned"),
    ]
    o = s.iloc[0]
    # sorted 0, .1, .2, .3, 1.0: p95 at position 0.95*4 = 3.8 -> .3 + .8*(1.0-.3)
    assert (o["runs"], o["n"], o["n_null"]) == (6, 5, 1)
    assert close(o["min"], 0.0) and close(o["median"], 0.2) and close(o["max"], 1.0)
    assert close(o["p95"], 0.86) and close(o["mean"], 1.6 / 5)
    null_row = s.iloc[1]
    assert null_row["status"] == "empty" and null_row["median"] is None and null_row["n_null"] == 1
    h2 = s.iloc[3]
    assert close(h2["median"], 0.65) and close(h2["p95"], 0.3 + 0.95 * 0.7)
    unp = s.iloc[5]
    assert (unp["n"], unp["min"], unp["max"]) == (1, 0.2, 0.2)


def test_unknown_rate_summary_empty_and_single():
    e = S.unknown_rate_summary(make_runs([]))
    assert list(e["group_by"]) == ["overall"] and e.iloc[0]["status"] == "empty" and e.iloc[0]["runs"] == 0
    one = S.unknown_rate_summary(make_runs([{"unknown_rate": 0.25}]), by=["policy_hash"])
    assert list(one["median"]) == [0.25, 0.25] and list(one["p95"]) == [0.25, 0.25]


# ---------------------------------------------------------------------- class frequencies, recurring
def test_class_frequencies_by_hand():
    c = classified(
        [
            {"policy_hash": "h1", "top_reasons": ["flaky_test", "db_lock"]},
            {"policy_hash": "h1", "top_reasons": ["flaky_test"], "unknown_causes": {"schema": 1}},
            {
                "policy_hash": "h2",
                "top_reasons": ["infra_dns"],
                "field_issues": ["unknown_field_missing:outcome"],
            },
            {"policy_hash": "h2", "top_reasons": []},
        ]
    )
    f = S.class_frequencies(c)
    got = [(r.scope, r.policy_hash, r._3, r.kind, r.runs, r.total_runs) for r in f.itertuples()]
    assert got == [
        ("overall", None, "cause:schema", "cause", 1, 4),
        ("overall", None, "non_whitelisted:db_lock", "non_whitelisted", 1, 4),
        ("overall", None, "unknown_field_missing:outcome", "field", 1, 4),
        ("overall", None, "whitelisted:flaky", "whitelisted", 2, 4),
        ("overall", None, "whitelisted:infra", "whitelisted", 1, 4),
        ("policy_hash", "h1", "cause:schema", "cause", 1, 2),
        ("policy_hash", "h1", "non_whitelisted:db_lock", "non_whitelisted", 1, 2),
        ("policy_hash", "h1", "whitelisted:flaky", "whitelisted", 2, 2),
        ("policy_hash", "h2", "unknown_field_missing:outcome", "field", 1, 2),
        ("policy_hash", "h2", "whitelisted:infra", "whitelisted", 1, 2),
    ]
    assert list(f["share"]) == [0.25, 0.25, 0.25, 0.5, 0.25, 0.5, 0.5, 1.0, 0.5, 0.5]
    assert S.class_frequencies(classified([])).empty


def test_recurring_patterns_k_and_share():
    rows = [{"policy_hash": "h1", "top_reasons": ["flaky_test"]} for _ in range(3)]
    rows += [{"policy_hash": "h1", "top_reasons": ["db_lock"]}]
    rows += [{"policy_hash": "h1", "top_reasons": []} for _ in range(6)]
    rows += [{"policy_hash": "h2", "top_reasons": ["db_lock"]}, {"policy_hash": "h2"}]
    cfg = AnalysisConfig(recurrence_min_runs=3, recurrence_min_share=0.5)
    r = S.recurring_patterns(classified(rows), cfg)
    got = [
        (
            x.policy_hash,
            x.reason,
            x.runs,
            x.total_runs,
            x.whitelisted_runs,
            x.non_whitelisted_runs,
            x.criterion,
        )
        for x in r.itertuples()
    ]
    # h1: flaky 3/10 (k only), db_lock 1/10 (neither); h2: db_lock 1/2 (share only)
    assert got == [("h1", "flaky_test", 3, 10, 3, 0, "min_runs"), ("h2", "db_lock", 1, 2, 0, 1, "min_share")]
    assert close(r.iloc[0]["share"], 0.3)
    assert S.recurring_patterns(classified([]), cfg).empty


# ---------------------------------------------------------------------------------------------- spikes
def test_spikes_bound_and_fail_rates_by_hand():
    rows = [
        {"unknown_rate": 0.1, "outcome": "PASS", "top_reasons": ["flaky_test"]},
        {"unknown_rate": 0.2, "outcome": "FAIL"},
        {"unknown_rate": 0.3, "outcome": "PASS"},
        {"unknown_rate": 0.4, "outcome": "WARN"},
        {"unknown_rate": 0.5, "outcome": "PASS", "top_reasons": ["db_lock"]},
        {"unknown_rate": 0.9, "outcome": "FAIL", "top_reasons": ["db_lock", "flaky_test"]},
        {"unknown_rate": 0.95, "outcome": None},
        {"unknown_rate": None, "outcome": "FAIL"},
    ]
    cfg = AnalysisConfig(spike_mad_k=1.0, spike_mad_scale=1.0)
    res = S.spikes(classified(rows), cfg)
    # rates .1 .2 .3 .4 .5 .9 .95: median .4; |dev| .3 .2 .1 0 .1 .5 .55 -> MAD .2; bound .6
    assert res.n_runs == 7 and close(res.median, 0.4) and close(res.mad, 0.2) and close(res.bound, 0.6)
    assert res.n_spikes == 2 and list(res.spike_runs["run_id"]) == ["r0005", "r0006"]
    br = res.by_reason
    assert list(br["reason"]) == ["(none)", "db_lock", "flaky_test"]
    none = br.iloc[0]  # r0006 has no reason and a null outcome: no known outcome at all
    assert (none["spike_runs"], none["spike_runs_known"], none["spike_fail_status"]) == (1, 0, "empty_cell")
    assert none["spike_fail_rate"] is None and none["risk_difference_status"] == "empty_cell"
    db = br.iloc[1]
    # spike with db_lock: r0005 FAIL (1/1); elsewhere: known outcomes r0..r4, r7 = 6 runs, FAIL r1, r7 = 2
    assert (db["spike_fail"], db["spike_runs_known"], db["other_fail"], db["other_runs_known"]) == (
        1,
        1,
        2,
        6,
    )
    lo, hi = newcombe_ref(1, 1, 2, 6)
    assert close(db["risk_difference"], 1 - 2 / 6) and close(db["risk_difference_ci_low"], lo)
    assert close(db["risk_difference_ci_high"], min(1.0, hi))
    se = math.sqrt(1 / 1 - 1 / 1 + 1 / 2 - 1 / 6)
    assert close(db["risk_ratio"], 3.0) and close(db["risk_ratio_ci_low"], 3 * math.exp(-Z * se))


def test_spikes_min_excess_when_mad_is_zero_and_empty_inputs():
    rows = [{"unknown_rate": 0.1} for _ in range(5)] + [{"unknown_rate": 0.12}, {"unknown_rate": 0.5}]
    res = S.spikes(classified(rows), AnalysisConfig(spike_min_excess=0.05))
    assert res.mad == 0.0 and close(res.bound, 0.15) and res.n_spikes == 1
    empty = S.spikes(classified([]))
    assert (empty.status, empty.bound, empty.n_spikes, len(empty.by_reason)) == ("empty", None, 0, 0)
    only_null = S.spikes(classified([{"unknown_rate": None}]))
    assert only_null.status == "empty" and only_null.median is None
    single = S.spikes(classified([{"unknown_rate": 0.3, "outcome": "FAIL"}]))
    assert (single.status, single.median, single.mad, single.bound, single.n_spikes) == (
        "ok",
        0.3,
        0.0,
        0.3,
        0,
    )


# ------------------------------------------------------------------------------------------------ risk
def test_risk_whitelist_comparison_by_hand():
    rows = (
        [{"top_reasons": ["flaky_test", "db_lock"]}] * 2  # a: both
        + [{"top_reasons": ["infra_x"]}] * 5  # b: whitelisted only
        + [{"top_reasons": ["db_lock"]}] * 1  # c: non-whitelisted only
        + [{"top_reasons": []}] * 2  # d: neither
    )
    r = S.risk_measures(classified(rows))
    w = r.whitelist_comparison
    assert (
        w["runs_both"],
        w["runs_whitelisted_only"],
        w["runs_non_whitelisted_only"],
        w["runs_neither"],
    ) == (
        2,
        5,
        1,
        2,
    )
    assert close(w["whitelisted_rate"], 0.7) and close(w["non_whitelisted_rate"], 0.3)
    lo, hi = wilson_ref(7, 10)
    assert close(w["whitelisted_ci_low"], lo) and close(w["whitelisted_ci_high"], hi)
    assert close(w["risk_difference"], 0.4) and w["risk_difference_status"] == "ok"
    # phi: ad - bc = 4 - 5 = -1 < 0 -> uncorrected
    phi = -1 / math.sqrt(7 * 3 * 3 * 7)
    l1, u1 = wilson_ref(7, 10)
    l2, u2 = wilson_ref(3, 10)
    exp_lo = 0.4 - math.sqrt((0.7 - l1) ** 2 - 2 * phi * (0.7 - l1) * (u2 - 0.3) + (u2 - 0.3) ** 2)
    assert close(w["risk_difference_ci_low"], exp_lo)
    se = math.sqrt((5 + 1) / (7 * 3))
    assert close(w["risk_ratio"], 7 / 3) and close(w["risk_ratio_ci_high"], 7 / 3 * math.exp(Z * se))


def test_risk_by_reason_by_hand():
    rows = [
        {"top_reasons": ["db_lock"], "outcome": "FAIL"},
        {"top_reasons": ["db_lock"], "outcome": "FAIL"},
        {"top_reasons": ["db_lock"], "outcome": "PASS"},
        {"top_reasons": ["db_lock"], "outcome": None},
        {"top_reasons": ["flaky_test"], "outcome": "PASS"},
        {"top_reasons": [], "outcome": "FAIL"},
        {"top_reasons": [], "outcome": "PASS"},
        {"top_reasons": [], "outcome": "WARN"},
    ]
    br = S.risk_measures(classified(rows)).by_reason
    assert list(br["reason"]) == ["db_lock", "flaky_test"]
    db = br.iloc[0]
    assert (db["with_fail"], db["with_runs_known"], db["without_fail"], db["without_runs_known"]) == (
        2,
        3,
        1,
        4,
    )
    lo, hi = newcombe_ref(2, 3, 1, 4)
    assert close(db["risk_difference"], 2 / 3 - 1 / 4) and close(db["risk_difference_ci_low"], lo)
    assert close(db["risk_difference_ci_high"], hi)
    se = math.sqrt(1 / 2 - 1 / 3 + 1 / 1 - 1 / 4)
    assert close(db["risk_ratio"], (2 / 3) / (1 / 4))
    assert close(db["risk_ratio_ci_low"], (8 / 3) * math.exp(-Z * se))
    fl = br.iloc[1]  # flaky: 0/1 FAIL vs 3/6
    assert (
        fl["risk_ratio"] == 0.0
        and fl["risk_ratio_status"] == "ci_undefined"
        and fl["risk_ratio_ci_low"] is None
    )


def test_risk_empty_and_single_run():
    e = S.risk_measures(classified([]))
    w = e.whitelist_comparison
    assert w["runs"] == 0 and w["whitelisted_status"] == "empty_cell" and w["risk_difference"] is None
    assert w["risk_ratio_status"] == "empty_cell" and e.by_reason.empty
    one = S.risk_measures(classified([{"top_reasons": ["db_lock"], "outcome": "FAIL"}]))
    assert (
        one.whitelist_comparison["risk_ratio_status"] == "ci_undefined"
    )  # 0 whitelisted / 1 non-whitelisted
    row = one.by_reason.iloc[0]
    assert row["without_runs_known"] == 0 and row["without_fail_status"] == "empty_cell"
    assert row["risk_difference"] is None and row["risk_ratio_status"] == "empty_cell"


# ---------------------------------------------------------------------------------------------- strata
def test_stratum_metrics_by_hand():
    rows = [
        {"stratum": "pinned", "outcome": "PASS", "unknown_rate": 0.1, "overrides_count": 1},
        {"stratum": "pinned", "outcome": "WARN", "unknown_rate": 0.3, "overrides_count": 0},
        {"stratum": "pinned", "outcome": "PASS", "unknown_rate": None, "overrides_count": None},
        {"stratum": "pinned", "outcome": None, "unknown_causes": {"contract": 2}, "warn_count": 2},
        {
            "stratum": "unpinned",
            "outcome": "FAIL",
            "unknown_causes": {"contract": 1, "schema": 3},
            "fail_count": 1,
        },
        {"stratum": "unpinned", "outcome": "WARN", "policy_hash": "h2", "overrides_count": 3},
    ]
    res = S.stratum_metrics(classified(rows))
    t = res.table
    assert [(r.scope, r.policy_hash, r.stratum) for r in t.itertuples()] == [
        ("stratum", None, "pinned"),
        ("stratum", None, "unpinned"),
        ("policy_hash_stratum", "a6f53e", "pinned"),
        ("policy_hash_stratum", "a6f53e", "unpinned"),
        ("policy_hash_stratum", "h2", "unpinned"),
    ]
    p = t.iloc[0]
    assert (p["runs"], p["outcome_known"], p["outcome_null"], p["warn_runs"], p["fail_runs"]) == (
        4,
        3,
        1,
        1,
        0,
    )
    assert close(p["warn_rate"], 1 / 3) and p["fail_rate"] == 0.0 and close(p["warn_fail_rate"], 1 / 3)
    lo, hi = wilson_ref(1, 3)
    assert close(p["warn_fail_ci_low"], lo) and close(p["warn_fail_ci_high"], hi)
    assert p["unknown_rate_n"] == 4 - 1 and close(p["unknown_rate_mean"], (0.1 + 0.3 + 0.0) / 3)
    assert p["unknown_causes"] == '{"contract":2}' and p["drift_warn_count"] == 2
    assert (p["overrides_runs"], p["overrides_null_runs"], p["overrides_total"]) == (3, 1, 1)
    assert close(p["overrides_per_run"], 1 / 3)
    u = t.iloc[1]
    assert (u["warn_runs"], u["fail_runs"], u["warn_fail_runs"], u["warn_fail_rate"]) == (1, 1, 2, 1.0)
    assert u["unknown_causes"] == '{"contract":1,"schema":3}' and u["drift_fail_count"] == 1
    assert close(u["overrides_per_run"], 1.5)

    d = res.deltas
    assert [(r.scope, r.policy_hash, r.stratum_a, r.stratum_b) for r in d.itertuples()] == [
        ("stratum", None, "unpinned", "pinned"),
        ("policy_hash_stratum", "a6f53e", "unpinned", "pinned"),
        ("policy_hash_stratum", "h2", "unpinned", "pinned"),
    ]
    o = d.iloc[0]
    lo, hi = newcombe_ref(2, 2, 1, 3)
    assert (
        close(o["delta"], 1 - 1 / 3)
        and close(o["delta_ci_low"], lo)
        and close(o["delta_ci_high"], min(1.0, hi))
    )
    h2 = d.iloc[2]
    assert (h2["runs_b"], h2["delta"], h2["delta_status"], h2["rate_b"]) == (0, None, "empty_cell", None)


def test_stratum_metrics_metrics_column_all_pairs_and_empty():
    rows = [
        {"metrics": {"arm": "production"}, "outcome": "FAIL"},
        {"metrics": {"arm": "canary"}, "outcome": "PASS"},
        {"metrics": {}, "outcome": "PASS"},
    ]
    cfg = AnalysisConfig(strata_column="metrics.arm", strata_comparisons=[("canary", "production")])
    res = S.stratum_metrics(classified(rows), cfg)
    assert res.strata_column == "metrics.arm"
    overall = res.deltas[res.deltas["scope"] == "stratum"]
    assert [(r.stratum_a, r.stratum_b) for r in overall.itertuples()] == [
        ("canary", "production"),
        ("canary", "unknown"),
        ("production", "unknown"),
    ]
    assert overall.iloc[0]["delta"] == -1.0
    e = S.stratum_metrics(classified([]))
    assert e.table.empty
    assert list(e.deltas["delta_status"]) == ["empty_cell"]  # configured pair still reported
    single = S.stratum_metrics(classified([{"outcome": None, "overrides_count": None}]))
    row = single.table.iloc[0]
    assert row["warn_fail_status"] == "empty_cell" and row["warn_rate"] is None
    assert row["overrides_per_run"] is None and row["overrides_null_runs"] == 1


# ----------------------------------------------------------------------------------------- threshold
def test_warn_threshold_by_hand():
    rows = [
        {"unknown_rate": 0.05, "outcome": "PASS"},
        {"unknown_rate": 0.10, "outcome": "PASS"},
        {"unknown_rate": 0.10, "outcome": "PASS"},
        {"unknown_rate": 0.30, "outcome": "PASS", "top_reasons": ["flaky_test"]},  # FP, fully whitelisted
        {"unknown_rate": 0.40, "outcome": "WARN", "top_reasons": ["infra_dns"]},  # FP, fully whitelisted
        {"unknown_rate": 0.50, "outcome": "PASS", "top_reasons": ["flaky_test", "db_lock"]},  # FP, not fully
        {"unknown_rate": 0.60, "outcome": "FAIL", "top_reasons": ["flaky_test"]},  # TP, whitelisted away
        {"unknown_rate": 0.70, "outcome": "FAIL", "top_reasons": ["db_lock"]},  # TP
        {"unknown_rate": None, "outcome": "PASS"},
        {"unknown_rate": 0.9, "outcome": None},
    ]
    res = S.warn_threshold(classified(rows), AnalysisConfig(warn_threshold_multiplier=2.0))
    # 8 usable rates: median of .05 .1 .1 .3 .4 .5 .6 .7 = (.3 + .4) / 2 = .35; threshold .7 -> nothing > .7
    assert (res.n_runs, res.excluded_runs) == (8, 2)
    assert close(res.median, 0.35) and close(res.threshold, 0.7)
    assert (
        res.without_whitelist["flagged_runs"] == 0 and res.without_whitelist["fp_rate_status"] == "empty_cell"
    )

    res = S.warn_threshold(classified(rows), AnalysisConfig(warn_threshold_multiplier=0.5))
    assert close(res.threshold, 0.175)
    wo, wi = res.without_whitelist, res.with_whitelist
    # without: flagged .3 .4 .5 .6 .7 -> 5, FP = 3 (.3 .4 .5); non-FAIL runs = 6
    assert (wo["flagged_runs"], wo["false_positives"], wo["true_positives"]) == (5, 3, 2)
    assert close(wo["fp_rate"], 3 / 5) and close(wo["fp_rate_of_non_fail"], 3 / 6)
    lo, hi = wilson_ref(3, 5)
    assert close(wo["fp_rate_ci_low"], lo) and close(wo["fp_rate_ci_high"], hi)
    # with: .3, .4 and .6 are fully whitelisted -> rate 0; flagged .5 .7 -> FP 1
    assert (wi["flagged_runs"], wi["false_positives"], wi["fully_whitelisted_runs"]) == (2, 1, 3)
    assert close(wi["fp_rate"], 0.5)
    assert (
        res.fp_runs_avoided == 2
        and close(res.fp_rate_reduction, 0.1)
        and close(res.fp_relative_reduction, 2 / 3)
    )

    floor = S.warn_threshold(
        classified(rows), AnalysisConfig(warn_threshold_multiplier=0.1, warn_threshold_floor=0.45)
    )
    assert close(floor.threshold, 0.45) and floor.without_whitelist["flagged_runs"] == 3


def test_warn_threshold_empty_and_no_false_positives():
    e = S.warn_threshold(classified([{"unknown_rate": None}]))
    assert (e.status, e.median, e.threshold, e.fp_runs_avoided, e.excluded_runs) == (
        "empty",
        None,
        None,
        None,
        1,
    )
    assert e.without_whitelist["fp_rate"] is None
    only_fail = [{"unknown_rate": x, "outcome": "FAIL"} for x in (0.0, 0.1, 0.6)]
    r = S.warn_threshold(classified(only_fail))  # median .1, threshold .2: flags the .6 run, a true positive
    assert r.without_whitelist["flagged_runs"] == 1 and r.without_whitelist["fp_rate_of_non_fail"] is None
    assert r.without_whitelist["false_positives"] == 0 and r.fp_relative_reduction is None
    assert r.without_whitelist["fp_rate"] == 0.0 and r.fp_rate_reduction == 0.0


# ---------------------------------------------------------------------------------------------- JSON
def test_to_jsonable_rounds_sorts_and_nulls():
    obj = {
        "b": [1.23456789012345, float("nan"), np.int64(3)],
        "a": pd.DataFrame({"y": [1.0, None], "x": ["p", "q"]}),
    }
    j = S.to_jsonable(obj)
    assert list(j) == ["a", "b"]
    assert j["b"] == [1.23456789, None, 3]
    assert j["a"] == [{"x": "p", "y": 1.0}, {"x": "q", "y": None}]
    assert S.to_jsonable(-0.0) == 0.0 and S.to_jsonable(1 / 3) == 0.3333333333
    assert S.dumps_canonical({"z": 1, "a": float("inf")}) == b'{\n  "a": null,\n  "z": 1\n}\n'
    with pytest.raises(TypeError, match="set"):
        S.to_jsonable({1, 2})


# ---------------------------------------------------------------------------------------- properties
REASONS = ["flaky_test", "infra_dns", "db_lock", "oom"]
row_strategy = st.fixed_dictionaries(
    {
        "policy_hash": st.sampled_from(["h1", "h2", None]),
        "outcome": st.sampled_from(["PASS", "COMMENT", "WARN", "FAIL", None]),
        "unknown_rate": st.one_of(st.none(), st.floats(0, 1)),
        "top_reasons": st.lists(st.sampled_from(REASONS), max_size=3, unique=True),
        "stratum": st.sampled_from(["pinned", "unpinned", "unknown"]),
        "overrides_count": st.one_of(st.none(), st.integers(0, 3)),
        "unknown_causes": st.dictionaries(
            st.sampled_from(["contract", "schema"]), st.integers(0, 2), max_size=2
        ),
    }
)


def all_results(c: pd.DataFrame) -> dict:
    return S.to_jsonable(
        {
            "summary": S.unknown_rate_summary(c),
            "freq": S.class_frequencies(c),
            "recurring": S.recurring_patterns(c),
            "spikes": S.spikes(c),
            "risk": S.risk_measures(c),
            "strata": S.stratum_metrics(c),
            "warn": S.warn_threshold(c),
        }
    )


@settings(max_examples=25, deadline=None)
@given(st.lists(row_strategy, max_size=30), st.randoms(use_true_random=False))
def test_properties_invariants_and_row_order_independence(rows, rnd):
    c = classified(rows)
    res = all_results(c)
    assert no_nan_anywhere(res)
    json.dumps(res, allow_nan=False)

    # rates within [0, 1]; CIs bracket the rate
    for row in res["strata"]["table"]:
        for k in ("warn_rate", "fail_rate", "warn_fail_rate", "warn_fail_ci_low", "warn_fail_ci_high"):
            assert row[k] is None or 0.0 <= row[k] <= 1.0
        if row["warn_fail_rate"] is not None:
            assert row["warn_fail_ci_low"] <= row["warn_fail_rate"] <= row["warn_fail_ci_high"]
    for row in res["freq"]:
        assert 0.0 < row["share"] <= 1.0

    # counts add up across strata and classes
    overall = [r for r in res["strata"]["table"] if r["scope"] == "stratum"]
    per_hash = [r for r in res["strata"]["table"] if r["scope"] == "policy_hash_stratum"]
    assert sum(r["runs"] for r in overall) == len(rows) == sum(r["runs"] for r in per_hash)
    assert sum(r["warn_fail_runs"] for r in overall) == sum(
        1 for r in rows if r["outcome"] in ("WARN", "FAIL")
    )
    freq_overall = {r["class"]: r["runs"] for r in res["freq"] if r["scope"] == "overall"}
    freq_hash: dict[str, int] = {}
    for r in res["freq"]:
        if r["scope"] == "policy_hash":
            freq_hash[r["class"]] = freq_hash.get(r["class"], 0) + r["runs"]
    assert freq_overall == freq_hash
    w = res["risk"]["whitelist_comparison"]
    assert w["runs_both"] + w["runs_whitelisted_only"] + w["runs_non_whitelisted_only"] + w[
        "runs_neither"
    ] == len(rows)
    summ = res["summary"]
    assert summ[0]["runs"] == len(rows)
    for r in summ:
        if r["status"] == "ok":
            assert 0.0 <= r["min"] <= r["median"] <= r["p95"] <= r["max"] <= 1.0
    wt = res["warn"]
    if wt["status"] == "ok":
        assert wt["with_whitelist"]["false_positives"] <= wt["without_whitelist"]["false_positives"]

    # independent of row order
    perm = list(range(len(c)))
    rnd.shuffle(perm)
    shuffled = all_results(c.iloc[perm].reset_index(drop=True))
    # spike_runs sort by (timestamp, run_id), every other table by names: byte-identical
    assert S.dumps_canonical(shuffled) == S.dumps_canonical(res)


# ------------------------------------------------------------------------------- bit-identical to pandas
rate_values = st.one_of(st.none(), st.floats(-1, 1), st.sampled_from([0.0, -0.0, 0.25, 1 / 3, 1.0]))


def _same_float(got, want) -> bool:
    return np.float64(got).tobytes() == np.float64(want).tobytes()  # also tells 0.0 from -0.0


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", None]), rate_values), max_size=80))
def test_unknown_rate_summary_equals_pandas_groupby_bit_for_bit(pairs):
    df = pd.DataFrame(
        {
            "policy_hash": pd.Series([p for p, _ in pairs], dtype=object),
            "unknown_rate": pd.Series([r for _, r in pairs], dtype=float),
            "stratum": "pinned",
        }
    )
    table = S.unknown_rate_summary(df)
    labels = df["policy_hash"].where(df["policy_hash"].notna(), "(null)").to_numpy()
    g = df["unknown_rate"].groupby(labels)
    reference = {
        "min": g.min(),
        "median": g.median(),
        "p95": g.quantile(0.95),
        "max": g.max(),
        "mean": g.mean(),
    }
    for row in table[table["group_by"] == "policy_hash"].to_dict(orient="records"):
        for stat, values in reference.items():
            if row["n"] == 0:
                assert row[stat] is None
            else:
                assert _same_float(row[stat], values[row["group"]]), (stat, row)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["pinned", "unpinned"]), rate_values, st.one_of(st.none(), st.integers(0, 9))
        ),
        max_size=80,
    )
)
def test_stratum_means_equal_pandas_per_group_bit_for_bit(rows):
    c = classified([{"stratum": s, "unknown_rate": r, "overrides_count": o} for s, r, o in rows])
    table = S.stratum_metrics(c).table
    rate = pd.to_numeric(c["unknown_rate"], errors="coerce").astype(float)
    overrides = pd.to_numeric(c["overrides_count"], errors="coerce").astype(float)
    for row in table[table["scope"] == "stratum"].to_dict(orient="records"):
        mask = (c["stratum"] == row["stratum"]).to_numpy()
        group_rate, group_ov = rate[mask], overrides[mask].dropna()
        if group_rate.notna().any():
            assert _same_float(row["unknown_rate_mean"], group_rate.mean())
        if len(group_ov):
            assert _same_float(row["overrides_per_run"], group_ov.mean())
