"""Definitions load and the asset graph keeps its shape (keys, groups, checks)."""

from gate_pipeline.definitions import build_definitions
from gate_pipeline_tests.pipeline_helpers import settings_for

EXPECTED_GROUPS = {
    "raw_runs": "ingest",
    "quarantined_files": "ingest",
    "run_table": "validated",
    "rollout_series": "analysis",
}
EXPECTED_CHECKS = {("run_table", "run_table_schema")}


def test_asset_graph_snapshot(tmp_path):
    defs = build_definitions(settings_for(tmp_path / "artifacts", tmp_path))
    graph = defs.resolve_asset_graph()
    groups = {
        key.to_user_string(): graph.get(key).group_name
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable
    }
    assert groups == EXPECTED_GROUPS
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
    for name in ("raw_runs", "quarantined_files", "run_table"):
        node = graph.get(next(k for k in graph.get_all_asset_keys() if k.to_user_string() == name))
        assert node.partitions_def is not None
        assert node.backfill_policy is not None and node.backfill_policy.max_partitions_per_run is None
