"""Automation: the jobs, the artifact sensor and the declarative-automation sensor.

The artifact sensor is one implementation over fsspec (a local folder and an S3 prefix alike); the
unpartitioned assets (series, statistics, decision, report) follow their parents through declarative
automation, and the config sources are observed on a cron.
"""

import json
from datetime import UTC, datetime

import dagster as dg

from gate_pipeline.dagster_helpers.partitions import DAYS_NAME, in_window, partition_requests
from gate_pipeline.defs.classified import CLASSIFIED_RUNS
from gate_pipeline.defs.config import CONFIG_SOURCE_FILES
from gate_pipeline.defs.ingest import INGEST_CHAIN
from gate_pipeline.defs.lifecycle import PHASE_LOG
from gate_pipeline.defs.resources import GateStorage
from gate_pipeline.lib.discovery import date_window, dump_cursor, load_cursor, scan_for_changes
from gate_pipeline.settings import PartitionSettings, SensorSettings, Settings

ALL_ASSETS_JOB = "gate_pipeline_all"
RECLASSIFY_JOB = "reclassify_history"


def build_jobs() -> list:
    return [
        dg.define_asset_job(ALL_ASSETS_JOB, selection=dg.AssetSelection.all(include_sources=True)),
        # After a whitelist edit: re-classify stored run tables and everything downstream; no JSON is read.
        dg.define_asset_job(
            RECLASSIFY_JOB,
            # The config sources are in it so an edited file is observed first (the CLI skips unchanged ones).
            selection=dg.AssetSelection.assets(CLASSIFIED_RUNS).downstream()
            | dg.AssetSelection.assets(*CONFIG_SOURCE_FILES, PHASE_LOG),
            description="Re-classify all history from stored run tables after a whitelist change, in one run.",
        ),
    ]


def build_artifact_sensor(partitions: PartitionSettings, sensor: SensorSettings) -> dg.SensorDefinition:
    @dg.sensor(
        name="artifact_sensor",
        description=(
            "Watches the artifact root (local folder or s3:// prefix): lists only the last "
            f"{sensor.lookback_days} day(s) and newer date folders each tick, adds each new day as a partition "
            "and requests the ingest chain for every day whose file fingerprint changed (run key = day + "
            "fingerprint)."
        ),
        minimum_interval_seconds=sensor.interval_seconds,
        asset_selection=INGEST_CHAIN,
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def artifact_sensor(context: dg.SensorEvaluationContext, storage: GateStorage) -> dg.SensorResult:
        today = datetime.now(UTC).date()
        scan = scan_for_changes(
            storage.artifacts().root,
            load_cursor(context.cursor),
            today=today,
            lookback_days=sensor.lookback_days,
            settle_seconds=sensor.settle_seconds,
        )
        first, last = date_window(partitions.start_date, partitions.max_future_days, today)
        # Days a cold build or an earlier run already ingested are not requested again when they show up
        # as "new" only because this sensor's cursor is empty (first tick, or a reset).
        ingested = (
            context.instance.get_materialized_partitions(dg.AssetKey("run_table")) if scan.changed else set()
        )
        requests, outside, already = [], [], []
        for change in scan.changed:
            if not in_window(change.date, first, last):
                outside.append(change.date)
                continue
            if change.reason == "new" and change.date in ingested:
                already.append(change.date)
                continue
            requests.append(
                dg.RunRequest(
                    run_key=change.run_key,
                    partition_key=change.date,
                    asset_selection=INGEST_CHAIN,
                    tags={"gate_pipeline/change": change.reason},
                )
            )
        summary = scan.summary()
        # Every day with files inside the window becomes a partition, also one a cold build had ingested
        # (an instance from before dynamic partitions); an empty or unsettled folder is no change yet.
        inside = [c.date for c in scan.changed if in_window(c.date, first, last)]
        registered = context.instance.get_dynamic_partitions(DAYS_NAME) if inside else []
        partition_updates = partition_requests(registered, inside)
        if partition_updates:
            summary["partitions_added"] = sorted(set(inside) - set(registered))
        if outside:
            summary["outside_partitions"] = outside  # outside the date window: widen it to ingest them
        if already:
            summary["already_ingested"] = already
        context.log.info(json.dumps(summary, sort_keys=True))
        if requests or partition_updates:
            return dg.SensorResult(
                run_requests=requests,
                dynamic_partitions_requests=partition_updates,
                cursor=dump_cursor(scan.cursor),
            )
        reasons = sorted({s["reason"] for s in summary["skipped"]}) or ["no new or changed day"]
        counts = ", ".join(f"{k}={v}" for k, v in summary["counts"].items())
        return dg.SensorResult(
            skip_reason=dg.SkipReason(
                f"{'; '.join(reasons)} ({counts}; already ingested: {len(already)}; outside partitions: {len(outside)})"
            ),
            cursor=dump_cursor(scan.cursor),
        )

    return artifact_sensor


# Unpartitioned assets (series, statistics, decision, report) follow their parents.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(include_sources=True),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    use_user_code_server=True,  # rollout_series follows its parent through a Python condition (dagster_helpers/conditions.py)
    description="Declarative automation: keeps the series, statistics and decision fresh after new days.",
)


def build(settings: Settings) -> dg.Definitions:
    pipeline = settings.pipeline_config()
    return dg.Definitions(
        jobs=build_jobs(),
        sensors=[build_artifact_sensor(pipeline.partitions, pipeline.sensor), automation_sensor],
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build(Settings.from_env())
