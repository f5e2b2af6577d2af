"""The artifact sensor on a local folder and on an S3 prefix (moto server on loopback), same code path."""

from datetime import UTC, datetime

import dagster as dg
import orjson
import pytest

from gate_pipeline.dagster_helpers.partitions import DAYS_NAME, register_days
from gate_pipeline.defs.automation import build_artifact_sensor
from gate_pipeline.defs.ingest import INGEST_CHAIN
from gate_pipeline.defs.resources import GateStorage
from gate_pipeline.settings import PipelineConfig, SensorSettings
from gate_pipeline.synthetic import CorpusSpec, generate
from gate_pipeline_tests.pipeline_helpers import CONFIG
from gate_pipeline_tests.s3_server import upload_tree

SETTLED_NOW = SensorSettings(lookback_days=2, settle_seconds=0, interval_seconds=30)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def artifact_root(request, tmp_path):
    """(root URL, storage_options, write(rel, bytes)) for a local folder or an S3 prefix."""
    local = tmp_path / "artifacts"
    generate(local, CorpusSpec(runs=30, days=3, seed=5))
    if request.param == "local":

        def write(rel: str, data: bytes) -> None:
            (local / rel).parent.mkdir(parents=True, exist_ok=True)
            (local / rel).write_bytes(data)

        return str(local), {}, write
    bucket = request.getfixturevalue("s3_bucket")
    url = bucket.url("ci/artifacts")
    upload_tree(local, url, bucket.storage_options)

    def write_s3(rel: str, data: bytes) -> None:
        bucket.upath(f"ci/artifacts/{rel}").write_bytes(data)

    return url, bucket.storage_options, write_s3


def _tick(sensor, root, options, cursor=None, instance=None):
    storage = GateStorage(
        artifacts_url=root,
        data_url="unused",
        outputs_url="unused",
        config_url=str(CONFIG),
        storage_options=options,
    )
    if instance is not None:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"storage": storage})
        return sensor(context)
    with dg.instance_for_test() as temp_instance:
        context = dg.build_sensor_context(
            instance=temp_instance, cursor=cursor, resources={"storage": storage}
        )
        return sensor(context)


def _added(result) -> list[str]:
    """Day partitions the tick asks Dagster to add."""
    return [
        k
        for r in result.dynamic_partitions_requests or []
        if isinstance(r, dg.AddDynamicPartitionsRequest)
        for k in r.partition_keys
    ]


def test_sensor_requests_new_and_changed_days_once(artifact_root):
    root, options, write = artifact_root
    sensor = build_artifact_sensor(PipelineConfig().partitions, SETTLED_NOW)

    first = _tick(sensor, root, options)
    assert sorted(r.partition_key for r in first.run_requests) == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert all(r.asset_selection == INGEST_CHAIN for r in first.run_requests)
    assert len({r.run_key for r in first.run_requests}) == 3

    # Nothing new: no run, a skip reason that says why.
    second = _tick(sensor, root, options, first.cursor)
    assert second.run_requests == [] or second.run_requests is None
    assert "no new or changed day" in second.skip_reason.skip_message

    # A cursor reset yields the same run keys, so Dagster's run-key dedupe prevents double counting.
    reset = _tick(sensor, root, options)
    assert {r.run_key for r in reset.run_requests} == {r.run_key for r in first.run_requests}

    # New runs today: only today's partition is requested.
    today = datetime.now(UTC).date().isoformat()
    gate = {
        "run_id": "r-new-1",
        "timestamp": f"{today}T01:00:00Z",
        "policy_hash": "b71c02",
        "outcome": "PASS",
        "unknown_rate": 0.02,
        "top_reasons": [],
    }
    write(f"{today}/r-new-1/gate_result.json", orjson.dumps(gate))
    third = _tick(sensor, root, options, second.cursor)
    assert [r.partition_key for r in third.run_requests] == [today]

    # A late arrival into today (inside the lookback window) changes the fingerprint: requested again.
    write(f"{today}/r-new-2/gate_result.json", orjson.dumps({**gate, "run_id": "r-new-2"}))
    fourth = _tick(sensor, root, options, third.cursor)
    assert [r.partition_key for r in fourth.run_requests] == [today]
    assert fourth.run_requests[0].run_key != third.run_requests[0].run_key


def test_file_still_being_written_is_not_requested_yet(tmp_path):
    today = datetime.now(UTC).date().isoformat()
    (tmp_path / today / "r1").mkdir(parents=True)
    (tmp_path / today / "r1" / "gate_result.json").write_bytes(b'{"run_id": "r1", "outc')
    sensor = build_artifact_sensor(
        PipelineConfig().partitions,
        SensorSettings(lookback_days=1, settle_seconds=3600, interval_seconds=30),
    )
    result = _tick(sensor, str(tmp_path), {})
    assert not result.run_requests
    assert "not_settled" in result.skip_reason.skip_message
    assert today in orjson.loads(result.cursor)["pending"]


def test_first_tick_skips_days_already_ingested(tmp_path):
    generate(tmp_path, CorpusSpec(runs=20, days=2, seed=9))
    sensor = build_artifact_sensor(PipelineConfig().partitions, SETTLED_NOW)
    storage = GateStorage(
        artifacts_url=str(tmp_path), data_url="unused", outputs_url="unused", config_url=str(CONFIG)
    )
    with dg.instance_for_test() as instance:
        # As if a cold build had ingested the first day.
        instance.report_runless_asset_event(dg.AssetMaterialization("run_table", partition="2026-03-01"))
        context = dg.build_sensor_context(instance=instance, resources={"storage": storage})
        result = sensor(context)
    assert [r.partition_key for r in result.run_requests] == ["2026-03-02"]


def test_sensor_adds_only_new_real_days_as_partitions(artifact_root):
    """Each new date folder with files becomes a partition with its run; registered, empty or out-of-window
    folders add none (local folder and S3 prefix alike)."""
    root, options, write = artifact_root
    sensor = build_artifact_sensor(PipelineConfig().partitions, SETTLED_NOW)
    today = datetime.now(UTC).date().isoformat()
    with dg.instance_for_test() as instance:
        register_days(instance, ["2026-03-01"])  # e.g. a CLI run registered it
        first = _tick(sensor, root, options, instance=instance)
        assert _added(first) == ["2026-03-02", "2026-03-03"]
        assert sorted(r.partition_key for r in first.run_requests) == [
            "2026-03-01",
            "2026-03-02",
            "2026-03-03",
        ]
        instance.add_dynamic_partitions(DAYS_NAME, _added(first))  # what the daemon does with the request

        # Before start_date and beyond today + max_future_days: ignored, as before; no partition.
        write("2025-01-05/r-old/gate_result.json", b"{}")
        write("2099-01-01/r-future/gate_result.json", b"{}")
        write(f"{today}/r-today/gate_result.json", b"{}")
        second = _tick(sensor, root, options, first.cursor, instance=instance)
        assert _added(second) == [today]
        assert [r.partition_key for r in second.run_requests] == [today]
        assert instance.get_dynamic_partitions(DAYS_NAME) == ["2026-03-01", "2026-03-02", "2026-03-03"]

        # Nothing new: no partition request at all.
        instance.add_dynamic_partitions(DAYS_NAME, [today])
        third = _tick(sensor, root, options, second.cursor, instance=instance)
        assert not third.dynamic_partitions_requests and not third.run_requests
