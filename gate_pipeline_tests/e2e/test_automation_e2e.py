"""Issue 5, end to end: the artifact sensor and declarative automation on real Dagster services.

`dagster dev` (webserver + daemon) runs on a private copy of the sample and a private config whose
``sensor:`` section ticks every 5 s. Everything is asserted through the GraphQL API:

* local root: turn ``artifact_sensor`` on, drop runs into TODAY's date folder → the sensor launches the
  per-day chain for today, automation re-materializes ``rollout_series`` … ``gate_decision`` without a
  manual launch and the decision counts the new runs; then a whitelist edit + a partition backfill of
  ``classified_runs`` re-classifies history and automation publishes the new series.
* S3 root (moto server on loopback): the same sensor flow over ``s3://bucket/ci``, and automation publishes
  the series and a decision that counts the new runs.

Before the sensor is turned on, its cursor is set (GraphQL ``setSensorCursor``) to what the initial
materialization already ingested: with an empty cursor the first tick requests every date folder once
(run keys ``<day>:unlisted``), i.e. 12 extra runs that cost minutes on a 2-core machine and are not what
this test is about.

Every wait is bounded; a failure prints the services' log tail, both sensors' latest ticks and recent runs.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate_pipeline_tests.e2e.conftest import ALL_ASSETS_JOB, SAMPLE_ARTIFACTS, sample_days
from gate_pipeline_tests.e2e.services import (
    IN_PROCESS,
    METADATA_FRAGMENT,
    REPO_ROOT,
    DagsterServices,
    ServicesError,
    key_input,
    metadata_values,
)

pytestmark = pytest.mark.e2e

ARTIFACT_SENSOR = "artifact_sensor"
AUTOMATION_SENSOR = "automation_sensor"
WHITELIST_CHECK = "classified_with_current_whitelist"
# Short ticks so the test is quick; 5 s is the configured minimum interval.
SENSOR_SETTINGS = {"lookback_days": 2, "settle_seconds": 1, "interval_seconds": 5}
WAIT_S = 180.0
NEW_POLICY = "b71c02"
AWS_ENV_PREFIX = "AWS_"
# Unpartitioned assets that must follow the daily chain through declarative automation.
AUTOMATED_ASSETS = ("rollout_series", "gate_decision")
# A reason the sample reports as non-whitelisted; the whitelist edit below covers it.
EDITED_REASON, EDITED_CLASS = "schema_drift", "schema"


# ----------------------------------------------------------------------------------------------- helpers


@dataclass
class Running:
    """Services on a private config, with the sample materialized once."""

    services: DagsterServices
    env: dict[str, str]
    config: Path
    outputs: Path
    days: list[str]
    initial_run_id: str


def utc_today() -> str:
    """Today's UTC date, the newest daily partition (end_offset=1)."""
    return datetime.now(UTC).date().isoformat()


def write_sensor_config(config_dir: Path) -> None:
    """Set the ``sensor:`` section of the private config/pipeline.yaml (other sections kept)."""
    path = config_dir / "pipeline.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    data["sensor"] = dict(SENSOR_SETTINGS)
    data.setdefault("automation", {})["config_sensor_interval_seconds"] = SENSOR_SETTINGS["interval_seconds"]
    path.write_text(yaml.safe_dump(data, sort_keys=True))


@contextlib.contextmanager
def running_services(
    base: Path, artifacts_url: str, days: list[str], extra_env: dict[str, str]
) -> Iterator[Running]:
    """`dagster dev` on ``artifacts_url`` with a private config/data/outputs under ``base``; the sample's days
    materialized once (job ``gate_pipeline_all``, in-process). Always stops the services."""
    config, data, outputs = base / "config", base / "data", base / "outputs"
    shutil.copytree(REPO_ROOT / "config", config)
    write_sensor_config(config)
    env = {
        **extra_env,
        "CI_ARTIFACT_PATH": artifacts_url,
        "GATE_PIPELINE_DATA": str(data),
        "GATE_PIPELINE_OUT": str(outputs),
        "GATE_PIPELINE_CONFIG": str(config),
    }
    from gate_pipeline.settings import Settings

    if days[0] < Settings.from_env(env).pipeline_config().partitions.start_date:
        env["GATE_PIPELINE_START_DATE"] = days[0]  # same widening as `gate-pipeline run`
    services = DagsterServices(
        log_path=base / "dagster_dev.log",
        env=env,
        dagster_home=base / "dagster_home",
        start_timeout=180,
    )
    started = time.monotonic()
    try:
        services.start()
    except ServicesError as exc:
        pytest.fail(f"Dagster services did not start: {exc}", pytrace=False)
    try:
        print(f"\nservices up in {time.monotonic() - started:.0f}s at {services.url}; files under {base}")
        started = time.monotonic()
        services.add_day_partitions(days)
        run_id = services.launch_job_run(
            ALL_ASSETS_JOB, partition_range=(days[0], days[-1]), run_config=IN_PROCESS
        )
        status = services.wait_for_run(run_id, timeout=240)
        if status != "SUCCESS":
            failures = "\n".join(services.run_failure_messages(run_id))
            pytest.fail(
                f"{ALL_ASSETS_JOB} run {run_id} ended {status}:\n{failures}\n{services.log_tail()}",
                pytrace=False,
            )
        print(f"initial materialization {time.monotonic() - started:.0f}s")
        yield Running(services, env, config, outputs, days, run_id)
    except ServicesError as exc:
        pytest.fail(f"{exc}\n{diagnostics(services)}", pytrace=False)
    finally:
        services.stop()


def diagnostics(services: DagsterServices) -> str:
    """Sensor ticks of both sensors, recent runs and the services' log tail, for failure messages."""
    parts = []
    for name in (ARTIFACT_SENSOR, AUTOMATION_SENSOR):
        try:
            state = services.sensor_state(name)
            ticks = [
                {k: t.get(k) for k in ("status", "skipReason", "runIds", "runKeys", "error")}
                for t in state["ticks"][:5]
            ]
            parts.append(f"{name} {state['status']} ticks: {json.dumps(ticks, indent=1)}")
        except Exception as exc:  # diagnostics must never mask the real failure
            parts.append(f"{name}: ticks unavailable ({exc})")
    for asset in AUTOMATED_ASSETS:
        try:
            parts.append(f"automation of {asset}: {json.dumps(automation_evaluation(services, asset))}")
        except Exception as exc:
            parts.append(f"automation of {asset} unavailable ({exc})")
    try:
        parts.append(f"recent runs: {json.dumps(recent_runs(services), indent=1)}")
    except Exception as exc:
        parts.append(f"recent runs unavailable ({exc})")
    parts.append(services.log_tail(60))
    return "\n".join(parts)


def automation_evaluation(services: DagsterServices, asset_key: str) -> dict[str, Any]:
    """The latest declarative-automation evaluation of an asset: requested count and each condition node's
    label with how many candidates were true (says e.g. that ``any_deps_missing`` held the asset back)."""
    data = services.graphql(
        """
        query Eval($assetKey: AssetKeyInput!) {
          assetConditionEvaluationRecordsOrError(assetKey: $assetKey, limit: 1) {
            __typename
            ... on AssetConditionEvaluationRecords {
              records { evaluationId numRequested evaluationNodes { userLabel expandedLabel numTrue } }
            }
          }
        }
        """,
        {"assetKey": key_input(asset_key)},
    )
    records = data["assetConditionEvaluationRecordsOrError"].get("records") or []
    if not records:
        return {"evaluations": 0}
    record = records[0]
    return {
        "evaluationId": record["evaluationId"],
        "numRequested": record["numRequested"],
        "nodes": [
            f"{n['userLabel'] or ' '.join(n['expandedLabel'])}: {n['numTrue']}"
            for n in record["evaluationNodes"]
        ],
    }


def fail(services: DagsterServices, message: str) -> None:
    """pytest.fail with the diagnostics attached."""
    pytest.fail(f"{message}\n{diagnostics(services)}", pytrace=False)


def wait_until(
    services: DagsterServices, what: str, probe: Callable[[], Any], timeout: float = WAIT_S, poll: float = 2.0
):
    """Poll ``probe`` until it returns something truthy (returned); fail with diagnostics after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(poll)
    fail(services, f"timed out after {timeout:.0f}s waiting for {what} (last probe: {last!r})")


def recent_runs(services: DagsterServices, limit: int = 10) -> list[dict[str, Any]]:
    """Newest runs first: id, status and the tags that say who launched them and for which partition."""
    data = services.graphql(
        """
        query Runs($limit: Int) {
          runsOrError(limit: $limit) {
            __typename
            ... on Runs { results { runId status tags { key value } } }
          }
        }
        """,
        {"limit": limit},
    )
    keep = ("dagster/partition", "dagster/sensor_name", "dagster/backfill", "dagster/automation_condition")
    return [
        {
            "runId": r["runId"],
            "status": r["status"],
            "tags": {t["key"]: t["value"] for t in r["tags"] if t["key"] in keep or "auto" in t["key"]},
        }
        for r in data["runsOrError"].get("results", [])
    ]


def run_info(services: DagsterServices, run_id: str) -> dict[str, Any]:
    """``{status, tags: {key: value}, startTime, endTime}`` of a run."""
    data = services.graphql(
        """
        query Run($runId: ID!) {
          runOrError(runId: $runId) {
            __typename
            ... on Run { status startTime endTime tags { key value } }
            ... on Error { message }
          }
        }
        """,
        {"runId": run_id},
    )
    run = data["runOrError"]
    if run["__typename"] != "Run":
        raise ServicesError(f"run {run_id}: {run}")
    return {**run, "tags": {t["key"]: t["value"] for t in run["tags"]}}


def materializations(
    services: DagsterServices, asset_key: str, limit: int = 20, partitions: list[str] | None = None
) -> list[dict[str, Any]]:
    """Newest first: ``{runId, partition, timestamp_ms, metadata}`` of an asset's materializations."""
    data = services.graphql(
        """
        query Mats($assetKey: AssetKeyInput!, $limit: Int, $partitions: [String!]) {
          assetOrError(assetKey: $assetKey) {
            __typename
            ... on Asset {
              assetMaterializations(limit: $limit, partitions: $partitions) {
                runId partition timestamp metadataEntries { ...Meta }
              }
            }
          }
        }
        """
        + METADATA_FRAGMENT,
        {"assetKey": key_input(asset_key), "limit": limit, "partitions": partitions},
    )
    asset = data["assetOrError"]
    if asset["__typename"] != "Asset":
        return []
    return [
        {
            "runId": m["runId"],
            "partition": m["partition"],
            "timestamp_ms": int(m["timestamp"]),
            "metadata": metadata_values(m["metadataEntries"]),
        }
        for m in asset["assetMaterializations"]
    ]


def set_sensor_cursor(services: DagsterServices, name: str, cursor: str) -> None:
    """GraphQL ``setSensorCursor`` (what the UI's "Edit cursor" does)."""
    data = services.graphql(
        """
        mutation Cursor($selector: SensorSelector!, $cursor: String) {
          setSensorCursor(sensorSelector: $selector, cursor: $cursor) {
            __typename
            ... on Sensor { sensorState { typeSpecificData { ... on SensorData { lastCursor } } } }
            ... on Error { message }
          }
        }
        """,
        {"selector": services.sensor_selector(name), "cursor": cursor},
    )
    result = data["setSensorCursor"]
    if result["__typename"] != "Sensor":
        raise ServicesError(f"setSensorCursor {name}: {result}")


def cursor_for_ingested_history(root, today: str) -> str:
    """The cursor a sensor would hold after having seen the artifact root as it is now (settled)."""
    from gate_pipeline.lib.discovery import dump_cursor, scan_for_changes

    scan = scan_for_changes(
        root,
        None,
        today=datetime.fromisoformat(today).date(),
        lookback_days=SENSOR_SETTINGS["lookback_days"],
        settle_seconds=0,
    )
    assert today not in scan.partition_keys, f"{today} already holds artifacts before the test drops any"
    return dump_cursor(scan.cursor)


def new_run_files(day: str, prefix: str, count: int, reasons: list[str]) -> dict[str, bytes]:
    """``{<run_id>/<file>: bytes}``: ``count`` valid runs of policy NEW_POLICY on ``day`` (distinct run ids)."""
    files: dict[str, bytes] = {}
    for i in range(count):
        run_id = f"{prefix}{i:04d}"
        gate = {
            "run_id": run_id,
            "timestamp": f"{day}T00:00:{i:02d}Z",
            "policy_hash": NEW_POLICY,
            "outcome": "PASS",
            "unknown_rate": 0.02,
            "top_reasons": reasons,
        }
        drift = {
            "run_id": run_id,
            "policy_hash": NEW_POLICY,
            "schema_version": "1",
            "policy_state": "pinned",
            "WARN_count": 0,
            "FAIL_count": 0,
            "Unknown_count": 1,
            "Overrides_count": 0,
            "unknown_causes": {"contract": 0, "schema": 1},
        }
        files[f"{run_id}/gate_result.json"] = json.dumps(gate, sort_keys=True).encode()
        files[f"{run_id}/drift_report.json"] = json.dumps(drift, sort_keys=True).encode()
    return files


def read_series(outputs: Path) -> list[dict[str, str]]:
    """rollout_series.csv of the outputs location, as rows."""
    return list(csv.DictReader(io.StringIO((outputs / "rollout_series.csv").read_text())))


def expected_decision_runs(rows: list[dict[str, str]]) -> tuple[str, int]:
    """(policy, runs) the decision must report, by hand (``policy.mode: latest`` with the default
    recent_runs 50 / min_recent_share 0.1): the most recently introduced policy_hash (latest first run; ties
    by hash) holding at least 10% of the last 50 runs with a hash, and how many runs of the series carry it."""
    ordered = sorted(rows, key=lambda r: (r["timestamp"], r["run_id"]))
    hashed = [r["policy_hash"] for r in ordered if r["policy_hash"]]
    first: dict[str, str] = {}
    for r in ordered:
        if r["policy_hash"]:
            first.setdefault(r["policy_hash"], r["timestamp"])
    recent = hashed[-50:]
    eligible = [h for h in first if recent.count(h) >= 0.1 * len(recent)]
    policy = max(eligible, key=lambda h: (first[h], h))
    return policy, sum(r["policy_hash"] == policy for r in ordered)


def aws_env() -> dict[str, str]:
    """The AWS_* variables the s3_bucket fixture set, passed explicitly to the services."""
    return {k: v for k, v in os.environ.items() if k.startswith(AWS_ENV_PREFIX)}


def whitelist_known_drift(whitelist_path: Path) -> str:
    """Edit the whitelist: EDITED_REASON becomes known noise (class EDITED_CLASS). Returns the new sha256."""
    document = json.loads(whitelist_path.read_text())
    document["entries"].append(
        {
            "reason": EDITED_REASON,
            "match": "exact",
            "class": EDITED_CLASS,
            "owner": "team-e2e",
            "expires": None,
            "note": "Added by the e2e test: schema drift is known noise.",
        }
    )
    whitelist_path.write_text(json.dumps(document, indent=2) + "\n")
    return hashlib.sha256(whitelist_path.read_bytes()).hexdigest()


def whitelist_check(services: DagsterServices, accept) -> dict:
    """The newest evaluation of classified_runs:classified_with_current_whitelist, once ``accept`` holds."""

    def probe():
        executions = services.asset_check_executions("classified_runs", WHITELIST_CHECK, limit=1)[
            WHITELIST_CHECK
        ]
        return executions[0] if executions and accept(executions[0]) else None

    return wait_until(services, f"check {WHITELIST_CHECK}", probe)


def turn_on_artifact_sensor(services: DagsterServices, cursor: str) -> None:
    set_sensor_cursor(services, ARTIFACT_SENSOR, cursor)
    status = services.set_sensor_running(ARTIFACT_SENSOR, True)
    assert status == "RUNNING"


def sensor_run_for(services: DagsterServices, day: str, after_ts: float) -> dict[str, Any]:
    """Wait for a sensor tick (after ``after_ts``) that launched a run for ``day``; wait for that run to finish."""

    def probe():
        for tick in services.sensor_state(ARTIFACT_SENSOR)["ticks"]:
            if tick["timestamp"] < after_ts or tick["status"] != "SUCCESS":
                continue
            for run_id, key in zip(tick["runIds"], tick["runKeys"], strict=False):
                if key.startswith(f"{day}:"):
                    return {"runId": run_id, "runKey": key}
        return None

    found = wait_until(services, f"an {ARTIFACT_SENSOR} tick requesting {day}", probe)
    try:
        status = services.wait_for_run(found["runId"], timeout=WAIT_S)
    except ServicesError as exc:
        fail(services, str(exc))
    if status != "SUCCESS":
        failures = "\n".join(services.run_failure_messages(found["runId"]))
        fail(services, f"sensor run {found['runId']} for {day} ended {status}:\n{failures}")
    return {**found, **run_info(services, found["runId"])}


def new_series_rows(day: str, prefix: str, count: int) -> list[dict[str, str]]:
    """The series keys of the runs ``new_run_files`` writes (what the decision must count)."""
    return [
        {"run_id": f"{prefix}{i:04d}", "timestamp": f"{day}T00:00:{i:02d}Z", "policy_hash": NEW_POLICY}
        for i in range(count)
    ]


def automated_decision(
    services: DagsterServices,
    sensor_run: dict[str, Any],
    outputs: Path,
    before_rows: list[dict[str, str]],
    new_rows: list[dict[str, str]],
) -> list[dict[str, str]]:
    """Wait until automation (nobody launches anything) re-materializes gate_decision after ``sensor_run``;
    assert it counts the new runs and the published series holds them. Returns the new series rows."""
    expected_policy, expected_runs = expected_decision_runs(before_rows + new_rows)
    t_auto = time.monotonic()

    def decision_after_sensor_run():
        latest = materializations(services, "gate_decision", limit=1)[0]
        return latest if latest["timestamp_ms"] / 1000 > sensor_run["endTime"] else None

    decision = wait_until(services, "gate_decision re-materialized by automation", decision_after_sensor_run)
    launched_by = run_info(services, decision["runId"])["tags"]
    print(f"automation decision {time.monotonic() - t_auto:.0f}s after the sensor run; tags {launched_by}")
    assert launched_by.get("dagster/sensor_name") == AUTOMATION_SENSOR, launched_by
    assert launched_by.get("dagster/from_automation_condition") == "true", launched_by
    assert decision["metadata"]["policy_hash"] == expected_policy
    assert decision["metadata"]["runs"] == expected_runs
    series = materializations(services, "rollout_series", limit=1)[0]
    assert series["metadata"]["dagster/row_count"] == len(before_rows) + len(new_rows)
    after_rows = read_series(outputs)
    assert len(after_rows) == len(before_rows) + len(new_rows)
    day = new_rows[0]["timestamp"][:10]  # the new runs are exactly the rows of their day
    assert sorted(r["run_id"] for r in after_rows if r["date"] == day) == sorted(
        r["run_id"] for r in new_rows
    )
    return after_rows


# ----------------------------------------------------------------------------------------------- local


def test_local_sensor_automation_and_whitelist_backfill(tmp_path: Path) -> None:
    t0 = time.monotonic()
    artifacts = tmp_path / "artifacts"
    shutil.copytree(SAMPLE_ARTIFACTS, artifacts)
    days = sample_days(artifacts)
    with running_services(tmp_path, str(artifacts), days, {}) as running:
        services, outputs = running.services, running.outputs
        today = utc_today()
        before_rows = read_series(outputs)
        n_new = 5
        new_files = new_run_files(today, "e2e-local-", n_new, [EDITED_REASON])
        # The decision the new runs must produce, computed from the published sample series + the new runs.
        new_rows = new_series_rows(today, "e2e-local-", n_new)
        expected_policy, expected_runs = expected_decision_runs(before_rows + new_rows)
        assert expected_policy == NEW_POLICY
        assert expected_runs == sum(r["policy_hash"] == NEW_POLICY for r in before_rows) + n_new

        decision_before = materializations(services, "gate_decision", limit=1)[0]
        assert decision_before["runId"] == running.initial_run_id

        # -- the sensor sees today's new folder and launches the per-day chain for it
        t_on = time.time()
        turn_on_artifact_sensor(services, cursor_for_ingested_history(artifacts, today))
        for rel, payload in sorted(new_files.items()):
            target = artifacts / today / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(payload)
        t_sensor = time.monotonic()
        run = sensor_run_for(services, today, t_on)
        assert run["tags"].get("dagster/partition") == today, run["tags"]
        assert run["tags"].get("dagster/sensor_name") == ARTIFACT_SENSOR, run["tags"]
        print(f"sensor run for {today} done {time.monotonic() - t_sensor:.0f}s after the drop")

        for asset in ("run_table", "classified_runs"):
            assert today in services.materialized_partitions(asset), f"{asset} has no {today} partition"
        table = materializations(services, "run_table", limit=1, partitions=[today])[0]
        assert table["runId"] == run["runId"]
        assert table["metadata"]["dagster/row_count"] == n_new
        assert table["metadata"]["runs_accepted"] == n_new

        # -- declarative automation: series → statistics → decision, nobody launches anything
        after_rows = automated_decision(services, run, outputs, before_rows, new_rows)

        # -- whitelist edit + one backfill of classified_runs over every materialized day
        assert any(f"non_whitelisted:{EDITED_REASON}" in r["unknown_classes"] for r in after_rows)
        new_sha = whitelist_known_drift(running.config / "unknown_whitelist.json")
        old_sha = materializations(services, "classified_runs", limit=1)[0]["metadata"]["whitelist_sha256"]
        assert new_sha != old_sha

        partitions = services.materialized_partitions("classified_runs")
        assert partitions == sorted([*days, today])
        # config_sensor sees the edit without a run: the whitelist check on classified_runs warns for every day.
        stale = whitelist_check(services, lambda e: e["success"] is False)
        assert stale["severity"] == "WARN" and not stale["runId"]  # reported by the sensor, no run
        assert stale["metadata"]["stale_days"] == len(partitions)
        assert stale["metadata"]["current_whitelist_sha256"] == new_sha
        t_backfill = time.monotonic()
        # "All" partitions, as in the UI's dialog: only the registered days (no empty calendar day).
        backfill_id = services.launch_partition_backfill(
            ["classified_runs"], all_partitions=True, title="e2e whitelist edit"
        )
        try:
            backfill = services.wait_for_backfill(backfill_id, timeout=WAIT_S)
        except ServicesError as exc:
            fail(services, str(exc))
        assert backfill["status"] in {"COMPLETED", "COMPLETED_SUCCESS"}, backfill
        # Single-run backfill policy: one run per contiguous range of partition keys. The sensor added
        # today's key after the sample's days, so all of them are one range even across the gap in dates.
        assert len(backfill["runs"]) == 1, backfill
        assert {r["status"] for r in backfill["runs"]} == {"SUCCESS"}, backfill
        backfill_runs = {r["runId"] for r in backfill["runs"]}
        classified = materializations(services, "classified_runs", limit=len(partitions))
        from_backfill = [m for m in classified if m["runId"] in backfill_runs]
        assert sorted(m["partition"] for m in from_backfill) == partitions
        assert {m["metadata"]["whitelist_sha256"] for m in from_backfill} == {new_sha}
        print(f"backfill {time.monotonic() - t_backfill:.0f}s")

        # Automation publishes the re-classified series and a decision on the new whitelist.
        t_auto = time.monotonic()

        def decision_on_new_whitelist():
            # The whitelist's own observation can re-publish the decision before the series has caught up
            # with the backfill; that decision names the stale version (stale_whitelist_versions), and the
            # series' own automation then publishes one with none left. Wait for that one.
            latest = materializations(services, "gate_decision", limit=1)[0]
            meta = latest["metadata"]
            fresh = meta.get("whitelist_sha256") == new_sha
            return latest if fresh and json.loads(meta.get("stale_whitelist_versions", "[]")) == [] else None

        decision = wait_until(services, "gate_decision on the edited whitelist", decision_on_new_whitelist)
        assert run_info(services, decision["runId"])["tags"].get("dagster/sensor_name") == AUTOMATION_SENSOR
        assert json.loads(decision["metadata"]["stale_whitelist_versions"]) == []
        current = whitelist_check(services, lambda e: e["success"] is True)
        assert current["metadata"]["stale_days"] == 0
        assert decision["metadata"]["runs"] == expected_runs
        print(f"automation after backfill {time.monotonic() - t_auto:.0f}s")
        final_rows = read_series(outputs)
        assert len(final_rows) == len(after_rows)
        assert not [
            r["run_id"] for r in final_rows if f"non_whitelisted:{EDITED_REASON}" in r["unknown_classes"]
        ]
        # The same runs now carry the class the new entry maps to.
        was_drift = {
            r["run_id"] for r in after_rows if f"non_whitelisted:{EDITED_REASON}" in r["unknown_classes"]
        }
        now_schema = {
            r["run_id"]
            for r in final_rows
            if f"whitelisted:{EDITED_CLASS}" in r["unknown_classes"].split(";")
        }
        assert was_drift <= now_schema
    print(f"local module part {time.monotonic() - t0:.0f}s")


# ----------------------------------------------------------------------------------------------- S3


@pytest.mark.s3
def test_s3_sensor_launches_today(tmp_path: Path, s3_bucket) -> None:
    from upath import UPath

    from gate_pipeline_tests.s3_server import upload_tree

    t0 = time.monotonic()
    artifacts_url = s3_bucket.url("ci")
    assert upload_tree(SAMPLE_ARTIFACTS, artifacts_url, s3_bucket.storage_options) > 0
    days = sample_days(SAMPLE_ARTIFACTS)
    env = aws_env()
    assert env.get("AWS_ENDPOINT_URL") == s3_bucket.endpoint_url
    with running_services(tmp_path, artifacts_url, days, env) as running:
        services = running.services
        today = utc_today()
        raw = materializations(services, "raw_runs", limit=1)[0]
        assert raw["runId"] == running.initial_run_id
        assert raw["metadata"]["runs_discovered"] > 0

        before_rows = read_series(running.outputs)
        root = UPath(artifacts_url, **s3_bucket.storage_options)
        t_on = time.time()
        turn_on_artifact_sensor(services, cursor_for_ingested_history(root, today))
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_bucket.storage_options)
        n_new = 3
        new_files = new_run_files(today, "e2e-s3-", n_new, ["infra_dns"])
        fs.pipe({f"{s3_bucket.name}/ci/{today}/{rel}": data for rel, data in sorted(new_files.items())})

        run = sensor_run_for(services, today, t_on)
        assert run["tags"].get("dagster/partition") == today, run["tags"]
        assert run["tags"].get("dagster/sensor_name") == ARTIFACT_SENSOR, run["tags"]
        table = materializations(services, "run_table", limit=1, partitions=[today])
        assert table, f"run_table has no {today} materialization"
        assert table[0]["runId"] == run["runId"]
        assert table[0]["metadata"]["dagster/row_count"] == n_new
        assert table[0]["metadata"]["runs_accepted"] == n_new
        raw_today = materializations(services, "raw_runs", limit=1, partitions=[today])[0]
        assert raw_today["metadata"]["runs_discovered"] == n_new
        # The stored per-day table holds exactly the new run ids.
        import pandas as pd

        stored = pd.read_parquet(Path(running.env["GATE_PIPELINE_DATA"]) / "run_table" / f"{today}.parquet")
        assert sorted(stored["run_id"]) == sorted(f"e2e-s3-{i:04d}" for i in range(n_new))

        # Automation follows the S3-triggered day too: series, statistics, decision.
        automated_decision(
            services, run, running.outputs, before_rows, new_series_rows(today, "e2e-s3-", n_new)
        )
    print(f"S3 part {time.monotonic() - t0:.0f}s")
