"""Day partitions exist only where there is data, and each day's materialization carries that day's numbers."""

import shutil
from collections import Counter

import dagster as dg
import orjson
import pandas as pd
import pytest

from gate_pipeline.dagster_helpers.partitions import (
    DAYS_NAME,
    key_range,
    ordered_additions,
    partition_requests,
    register_days,
)
from gate_pipeline.definitions import build_definitions
from gate_pipeline.lib.discovery import list_date_partitions
from gate_pipeline_tests.pipeline_helpers import SAMPLE, run_cli

DAILY = ["raw_runs", "quarantined_files", "run_table", "classified_runs"]
SAMPLE_DAYS = [f"2026-03-{d:02d}" for d in range(1, 13)]


def test_ordered_additions_keep_the_days_in_date_order():
    assert ordered_additions([], ["2026-03-02", "2026-03-01"]) == ([], ["2026-03-01", "2026-03-02"])
    assert ordered_additions(["2026-03-01"], ["2026-03-01", "2026-03-03"]) == ([], ["2026-03-03"])
    assert ordered_additions(["2026-03-01", "2026-03-02"], ["2026-03-01"]) == ([], [])
    # A late older day: the newer keys move behind it.
    assert ordered_additions(["2026-03-01", "2026-03-03", "2026-03-04"], ["2026-03-02"]) == (
        ["2026-03-03", "2026-03-04"],
        ["2026-03-02", "2026-03-03", "2026-03-04"],
    )
    [delete, add] = partition_requests(["2026-03-01", "2026-03-03"], ["2026-03-02", "2026-03-03"])
    assert isinstance(delete, dg.DeleteDynamicPartitionsRequest) and delete.partition_keys == ["2026-03-03"]
    assert isinstance(add, dg.AddDynamicPartitionsRequest) and add.partition_keys == [
        "2026-03-02",
        "2026-03-03",
    ]
    assert partition_requests(["2026-03-01"], ["2026-03-01"]) == []


def test_register_days_keeps_history_and_order():
    with dg.instance_for_test() as instance:
        assert register_days(instance, ["2026-03-01", "2026-03-03"]) == ["2026-03-01", "2026-03-03"]
        instance.report_runless_asset_event(dg.AssetMaterialization("run_table", partition="2026-03-03"))
        assert register_days(instance, ["2026-03-02", "2026-03-03"]) == ["2026-03-02"]
        assert instance.get_dynamic_partitions(DAYS_NAME) == ["2026-03-01", "2026-03-02", "2026-03-03"]
        # Re-adding a moved key keeps its materialization (events are keyed by the date string).
        assert instance.get_materialized_partitions(dg.AssetKey("run_table")) == {"2026-03-03"}
        assert key_range(instance, ["2026-03-03", "2026-03-02"]) == ("2026-03-02", "2026-03-03")


def _records(instance, asset: str, day: str | None = None) -> list[dg.EventLogRecord]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(dg.AssetKey(asset), asset_partitions=[day] if day else None), limit=1000
    ).records
    return list(records)


def _metadata(record: dg.EventLogRecord) -> dict:
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


@pytest.fixture
def sample_run(workspace, capsys):
    """`gate-pipeline run` on a copy of the sample, with its own DAGSTER_HOME; (tmp_path, artifacts, out)."""
    tmp_path, config = workspace
    artifacts, out = tmp_path / "artifacts", tmp_path / "out"
    shutil.copytree(SAMPLE, artifacts)
    assert run_cli("run", "--artifacts", str(artifacts), "--out", str(out), "--config", str(config)) == 0
    capsys.readouterr()
    return tmp_path, artifacts, out, config


def test_run_registers_exactly_the_sample_days_with_each_days_own_counts(sample_run):
    tmp_path, artifacts, out, config = sample_run
    data = out / "_data"
    assert list_date_partitions(SAMPLE) == SAMPLE_DAYS
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions(DAYS_NAME) == SAMPLE_DAYS
        for asset in DAILY:
            records = _records(instance, asset)
            # One materialization per day and asset: no duplicate events, no day outside the sample.
            assert Counter(r.partition_key for r in records) == dict.fromkeys(SAMPLE_DAYS, 1), asset
        march_8 = {asset: _metadata(_records(instance, asset, "2026-03-08")[0]) for asset in DAILY}
        per_day_table = {d: _metadata(_records(instance, "run_table", d)[0]) for d in SAMPLE_DAYS}
        per_day_rows = {
            asset: {d: _metadata(_records(instance, asset, d)[0])["dagster/row_count"] for d in SAMPLE_DAYS}
            for asset in DAILY
        }

    # 2026-03-08 holds 7 run folders; r0000045-retry reuses r0000045's run_id: 6 accepted, 1 duplicate.
    assert len(list((SAMPLE / "2026-03-08").iterdir())) == 7
    table = march_8["run_table"]
    assert table["dagster/row_count"] == table["runs_accepted"] == 6
    assert (table["runs_in"], table["duplicates_quarantined"], table["runs_failed"]) == (7, 1, 0)
    assert table["run_total_runs_accepted"] == 71  # the run's totals under their own keys
    raw = march_8["raw_runs"]
    assert raw["runs_discovered"] == raw["runs_with_gate_result"] == raw["dagster/row_count"] == 7
    on_disk = Counter(f.name.removesuffix(".json") for f in (SAMPLE / "2026-03-08").rglob("*.json"))
    assert raw["files_read_by_kind"] == dict(on_disk) == {"drift_report": 5, "gate_result": 7, "metrics": 4}
    assert raw["run_total_runs_discovered"] == 74
    assert march_8["classified_runs"]["dagster/row_count"] == 6
    assert march_8["quarantined_files"]["dagster/row_count"] == 0

    # Every day's row count is that day's stored table, and the days add up to the totals.
    for asset in DAILY:
        stored = {d: len(pd.read_parquet(data / asset / f"{d}.parquet")) for d in SAMPLE_DAYS}
        assert per_day_rows[asset] == stored, asset
    assert sum(per_day_rows["run_table"].values()) == 71
    assert sum(per_day_rows["quarantined_files"].values()) == 7
    quarantine_days = {d for d, n in per_day_rows["quarantined_files"].items() if n}
    assert quarantine_days and quarantine_days != set(SAMPLE_DAYS)
    # The counts stored beside the tables (read by the series) are what each day's event shows.
    for day in SAMPLE_DAYS:
        stored = orjson.loads((data / "table_counts" / f"{day}.json").read_bytes())
        assert {k: per_day_table[day][k] for k in stored} == stored, day

    # Declarative automation after the run: no daily asset is requested (a missing or a newly added
    # partition is the artifact sensor's job, not eager()'s), nor the series for days it has read.
    defs = build_definitions(_settings(artifacts, out, config))
    with dg.DagsterInstance.get() as instance:
        register_days(instance, ["2026-03-13"])  # registered, not yet materialized
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        requested = {
            key.to_user_string(): result.get_num_requested(key)
            for key in defs.resolve_asset_graph().materializable_asset_keys
        }
    assert "classified_runs" in requested and not any(requested.values()), requested


@pytest.mark.slow
def test_days_follow_the_folders_and_backfill_builds_only_real_days(sample_run):
    tmp_path, artifacts, out, config = sample_run
    # A new day arrives and one disappears: the next run adds and drops exactly those partitions.
    shutil.copytree(artifacts / "2026-03-12", artifacts / "2026-03-13")
    shutil.rmtree(artifacts / "2026-03-02")
    (artifacts / "2026-03-14").mkdir()  # an empty folder is no day
    assert run_cli("run", "--artifacts", str(artifacts), "--out", str(out), "--config", str(config)) == 0
    days = [d for d in SAMPLE_DAYS if d != "2026-03-02"] + ["2026-03-13"]
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions(DAYS_NAME) == days
        assert [r.partition_key for r in _records(instance, "run_table", "2026-03-13")] == ["2026-03-13"]
        before = max(r.storage_id for r in _records(instance, "classified_runs"))

    # The whitelist backfill re-classifies exactly the registered days, one event each.
    assert run_cli("backfill", "--artifacts", str(artifacts), "--out", str(out), "--config", str(config)) == 0
    with dg.DagsterInstance.get() as instance:
        after = [r for r in _records(instance, "classified_runs") if r.storage_id > before]
        assert sorted(r.partition_key for r in after) == days
        # A backfill over "all" partitions, as the UI's dialog offers, targets the same days.
        defs = build_definitions(_settings(artifacts, out, config))
        graph = defs.resolve_asset_graph()
        partitions = graph.get(dg.AssetKey("classified_runs")).partitions_def
        assert partitions.get_partition_keys(dynamic_partitions_store=instance) == days


def _settings(artifacts, out, config):
    from gate_pipeline.settings import Settings

    return Settings(
        artifacts_url=str(artifacts),
        outputs_url=str(out),
        data_url=str(out / "_data"),
        config_url=str(config),
    )


def test_multi_run_backfill_policy_chunks_the_registered_days():
    """ingest.max_days_per_run with dynamic partitions: runs of at most N consecutive registered days."""
    from dagster._core.definitions.automation_tick_evaluation_context import (
        _build_run_requests_with_backfill_policy,  # the chunking asset backfills use (private API)
    )

    from gate_pipeline.dagster_helpers.partitions import DAYS

    with dg.instance_for_test() as instance:
        register_days(instance, SAMPLE_DAYS)
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            requests = _build_run_requests_with_backfill_policy(
                [dg.AssetKey("raw_runs")],
                [],
                dg.BackfillPolicy.multi_run(5),
                frozenset(SAMPLE_DAYS),
                DAYS,
                tags={},
                dynamic_partitions_store=instance,
            )
    ranges = [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in requests
    ]
    assert ranges == [
        ("2026-03-01", "2026-03-05"),
        ("2026-03-06", "2026-03-10"),
        ("2026-03-11", "2026-03-12"),
    ]


@pytest.mark.slow
def test_instance_from_calendar_partitions_migrates(sample_run, capsys):
    """An instance built before dynamic partitions: materializations keyed by the date strings, no key
    registered. The next `gate-pipeline run` (nothing new to build) registers the days; history stays."""
    _tmp, artifacts, out, config = sample_run
    with dg.DagsterInstance.get() as instance:
        events_before = {a: len(_records(instance, a)) for a in DAILY}
        for day in instance.get_dynamic_partitions(DAYS_NAME):
            instance.delete_dynamic_partition(DAYS_NAME, day)
        assert instance.get_dynamic_partitions(DAYS_NAME) == []
    assert run_cli("run", "--artifacts", str(artifacts), "--out", str(out), "--config", str(config)) == 0
    assert "nothing new" in capsys.readouterr().out
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions(DAYS_NAME) == SAMPLE_DAYS
        assert {a: len(_records(instance, a)) for a in DAILY} == events_before  # nothing re-run, nothing lost
        for asset in DAILY:
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(SAMPLE_DAYS), asset
        assert _metadata(_records(instance, "run_table", "2026-03-08")[0])["runs_accepted"] == 6
