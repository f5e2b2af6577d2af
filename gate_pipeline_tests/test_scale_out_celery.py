"""Dagster's celery executor across worker processes: a real Redis broker, two celery workers, the instance on
PostgreSQL and every byte on the S3 server. Each step is a celery task that a worker picks up and runs from the
code pointer and the environment alone, as it would on another machine; the outputs must equal a local run.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster_celery import celery_executor

from gate_pipeline.dagster_helpers.partitions import register_days
from gate_pipeline.definitions import ALL_ASSETS_JOB, build_definitions
from gate_pipeline.lib.discovery import list_date_partitions
from gate_pipeline.settings import Settings
from gate_pipeline_tests.pipeline_helpers import CONFIG, SAMPLE, assert_s3_outputs_equal_local_run, date_range
from gate_pipeline_tests.postgres_server import postgres_instance_yaml
from gate_pipeline_tests.s3_server import upload_tree

pytestmark = [pytest.mark.s3, pytest.mark.postgres, pytest.mark.celery, pytest.mark.slow]

pytest_plugins = ["gate_pipeline_tests.redis_server"]

REPO = Path(__file__).resolve().parents[1]
WORKERS = ("gate-w1", "gate-w2")
WORKER_READY_TIMEOUT_S = 90


def celery_job() -> dg.JobDefinition:
    """The project's Definitions with Dagster's celery executor: rebuilt by each worker from the environment."""
    defs = dg.Definitions.merge(
        build_definitions(Settings.from_env()), dg.Definitions(executor=celery_executor)
    )
    return defs.resolve_job_def(ALL_ASSETS_JOB)


def _start_workers(broker: str, env: dict[str, str], config_dir: Path) -> list[subprocess.Popen]:
    # dagster_celery.app reads the broker from a `dagster_celery_config` module on the path, the way
    # `dagster-celery worker start --config-yaml` sets it up.
    (config_dir / "dagster_celery_config.py").write_text(
        f"broker_url = {broker!r}\nresult_backend = {broker!r}\n"
    )
    env = {**env, "PYTHONPATH": os.pathsep.join([str(config_dir), str(REPO)])}
    celery = str(Path(sys.executable).with_name("celery"))
    return [
        subprocess.Popen(
            [
                celery,
                "-A",
                "dagster_celery.app",
                "worker",
                "-Q",
                "dagster",
                "-n",
                f"{name}@%h",
                "--concurrency",
                "1",
                "--prefetch-multiplier",
                "1",
                "--loglevel",
                "WARNING",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for name in WORKERS
    ]


def _wait_until_workers_answer(broker: str) -> set[str]:
    from dagster_celery.make_app import make_app

    app = make_app({"broker": broker, "backend": broker})
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        names = {name.split("@")[0] for reply in replies for name in reply}
        if names >= set(WORKERS):
            return names
        time.sleep(0.5)
    pytest.fail(f"celery workers {WORKERS} did not answer within {WORKER_READY_TIMEOUT_S} s")


def _stop(workers: list[subprocess.Popen]) -> None:
    for proc in workers:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in workers:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_celery_run_on_redis_postgres_and_s3_matches_local_run(
    s3_bucket, postgres_url, redis_url, tmp_path, monkeypatch, capsys
):
    upload_tree(SAMPLE, s3_bucket.url("ci/artifacts"), s3_bucket.storage_options)
    upload_tree(CONFIG, s3_bucket.url("ci/config"), s3_bucket.storage_options)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(postgres_instance_yaml(postgres_url))
    for key, value in {
        "CI_ARTIFACT_PATH": s3_bucket.url("ci/artifacts"),
        "GATE_PIPELINE_OUT": s3_bucket.url("ci/reports"),
        "GATE_PIPELINE_DATA": s3_bucket.url("ci/data"),
        "GATE_PIPELINE_CONFIG": s3_bucket.url("ci/config"),
        "DAGSTER_HOME": str(home),
    }.items():
        monkeypatch.setenv(key, value)
    config_dir = tmp_path / "celery_config"
    config_dir.mkdir()
    workers = _start_workers(redis_url, dict(os.environ), config_dir)
    try:
        assert _wait_until_workers_answer(redis_url) >= set(WORKERS)
        first, last = date_range(SAMPLE)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            register_days(instance, list_date_partitions(SAMPLE))  # as `gate-pipeline run` does
            result = dg.execute_job(
                dg.reconstructable(celery_job),
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": first,
                    "dagster/asset_partition_range_end": last,
                },
                run_config={"execution": {"config": {"broker": redis_url, "backend": redis_url}}},
            )
            assert result.success
            run_id = result.run_id
            # Every step was handed to a celery worker; none ran in this process.
            delegated = {}
            for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
                event = record.dagster_event
                entries = event.engine_event_data.metadata if event.engine_event_data else {}
                worker = entries.get("Celery worker")
                if worker is not None:
                    delegated[event.step_key] = worker.value.split("@")[0]
            steps = {stat.step_key for stat in instance.get_run_step_stats(run_id)}
            assert {"daily_tables", "rollout_series", "rollout_statistics", "decision_outputs"} <= steps
            assert set(delegated) == steps
            # The three config observations are independent steps submitted at once: both workers take work.
            assert set(delegated.values()) == set(WORKERS)
            starts = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
            assert os.getpid() not in {record.dagster_event.pid for record in starts}
    finally:
        _stop(workers)
    assert all(proc.returncode is not None for proc in workers)

    with dg.DagsterInstance.from_config(str(home)) as reader:
        decision = reader.get_latest_materialization_event(dg.AssetKey("gate_decision"))
        assert decision is not None and decision.run_id == run_id
    assert not list(home.glob("**/*.db")), "no SQLite storage next to the Postgres instance"

    assert_s3_outputs_equal_local_run(s3_bucket, tmp_path, monkeypatch, capsys, "ci/reports")
