"""Tests for gate_pipeline.lib.rules: config loading/errors and verdicts on hand-built run tables.

Expected numbers are computed by hand in the tests (formulas written out), never by the code under test."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
import yaml
from scipy import optimize, special, stats
from statsmodels.stats.proportion import confint_proportions_2indep

from gate_pipeline.lib import intervals as iv
from gate_pipeline.lib.rules import (
    DecisionConfigError,
    evaluate,
    load_decision_config,
    parse_decision_config,
    used_columns,
)

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
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


def _log_m(k: int, n: int, p: float, a: float, b: float, side: str) -> float:
    """The one-sided beta-binomial mixture written out: the likelihood ratio against p mixed over the
    Beta(a, b) prior restricted to the side tested ("lower" bound: (p, 1]; "upper": [0, p))."""
    tail = special.betaincc if side == "lower" else special.betainc
    loglik = (k * math.log(p) if k else 0.0) + ((n - k) * math.log1p(-p) if n - k else 0.0)
    num = special.betaln(a + k, b + n - k) + math.log(tail(a + k, b + n - k, p))
    return num - special.betaln(a, b) - math.log(tail(a, b, p)) - loglik


def _mixture_root(k: int, n: int, a: float, b: float, alpha: float, side: str) -> float:
    """The confidence-sequence bound: the root of log M_n(p) = log(1/alpha) on one side of k/n."""
    phat = k / n
    f = lambda p: _log_m(k, n, p, a, b, side) - math.log(1 / alpha)  # noqa: E731
    eps = 1e-12
    return (
        optimize.brentq(f, 1e-6, phat - eps) if side == "lower" else optimize.brentq(f, phat + eps, 1 - 1e-6)
    )


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


# ---------------------------------------------------------------------------------------------- seed 001


def test_seed001_go_once_every_interval_clears_its_threshold():
    cfg = load("examples/seed001_min_evidence.yaml")
    strata = lambda i: "pinned" if i % 2 else "unpinned"  # noqa: E731
    runs = make_runs(60, hours=1, stratum=strata, outcome=lambda i: "WARN" if i in (0, 1) else "PASS")
    d = evaluate(runs, cfg)
    assert d.verdict == "GO" and d.decision_as_number == 1
    assert (d.policy_hash, d.n_runs, d.current_phase, d.next_phase) == ("p1", 60, "observe", "warn")
    assert d.days == pytest.approx(59 / 24)  # first run to last run, 59 hours
    me = rule(d, "min_evidence")
    assert (me.verdict, me.observed, me.threshold) == ("PASS", 60.0, 30.0)
    ps = rule(d, "warn_fail_rate_per_stratum")
    # run 0 is unpinned, run 1 pinned: 1/30 each
    assert [(s.name, s.n, s.observed, s.verdict) for s in ps.strata] == [
        ("pinned", 30, 1 / 30, "PASS"),
        ("unpinned", 30, 1 / 30, "PASS"),
    ]
    fr = rule(d, "fail_rate")
    # 0/60 FAIL: the upper bound at alpha_go = 0.05, prior Beta(2 * 0.1, 2 * 0.9) (mixture_strength 2)
    want = _mixture_root(0, 60, 0.2, 1.8, 0.05, "upper")
    assert fr.ci_high == pytest.approx(want, abs=1e-9) and fr.ci_high < 0.10
    assert fr.ci_method == "mixture_cs" and "Howard et al. 2021" in fr.method
    assert "alpha=0.05 one-sided" in fr.method and "holm over 3 counted NO_GO tests" in fr.method
    assert [r.name for r in d.rules] == sorted(r.name for r in d.rules)
    # 30 runs are not enough: HOLD, with a computed "about N more runs" for each undecided rule
    d30 = evaluate(runs.iloc[:30], cfg)
    assert d30.verdict == "HOLD"
    fr30 = rule(d30, "fail_rate")
    assert fr30.verdict == "HOLD" and "straddles the threshold <= 10.0%" in fr30.why
    more = fr30.details["runs_needed"]
    assert f"about {more} more runs at the current rate would settle it" in fr30.why
    # the projection is exact: 0 FAIL in 30 + more runs clears the threshold, one run fewer does not
    assert iv.rate_pvalues(0, 30 + more, 0.1, "sequential", 0.2, 1.8)[1] <= 0.05
    assert iv.rate_pvalues(0, 29 + more, 0.1, "sequential", 0.2, 1.8)[1] > 0.05


def test_seed001_hold_for_missing_evidence_then_days_suffice():
    cfg = load("examples/seed001_min_evidence.yaml")
    strata = lambda i: "pinned" if i % 2 else "unpinned"  # noqa: E731
    runs = make_runs(12, hours=12, stratum=strata)  # 12 runs spanning 5.5 days
    d = evaluate(runs, cfg)
    assert d.verdict == "HOLD"
    me = rule(d, "min_evidence")
    assert me.verdict == "HOLD"
    assert me.why == "12 runs (needs >= 30) or 5.5 days (needs >= 7): not enough evidence yet"
    # Judged on day 8: evidence days are the policy's own runs (first to last), so a later `now` adds none.
    d2 = evaluate(runs, cfg, now=T0 + pd.Timedelta(days=8))
    assert rule(d2, "min_evidence").verdict == "HOLD" and d2.days == pytest.approx(5.5)
    # 16 runs spanning 7.5 days: the days side of seed 001's OR is met
    d3 = evaluate(make_runs(16, hours=12, stratum=strata), cfg)
    assert rule(d3, "min_evidence").verdict == "PASS" and d3.days == pytest.approx(7.5)


def test_evidence_days_are_the_selected_policys_own_span():
    """Bug: an explicitly selected older policy counted days up to the last run of ANY policy."""
    data = yaml.safe_load((CONFIG / "examples/seed001_min_evidence.yaml").read_bytes())
    data["policy"] = {"mode": "explicit", "policy_hash": "old"}
    cfg = parse_decision_config(data, "inline")
    old = make_runs(10, hours=1, policy="old")  # 10 runs over 9 hours
    new = make_runs(5, policy="new", start=T0 + pd.Timedelta(days=19, hours=9))
    d = evaluate(pd.concat([old, new], ignore_index=True), cfg)
    assert d.policy_hash == "old" and d.days == pytest.approx(9 / 24)
    assert rule(d, "min_evidence").verdict == "HOLD"


def test_seed001_no_go_in_one_stratum():
    cfg = load("examples/seed001_min_evidence.yaml")
    # 80 runs: even = unpinned, odd = pinned. Pinned runs 1, 3, ..., 55 (28 of 40) WARN: 70% against <= 30%;
    # unpinned run 0 WARN: 1/40. No FAIL at all.
    outcome = lambda i: "WARN" if (i % 2 and i <= 55) or i == 0 else "PASS"  # noqa: E731
    runs = make_runs(80, stratum=lambda i: "pinned" if i % 2 else "unpinned", outcome=outcome)
    d = evaluate(runs, cfg)
    assert d.verdict == "NO_GO" and d.decision_as_number == -1
    ps = rule(d, "warn_fail_rate_per_stratum")
    assert ps.verdict == "FAIL" and ps.stratum == "pinned"
    assert ps.observed == pytest.approx(28 / 40)
    assert "stratum pinned: WARN+FAIL rate 28/40 = 70.0%; the interval" in ps.why
    assert "lies wholly past the threshold <= 30.0%" in ps.why
    assert [(s.name, s.verdict) for s in ps.strata] == [("pinned", "FAIL"), ("unpinned", "PASS")]
    # Holm over 3 NO_GO tests (fail_rate, two strata): pinned has the smallest p-value, judged at 0.04 / 3,
    # and its lower bound is the mixture root at that level (checked independently against the formula)
    assert ps.details["alpha_stop"] == pytest.approx(0.04 / 3)
    lo = ps.ci_low
    assert lo == pytest.approx(_mixture_root(28, 40, 0.6, 1.4, 0.04 / 3, "lower"), abs=1e-9) and lo > 0.30
    fr = rule(d, "fail_rate")
    assert (fr.verdict, fr.observed, fr.n, fr.details["hits"]) == ("PASS", 0.0, 80, 0)
    assert d.why.startswith("NO_GO: 1 counted rule(s) failed") and d.why.endswith(
        "(warn_fail_rate_per_stratum)"
    )
    assert (d.method.no_go_tests, d.method.rollback_tests, d.method.multiplicity) == (3, 0, "holm")


def test_seed001_missing_stratum_is_hold_not_pass():
    cfg = load("examples/seed001_min_evidence.yaml")
    runs = make_runs(60, stratum="pinned")
    d = evaluate(runs, cfg)
    ps = rule(d, "warn_fail_rate_per_stratum")
    # pinned (0/60) passes; the listed stratum unpinned has no runs: HOLD, and so is the rule
    assert [(s.name, s.verdict) for s in ps.strata] == [("pinned", "PASS"), ("unpinned", "HOLD")]
    assert ps.verdict == "HOLD" and "1 hold (unpinned)" in ps.why
    assert "no data: there are no runs in stratum unpinned" in ps.strata[1].why
    assert d.verdict == "HOLD"


def test_seed001_observe_only_rule_is_reported_not_counted():
    cfg = load("examples/seed001_min_evidence.yaml")
    # overrides 0,1,2 repeating -> mean 1.0 > 0.5 (FAIL, observe-only); run 5 has no value (NA)
    runs = make_runs(60, stratum=lambda i: "pinned" if i % 2 else "unpinned", overrides_count=lambda i: i % 3)
    runs.loc[5, "overrides_count"] = pd.NA
    d = evaluate(runs, cfg)
    mo = rule(d, "mean_overrides")
    # 59 values left: 0..59 without 5 (5 % 3 = 2): sum = 20*(0+1+2) - 2 = 58 -> 58/59
    assert (mo.verdict, mo.observe_only, mo.n, mo.missing) == ("FAIL", True, 59, 1)
    assert mo.observed == pytest.approx(58 / 59)
    # a mean has no confidence sequence here: the Student t interval, labelled fixed-sample
    vals = [i % 3 for i in range(60) if i != 5]
    t = stats.ttest_1samp(vals, 0.5, alternative="greater")
    assert t.pvalue <= 0.04 and mo.ci_method == "student_t" and "not anytime-valid" in mo.method
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


def _seed002_runs(n=400, disagree=(), esc=lambda i: 0, base_esc=lambda i: 0, used=640, base=1000):
    # A 1% disagreement bound needs a few hundred runs: 0/n clears it once the interval's upper bound does.
    return make_runs(
        n,
        hours=0.1,  # 400 runs span 39.9 h >= 24 h canary window
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
    # 1 - (400*640)/(400*1000) = 0.36 >= 0.30; sums are totals: the observed value decides
    assert sr.observed == pytest.approx(0.36)
    assert (sr.details["current_value"], sr.details["baseline_value"]) == (256000.0, 400000.0)
    assert "reduction 36.0%; the interval 36.0% to 36.0% lies wholly on the safe side" in sr.why
    dd = rule(d, "decision_disagreement")
    assert (dd.verdict, dd.observed, dd.n) == ("PASS", 0.0, 400) and dd.ci_high < 0.01
    # the same clean runs, only 100 of them: 0/100 cannot yet show a rate below 1%
    d100 = evaluate(_seed002_runs(n=100), cfg)
    assert rule(d100, "decision_disagreement").verdict == "HOLD" and d100.verdict == "HOLD"


def test_seed002_no_go_on_each_threshold():
    cfg = load("examples/seed002_adaptive_sampling.yaml")
    runs = _seed002_runs(
        disagree=range(0, 400, 20),
        esc=lambda i: 1 if i < 3 else 0,
        base_esc=lambda i: 1 if i < 2 else 0,
        used=750,
    )
    d = evaluate(runs, cfg)
    assert d.verdict == "NO_GO"
    # reduction 1 - 750/1000 = 0.25 < 0.30
    assert rule(d, "sample_reduction").verdict == "FAIL"
    assert rule(d, "sample_reduction").observed == pytest.approx(0.25)
    # disagreement 20/400 = 5% > 1%, the whole interval above 1%
    dd = rule(d, "decision_disagreement")
    assert (dd.verdict, dd.observed) == ("FAIL", 0.05) and dd.ci_low > 0.01
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
    assert (sr.n, sr.missing) == (399, 1)
    assert sr.details["current_value"] == 399 * 640
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
    # 100/100 successes against >= 95%: the GO side is the lower bound at alpha_go = 0.05, prior Beta(1.9, 0.1)
    assert sr.ci_low == pytest.approx(_mixture_root(100, 100, 1.9, 0.1, 0.05, "lower"), abs=1e-9)
    assert sr.ci_low > 0.95 and sr.verdict == "PASS" and sr.ci_method == "mixture_cs"
    avg = rule(d, "latency_avg")
    assert avg.observed == pytest.approx(149.5)  # mean of 100..199
    p95 = rule(d, "latency_p95")
    # linear interpolation: position 0.95*99 = 94.05 -> 194 + 0.05*(195-194) = 194.05
    assert p95.observed == pytest.approx(194.05)
    assert p95.verdict == "PASS" and p95.ci_method == "quantile_cs" and p95.ci_high <= 200
    assert p95.why.startswith("p95 metrics.latency_ms = 194.1 ms over 100 runs; the interval")
    # p99 at n = 100 has no upper bound at its level: HOLD (observe-only), never a clipped rank
    p99 = rule(d, "latency_p99")
    assert p99.verdict == "HOLD" and p99.ci_high is None and "too few runs to bound it" in p99.why


def test_seed004_rollback_on_its_interval_has_precedence():
    cfg = load("examples/seed004_phased_rollout.yaml")
    d = evaluate(_seed004_runs(n=200, success=lambda i: 0 if i % 20 < 6 else 1, latency=lambda i: 250), cfg)
    # 140/200 successes: the whole interval (at the rollback alpha 0.01) lies below the 90% trigger
    rb = rule(d, "rollback_success_rate")
    assert (rb.verdict, rb.observed) == ("ROLLBACK", 0.7)
    assert rb.ci_high == pytest.approx(_mixture_root(140, 200, 1.8, 0.2, 0.01, "upper"), abs=1e-9)
    assert rb.why.endswith("lies wholly past the trigger < 90.0%: the rollback trigger fired")
    assert rule(d, "latency_avg").verdict == "FAIL"
    assert d.verdict == "ROLLBACK" and d.decision_as_number == -2
    # 85/100: the point estimate is past the trigger, the interval is not: HOLD, not ROLLBACK
    d2 = evaluate(_seed004_runs(success=lambda i: 0 if i % 20 < 3 else 1), cfg)
    assert rule(d2, "rollback_success_rate").verdict == "HOLD" and d2.verdict != "ROLLBACK"


def test_seed004_ci_straddle_is_hold():
    cfg = load("examples/seed004_phased_rollout.yaml")
    d = evaluate(_seed004_runs(n=50, success=lambda i: 0 if i == 7 else 1), cfg)
    sr = rule(d, "success_rate")
    # 49/50 = 98% >= 95%, but the lower bound is below 95%
    lo = _mixture_root(49, 50, 1.9, 0.1, 0.05, "lower")
    assert lo < 0.95
    assert sr.ci_low == pytest.approx(lo, abs=1e-9)
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
    # the median rule is the rate of "unknown_rate <= 0.10" (40/40) against 0.5: anytime-valid p-value 1/M
    assert med.observed == pytest.approx(0.045) and med.verdict == "PASS"
    assert math.exp(-_log_m(40, 40, 0.5, 1.0, 1.0, "lower")) <= 0.05 and med.ci_high <= 0.10
    spread = rule(d, "unknown_rate_spread")
    # p95 / median = 2.0, exactly the threshold: the interval of the ratio straddles it -> HOLD
    assert spread.observed == pytest.approx(0.09 / 0.045)
    # (the median's lower bound is 0 here, so the ratio has no finite upper bound yet)
    assert spread.verdict == "HOLD" and spread.ci_low < 2.0 and spread.ci_high is None
    assert spread.ci_method == "combined_sequential" and "alpha/2" in spread.method
    wf = rule(d, "warn_fail_rate")
    assert (wf.observed, wf.observe_only) == (0.1, True)
    assert d.verdict == "HOLD"
    # min evidence (40 runs) is not met with 30
    d30 = evaluate(runs.iloc[:30], cfg)
    assert (rule(d30, "min_evidence").verdict, d30.verdict) == ("HOLD", "HOLD")
    # spikes: 2 runs in 10 at 0.9 put p95 at 18x the median; 40 runs cannot bound the ratio (HOLD), 100 can
    spiky = make_runs(100, unknown_rate=lambda i: 0.9 if i % 10 in (5, 7) else 0.01 * (i % 10))
    assert rule(evaluate(spiky.iloc[:40], cfg), "unknown_rate_spread").verdict == "HOLD"
    d2 = evaluate(spiky, cfg)
    r2 = rule(d2, "unknown_rate_spread")
    assert r2.observed == pytest.approx(18.0) and r2.verdict == "FAIL" and r2.ci_low > 2.0
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
    data = {
        "name": "t",
        "phase_order": ["a"],
        "current_phase": "a",
        "decision": _default_dict()["decision"],
        "phases": {"a": {"rules": rules}},
    }
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
    # p1 and p2 are introduced at the same timestamp: the hash breaks the tie, so p2 counts as the later one.
    runs = pd.concat([make_runs(40, policy="p1"), make_runs(40, policy="p2")]).reset_index(drop=True)
    forward = evaluate(runs, cfg)
    backward = evaluate(runs.iloc[::-1], cfg)
    shuffled = evaluate(runs.sample(frac=1.0, random_state=3), cfg)
    assert (forward.policy_hash, forward.previous_policy_hash, forward.n_runs) == ("p2", "p1", 40)
    assert forward.model_dump() == backward.model_dump() == shuffled.model_dump()


def test_candidate_is_the_most_recently_introduced_policy_and_interleaving_never_flips_it():
    """Bug: the decision was about the hash of the most recent run, so an interleaved rollout flipped it."""
    cfg = load("policy_constants.yaml")
    old = make_runs(60, policy="old", hours=1)
    # from hour 60 on, old and new alternate run by run (a 50% phase); the last run is old's
    new = make_runs(20, policy="new", hours=2, start=T0 + pd.Timedelta(hours=61))
    more_old = make_runs(20, policy="old", hours=2, start=T0 + pd.Timedelta(hours=62)).assign(
        run_id=lambda df: [f"old-x{i:04d}" for i in range(len(df))]
    )
    runs = pd.concat([old, new, more_old], ignore_index=True)
    for end in (80, 90, 99, 100):  # re-evaluated as runs arrive, whichever hash ran last
        d = evaluate(runs.sort_values("timestamp").iloc[:end], cfg)
        assert (d.policy_hash, d.previous_policy_hash) == ("new", "old"), end
    # a single stray run of a newer hash (below min_recent_share of the last recent_runs) does not take over
    stray = make_runs(1, policy="stray", start=T0 + pd.Timedelta(hours=200))
    d = evaluate(pd.concat([runs, stray], ignore_index=True), cfg)
    assert d.policy_hash == "new"
    # explicit selection stays
    data = _default_dict()
    data["policy"] = {"mode": "explicit", "policy_hash": "old"}
    d = evaluate(runs, parse_decision_config(data, "inline"))
    assert (d.policy_hash, d.policy_selection, d.n_runs) == ("old", "explicit", 80)


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


# ------------------------------------------------------------------- verdicts rest on intervals (issue 12)


def test_one_failing_run_is_never_a_rollback():
    """Bug: one FAIL run (or 1 FAIL in 3) gave ROLLBACK: point estimate with min_n = 1."""
    cfg = load("policy_constants.yaml")
    for n in (1, 3):
        d = evaluate(make_runs(n, outcome=lambda i: "FAIL" if i == 0 else "PASS"), cfg)
        rb = rule(d, "rollback_fail_rate")
        assert rb.verdict == "HOLD" and d.verdict == "HOLD", (n, rb.why)
        assert "straddles the trigger > 25.0%" in rb.why and "more run" in rb.why
    # overwhelming evidence does roll back: 30 FAIL of 40
    d = evaluate(make_runs(40, outcome=lambda i: "FAIL" if i % 4 else "PASS"), cfg)
    assert d.verdict == "ROLLBACK" and rule(d, "rollback_fail_rate").ci_low > 0.25


def test_two_runs_in_a_small_stratum_are_not_a_no_go():
    """Bug: 38 clean pinned runs plus 2 unknown runs (one WARN) gave NO_GO from the 50% point estimate."""
    cfg = load("policy_constants.yaml")
    runs = make_runs(
        40,
        stratum=lambda i: "unknown" if i >= 38 else "pinned",
        outcome=lambda i: "WARN" if i == 39 else "PASS",
    )
    d = evaluate(runs, cfg)
    ps = rule(d, "warn_fail_rate_per_stratum")
    unknown = next(s for s in ps.strata if s.name == "unknown")
    assert (unknown.verdict, unknown.n, unknown.observed) == ("HOLD", 2, 0.5)
    assert unknown.runs_needed is not None and unknown.runs_needed > 0
    assert f"about {unknown.runs_needed} more runs in stratum unknown at the current rate" in unknown.why
    assert ps.verdict == "HOLD" and d.verdict == "HOLD"


def test_per_stratum_rule_is_not_a_coin_flip_at_a_true_rate_inside_the_threshold():
    """Bug: a true WARN+FAIL rate of 0.30 in every stratum (threshold 0.40), strata of 14/13/8 runs, gave
    NO_GO about half the time. Seeded: at most 5% now (the family-wise NO_GO alpha is 4%)."""
    cfg = load("policy_constants.yaml")
    rng = np.random.default_rng(5)
    strata = ["pinned"] * 14 + ["unpinned"] * 13 + ["unknown"] * 8
    no_go = 0
    for _ in range(100):
        warn = rng.random(35) < 0.30
        runs = make_runs(
            35, stratum=lambda i: strata[i], outcome=lambda i, w=warn: "WARN" if w[i] else "PASS"
        )
        no_go += rule(evaluate(runs, cfg), "warn_fail_rate_per_stratum").verdict == "FAIL"
    assert no_go / 100 <= 0.05


def test_worst_stratum_is_the_worst_observed_with_its_interval():
    """Bug: the 'worst' stratum was picked by verdict then name: pinned at 21.4% shown over unknown at 37.5%."""
    cfg = load("policy_constants.yaml")
    strata = ["pinned"] * 14 + ["unpinned"] * 13 + ["unknown"] * 8
    warn = {0, 1, 2, 14, 27, 28, 29}  # pinned 3/14, unpinned 1/13, unknown 3/8
    runs = make_runs(35, stratum=lambda i: strata[i], outcome=lambda i: "WARN" if i in warn else "PASS")
    ps = rule(evaluate(runs, cfg), "warn_fail_rate_per_stratum")
    unknown = next(s for s in ps.strata if s.name == "unknown")
    assert (ps.stratum, ps.observed) == ("unknown", 3 / 8)
    assert (ps.ci_low, ps.ci_high) == (unknown.ci_low, unknown.ci_high)
    assert "worst observed: stratum unknown: WARN+FAIL rate 3/8 = 37.5%" in ps.why


def test_fixed_sample_mode_is_labelled_and_uses_exact_intervals():
    data = _default_dict()
    data["decision"]["interval"] = "fixed"
    cfg = parse_decision_config(data, "inline")
    d = evaluate(make_runs(40, outcome=lambda i: "FAIL" if i in (3, 17) else "PASS"), cfg)
    fr = rule(d, "fail_rate")
    # 2/40 FAIL: the GO side is the exact one-sided upper bound at 0.05 (Clopper-Pearson, scipy's binomtest)
    ci = stats.binomtest(2, 40).proportion_ci(confidence_level=0.90, method="exact")
    assert fr.ci_high == pytest.approx(ci.high, abs=1e-12) and fr.ci_method == "clopper_pearson"
    assert "fixed-sample: valid for one look only" in fr.method
    assert d.method.interval == "fixed" and "one-off analysis" in d.method.description


def test_fixed_rate_difference_against_the_previous_policy_uses_newcombe():
    data = _default_dict()
    data["decision"]["interval"] = "fixed"
    data["phases"]["observe"]["rules"].append(
        {
            "name": "fail_rate_vs_previous",
            "kind": "relative",
            "description": "FAIL rate no more than 5 points above the previous policy's.",
            "metric": {"column": "outcome", "aggregate": "rate", "match": {"equals": "FAIL"}},
            "baseline": {"source": "policy", "policy_hash": "previous"},
            "measure": "difference",
            "comparator": "<=",
            "threshold": 0.05,
        }
    )
    cfg = parse_decision_config(data, "inline")
    old = make_runs(50, policy="old", outcome=lambda i: "FAIL" if i < 2 else "PASS")
    new = make_runs(
        40, policy="new", start=T0 + pd.Timedelta(days=3), outcome=lambda i: "FAIL" if i < 5 else "PASS"
    )
    r = rule(evaluate(pd.concat([old, new], ignore_index=True), cfg), "fail_rate_vs_previous")
    assert r.ci_method == "newcombe" and r.observed == pytest.approx(5 / 40 - 2 / 50)
    # NO_GO side at its Holm level, GO side at 0.05: each bound is Newcombe's two-sided bound at twice its alpha
    lo_alpha = r.details["alpha_stop"]
    want_lo = confint_proportions_2indep(5, 40, 2, 50, method="newcomb", compare="diff", alpha=2 * lo_alpha)[
        0
    ]
    want_hi = confint_proportions_2indep(5, 40, 2, 50, method="newcomb", compare="diff", alpha=0.10)[1]
    assert (r.ci_low, r.ci_high) == (pytest.approx(want_lo, abs=1e-12), pytest.approx(want_hi, abs=1e-12))
    assert r.verdict == "HOLD"


def test_bonferroni_splits_alpha_evenly():
    data = _default_dict()
    data["decision"]["multiplicity"] = "bonferroni"
    cfg = parse_decision_config(data, "inline")
    strata = lambda i: ["pinned", "unpinned", "unknown"][i % 3]  # noqa: E731
    d = evaluate(make_runs(90, stratum=strata), cfg)
    # NO_GO tests: fail_rate, unknown_rate_median and three strata -> 0.04 / 5 each
    assert d.method.no_go_tests == 5 and d.method.multiplicity == "bonferroni"
    assert rule(d, "fail_rate").details["alpha_stop"] == pytest.approx(0.04 / 5)
    assert "bonferroni over 5 counted NO_GO tests" in rule(d, "fail_rate").method
