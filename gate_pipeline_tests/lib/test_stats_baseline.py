"""Candidate against baseline policy (lib/stats/baseline.py): pooled vs stratum-standardized differences, the
Simpson's paradox warning, exclusions by class, the compared-runs table. statsmodels and scipy are the oracles."""

import io
import json

import jsonschema
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.contingency_tables import StratifiedTable, Table2x2
from statsmodels.stats.proportion import confint_proportions_2indep

from gate_pipeline.lib import reports
from gate_pipeline.lib import stats as S
from gate_pipeline.lib.config import ConfigError
from gate_pipeline.lib.escape import md_code
from gate_pipeline.lib.stats import AnalysisConfig, load_analysis_config
from gate_pipeline.lib.stats.baseline import ComparedRuns, is_paradox, mix_distance
from gate_pipeline_tests.lib.test_reports import seed001_decision
from gate_pipeline_tests.lib.test_stats import ROOT, Z, classified, close

# Simpson's paradox by hand: the baseline runs mostly in the hard stratum (unpinned), the candidate mostly in
# the easy one (pinned). Pooled the candidate looks better (16% vs 25% FAIL); in each stratum it is worse
# (pinned 10% vs 5%, unpinned 40% vs 30%); at the baseline's mix (20% pinned) it is 34% vs 25%.
SIMPSON = {
    ("base", "pinned"): (20, 1),
    ("base", "unpinned"): (80, 24),
    ("cand", "pinned"): (80, 8),
    ("cand", "unpinned"): (20, 8),
}


def _rows(counts: dict, extra: list[dict] = ()) -> list[dict]:
    """Runs with (runs, FAILs) per (policy, stratum); the baseline 'base' first: it is introduced first."""
    rows = []
    for policy in sorted({p for p, _ in counts}, key=lambda p: p != "base"):
        for (p, stratum), (n, fails) in counts.items():
            if p == policy:
                rows += [{"policy_hash": p, "stratum": stratum, "outcome": "FAIL"} for _ in range(fails)]
                rows += [{"policy_hash": p, "stratum": stratum, "outcome": "PASS"} for _ in range(n - fails)]
        rows += [r for r in extra if r["policy_hash"] == policy]
    return rows


def _simpson(extra: list[dict] = ()) -> pd.DataFrame:
    return classified(_rows(SIMPSON, extra))


def _row(res: S.BaselineTables, metric: str = "fail_rate") -> dict:
    [row] = res.comparisons[res.comparisons["metric"] == metric].to_dict("records")
    return row


def test_simpsons_paradox_pooled_better_standardized_worse_warns():
    res = S.baseline_comparison(_simpson())
    assert (res.candidate, res.baseline, res.status) == ("cand", "base", "ok")
    row = _row(res)
    assert (
        row["candidate_events"],
        row["candidate_compared"],
        row["baseline_events"],
        row["baseline_compared"],
    ) == (
        16,
        100,
        25,
        100,
    )
    assert close(row["pooled_diff"], 0.16 - 0.25)
    # re-weighted to the baseline's mix: 0.2 * 10% + 0.8 * 40% = 34% against 25%
    assert close(row["standardized_candidate_rate"], 0.34) and close(row["standardized_baseline_rate"], 0.25)
    assert close(row["standardized_diff"], 0.09)
    assert row["simpsons_paradox"] is True and row["standardized_status"] == "ok"
    assert close(row["mix_distance"], 0.6)  # 80% vs 20% pinned
    # the interval brackets its estimate; the standardized one lies above 0 here (worse in every stratum)
    assert row["standardized_ci_low"] < row["standardized_diff"] < row["standardized_ci_high"]
    assert row["pooled_ci_low"] < row["pooled_diff"] < row["pooled_ci_high"]

    doc = S.baseline_section(_simpson(), AnalysisConfig()).document
    [warning] = [w for w in doc["warnings"] if w["metric"] == "fail_rate"]
    assert warning["name"] == "simpsons_paradox"
    assert close(warning["pooled_diff"], -0.09) and close(warning["standardized_diff"], 0.09)
    assert "looks better" in warning["message"] and "it is worse" in warning["message"]
    assert "-9.0 pp" in warning["message"] and "+9.0 pp" in warning["message"]


def test_statsmodels_stratified_table_confirms_the_paradox_direction():
    """Oracle independent of our code: the Mantel-Haenszel odds ratio (within strata) says the candidate FAILs
    more, the crude odds ratio of the pooled table says less, exactly what our flags say."""
    tables = [
        np.array(
            [
                [SIMPSON[("cand", s)][1], SIMPSON[("cand", s)][0] - SIMPSON[("cand", s)][1]],
                [SIMPSON[("base", s)][1], SIMPSON[("base", s)][0] - SIMPSON[("base", s)][1]],
            ]
        )
        for s in ("pinned", "unpinned")
    ]
    assert StratifiedTable(tables).oddsratio_pooled > 1
    assert Table2x2(sum(tables)).oddsratio < 1
    row = _row(S.baseline_comparison(_simpson()))
    assert row["standardized_diff"] > 0 > row["pooled_diff"]
    # each stratum's own difference agrees with the standardized direction
    strata = S.baseline_comparison(_simpson()).strata
    assert (strata[strata["metric"] == "fail_rate"]["rate_diff"] > 0).all()


def test_pooled_interval_is_statsmodels_newcombe():
    row = _row(S.baseline_comparison(_simpson()))
    lo, hi = confint_proportions_2indep(16, 100, 25, 100, method="newcomb", compare="diff", alpha=0.05)
    assert close(row["pooled_ci_low"], lo, 1e-9) and close(row["pooled_ci_high"], hi, 1e-9)


@pytest.mark.parametrize(
    ("xc", "nc", "xb", "nb"), [(3, 14, 2, 16), (0, 8, 0, 4), (12, 12, 1, 30), (5, 40, 9, 41)]
)
def test_one_stratum_standardized_interval_is_newcombe(xc, nc, xb, nb):
    """MOVER over Wilson intervals with one stratum (weight 1) is Newcombe's hybrid score interval."""
    std = S.standardized_diff({"s": (xc, nc)}, {"s": (xb, nb)}, Z)
    lo, hi = confint_proportions_2indep(xc, nc, xb, nb, method="newcomb", compare="diff", alpha=0.05)
    assert close(std.diff, xc / nc - xb / nb) and close(std.ci_low, lo, 1e-9) and close(std.ci_high, hi, 1e-9)
    assert std.weights == {"s": 1.0} and std.status == "ok"


def test_standardized_difference_equals_a_direct_computation_from_the_runs():
    df = _simpson()
    rates = df.assign(fail=df["outcome"].eq("FAIL")).groupby(["policy_hash", "stratum"])["fail"].mean()
    weights = df[df["policy_hash"] == "base"]["stratum"].value_counts(normalize=True)
    direct = sum(weights[s] * (rates["cand", s] - rates["base", s]) for s in weights.index)
    se = np.sqrt(
        sum(
            weights[s] ** 2
            * sum(rates[p, s] * (1 - rates[p, s]) / SIMPSON[(p, s)][0] for p in ("cand", "base"))
            for s in weights.index
        )
    )
    row = _row(S.baseline_comparison(df))
    assert close(row["standardized_diff"], direct) and close(row["standardized_se"], se)


def test_standardized_se_and_interval_against_a_scipy_simulation():
    """The stratified-sum variance matches the spread of simulated standardized differences (scipy binomial
    draws at fixed stratum sizes), and the MOVER-Wilson interval covers the true difference >= nominal - 1.5%."""
    rng = np.random.default_rng(20261202)
    strata = {"a": (60, 0.08, 30, 0.12), "b": (25, 0.30, 90, 0.25), "c": (15, 0.02, 40, 0.05)}
    n_sim = 2000
    draws = {
        s: (
            sps.binom.rvs(nc, pc, size=n_sim, random_state=rng),
            sps.binom.rvs(nb, pb, size=n_sim, random_state=rng),
        )
        for s, (nc, pc, nb, pb) in strata.items()
    }
    nb_total = sum(v[2] for v in strata.values())
    truth = sum(nb / nb_total * (pc - pb) for nc, pc, nb, pb in strata.values())
    true_sd = np.sqrt(
        sum(
            (nb / nb_total) ** 2 * (pc * (1 - pc) / nc + pb * (1 - pb) / nb)
            for nc, pc, nb, pb in strata.values()
        )
    )
    diffs, ses, covered = [], [], 0
    for i in range(n_sim):
        std = S.standardized_diff(
            {s: (int(draws[s][0][i]), strata[s][0]) for s in strata},
            {s: (int(draws[s][1][i]), strata[s][2]) for s in strata},
            Z,
        )
        diffs.append(std.diff)
        ses.append(std.se)
        covered += std.ci_low <= truth <= std.ci_high
    assert abs(np.mean(diffs) - truth) < 0.003  # unbiased
    assert abs(np.std(diffs) / true_sd - 1) < 0.05
    assert abs(np.mean(ses) / true_sd - 1) < 0.05
    assert covered / n_sim >= 0.935


def test_no_warning_when_pooled_and_standardized_agree():
    same_mix = {
        ("base", "pinned"): (50, 2),
        ("base", "unpinned"): (50, 10),
        ("cand", "pinned"): (50, 5),
        ("cand", "unpinned"): (50, 15),
    }
    df = classified(_rows(same_mix))
    row = _row(S.baseline_comparison(df))
    assert close(row["mix_distance"], 0.0) and close(row["pooled_diff"], row["standardized_diff"])
    assert row["simpsons_paradox"] is False
    assert S.baseline_section(df, AnalysisConfig()).document["warnings"] == []


def test_direction_tolerance_and_paradox_rule():
    assert is_paradox(-0.09, 0.09, 0.0) and is_paradox(0.01, -0.02, 0.0)
    assert not is_paradox(-0.09, 0.0, 0.0)  # no direction is not a disagreement
    assert not is_paradox(-0.004, 0.09, 0.005)  # within the tolerance: no direction
    assert not is_paradox(None, 0.09, 0.0)
    cfg = AnalysisConfig(baseline_comparison={"direction_tolerance": 0.1})
    assert _row(S.baseline_comparison(_simpson(), cfg))["simpsons_paradox"] is False
    assert close(mix_distance({"a": 1, "b": 1}, {"a": 2}), 0.5) and mix_distance({}, {"a": 2}) is None


def test_a_stratum_one_side_lacks_is_left_out_and_reported():
    counts = {
        ("base", "pinned"): (30, 3),
        ("base", "unpinned"): (10, 5),
        ("base", "unknown"): (10, 1),  # the candidate has no unknown-stratum runs
        ("cand", "pinned"): (30, 6),
        ("cand", "unpinned"): (30, 12),
    }
    res = S.baseline_comparison(classified(_rows(counts)))
    row = _row(res)
    # weights over the common strata: pinned 30/40, unpinned 10/40
    assert close(row["standardized_diff"], 0.75 * (6 / 30 - 3 / 30) + 0.25 * (12 / 30 - 5 / 10))
    assert close(row["baseline_share_uncovered"], 10 / 50) and close(row["candidate_share_uncovered"], 0.0)
    assert (row["strata_common"], row["strata_baseline_only"], row["strata_candidate_only"]) == (2, 1, 0)
    unknown = res.strata[(res.strata["metric"] == "fail_rate") & (res.strata["stratum"] == "unknown")].iloc[0]
    assert unknown["treatment"] == "left out: no candidate runs" and unknown["weight"] is None
    assert unknown["rate_diff"] is None and unknown["baseline_compared"] == 10

    none_common = S.standardized_diff({"a": (1, 5)}, {"b": (1, 5)}, Z)
    assert (none_common.status, none_common.diff, none_common.ci_low) == ("no_common_strata", None, None)
    assert none_common.baseline_share_uncovered == 1.0


def _infra(policy: str, outcome: str, reason: str = "infra_timeout", stratum: str = "pinned") -> dict:
    return {"policy_hash": policy, "stratum": stratum, "outcome": outcome, "top_reasons": [reason]}


def test_exclusions_by_class_are_counted_per_side_and_class_and_leave_the_rates_alone():
    extra = [
        _infra("cand", "FAIL"),
        _infra("cand", "FAIL", "infra_dns"),
        _infra("cand", "FAIL", "flaky_test"),  # whitelisted, but not infra: compared
        _infra("cand", "PASS"),  # infra but not a FAIL: compared
        _infra("base", "FAIL", stratum="unpinned"),
        {"policy_hash": "base", "stratum": "pinned", "outcome": None},  # no outcome: in no rate
    ]
    # classified() uses a whitelist whose glob infra_* maps to class "infra"
    cfg = AnalysisConfig(
        baseline_comparison={
            "exclude": [{"name": "infra_failures", "classes": ["whitelisted:infra*"], "outcomes": ["fail"]}]
        }
    )
    res = S.baseline_comparison(_simpson(extra), cfg)
    row = _row(res)
    assert (row["candidate_runs"], row["candidate_excluded"], row["candidate_outcome_null"]) == (104, 2, 0)
    assert (row["baseline_runs"], row["baseline_excluded"], row["baseline_outcome_null"]) == (102, 1, 1)
    for side in ("candidate", "baseline"):  # nothing dropped silently
        assert (
            row[f"{side}_runs"]
            == row[f"{side}_compared"] + row[f"{side}_excluded"] + row[f"{side}_outcome_null"]
        )
    assert (row["candidate_events"], row["candidate_compared"]) == (
        17,
        102,
    )  # + the flaky FAIL, + the infra PASS
    assert (row["baseline_events"], row["baseline_compared"]) == (25, 100)
    ex = res.exclusions.set_index("side")
    assert ex.loc["candidate", "runs"] == 2 and json.loads(ex.loc["candidate", "classes"]) == {
        "whitelisted:infra": 2
    }
    assert ex.loc["baseline", "runs"] == 1 and ex.loc["baseline", "exclusion"] == "infra_failures"

    no_exclusion = _row(
        S.baseline_comparison(_simpson(extra), AnalysisConfig(baseline_comparison={"exclude": []}))
    )
    assert (no_exclusion["candidate_excluded"], no_exclusion["candidate_events"]) == (0, 19)


def test_compared_runs_table_lists_every_run_of_both_sides_in_order():
    extra = [_infra("cand", "FAIL"), {"policy_hash": "base", "stratum": "pinned", "outcome": None}]
    df = _simpson(extra)
    df.loc[df.index[-1], "run_id"] = "=HYPERLINK(1)"  # hostile text reaches the CSV escaped
    section = S.baseline_section(
        df.sample(frac=1, random_state=3), AnalysisConfig()
    )  # input order is irrelevant
    runs = section.tables["compared_runs"]
    ComparedRuns.validate(runs)
    runs = S.object_columns(runs)  # its text columns are coded (a byte a run): the cells, as the CSV has them
    ComparedRuns.validate(runs)
    assert list(runs["side"].drop_duplicates()) == ["candidate", "baseline"]
    assert len(runs) == len(df[df["policy_hash"].isin(["cand", "base"])])
    assert runs["status"].value_counts().to_dict() == {"compared": 200, "excluded": 1, "outcome_null": 1}
    excluded = runs[runs["status"] == "excluded"].iloc[0]
    assert excluded["excluded_by"] == "whitelisted_infra_failures" and excluded["side"] == "candidate"
    for _, side in runs.groupby("side", sort=False):
        keys = list(zip(side["timestamp"], side["run_id"], strict=True))
        assert keys == sorted(keys)
    assert section.document["compared_runs"] == 200
    raw = S.table_csv_bytes(runs)
    assert b"'=HYPERLINK(1)" in raw and b"\n=HYPERLINK" not in raw
    assert raw == S.table_csv_bytes(S.baseline_section(df, AnalysisConfig()).tables["compared_runs"])
    back = pd.read_csv(io.BytesIO(raw))
    assert list(back.columns) == list(ComparedRuns.to_schema().columns)


def test_every_policy_is_compared_with_its_predecessor_and_the_decision_finds_its_pair():
    rows = _rows(SIMPSON) + [
        {"policy_hash": "newest", "stratum": "pinned", "outcome": "PASS"} for _ in range(3)
    ]
    res = S.baseline_comparison(classified(rows))
    pairs = sorted(set(zip(res.comparisons["policy_hash"], res.comparisons["baseline_hash"], strict=True)))
    assert pairs == [("cand", "base"), ("newest", "cand")]
    assert res.candidate == "cand"  # 3 of the last 50 runs is below the 10% share
    assert set(res.compared_runs["policy_hash"]) == {"cand", "base"}
    doc = S.baseline_section(classified(rows), AnalysisConfig()).document
    # no WARN outcomes here, so the WARN+FAIL rate is the FAIL rate and warns too
    assert [w["metric"] for w in S.paradox_warnings(doc, "cand", "base")] == ["fail_rate", "warn_fail_rate"]
    assert S.paradox_warnings(doc, "newest", "cand") == [] and S.paradox_warnings(None, "cand", "base") == []


def test_no_candidate_or_no_baseline():
    one = S.baseline_comparison(classified([{"policy_hash": "only"}] * 3))
    assert (one.candidate, one.baseline, one.status) == ("only", None, "no_baseline")
    assert one.comparisons.empty and one.compared_runs.empty
    assert list(one.compared_runs.columns) == list(ComparedRuns.to_schema().columns)
    none = S.baseline_comparison(classified([{"policy_hash": None}] * 3))
    assert none.status == "no_candidate"
    doc = S.baseline_section(classified([{"policy_hash": None}] * 3), AnalysisConfig()).document
    assert doc["warnings"] == [] and doc["comparisons"] == []


def test_the_warning_reaches_the_decision_document_report_and_ci_comment():
    cfg = AnalysisConfig(baseline_comparison={"metrics": ["fail_rate"]})
    doc = S.baseline_section(_simpson(), cfg).document
    assert [r["metric"] for r in doc["comparisons"]] == ["fail_rate"]
    plain = seed001_decision()
    decision = plain.model_copy(update={"policy_hash": "cand", "previous_policy_hash": "base"})
    decision = decision.with_warnings(S.paradox_warnings(doc, "cand", "base"))
    assert decision.verdict == plain.verdict and plain.warnings == []  # a warning never changes the verdict
    provenance = {k: "0" * 64 for k in reports.PROVENANCE_KEYS} | {"code_version": "test"}
    metrics = reports.rollout_metrics_document(decision, {"baseline_comparison": doc}, provenance, "1")
    schema = json.loads((ROOT / "gate_pipeline" / "schemas" / "rollout_metrics.schema.json").read_text())
    jsonschema.validate(metrics, schema)
    assert [(w["name"], w["metric"]) for w in metrics["decision"]["warnings"]] == [
        ("simpsons_paradox", "fail_rate")
    ]
    comment = reports.render_ci_comment(decision)
    assert "**Warning simpsons_paradox** (fail_rate)" in comment
    report = reports.render_report_md(decision, {"baseline_comparison": doc}, None)
    assert (
        report.count("**Warning simpsons_paradox**") == 2
    )  # under the verdict and in the comparison section
    assert "MOVER" not in report  # methods come from statistics.methods, absent here
    report = reports.render_report_md(
        decision, {"baseline_comparison": doc, "methods": S.methods_document(cfg)}, None
    )
    assert "MOVER (Zou & Donner 2008)" in report and "| fail_rate | 16/100 | 25/100 |" in report


def test_baseline_comparison_config_is_validated():
    with pytest.raises(ConfigError, match="baseline_comparison.metrics"):
        load_analysis_config(b"baseline_comparison: {metrics: [median]}\n", "a.yaml")
    with pytest.raises(ConfigError, match="exclusion names must be unique"):
        load_analysis_config(
            b"baseline_comparison:\n  exclude:\n    - {name: x, classes: [a]}\n    - {name: x, classes: [b]}\n",
            "a.yaml",
        )
    with pytest.raises(ConfigError, match="classes"):
        load_analysis_config(b"baseline_comparison: {exclude: [{name: x, classes: []}]}\n", "a.yaml")
    cfg = load_analysis_config((ROOT / "config" / "analysis.yaml").read_bytes(), "config/analysis.yaml")
    [rule] = cfg.baseline_comparison.exclude
    assert (rule.classes, rule.outcomes) == (["whitelisted:infra*"], ["FAIL"])


def test_table_csv_bytes_escapes_exactly_the_cells_csv_frame_escapes():
    """table_csv_bytes judges each text column by its distinct values (fast on 100k-row tables); the cells it
    escapes, and so the bytes, are those of escape.csv_frame applied cell by cell."""
    from gate_pipeline.lib.escape import csv_frame

    hostile = [
        "ok",
        "=SUM(A1)",
        "+1",
        "-2",
        "@x",
        "\tx",
        "a\x07b",
        "a\nb",
        "a\n=b",
        "'=x",
        None,
        "\u202etxt",
        "",
    ]
    rng = np.random.default_rng(5)
    for _ in range(30):
        df = pd.DataFrame(
            {
                "a": rng.choice(np.array(hostile, dtype=object), 12),
                "b": rng.choice(np.array(["p", "q", None], dtype=object), 12),
                "n": rng.integers(0, 5, 12),
            }
        )
        buf = io.StringIO()
        csv_frame(df).to_csv(buf, index=False, lineterminator="\n")
        assert S.table_csv_bytes(df) == buf.getvalue().encode()


def test_hostile_policy_hashes_and_strata_stay_text_in_the_warning_report_and_comment():
    evil = "<img src=x onerror=alert(1)> @org/admins [ok](http://evil)"
    counts = {(f"{evil}{p}" if p == "cand" else p, f"{s}{evil}"): v for (p, s), v in SIMPSON.items()}
    df = classified(_rows(counts))
    cfg = AnalysisConfig(baseline_comparison={"metrics": ["fail_rate"]})
    doc = S.baseline_section(df, cfg).document
    [warning] = doc["warnings"]
    assert warning["policy_hash"] == f"{evil}cand"  # the data keeps the raw value
    decision = seed001_decision().model_copy(
        update={"policy_hash": f"{evil}cand", "previous_policy_hash": "base"}
    )
    decision = decision.with_warnings(doc["warnings"])
    for text in (
        reports.render_ci_comment(decision),
        reports.render_report_md(decision, {"baseline_comparison": doc}, None),
    ):
        outside = text.replace(md_code(f"{evil}cand"), "")  # inside a code span it is literal text
        assert "<img" not in outside and "@org" not in outside and "](http" not in outside
        assert "&lt;img" in outside  # the warning's message names it, escaped


def test_text_tables_are_written_as_pandas_writes_them():
    """Tables of text cells are joined directly (lib/stats/document._plain_text_csv), byte for byte what
    pandas' writer gives, and any cell that needs quoting (comma, quote, line break) leaves it to pandas."""
    from gate_pipeline.lib.stats.document import _plain_text_csv

    def pandas_csv(df):
        buf = io.StringIO()
        df.to_csv(buf, index=False, lineterminator="\n")
        return buf.getvalue().encode()

    rng = np.random.default_rng(11)
    plain = np.array(["ok", "p1", "", None, np.nan, "a b", "x;y", "ünï", "'", "1.5"], dtype=object)
    special = np.array(["a,b", 'say "hi"', "a\rb", "a\nb"], dtype=object)
    for trial in range(40):
        cells = plain if trial % 2 else np.concatenate([plain, special[trial % 4 : trial % 4 + 1]])
        df = pd.DataFrame({name: rng.choice(cells, 25) for name in ("side", "run_id", "why")})
        assert S.table_csv_bytes(df) == pandas_csv(df)
        assert (_plain_text_csv(df) is None) == (trial % 2 == 0 and df.isin(special).any().any())
    assert _plain_text_csv(pd.DataFrame({"a": ["x", "y"], "b": ["1", None]})) == "a,b\nx,1\ny,\n"
    # Not text only, a single column (a lone empty cell is quoted), no rows: pandas writes them.
    for df in (
        pd.DataFrame({"a": ["x"], "n": [1]}),
        pd.DataFrame({"a": ["x", ""]}),
        pd.DataFrame({"a": pd.Series([], dtype=object), "b": pd.Series([], dtype=object)}),
    ):
        assert _plain_text_csv(df) is None
        assert S.table_csv_bytes(df) == pandas_csv(df)
