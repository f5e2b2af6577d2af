"""Dagster's own scale-out: Postgres instance storage, every byte on S3, every step in its own process.

The multiprocess executor starts each step in a fresh process that re-loads the code from the environment,
so settings or data held only in the launching process would fail or diverge here. The processes share
this machine's disk, so the test also checks that what steps hand each other (per-day tables, the series
cache, the statistics) is on S3. The outputs must equal a local in-process run byte for byte.
"""

import os

import dagster as dg
import pytest

from gate_pipeline.dagster_helpers.partitions import register_days
from gate_pipeline.definitions import ALL_ASSETS_JOB, build_definitions
from gate_pipeline.lib.discovery import list_date_partitions
from gate_pipeline.settings import Settings
from gate_pipeline_tests.pipeline_helpers import CONFIG, SAMPLE, assert_s3_outputs_equal_local_run, date_range
from gate_pipeline_tests.postgres_server import postgres_instance_yaml
from gate_pipeline_tests.s3_server import upload_tree

pytestmark = [pytest.mark.s3, pytest.mark.postgres, pytest.mark.slow]


def all_assets_job() -> dg.JobDefinition:
    """Rebuilt in every step process from the environment, as a deployed code location is."""
    return build_definitions(Settings.from_env()).resolve_job_def(ALL_ASSETS_JOB)


def test_multiprocess_run_on_postgres_and_s3_matches_local_run(
    s3_bucket, postgres_url, tmp_path, monkeypatch, capsys
):
    upload_tree(SAMPLE, s3_bucket.url("ci/artifacts"), s3_bucket.storage_options)
    upload_tree(CONFIG, s3_bucket.url("ci/config"), s3_bucket.storage_options)
    for key, value in {
        "CI_ARTIFACT_PATH": s3_bucket.url("ci/artifacts"),
        "GATE_PIPELINE_OUT": s3_bucket.url("ci/reports"),
        "GATE_PIPELINE_DATA": s3_bucket.url("ci/data"),
        "GATE_PIPELINE_CONFIG": s3_bucket.url("ci/config"),
    }.items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(postgres_instance_yaml(postgres_url))
    first, last = date_range(SAMPLE)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        register_days(instance, list_date_partitions(SAMPLE))  # as `gate-pipeline run` does
        result = dg.execute_job(
            dg.reconstructable(all_assets_job),
            instance=instance,
            tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
            run_config={"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}},
        )
        assert result.success
        run_id = result.run_id
        steps = {stat.step_key for stat in instance.get_run_step_stats(run_id)}
        assert {"daily_tables", "rollout_series", "rollout_statistics", "decision_outputs"} <= steps
        # Each step ran in a process of its own, none in the launching one.
        pids = {
            record.dagster_event.step_key: record.dagster_event.pid
            for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
        }
        assert os.getpid() not in pids.values()
        assert len(set(pids.values())) == len(pids) >= 4

    # A second instance object reads the run and the decision back from Postgres, not from this process.
    with dg.DagsterInstance.from_config(str(home)) as reader:
        assert reader.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        decision = reader.get_latest_materialization_event(dg.AssetKey("gate_decision"))
        assert decision is not None and decision.run_id == run_id
    assert not list(home.glob("**/*.db")), "no SQLite storage next to the Postgres instance"
    handed_over = {path.name for path in s3_bucket.upath("ci/data").iterdir()}
    assert {"raw_runs", "run_table", "classified_runs", "rollout_series_cache", "statistics"} <= handed_over
    days = sorted(path.name for path in SAMPLE.iterdir() if path.is_dir())
    assert sorted(p.name for p in s3_bucket.upath("ci/data/classified_runs").iterdir()) == [
        f"{day}.parquet" for day in days
    ]

    assert_s3_outputs_equal_local_run(s3_bucket, tmp_path, monkeypatch, capsys, "ci/reports")
