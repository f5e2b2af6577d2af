"""Definitions load and the asset graph keeps its shape (keys, groups, checks)."""

from gate_pipeline.definitions import build_definitions
from gate_pipeline_tests.pipeline_helpers import settings_for

EXPECTED_GROUPS = {
    "raw_runs": "ingest",
    "quarantined_files": "ingest",
    "run_table": "validated",
    "classified_runs": "analysis",
    "rollout_series": "analysis",
    "unknown_rate_summary": "analysis",
    "unknown_class_frequencies": "analysis",
    "unknown_spikes": "analysis",
    "unknown_risk_measures": "analysis",
    "stratum_metrics": "analysis",
    "warn_threshold_recommendation": "analysis",
    "gate_decision": "decision",
    "rollout_report": "decision",
}
EXPECTED_SOURCES = {"unknown_whitelist", "analysis_config", "decision_config"}
EXPECTED_CHECKS = {
    ("run_table", "run_table_schema"),
    ("classified_runs", "classified_runs_schema"),
    ("unknown_class_frequencies", "whitelist_entries_current"),
    # One check per rule of config/policy_constants.yaml's current phase (observe) and its shared rules.
    ("gate_decision", "rule_fail_rate"),
    ("gate_decision", "rule_min_evidence"),
    ("gate_decision", "rule_overrides_rate"),
    ("gate_decision", "rule_rollback_fail_rate"),
    ("gate_decision", "rule_unknown_rate_median"),
    ("gate_decision", "rule_unknown_rate_tail"),
    ("gate_decision", "rule_warn_fail_rate_per_stratum"),
}


def test_asset_graph_snapshot(tmp_path):
    defs = build_definitions(settings_for(tmp_path / "artifacts", tmp_path))
    graph = defs.resolve_asset_graph()
    groups = {
        key.to_user_string(): graph.get(key).group_name
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable
    }
    assert groups == EXPECTED_GROUPS
    sources = {key.to_user_string() for key in graph.get_all_asset_keys() if graph.get(key).is_observable}
    assert sources == EXPECTED_SOURCES
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks == EXPECTED_CHECKS
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_materializable:
            assert node.description, f"{key} has no description"
            assert node.owners == ["team:data-platform"]


def test_partitioned_assets_backfill_in_one_run(tmp_path):
    defs = build_definitions(settings_for(tmp_path / "artifacts", tmp_path))
    graph = defs.resolve_asset_graph()
    for name in ("raw_runs", "quarantined_files", "run_table", "classified_runs"):
        node = graph.get(next(k for k in graph.get_all_asset_keys() if k.to_user_string() == name))
        assert node.partitions_def is not None
        assert node.backfill_policy is not None and node.backfill_policy.max_partitions_per_run is None
