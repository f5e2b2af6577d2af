"""The whole graph materialized in-process: counts, outputs, determinism."""

import shutil

import pandas as pd
import pytest
import yaml

from gate_pipeline.lib import daily
from gate_pipeline.synthetic import CorpusSpec, generate
from gate_pipeline_tests.pipeline_helpers import (
    CONFIG,
    OUTPUTS,
    SAMPLE,
    date_range,
    materialize_all,
    settings_for,
)


def _metadata(result, asset):
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


def test_sample_round_trip_counts_add_up(tmp_path):
    settings = settings_for(SAMPLE, tmp_path)
    result = materialize_all(settings, *date_range(SAMPLE))
    assert result.success
    raw, table, series_meta = (_metadata(result, a) for a in ("raw_runs", "run_table", "rollout_series"))
    # Sample = 72 generated runs + an aborted run (no gate_result) + a retry reusing a run_id; 5 bad files, 1 log.
    assert raw["runs_discovered"] == 74
    assert raw["runs_quarantined"] == 2  # the aborted run and the run whose gate_result is not JSON
    assert raw["runs_with_gate_result"] == 72
    assert raw["files_quarantined"] == 5
    assert raw["files_ignored"] == 1
    assert raw["files_discovered"] == raw["files_accepted"] + raw["files_quarantined"] + raw["files_ignored"]
    assert table["duplicates_quarantined"] == 1
    assert table["runs_accepted"] == 71
    assert (
        raw["runs_discovered"]
        == table["runs_accepted"] + raw["runs_quarantined"] + table["duplicates_quarantined"]
    )
    checks = result.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks if c.check_name == "run_table_schema"] == [
        ("run_table_schema", True)
    ]
    series = pd.read_csv(tmp_path / "outputs" / "rollout_series.csv")
    assert len(series) == series_meta["dagster/row_count"] == 71
    assert series["run_id"].is_unique
    assert list(series.columns[:8]) == [
        "run_id",
        "timestamp",
        "date",
        "policy_hash",
        "outcome",
        "unknown_rate",
        "top_reasons",
        "stratum",
    ]
    assert sorted(series["policy_hash"].dropna().unique()) == ["a6f53e", "b71c02"]
    assert set(series["stratum"]) == {"pinned", "unpinned", "unknown"}
    # Candidate b71c02 against baseline a6f53e: every run of both in tables/compared_runs.csv; the one
    # whitelisted-infra FAIL of each side is excluded (config/analysis.yaml), so b71c02's 5 FAILs of 35
    # (the decision's fail_rate) are 4 of 34 compared; the pooled and standardized differences agree.
    compared = pd.read_csv(tmp_path / "outputs" / "tables" / "compared_runs.csv")
    per_policy = series["policy_hash"].value_counts()
    assert len(compared) == per_policy["b71c02"] + per_policy["a6f53e"] == 69
    assert compared.groupby(["side", "status"]).size().to_dict() == {
        ("baseline", "compared"): 33,
        ("baseline", "excluded"): 1,
        ("candidate", "compared"): 34,
        ("candidate", "excluded"): 1,
    }
    comparison = pd.read_csv(tmp_path / "outputs" / "tables" / "baseline_comparison.csv").set_index("metric")
    fails = series[series["policy_hash"] == "b71c02"]["outcome"].str.upper().eq("FAIL").sum()
    assert fails == 5 and comparison.loc[
        "fail_rate", ["candidate_events", "candidate_compared"]
    ].tolist() == [4, 34]
    assert not comparison["simpsons_paradox"].any()
    assert _metadata(result, "gate_decision")["warnings"] == []
    quarantine = pd.concat(
        pd.read_parquet(p) for p in (tmp_path / "data" / "quarantined_files").glob("*.parquet")
    )
    assert set(quarantine["reason"]) >= {
        "not_json",
        "not_utf8",
        "not_object",
        "empty",
        "too_large",
        "missing_gate_result",
    }


@pytest.mark.slow
def test_outputs_are_byte_identical_whatever_the_file_creation_order(tmp_path):
    spec = CorpusSpec(runs=120, days=5, bad_fraction=0.05, duplicates=2, seed=11)
    outputs = []
    for order_seed in (1, 2):
        root = tmp_path / f"corpus{order_seed}" / "artifacts"
        generate(root, spec, order_seed=order_seed)
        result = materialize_all(settings_for(root, tmp_path / f"run{order_seed}"), *date_range(root))
        assert result.success
        outputs.append(tmp_path / f"run{order_seed}" / "outputs")
    names = sorted(str(p.relative_to(outputs[0])) for p in outputs[0].rglob("*") if p.is_file())
    assert set(OUTPUTS) <= set(names)
    assert names == sorted(str(p.relative_to(outputs[1])) for p in outputs[1].rglob("*") if p.is_file())
    for name in names:
        assert (outputs[0] / name).read_bytes() == (outputs[1] / name).read_bytes(), name


@pytest.mark.slow
def test_days_spread_over_worker_processes_give_the_same_outputs(tmp_path):
    root = tmp_path / "artifacts"
    generate(root, CorpusSpec(runs=120, days=6, bad_fraction=0.05, duplicates=2, seed=11))
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    pipeline = yaml.safe_load((config / "pipeline.yaml").read_text())
    pipeline["ingest"].update(workers=2, parallel_min_days=2)
    (config / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    serial = materialize_all(settings_for(root, tmp_path / "serial"), *date_range(root))
    parallel = materialize_all(settings_for(root, tmp_path / "parallel", config), *date_range(root))
    assert serial.success and parallel.success
    serial_raw, parallel_raw = _metadata(serial, "raw_runs"), _metadata(parallel, "raw_runs")
    assert (serial_raw.pop("processes"), parallel_raw.pop("processes")) == (1, 2)
    assert serial_raw == parallel_raw
    for asset in ("run_table", "classified_runs"):
        assert _metadata(serial, asset) == _metadata(parallel, asset), asset
    for folder in ("outputs", "data"):
        a, b = tmp_path / "serial" / folder, tmp_path / "parallel" / folder
        files = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
        assert files == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
        differing = [f for f in files if (a / f).read_bytes() != (b / f).read_bytes()]
        assert differing == [], differing


def test_a_failed_run_table_check_stops_classification_and_everything_downstream(tmp_path, monkeypatch):
    real = daily.normalize_day
    monkeypatch.setattr(
        daily, "normalize_day", lambda raw, *a: (real(raw, *a)[0].assign(outcome="MAYBE"), real(raw, *a)[1])
    )
    result = materialize_all(settings_for(SAMPLE, tmp_path), *date_range(SAMPLE))
    assert not result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["run_table_schema"].passed is False
    assert checks["run_table_schema"].metadata["failure_count"].value > 0
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"raw_runs", "run_table"} <= materialized
    assert not materialized & {"classified_runs", "rollout_series", "gate_decision"}
    assert not (tmp_path / "data" / "classified_runs").exists()
