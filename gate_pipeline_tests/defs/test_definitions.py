"""Definitions load both ways (dg folder load, build_definitions) and keep their shape: a syrupy snapshot
of asset keys with group, owners and kinds, check keys, jobs and sensors.

After an intended change to the graph: `pytest gate_pipeline_tests/defs/test_definitions.py --snapshot-update`
and review the diff of __snapshots__/test_definitions.ambr.
"""

import shutil

import dagster as dg

from gate_pipeline.definitions import build_definitions, defs
from gate_pipeline.settings import Settings
from gate_pipeline_tests.pipeline_helpers import CONFIG, settings_for

# Labels of the documents the rules came from: fine in docs that cite them, not in text the UI shows.
INTERNAL_LABELS = ("seed 0", "zielgröße")


def summary(definitions: dg.Definitions) -> dict:
    graph = definitions.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kind": "materializable" if node.is_materializable else "observable source",
            "owners": list(node.owners),
            "kinds": sorted(node.kinds),
            # Daily assets: one dynamic partition per date folder with data ("days"), never a calendar range.
            "partitioned": getattr(node.partitions_def, "name", None) or node.partitions_def is not None,
            "has_description": bool(node.description),
        }
    return {
        "assets": assets,
        "checks": sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys),
        "jobs": sorted(job.name for job in definitions.jobs or []),
        "sensors": sorted(sensor.name for sensor in definitions.sensors or []),
    }


def test_definitions_snapshot(tmp_path, snapshot):
    assert summary(build_definitions(settings_for(tmp_path / "artifacts", tmp_path))) == snapshot


def test_folder_load_equals_build_definitions(monkeypatch):
    """`dg`/`dagster dev` load gate_pipeline/defs/ with load_from_defs_folder; the CLI merges the same
    modules' build(settings). Both give the same graph."""
    for var in ("CI_ARTIFACT_PATH", "GATE_PIPELINE_DATA", "GATE_PIPELINE_OUT", "GATE_PIPELINE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    assert summary(defs()) == summary(build_definitions(Settings.from_env()))


def test_every_asset_has_an_owner_and_a_plain_description(tmp_path):
    graph = build_definitions(settings_for(tmp_path / "artifacts", tmp_path)).resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners == ["team:data-platform"], key
        description = node.description or ""
        assert description, f"{key} has no description"
        # Product words, not the labels of the documents the rules came from.
        for internal in INTERNAL_LABELS:
            assert internal not in description.lower(), f"{key}: {internal!r} in {description!r}"


def test_check_descriptions_speak_of_the_product(tmp_path):
    """Rule checks take their description from config/policy_constants.yaml: shown in the UI as well."""
    definitions = build_definitions(settings_for(tmp_path / "artifacts", tmp_path))
    specs = [spec for asset in definitions.assets or [] for spec in getattr(asset, "check_specs", [])]
    assert len(specs) >= 10
    for spec in specs:
        assert spec.description, spec.name
        for internal in INTERNAL_LABELS:
            assert internal not in spec.description.lower(), f"{spec.name}: {spec.description!r}"


def test_partitioned_assets_backfill_in_one_run(tmp_path):
    defs_ = build_definitions(settings_for(tmp_path / "artifacts", tmp_path))
    graph = defs_.resolve_asset_graph()
    for name in ("raw_runs", "quarantined_files", "run_table", "classified_runs"):
        node = graph.get(dg.AssetKey(name))
        assert node.partitions_def is not None
        assert node.backfill_policy is not None and node.backfill_policy.max_partitions_per_run is None


def test_max_days_per_run_splits_backfills_into_runs_of_that_many_days(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    pipeline_yaml = config / "pipeline.yaml"
    pipeline_yaml.write_text(pipeline_yaml.read_text().replace("max_days_per_run: 0", "max_days_per_run: 7"))
    graph = build_definitions(settings_for(tmp_path / "artifacts", tmp_path, config)).resolve_asset_graph()
    for name in ("raw_runs", "quarantined_files", "run_table", "classified_runs"):
        assert graph.get(dg.AssetKey(name)).backfill_policy.max_partitions_per_run == 7, name
