"""Tests for gate_pipeline.lib.rules: config loading/errors and verdicts on hand-built run tables.

Expected numbers are computed by hand in the tests (formulas written out), never by the code under test."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pandas as pd
import pytest
import yaml

from gate_pipeline.lib.rules import (
    DECISION_NUMBERS,
    DecisionConfigError,
    evaluate,
    load_decision_config,
    parse_decision_config,
    used_columns,
)

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
Z95 = 1.959963984540054
T0 = pd.Timestamp("2026-03-01T00:00:00Z")


def load(name: str):
    path = CONFIG / name
    return load_decision_config(path.read_bytes(), str(path))


def make_runs(
    n: int, *, hours: float = 1.0, policy: str = "p1", start: pd.Timestamp = T0, **cols
) -> pd.DataFrame:
    """n runs one every `hours`; cols are callables i -> value or constants."""
    rows = []
    for i in range(n):
        row = {
            "run_id": f"{policy}-r{i:04d}",
            "timestamp": start + pd.Timedelta(hours=hours * i),
            "policy_hash": policy,
            "outcome": "PASS",
            "unknown_rate": 0.0,
            "stratum": "pinned",
            "overrides_count": 0,
            "metrics": "{}",
        }
        for k, v in cols.items():
            row[k] = v(i) if callable(v) else v
        rows.append(row)
    base = [
        "run_id",
        "timestamp",
        "policy_hash",
        "outcome",
        "unknown_rate",
        "stratum",
        "overrides_count",
        "metrics",
    ]
    df = pd.DataFrame(rows, columns=base + [c for c in cols if c not in base])
    if len(df):
        df["overrides_count"] = df["overrides_count"].astype("Int64")
    return df


def metrics(**kv) -> str:
    return orjson.dumps(kv, option=orjson.OPT_SORT_KEYS).decode()


def rule(decision, name):
    (r,) = [r for r in decision.rules if r.name == name]
    return r


# ---------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("name", "phase", "next_phase", "rules"),
    [
        (
            "policy_constants.yaml",
            "observe",
            "warn",
            [
                "fail_rate",
                "min_evidence",
                "overrides_rate",
                "rollback_fail_rate",
                "unknown_rate_median",
                "unknown_rate_tail",
                "warn_fail_rate_per_stratum",
            ],
        ),
        (
            "examples/seed000_unknown_rate.yaml",
            "observe",
            "warn",
            ["min_evidence", "unknown_rate_median", "unknown_rate_spread", "warn_fail_rate"],
        ),
        (
            "examples/seed001_min_evidence.yaml",
            "observe",
            "warn",
            ["fail_rate", "mean_overrides", "min_evidence", "warn_fail_rate_per_stratum"],
        ),
        (
            "examples/seed002_adaptive_sampling.yaml",
            "canary",
            "expand",
            ["decision_disagreement", "escalations_vs_baseline", "min_evidence", "sample_reduction"],
        ),
        (
            "examples/seed004_phased_rollout.yaml",
            "canary_50",
            "canary_75",
            ["latency_avg", "latency_p95", "latency_p99", "rollback_success_rate", "success_rate"],
        ),
    ],
)
def test_shipped_configs_load(name, phase, next_phase, rules):
    cfg = load(name)
    assert cfg.current_phase == phase
    assert cfg.next_phase() == next_phase
    assert [r.name for r in cfg.rules_for()] == rules


def _default_dict() -> dict:
    return yaml.safe_load((CONFIG / "policy_constants.yaml").read_bytes())


def _errors(data: dict, source: str = "config/policy_constants.yaml") -> DecisionConfigError:
    raw = yaml.safe_dump(data).encode()
    with pytest.raises(DecisionConfigError) as exc:
        load_decision_config(raw, source)
    return exc.value


def test_error_names_file_key_path_and_problem():
    data = _default_dict()
    data["phases"]["warn"]["rules"][2]["threshold"] = "ten percent"
    err = _errors(data)
    assert err.source == "config/policy_constants.yaml"
    assert [p for p, _ in err.problems] == ["phases.warn.rules[2].threshold"]
    assert (
        "config/policy_constants.yaml: phases.warn.rules[2].threshold: Input should be a valid number"
        in str(err)
    )


def test_unknown_key_is_an_error():
    data = _default_dict()
    data["phases"]["observe"]["rules"][0]["thresold"] = 0.1
    data["extra_top"] = 1
    err = _errors(data)
    assert sorted(err.problems) == [
        ("extra_top", "unknown key"),
        ("phases.observe.rules[0].thresold", "unknown key"),
    ]


def test_bad_kind_and_missing_kind():
    data = _default_dict()
    data["shared_rules"][0]["kind"] = "magic"
    del data["shared_rules"][1]["kind"]
    err = _errors(data)
    paths = sorted(p for p, _ in err.problems)
    assert paths == ["shared_rules[0].kind", "shared_rules[1].kind"]
    assert "got 'magic'" in str(err)


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (lambda d: d.update(current_phase="prod"), "current_phase", "'prod' is not in phase_order"),
        (lambda d: d["phases"].update(canary={"rules": []}), "phases.canary", "not in phase_order"),
        (
            lambda d: d["policy"].update(mode="explicit"),
            "policy.policy_hash",
            "required when mode is 'explicit'",
        ),
        (
            lambda d: d["phases"]["observe"]["rules"][0]["metric"].pop("match"),
            "phases.observe.rules[0].metric.match",
            "needs a match",
        ),
        (
            lambda d: d["phases"]["observe"]["rules"][0].update(name="min_evidence"),
            "phases.observe.rules[0].name",
            "duplicate rule name 'min_evidence' (also shared_rules[0])",
        ),
        (
            lambda d: d["phases"]["warn"]["rules"][2]["baseline"].update(source="window"),
            "phases.warn.rules[2].baseline.days",
            "required when source is 'window'",
        ),
        (
            lambda d: d["shared_rules"][0].pop("min_runs") and d["shared_rules"][0].pop("min_days"),
            "shared_rules[0]",
            "needs min_runs and/or min_days",
        ),
        (
            lambda d: [
                r.update(observe_only=True) for r in d["shared_rules"] + d["phases"]["observe"]["rules"]
            ],
            "phases.observe.rules",
            "no counted",
        ),
    ],
)
def test_semantic_errors_name_key_paths(mutate, path, fragment):
    data = _default_dict()
    mutate(data)
    err = _errors(data)
    assert any(p == path and fragment in m for p, m in err.problems), err.problems


def test_duplicate_yaml_key_and_bad_yaml():
    with pytest.raises(DecisionConfigError, match=r"x\.yaml: <root>: not valid YAML: .*duplicate key 'name'"):
        load_decision_config(b"name: a\nname: b\n", "x.yaml")
    with pytest.raises(DecisionConfigError, match=r"top level must be a mapping"):
        load_decision_config(b"- 1\n", "x.yaml")


def test_json_config_is_accepted():
    data = yaml.safe_load((CONFIG / "examples/seed000_unknown_rate.yaml").read_bytes())
    cfg = load_decision_config(orjson.dumps(data), "c.json")
    assert cfg.name == "seed000-unknown-rate"
    with pytest.raises(DecisionConfigError, match=r"c\.json: <root>: not valid JSON"):
        load_decision_config(b"{name:", "c.json")


# ---------------------------------------------------------------------------------------------- stats


def test_decision_numbers():
    assert DECISION_NUMBERS == {"GO": 1, "HOLD": 0, "NO_GO": -1, "ROLLBACK": -2}


# ---------------------------------------------------------------------------------------------- seed 001


def test_seed001_go_after_30_runs():
    cfg = load("examples/seed001_min_evidence.yaml")
    strata = lambda i: "pinned" if i % 2 else "unpinned"  # noqa: E731
    runs = make_runs(30, hours=1, stratum=strata, outcome=lambda i: "WARN" if i in (0, 1) else "PASS")
    d = evaluate(runs, cfg)
    assert d.verdict == "GO" and d.decision_as_number == 1
    assert (d.policy_hash, d.n_runs, d.current_phase, d.next_phase) == ("p1", 30, "observe", "warn")
    assert d.days == pytest.approx(29 / 24)  # first run to last run, 29 hours
    me = rule(d, "min_evidence")
    assert (me.verdict, me.observed, me.threshold) == ("PASS", 30.0, 30.0)
    ps = rule(d, "warn_fail_rate_per_stratum")
    # run 0 is unpinned, run 1 pinned: 1/15 each
    assert [(s.name, s.n, s.observed) for s in ps.strata] == [
        ("pinned", 15, 1 / 15),
        ("unpinned", 15, 1 / 15),
    ]
    assert ps.verdict == "PASS"
    assert [r.name for r in d.rules] == sorted(r.name for r in d.rules)


def test_seed001_hold_for_missing_evidence_then_days_suffice():
    cfg = load("examples/seed001_min_evidence.yaml")
    strata = lambda i: "pinned" if i % 2 else "unpinned"  # noqa: E731
    runs = make_runs(12, hours=12, stratum=strata)  # 12 runs spanning 5.5 days
    d = evaluate(runs, cfg)
    assert d.verdict == "HOLD"
    me = rule(d, "min_evidence")
    assert me.verdict == "HOLD"
    assert me.why == "12 runs (needs >= 30) or 5.5 days (needs >= 7): not enough evidence yet"
    # same runs judged on day 8 after the first run: 7 days reached -> GO (the OR of seed 001)
    d2 = evaluate(runs, cfg, now=T0 + pd.Timedelta(days=8))
    assert rule(d2, "min_evidence").verdict == "PASS"
    assert d2.days == pytest.approx(8.0)
    assert d2.verdict == "GO"


def test_seed001_no_go_in_one_stratum():
    cfg = load("examples/seed001_min_evidence.yaml")
    # 40 runs: even = unpinned, odd = pinned. unpinned runs 0,2,4,6 are WARN: 4/20 = 20% (<=30%: pass)
    # pinned runs 1,3,...,13 (7 runs) FAIL: 7/20 = 35% > 30% -> FAIL; overall FAIL rate 7/40 = 17.5% > 10%
    outcome = lambda i: "WARN" if i in (0, 2, 4, 6) else ("FAIL" if i % 2 and i <= 13 else "PASS")  # noqa: E731
    runs = make_runs(40, stratum=lambda i: "pinned" if i % 2 else "unpinned", outcome=outcome)
    d = evaluate(runs, cfg)
    assert d.verdict == "NO_GO" and d.decision_as_number == -1
    ps = rule(d, "warn_fail_rate_per_stratum")
    assert ps.verdict == "FAIL" and ps.stratum == "pinned"
    assert ps.observed == pytest.approx(7 / 20)
    assert "stratum pinned: WARN+FAIL rate 7/20 = 35.0% violates the threshold <= 30.0%" in ps.why
    assert [(s.name, s.verdict) for s in ps.strata] == [("pinned", "FAIL"), ("unpinned", "PASS")]
    fr = rule(d, "fail_rate")
    assert (fr.verdict, fr.observed, fr.n, fr.details["hits"]) == ("FAIL", 7 / 40, 40, 7)
    assert d.why == "NO_GO: 2 counted rule(s) failed (fail_rate, warn_fail_rate_per_stratum)"


def test_seed001_missing_stratum_is_hold_not_pass():
    cfg = load("examples/seed001_min_evidence.yaml")
    runs = make_runs(30, stratum="pinned")
    d = evaluate(runs, cfg)
    ps = rule(d, "warn_fail_rate_per_stratum")
    assert ps.verdict == "HOLD" and ps.stratum == "unpinned"
    assert "no data: there are no runs in stratum unpinned" in ps.why
    assert d.verdict == "HOLD"


def test_seed001_observe_only_rule_is_reported_not_counted():
    cfg = load("examples/seed001_min_evidence.yaml")
    # overrides 0,1,2 repeating -> mean 1.0 > 0.5 (FAIL, observe-only); run 5 has no value (NA)
    runs = make_runs(30, stratum=lambda i: "pinned" if i % 2 else "unpinned", overrides_count=lambda i: i % 3)
    runs.loc[5, "overrides_count"] = pd.NA
    d = evaluate(runs, cfg)
    mo = rule(d, "mean_overrides")
    # 29 values left: 0..29 without 5 (5 % 3 = 2): sum = 10*(0+1+2) - 2 = 28 -> 28/29
    assert (mo.verdict, mo.observe_only, mo.n, mo.missing) == ("FAIL", True, 29, 1)
    assert mo.observed == pytest.approx(28 / 29)
    assert "(1 without a usable value)" in mo.why
    assert d.verdict == "GO"
    assert d.counted_rules == 3


def test_row_order_does_not_matter():
    cfg = load("examples/seed001_min_evidence.yaml")
    runs = make_runs(
        35,
        stratum=lambda i: "pinned" if i % 3 else "unpinned",
        outcome=lambda i: "FAIL" if i % 7 == 0 else "PASS",
    )
    a = evaluate(runs, cfg)
    b = evaluate(runs.sample(frac=1.0, random_state=3).reset_index(drop=True), cfg)
    assert a.model_dump() == b.model_dump()


# ---------------------------------------------------------------------------------------------- seed 002


def _seed002_runs(n=20, disagree=(), esc=lambda i: 0, base_esc=lambda i: 0, used=640, base=1000):
    return make_runs(
        n,
        hours=2,  # 20 runs span 38 h >= 24 h canary window
        metrics=lambda i: metrics(
            samples_used=used,
            baseline_samples=base,
            decision_disagreement=1 if i in disagree else 0,
            escalations=esc(i),
            baseline_escalations=base_esc(i),
        ),
    )


def test_seed002_go():
    cfg = load("examples/seed002_adaptive_sampling.yaml")
    d = evaluate(_seed002_runs(), cfg)
    assert d.verdict == "GO"
    sr = rule(d, "sample_reduction")
    # 1 - (20*640)/(20*1000) = 0.36 >= 0.30
    assert sr.observed == pytest.approx(0.36)
    assert (sr.details["current_value"], sr.details["baseline_value"]) == (12800.0, 20000.0)
    assert "reduction 36.0% meets the threshold >= 30.0%" in sr.why
    dd = rule(d, "decision_disagreement")
    assert (dd.verdict, dd.observed, dd.n) == ("PASS", 0.0, 20)


def test_seed002_no_go_on_each_threshold():
    cfg = load("examples/seed002_adaptive_sampling.yaml")
    runs = _seed002_runs(
        disagree=(3,), esc=lambda i: 1 if i < 3 else 0, base_esc=lambda i: 1 if i < 2 else 0, used=750
    )
    d = evaluate(runs, cfg)
    assert d.verdict == "NO_GO"
    # reduction 1 - 750/1000 = 0.25 < 0.30
    assert rule(d, "sample_reduction").verdict == "FAIL"
    assert rule(d, "sample_reduction").observed == pytest.approx(0.25)
    # disagreement 1/20 = 5% > 1%
    dd = rule(d, "decision_disagreement")
    assert (dd.verdict, dd.observed) == ("FAIL", 0.05)
    # escalations 3 - baseline 2 = 1 > 0
    es = rule(d, "escalations_vs_baseline")
    assert (es.verdict, es.observed) == ("FAIL", 1.0)


def test_seed002_unpaired_and_missing_metrics():
    cfg = load("examples/seed002_adaptive_sampling.yaml")
    runs = _seed002_runs()
    # run 0 lacks baseline_samples: the pair is dropped (not counted as zero) and reported as missing
    runs.loc[0, "metrics"] = metrics(
        samples_used=640, decision_disagreement=0, escalations=0, baseline_escalations=0
    )
    d = evaluate(runs, cfg)
    sr = rule(d, "sample_reduction")
    assert (sr.n, sr.missing) == (19, 1)
    assert sr.details["current_value"] == 19 * 640
    # no metrics at all -> every metrics rule HOLDs with a "no data" sentence
    empty = _seed002_runs().assign(metrics="{}")
    d2 = evaluate(empty, cfg)
    for name in ("decision_disagreement", "escalations_vs_baseline", "sample_reduction"):
        r = rule(d2, name)
        assert r.verdict == "HOLD" and r.why.startswith("no data"), (name, r.why)
    assert d2.verdict == "HOLD"


def test_baseline_zero_is_hold():
    cfg = load("examples/seed002_adaptive_sampling.yaml")
    d = evaluate(_seed002_runs(base=0), cfg)
    sr = rule(d, "sample_reduction")
    assert sr.verdict == "HOLD" and "the baseline is 0" in sr.why


# ---------------------------------------------------------------------------------------------- seed 004


def _seed004_runs(n=100, success=lambda i: 1, latency=lambda i: 100 + i, **kw):
    return make_runs(
        n, metrics=lambda i: metrics(success=success(i), latency_ms=latency(i), arm="production"), **kw
    )


def test_seed004_go():
    cfg = load("examples/seed004_phased_rollout.yaml")
    d = evaluate(_seed004_runs(), cfg)
    assert d.verdict == "GO"
    sr = rule(d, "success_rate")
    # 100/100: Wilson lower bound = n/(n + z^2) = 100/103.84 = 0.963 >= 0.95 -> CI entirely above
    assert sr.ci_low == pytest.approx(100 / (100 + Z95**2))
    assert sr.verdict == "PASS" and sr.ci_method == "wilson"
    avg = rule(d, "latency_avg")
    assert avg.observed == pytest.approx(149.5)  # mean of 100..199
    p95 = rule(d, "latency_p95")
    # linear interpolation: position 0.95*99 = 94.05 -> 194 + 0.05*(195-194) = 194.05
    assert p95.observed == pytest.approx(194.05)
    assert p95.why == "p95 metrics.latency_ms = 194.1 ms over 100 runs meets the threshold <= 200 ms"
    # order-statistic CI: ranks floor(95 - z*sqrt(4.75)) = 90 and ceil(95 + z*sqrt(4.75)) = 100 -> values 189, 199
    assert (p95.ci_low, p95.ci_high, p95.ci_method) == (189.0, 199.0, "order_statistic")


def test_seed004_rollback_has_precedence():
    cfg = load("examples/seed004_phased_rollout.yaml")
    d = evaluate(_seed004_runs(success=lambda i: 0 if i % 20 < 3 else 1, latency=lambda i: 250), cfg)
    # 85/100 successes: 85% < 90% fires the trigger; latency rules also FAIL but ROLLBACK wins
    rb = rule(d, "rollback_success_rate")
    assert (rb.verdict, rb.observed) == ("ROLLBACK", 0.85)
    assert rb.why == "success rate 85/100 = 85.0% is < 90.0%: the rollback trigger fired"
    assert rule(d, "latency_avg").verdict == "FAIL"
    assert d.verdict == "ROLLBACK" and d.decision_as_number == -2


def test_seed004_ci_straddle_is_hold():
    cfg = load("examples/seed004_phased_rollout.yaml")
    d = evaluate(_seed004_runs(n=50, success=lambda i: 0 if i == 7 else 1), cfg)
    sr = rule(d, "success_rate")
    # 49/50 = 98% >= 95%, but the Wilson lower bound is below 95%
    z2 = Z95**2
    lo = ((0.98 + z2 / 100) - Z95 * math.sqrt(0.98 * 0.02 / 50 + z2 / 10000)) / (1 + z2 / 50)
    assert lo < 0.95
    assert sr.ci_low == pytest.approx(lo)
    assert (sr.verdict, sr.observed) == ("HOLD", 0.98)
    assert "straddles the threshold >= 95.0%" in sr.why
    assert d.verdict == "HOLD"


def test_seed004_per_phase_thresholds_and_window_baseline():
    cfg = load("examples/seed004_phased_rollout.yaml").model_copy(update={"current_phase": "canary_75"})
    assert cfg.next_phase() == "full"
    # 7 days of policy p1 at 100 ms, then 7 days of p2 at 120 ms; one run every 2 h
    old = _seed004_runs(n=84, latency=lambda i: 100, hours=2, policy="p1")
    new = _seed004_runs(n=84, latency=lambda i: 120, hours=2, policy="p2", start=T0 + pd.Timedelta(days=7))
    runs = pd.concat([old, new], ignore_index=True)
    now = T0 + pd.Timedelta(days=14)
    d = evaluate(runs, cfg, now=now)
    assert (d.policy_hash, d.previous_policy_hash) == ("p2", "p1")
    w = rule(d, "latency_vs_previous_window")
    # current: p2 runs in (day 7, day 14] = 84 (its first run at exactly day 7 is excluded -> 83), mean 120;
    # baseline: all runs in (day 0, day 7] = p1 runs 1..83 plus p2's run at day 7: (83*100 + 120)/84
    base = (83 * 100 + 120) / 84
    assert w.details["baseline_value"] == pytest.approx(base)
    assert w.observed == pytest.approx(120 / base - 1)
    assert w.verdict == "FAIL"
    assert rule(d, "success_rate").threshold == 0.96
    assert d.verdict == "NO_GO"


# ---------------------------------------------------------------------------------------------- seed 000 + default


def test_seed000_median_threshold():
    cfg = load("examples/seed000_unknown_rate.yaml")
    # 40 runs, unknown_rate = 0.01 * (i % 10): median of 0.00..0.09 (4 each) = 0.045; p95 at position 37.05 -> 0.09
    runs = make_runs(
        40, unknown_rate=lambda i: 0.01 * (i % 10), outcome=lambda i: "WARN" if i % 10 == 0 else "PASS"
    )
    d = evaluate(runs, cfg)
    med = rule(d, "unknown_rate_median")
    assert med.observed == pytest.approx(0.045) and med.verdict == "PASS"
    spread = rule(d, "unknown_rate_spread")
    assert spread.observed == pytest.approx(0.09 / 0.045)  # 2.0 <= 2.0
    assert spread.verdict == "PASS"
    wf = rule(d, "warn_fail_rate")
    assert (wf.observed, wf.observe_only) == (0.1, True)
    assert d.verdict == "GO"
    # first 30 runs (values 0.00..0.09, 3 each): median (0.04+0.05)/2 = 0.045, p95 = 0.09, ratio 2 passes,
    # but min evidence (40 runs) is not met -> HOLD
    d30 = evaluate(runs.iloc[:30], cfg)
    assert rule(d30, "unknown_rate_spread").verdict == "PASS"
    assert (rule(d30, "min_evidence").verdict, d30.verdict) == ("HOLD", "HOLD")
    # a spike: 3 runs at 0.9 push p95 far above 2x the median -> NO_GO
    spiky = runs.assign(
        unknown_rate=lambda df: [0.9 if i in (5, 15, 25) else 0.01 * (i % 10) for i in range(40)]
    )
    d2 = evaluate(spiky, cfg)
    assert rule(d2, "unknown_rate_spread").verdict == "FAIL"
    assert d2.verdict == "NO_GO"


def test_default_config_warn_phase_previous_policy():
    cfg = load("policy_constants.yaml").model_copy(update={"current_phase": "warn"})
    old = make_runs(40, policy="old", unknown_rate=0.05, hours=1)
    new = make_runs(80, policy="new", unknown_rate=0.06, hours=1, start=T0 + pd.Timedelta(days=3))
    d = evaluate(pd.concat([new, old], ignore_index=True), cfg)
    r = rule(d, "unknown_rate_vs_previous_policy")
    assert r.details["baseline_policy_hash"] == "old"
    assert r.observed == pytest.approx(0.06 / 0.05 - 1)  # +20% > +10%
    assert r.verdict == "FAIL"
    assert (d.next_phase, d.policy_hash) == ("enforce", "new")


def test_no_runs_is_hold_everywhere():
    cfg = load("policy_constants.yaml")
    d = evaluate(make_runs(0), cfg)
    assert d.verdict == "HOLD" and d.policy_hash is None and d.n_runs == 0
    assert all(r.verdict == "HOLD" for r in d.rules)
    assert all("no data" in r.why for r in d.rules)


def test_explicit_policy_and_missing_column():
    data = yaml.safe_load((CONFIG / "examples/seed000_unknown_rate.yaml").read_bytes())
    data["policy"] = {"mode": "explicit", "policy_hash": "old"}
    cfg = parse_decision_config(data, "inline")
    runs = pd.concat(
        [make_runs(40, policy="old"), make_runs(5, policy="new", start=T0 + pd.Timedelta(days=5))]
    )
    d = evaluate(runs.drop(columns=["unknown_rate"]), cfg)
    assert (d.policy_hash, d.n_runs, d.policy_selection) == ("old", 40, "explicit")
    med = rule(d, "unknown_rate_median")
    assert med.verdict == "HOLD"
    assert med.why == "no data: column 'unknown_rate' is not in the run table, so the rule cannot pass"


def test_string_metric_values_are_counted_as_missing():
    cfg = load("examples/seed004_phased_rollout.yaml")
    runs = _seed004_runs(latency=lambda i: "slow" if i < 10 else 150)
    d = evaluate(runs, cfg)
    avg = rule(d, "latency_avg")
    assert (avg.observed, avg.n, avg.missing, avg.details["non_numeric"]) == (150.0, 90, 10, 10)


def test_rules_name_the_runs_behind_their_numbers():
    cfg = load("policy_constants.yaml")
    runs = make_runs(
        40,
        outcome=lambda i: "FAIL" if i in (3, 17, 29) else "PASS",
        unknown_rate=lambda i: 0.4 if i in (5, 6) else 0.05,
    )
    decision = evaluate(runs, cfg)
    # A rate rule lists the runs matching its condition (the FAIL runs), sorted.
    assert rule(decision, "fail_rate").evidence_run_ids == ["p1-r0003", "p1-r0017", "p1-r0029"]
    assert rule(decision, "fail_rate").details["evidence_runs"] == 3
    # Another aggregate lists the runs whose own value violates the comparator (unknown_rate > 0.15).
    assert rule(decision, "unknown_rate_median").evidence_run_ids == ["p1-r0005", "p1-r0006"]
    # Rules without a per-run notion carry none.
    assert rule(decision, "min_evidence").evidence_run_ids == []


# ------------------------------------------------------------------------- vectorized value handling


def _inline_cfg(rules: list[dict]) -> object:
    data = {"name": "t", "phase_order": ["a"], "current_phase": "a", "phases": {"a": {"rules": rules}}}
    return parse_decision_config(data, "inline")


def _abs(name: str, column: str, aggregate: str, match: dict | None = None) -> dict:
    metric = {"column": column, "aggregate": aggregate}
    if match is not None:
        metric["match"] = match
    return {
        "name": name,
        "kind": "absolute",
        "description": "d",
        "metric": metric,
        "comparator": "<=",
        "threshold": 100.0,
        "hold_on_ci_straddle": False,
    }


MIXED_RULES = [
    ("sum", "sum", None),
    ("mean", "mean", None),
    ("min", "min", None),
    ("max", "max", None),
    ("eq_one", "rate", {"equals": 1}),
    ("in_x_4", "rate", {"in": ["x", 4]}),
    ("gt_one", "count", {"comparator": ">", "value": 1}),
]


def _check_mixed(d, missing_total: int, non_numeric: int, present: int):
    # Numbers are 1, 2.5, True (= 1.0) and 4: sum 8.5, mean 8.5 / 4 = 2.125, min 1.0, max 4.0.
    assert rule(d, "sum").observed == 8.5
    assert rule(d, "mean").observed == 2.125
    assert (rule(d, "min").observed, rule(d, "max").observed) == (1.0, 4.0)
    assert (rule(d, "sum").n, rule(d, "sum").missing) == (4, missing_total)
    assert rule(d, "sum").details["non_numeric"] == non_numeric
    # equals 1 hits 1 and True (numbers compare as numbers); "x" never equals a number.
    assert (rule(d, "eq_one").details["hits"], rule(d, "eq_one").n) == (2, present)
    assert rule(d, "eq_one").observed == 2 / present
    # in [x, 4] hits the string "x" and the number 4.
    assert rule(d, "in_x_4").details["hits"] == 2
    # > 1 hits 2.5 and 4 only.
    assert rule(d, "gt_one").observed == 2.0


def test_mixed_object_column_follows_the_scalar_rules():
    values = [1, 2.5, "x", None, float("nan"), float("inf"), True, 4]
    cfg = _inline_cfg([_abs(n, "mixed", a, m) for n, a, m in MIXED_RULES])
    runs = make_runs(len(values), mixed=lambda i: values[i])
    assert runs["mixed"].dtype == object
    d = evaluate(runs, cfg)
    # missing: None and NaN (2); not numeric: "x" and inf (2) -> 4 without a usable value; present: 6.
    _check_mixed(d, missing_total=4, non_numeric=2, present=6)
    assert rule(d, "gt_one").evidence_run_ids == ["p1-r0001", "p1-r0007"]


def test_metrics_values_follow_the_scalar_rules():
    blobs = [
        metrics(v=1),
        metrics(v=2.5),
        metrics(v="x"),
        "{}",
        metrics(v=None),
        metrics(v=True),
        metrics(v=4),
        "not json",
    ]
    cfg = _inline_cfg([_abs(n, "metrics.v", a, m) for n, a, m in MIXED_RULES])
    d = evaluate(make_runs(len(blobs), metrics=lambda i: blobs[i]), cfg)
    # missing: {}, null and the unparsable blob (3); not numeric: "x" (1); present: 5.
    _check_mixed(d, missing_total=4, non_numeric=1, present=5)


def test_nullable_integer_column_and_missing_strata():
    cfg = _inline_cfg(
        [
            _abs("overrides_sum", "overrides_count", "sum"),
            {**_abs("fail_rate", "outcome", "rate", {"equals": "FAIL"}), "per_stratum": True},
        ]
    )
    runs = make_runs(
        6,
        overrides_count=lambda i: None if i == 0 else i,
        stratum=lambda i: None if i < 2 else "pinned",
        outcome=lambda i: "FAIL" if i in (1, 4) else "PASS",
    )
    runs["overrides_count"] = runs["overrides_count"].astype("Int64")
    d = evaluate(runs, cfg)
    s = rule(d, "overrides_sum")
    assert (s.observed, s.n, s.missing) == (1 + 2 + 3 + 4 + 5.0, 5, 1)
    strata = {x.name: (x.n, x.observed) for x in rule(d, "fail_rate").strata}
    # runs 0,1 have no stratum (run 1 FAILs); runs 2..5 are pinned (run 4 FAILs).
    assert strata == {"(missing)": (2, 0.5), "pinned": (4, 0.25)}


def test_unsorted_input_with_timestamp_ties():
    cfg = load("policy_constants.yaml")
    runs = pd.concat(
        [make_runs(40, policy="p1"), make_runs(1, policy="p2", start=T0 + pd.Timedelta(hours=39))]
    ).reset_index(drop=True)
    # p1-r0039 and p2-r0000 share the latest timestamp; run_id order ("p1-…" < "p2-…") makes p2 latest.
    forward = evaluate(runs, cfg)
    backward = evaluate(runs.iloc[::-1], cfg)
    shuffled = evaluate(runs.sample(frac=1.0, random_state=3), cfg)
    assert forward.policy_hash == "p2" and forward.n_runs == 1
    assert forward.model_dump() == backward.model_dump() == shuffled.model_dump()


def test_evidence_lists_the_first_50_ids_and_counts_them_all():
    cfg = load("policy_constants.yaml")
    # run ids out of order, so the listed ones must be sorted, and more FAIL runs than are listed
    runs = make_runs(300, outcome=lambda i: "FAIL" if i % 2 else "PASS").assign(
        run_id=lambda df: [f"x{(7919 * i) % 300:04d}" for i in range(len(df))]
    )
    fail_ids = sorted(runs.loc[runs["outcome"] == "FAIL", "run_id"])
    r = rule(evaluate(runs, cfg), "fail_rate")
    assert r.details["evidence_runs"] == 150 and r.evidence_run_ids == fail_ids[:50]
    # ids that are not all text are listed as str(), sorted the same way
    numbered = runs.assign(run_id=[i if i % 3 else str(i) for i in range(300)])
    r = rule(evaluate(numbered, cfg), "fail_rate")
    expected = sorted(str(i) for i in range(300) if i % 2)
    assert r.details["evidence_runs"] == 150 and r.evidence_run_ids == expected[:50]


def test_previous_policy_is_the_one_first_seen_before_the_current():
    cfg = load("policy_constants.yaml")
    # p2 first seen at hour 0 (then again later), p1 at hour 1 but also tied with p3 at hour 1; p4 is current
    runs = pd.concat(
        [
            make_runs(1, policy="p2"),
            make_runs(3, policy="p3", start=T0 + pd.Timedelta(hours=1)),
            make_runs(2, policy="p1", start=T0 + pd.Timedelta(hours=1)),
            make_runs(2, policy="p2", start=T0 + pd.Timedelta(hours=5)),
            make_runs(4, policy="p4", start=T0 + pd.Timedelta(hours=9)),
        ],
        ignore_index=True,
    )
    d = evaluate(runs.sample(frac=1.0, random_state=2), cfg)
    assert (d.policy_hash, d.previous_policy_hash) == ("p4", "p3")  # p1 and p3 tie at hour 1: by hash


def test_used_columns_name_what_the_rules_read():
    cfg = load("policy_constants.yaml")
    assert used_columns(cfg) == {
        "timestamp",
        "run_id",
        "policy_hash",
        "stratum",
        "outcome",
        "unknown_rate",
        "overrides_count",
    }
    cfg = load("examples/seed004_phased_rollout.yaml")
    assert "metrics" in used_columns(cfg)
