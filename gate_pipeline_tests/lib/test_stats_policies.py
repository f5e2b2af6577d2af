"""Per-policy statistics, the candidate policy, zero-MAD safeguards and the WARN threshold's minimum runs."""

import json

import jsonschema
import pandas as pd

from gate_pipeline.lib import reports
from gate_pipeline.lib import stats as S
from gate_pipeline.lib.stats import AnalysisConfig
from gate_pipeline_tests.lib.test_stats import ROOT, classified, close


# ---------------------------------------------------------------------------------- zero-MAD defaults
def test_default_spike_floor_stops_every_nonzero_run_being_a_spike_when_mad_is_zero():
    rates = [0.0] * 12 + [0.002, 0.005, 0.008, 0.01, 0.01, 0.01, 0.2, 0.3]
    res = S.spikes(classified([{"unknown_rate": r} for r in rates]))
    # median 0, MAD 0: without the floor the bound is 0 and all 8 non-zero runs are spikes
    assert (res.median, res.mad, res.bound, res.n_spikes) == (0.0, 0.0, 0.01, 2)
    assert sorted(res.spike_runs["unknown_rate"]) == [0.2, 0.3]


def test_default_warn_floor_gives_a_nonzero_threshold_for_a_zero_median():
    rates = [0.0] * 30 + [0.01] * 5 + [0.05] * 5
    res = S.warn_threshold(classified([{"unknown_rate": r, "outcome": "PASS"} for r in rates]))
    assert res.status == "ok" and res.median == 0.0 and res.threshold == 0.02
    assert res.without_whitelist["flagged_runs"] == 5  # only the 0.05 runs, not every run with an unknown


def test_no_warn_threshold_from_fewer_runs_than_configured():
    one = S.warn_threshold(classified([{"unknown_rate": 0.1, "outcome": "PASS"}]))
    assert (one.status, one.threshold, one.median, one.min_runs) == ("insufficient_runs", None, 0.1, 40)
    assert one.without_whitelist is None and one.fp_runs_avoided is None
    rows = [{"unknown_rate": 0.01 * (i % 7), "outcome": "PASS"} for i in range(40)]
    assert S.warn_threshold(classified(rows[:39])).status == "insufficient_runs"
    assert S.warn_threshold(classified(rows)).status == "ok"


# ---------------------------------------------------------------------------------------- per policy
def _two_policies() -> pd.DataFrame:
    rows = [{"policy_hash": "h_old", "unknown_rate": 0.105, "outcome": "PASS"} for _ in range(40)]
    rows += [{"policy_hash": "h_new", "unknown_rate": 0.025, "outcome": "PASS"} for _ in range(39)]
    rows += [{"policy_hash": "h_new", "unknown_rate": 0.06, "outcome": "PASS"}]
    rows += [{"policy_hash": None, "unknown_rate": 0.5, "outcome": "FAIL"} for _ in range(3)]
    return classified(rows)


def test_spikes_are_per_policy_and_the_candidate_is_named():
    res = S.spikes(_two_policies())
    # pooled, the median (0.065-ish) and MAD hide it; within h_new (median 0.025, MAD 0) 0.06 is a spike
    assert res.policy_hash == "h_new" and close(res.median, 0.025) and close(res.bound, 0.035)
    assert list(res.spike_runs["policy_hash"]) == ["h_new"] and res.n_spikes == 1
    assert close(res.spike_runs["bound"].iloc[0], 0.035)
    by = res.by_policy.set_index("policy_hash")
    assert list(by.index) == ["(null)", "h_new", "h_old"]  # a null hash is its own, labelled group
    assert by.loc["h_old", "spikes"] == 0 and close(by.loc["h_old", "bound"], 0.115)
    assert by.loc["(null)", "runs"] == 3
    assert list(res.by_reason["policy_hash"]) == ["h_new"]


def test_warn_threshold_is_per_policy_and_the_decision_uses_the_candidates():
    res = S.warn_threshold(_two_policies())
    by = {p["policy_hash"]: p for p in res.by_policy}
    assert sorted(by) == ["(null)", "h_new", "h_old"]
    assert close(by["h_old"]["threshold"], 0.21) and close(by["h_new"]["threshold"], 0.05)
    assert by["(null)"]["status"] == "insufficient_runs"
    assert res.policy_hash == "h_new" and close(res.threshold, 0.05)
    assert res.without_whitelist["flagged_runs"] == 1  # the 0.06 run, judged against its own policy
    # pooled, the threshold would be 2 * median(all) = 0.21 and flag the null-hash runs instead


def test_spike_and_threshold_documents_carry_no_nan_and_name_the_policy():
    runs = S.Runs(_two_policies())
    cfg = AnalysisConfig()
    spikes_doc = S.spike_section(runs, cfg).document
    assert spikes_doc["policy_hash"] == "h_new" and spikes_doc["null_group_label"] == "(null)"
    assert [p["policy_hash"] for p in spikes_doc["by_policy"]] == ["(null)", "h_new", "h_old"]
    warn_doc = S.warn_threshold_section(runs, cfg).document
    assert warn_doc["policy_hash"] == "h_new" and len(warn_doc["by_policy"]) == 3


def test_chart_marks_spikes_against_each_policys_own_bound():
    history = _two_policies()
    runs = S.Runs(history)
    statistics = {
        "spikes": S.spike_section(runs, AnalysisConfig()).document,
        "warn_threshold": S.warn_threshold_section(runs, AnalysisConfig()).document,
    }
    series, median, threshold = reports.chart_inputs(history, statistics)
    # only the 0.06 run of h_new; the h_old runs at 0.105 sit at their own median
    assert list(history.loc[series["is_spike"].to_numpy(), "unknown_rate"]) == [0.06]
    assert close(median, 0.025) and close(threshold, 0.05)


def test_methods_are_named_and_match_the_rollout_metrics_schema():
    methods = S.to_jsonable(S.methods_document(AnalysisConfig()))
    assert "Hyndman & Fan type 7" in methods["quantile"] and methods["confidence_level"] == 0.95
    assert methods["spike_mad_scale"] == 1.4826 and methods["warn_threshold_min_runs"] == 40
    schema = json.loads((ROOT / "gate_pipeline/schemas/rollout_metrics.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(
        {**schema["properties"]["statistics"]["properties"]["methods"], "$defs": schema["$defs"]}
    )
    assert validator.is_valid(methods)
    assert not validator.is_valid({k: v for k, v in methods.items() if k != "quantile"})
