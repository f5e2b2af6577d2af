"""In-process Dagster: a candidate policy that looks better pooled but is worse in every stratum (Simpson's
paradox) gets the named warning on gate_decision's page, in rollout_metrics.json and in the CI comment; the
compared runs and the excluded ones are in tables/compared_runs.csv."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from gate_pipeline_tests.pipeline_helpers import materialize_all, settings_for

# (policy, day, stratum): (runs, FAILs). Baseline 12/50 = 24% FAIL, candidate 8/50 = 16%: pooled -8 pp. Per
# stratum the candidate is worse (pinned 10% vs 0%, unpinned 40% vs 30%); at the baseline's mix (20% pinned)
# it is 0.2 * 10% + 0.8 * 40% = 34% against 24%: +10 pp.
RUNS = {
    ("base", "2026-03-01", "pinned"): (10, 0),
    ("base", "2026-03-01", "unpinned"): (40, 12),
    ("cand", "2026-03-02", "pinned"): (40, 4),
    ("cand", "2026-03-02", "unpinned"): (10, 4),
}


def _write_run(root: Path, day: str, run_id: str, ts: str, policy: str, stratum: str, outcome: str, reasons):
    folder = root / day / run_id
    folder.mkdir(parents=True)
    gate = {
        "run_id": run_id,
        "timestamp": ts,
        "policy_hash": policy,
        "outcome": outcome,
        "unknown_rate": 0.05,
        "top_reasons": reasons,
    }
    drift = {"run_id": run_id, "policy_hash": policy, "schema_version": "1", "policy_state": stratum}
    (folder / "gate_result.json").write_text(json.dumps(gate))
    (folder / "drift_report.json").write_text(json.dumps(drift))


def simpson_artifacts(root: Path) -> None:
    i = 0
    for (policy, day, stratum), (n, fails) in RUNS.items():
        for k in range(n):
            ts = (pd.Timestamp(f"{day}T08:00:00Z") + pd.Timedelta(minutes=5 * i)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
            _write_run(root, day, f"r{i:04d}", ts, policy, stratum, "FAIL" if k < fails else "PASS", [])
            i += 1
    # A FAIL with a whitelisted infrastructure reason: left out of the comparison (config/analysis.yaml).
    _write_run(
        root, "2026-03-02", "r9999", "2026-03-02T23:00:00Z", "cand", "pinned", "FAIL", ["infra_timeout"]
    )


@pytest.mark.slow  # a whole materialization, like test_decision_metadata's
def test_simpsons_paradox_warning_reaches_gate_decision_metadata_and_the_outputs(tmp_path):
    artifacts = tmp_path / "artifacts"
    simpson_artifacts(artifacts)
    settings = settings_for(artifacts, tmp_path)
    with dg.instance_for_test() as instance:
        result = materialize_all(settings, "2026-03-01", "2026-03-02", instance)
        assert result.success
        events = {
            m.asset_key.to_user_string(): m.materialization for m in result.get_asset_materialization_events()
        }
    meta = events["gate_decision"].metadata
    warnings = meta["warnings"].value
    assert [(w["name"], w["metric"], w["policy_hash"], w["baseline_hash"]) for w in warnings] == [
        ("simpsons_paradox", "fail_rate", "cand", "base"),
        ("simpsons_paradox", "warn_fail_rate", "cand", "base"),
    ]
    assert round(warnings[0]["pooled_diff"], 6) == -0.08 and round(warnings[0]["standardized_diff"], 6) == 0.1
    assert meta["policy_hash"].value == "cand"
    assert events["baseline_comparison"].metadata["simpsons_paradox_warnings"].value == 2
    assert events["baseline_comparison"].metadata["excluded_runs[candidate]"].value == 1

    out = tmp_path / "outputs"
    metrics = json.loads((out / "rollout_metrics.json").read_text())
    assert [w["name"] for w in metrics["decision"]["warnings"]] == ["simpsons_paradox"] * 2
    assert metrics["statistics"]["baseline_comparison"]["candidate"] == "cand"
    assert "**Warning simpsons_paradox** (fail_rate)" in (out / "ci_comment.md").read_text()
    compared = pd.read_csv(out / "tables" / "compared_runs.csv")
    assert len(compared) == 101 and compared["status"].value_counts().to_dict() == {
        "compared": 100,
        "excluded": 1,
    }
    assert compared.loc[compared["status"] == "excluded", "run_id"].tolist() == ["r9999"]
