"""`gate-pipeline run` and `gate-pipeline backfill` as a user runs them (in-process, on tmp folders)."""

import shutil

import orjson
import pandas as pd

from gate_pipeline import cli
from gate_pipeline_tests.pipeline_helpers import SAMPLE, run_cli


def test_run_then_whitelist_backfill_reads_no_artifact(workspace, capsys):
    tmp_path, config = workspace
    out = tmp_path / "out"
    code = run_cli(
        "run", "--artifacts", str(SAMPLE), "--out", str(out), "--config", str(config), "--exit-code"
    )
    printed = capsys.readouterr().out
    metrics = orjson.loads((out / "rollout_metrics.json").read_bytes())
    assert code == cli.EXIT_CODES[metrics["decision"]["verdict"]]
    assert "runs:  74 discovered = 71 accepted + 2 quarantined" in printed
    # unknown_rate per policy_hash, from the statistics (b71c02: 34 runs with a rate; hand-checked in the CSV below)
    assert "  b71c02           34   0.0125   0.0491   0.1879" in printed
    assert f"Decision: {metrics['decision']['verdict']} for policy_hash b71c02" in printed
    # The statistics name their methods and the policy they are about: the sample's candidate b71c02 has 34
    # usable runs, fewer than the 40 a WARN threshold needs.
    statistics = metrics["statistics"]
    assert "Hyndman & Fan type 7" in statistics["methods"]["quantile"]
    assert statistics["spikes"]["policy_hash"] == statistics["warn_threshold"]["policy_hash"] == "b71c02"
    assert (statistics["warn_threshold"]["status"], statistics["warn_threshold"]["threshold"]) == (
        "insufficient_runs",
        None,
    )
    assert "### methods" in (out / "rollout_series_v1.md").read_text()
    for name in (
        "rollout_series.csv",
        "rollout_metrics.json",
        "rollout_series_v1.md",
        "ci_comment.md",
        "rollout_chart.png",
    ):
        assert str(out / name) in printed
    before = pd.read_csv(out / "rollout_series.csv", keep_default_na=False)
    assert before["unknown_classes"].str.contains("non_whitelisted:schema_drift").sum() > 0

    # An operator whitelists schema_drift, then backfills: classification changes, no JSON artifact is read.
    whitelist = orjson.loads((config / "unknown_whitelist.json").read_bytes())
    whitelist["entries"].append(
        {
            "reason": "schema_drift",
            "match": "exact",
            "class": "schema",
            "owner": "team:schemas",
            "note": "known drift",
        }
    )
    (config / "unknown_whitelist.json").write_bytes(orjson.dumps(whitelist, option=orjson.OPT_INDENT_2))
    code = run_cli("backfill", "--artifacts", str(SAMPLE), "--out", str(out), "--config", str(config))
    printed = capsys.readouterr().out
    assert code == 0
    after = pd.read_csv(out / "rollout_series.csv", keep_default_na=False)
    assert after["unknown_classes"].str.contains("non_whitelisted:schema_drift").sum() == 0
    assert after["unknown_classes"].str.contains("whitelisted:schema").sum() == (
        before["unknown_classes"].str.contains("non_whitelisted:schema_drift").sum()
    )
    assert "re-classifying 12 stored day(s) 2026-03-01..2026-03-12 (no artifact is re-read)" in printed
    assert "Decision before → after:" in printed
    assert "artifact files read during the backfill: 0" in printed
    new_metrics = orjson.loads((out / "rollout_metrics.json").read_bytes())
    assert new_metrics["provenance"]["whitelist_sha256"] != metrics["provenance"]["whitelist_sha256"]
    assert (
        new_metrics["provenance"]["artifact_manifest_sha256"]
        == metrics["provenance"]["artifact_manifest_sha256"]
    )


def test_run_without_date_folders_is_a_clear_error(workspace, capsys):
    tmp_path, config = workspace
    (tmp_path / "empty").mkdir()
    code = run_cli(
        "run", "--artifacts", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--config", str(config)
    )
    assert code == 2
    assert "no date folders (YYYY-MM-DD) under" in capsys.readouterr().err


def test_backfill_before_any_run_is_a_clear_error(workspace, capsys):
    tmp_path, config = workspace
    code = run_cli("backfill", "--out", str(tmp_path / "o"), "--config", str(config))
    assert code == 2
    assert "run `gate-pipeline run` first" in capsys.readouterr().err


def test_threshold_change_changes_the_decision_and_explains_why(workspace, capsys):
    tmp_path, config = workspace
    out = tmp_path / "out"
    assert run_cli("run", "--artifacts", str(SAMPLE), "--out", str(out), "--config", str(config)) == 0
    metrics = orjson.loads((out / "rollout_metrics.json").read_bytes())
    decision, before_sha = metrics["decision"], metrics["provenance"]["config_sha256"]
    fail_rule = next(r for r in decision["rules"] if r["name"] == "fail_rate")
    # The sample's FAIL rate interval straddles the 10% threshold, so the gate HOLDs and says so.
    assert decision["verdict"] == "HOLD"
    assert fail_rule["verdict"] == "HOLD" and "straddles the threshold" in fail_rule["why"]
    comment = (out / "ci_comment.md").read_text()
    assert comment.startswith("### Gate decision: HOLD") and "`fail_rate`" in comment

    # An operator tightens the threshold below the CI's lower bound: the same evidence now says NO_GO.
    constants = (config / "policy_constants.yaml").read_text()
    tightened = constants.replace("threshold: 0.10", f"threshold: {fail_rule['ci_low'] / 2:.4f}", 1)
    assert tightened != constants
    (config / "policy_constants.yaml").write_text(tightened)
    code = run_cli(
        "backfill", "--out", str(out), "--config", str(config), "--artifacts", str(SAMPLE), "--exit-code"
    )
    printed = capsys.readouterr().out
    assert code == cli.EXIT_CODES["NO_GO"]
    assert "Decision before → after: HOLD → NO_GO" in printed
    after = orjson.loads((out / "rollout_metrics.json").read_bytes())
    rule = next(r for r in after["decision"]["rules"] if r["name"] == "fail_rate")
    assert rule["verdict"] == "FAIL" and rule["observed"] == fail_rule["observed"]
    assert after["provenance"]["config_sha256"] != before_sha


def test_rerun_materializes_only_new_days(workspace, capsys):
    tmp_path, config = workspace
    artifacts, out = tmp_path / "artifacts", tmp_path / "out"
    shutil.copytree(SAMPLE, artifacts)
    assert run_cli("run", "--artifacts", str(artifacts), "--out", str(out), "--config", str(config)) == 0
    assert "materializing all 12 day(s) 2026-03-01..2026-03-12" in capsys.readouterr().out

    assert run_cli("run", "--artifacts", str(artifacts), "--out", str(out), "--config", str(config)) == 0
    assert "nothing new under" in capsys.readouterr().out

    gate = {
        "run_id": "r-late-1",
        "timestamp": "2026-03-13T08:00:00Z",
        "policy_hash": "b71c02",
        "outcome": "PASS",
        "unknown_rate": 0.01,
        "top_reasons": [],
    }
    (artifacts / "2026-03-13" / "r-late-1").mkdir(parents=True)
    (artifacts / "2026-03-13" / "r-late-1" / "gate_result.json").write_bytes(orjson.dumps(gate))
    assert run_cli("run", "--artifacts", str(artifacts), "--out", str(out), "--config", str(config)) == 0
    printed = capsys.readouterr().out
    assert "materializing 1 new or changed day(s) 2026-03-13..2026-03-13" in printed
    assert "artifact files read: 1\n" in printed  # only the new file was read
    assert "runs:  75 discovered = 72 accepted" in printed
    series = pd.read_csv(out / "rollout_series.csv")
    assert len(series) == 72 and series["run_id"].iloc[-1] == "r-late-1"
