"""Group `config`: the config files as observable source assets, so an edit shows downstream as unsynced.

Each source's data version is the sha256 of the file's bytes. `config_sensor` observes a file when its bytes
change (no run: the observation is reported by the sensor itself) and keeps the check
`classified_runs:classified_with_current_whitelist` current, so a whitelist edit shows as a failed (warning)
check until the stored days are re-classified. The CLI observes a file only when it changed.
"""

import json
from datetime import UTC, datetime

import dagster as dg

from gate_pipeline.dagster_helpers.metadata import OWNERS
from gate_pipeline.defs.resources import ANALYSIS_FILE, DECISION_FILE, WHITELIST_FILE, GateStorage
from gate_pipeline.lib.config import ConfigError
from gate_pipeline.lib.storage import Store, sha256_bytes
from gate_pipeline.lib.whitelist import ENTRY_COLUMNS, entry_rows, load_whitelist
from gate_pipeline.settings import Settings

GROUP = "config"
#: Source asset name -> (config file, description shown in the UI).
CONFIG_SOURCES = {
    "unknown_whitelist": (
        WHITELIST_FILE,
        "Known unknown reasons (exact or glob pattern): the class each maps to, its owner and expiry date.",
    ),
    "analysis_config": (
        ANALYSIS_FILE,
        "Statistics parameters: strata column, recurrence threshold, spike bound, WARN threshold rule.",
    ),
    "decision_config": (
        DECISION_FILE,
        "Rollout phases, the policy under decision and the rules (thresholds) each phase must pass.",
    ),
}
CONFIG_SOURCE_FILES = {name: file_name for name, (file_name, _) in CONFIG_SOURCES.items()}
#: What ObserveResult(data_version=...) writes; an observation reported by a sensor carries it the same way.
DATA_VERSION_TAG = "dagster/data_version"


def config_digest(config: Store, file_name: str) -> str:
    """The data version of a config source: sha256 of the file's bytes."""
    return sha256_bytes(config.read_bytes(file_name)) if config.exists(file_name) else "absent"


def _config_source(name: str, file_name: str, description: str):
    # multi_observable_source_asset (one spec) rather than observable_source_asset: owners and kinds reach
    # the asset graph (the UI) only through an AssetSpec.
    @dg.multi_observable_source_asset(
        name=name,
        specs=[
            dg.AssetSpec(
                name,
                group_name=GROUP,
                description=description,
                owners=OWNERS,
                kinds={file_name.rsplit(".", 1)[-1]},
            )
        ],
        required_resource_keys={"storage"},
    )
    def _observe(context):
        config = context.resources.storage.config()
        digest = config_digest(config, file_name)
        yield dg.ObserveResult(
            asset_key=name,
            data_version=dg.DataVersion(digest),
            metadata=observation_metadata(config, file_name, digest),
        )

    return _observe


def observation_metadata(config: Store, file_name: str, digest: str) -> dict:
    """Path and sha256; for the whitelist also its entries as a table (reason, class, owner, expiry)."""
    metadata = {"path": dg.MetadataValue.path(config.url(file_name)), "sha256": digest}
    if file_name != WHITELIST_FILE or digest == "absent":
        return metadata
    try:
        whitelist = load_whitelist(config.read_bytes(file_name), config.url(file_name))
    except ConfigError as exc:
        metadata["problems"] = str(exc)
        return metadata
    rows = entry_rows(whitelist, datetime.now(UTC).date())
    metadata["entries"] = dg.MetadataValue.table(
        records=[dg.TableRecord(row) for row in rows],
        schema=dg.TableSchema(
            columns=[dg.TableColumn(c, "int" if c == "days_to_expiry" else "string") for c in ENTRY_COLUMNS]
        ),
    )
    metadata["entry_count"] = len(rows)
    return metadata


# ---------------------------------------------------------------------------------- whitelist currency
CLASSIFIED_RUNS = dg.AssetKey("classified_runs")
WHITELIST_CHECK = "classified_with_current_whitelist"
STALE_DAYS_SHOWN = 50
_PAGE = 1000


def classified_whitelists(
    instance: dg.DagsterInstance, cursor: str | None = None
) -> tuple[dict[str, str], str | None]:
    """Whitelist sha256 each classified_runs day was last materialized with, from the event log (records
    after ``cursor``, oldest first, so later ones win); and the cursor to continue from."""
    days: dict[str, str] = {}
    while True:
        page = instance.fetch_materializations(CLASSIFIED_RUNS, limit=_PAGE, cursor=cursor, ascending=True)
        for record in page.records:
            sha = record.asset_materialization.metadata.get("whitelist_sha256")
            if record.partition_key and sha is not None:
                days[record.partition_key] = str(sha.value)
        cursor = page.cursor if page.records else cursor
        if not page.has_more:
            return days, cursor


def whitelist_check_evaluation(days: dict[str, str], current: str) -> dg.AssetCheckEvaluation:
    """Pass when every classified day used the current whitelist; else a WARN naming the stale days."""
    stale = sorted(day for day, sha in days.items() if sha != current)
    return dg.AssetCheckEvaluation(
        asset_key=CLASSIFIED_RUNS,
        check_name=WHITELIST_CHECK,
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "current_whitelist_sha256": current,
            "classified_days": len(days),
            "stale_days": len(stale),
            "stale_day_list": dg.MetadataValue.json(stale[:STALE_DAYS_SHOWN]),
            "to_bring_current": "backfill classified_runs over the stale days (UI) or `gate-pipeline backfill`"
            if stale
            else "nothing to do",
        },
    )


@dg.asset_check(
    asset=CLASSIFIED_RUNS,
    name=WHITELIST_CHECK,
    description="Every stored day was classified with the current whitelist (warns after a whitelist edit "
    "until the days are re-classified). Kept current by config_sensor; runnable by hand.",
    additional_deps=[dg.AssetKey("unknown_whitelist")],
)
def classified_with_current_whitelist(context: dg.AssetCheckExecutionContext, storage: GateStorage):
    days, _ = classified_whitelists(context.instance)
    evaluation = whitelist_check_evaluation(days, config_digest(storage.config(), WHITELIST_FILE))
    return dg.AssetCheckResult(
        passed=evaluation.passed, severity=evaluation.severity, metadata=evaluation.metadata
    )


def build_config_sensor(interval_seconds: int) -> dg.SensorDefinition:
    @dg.sensor(
        name="config_sensor",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Observes the config files when their bytes change (no run) and keeps the check "
        "'classified with the current whitelist' on classified_runs current.",
    )
    def config_sensor(context: dg.SensorEvaluationContext, storage: GateStorage) -> dg.SensorResult:
        state = json.loads(context.cursor) if context.cursor else {}
        digests: dict[str, str] = state.get("digests", {})
        config, events = storage.config(), []
        for name, file_name in CONFIG_SOURCE_FILES.items():
            digest = config_digest(config, file_name)
            if digests.get(name) != digest:
                digests[name] = digest
                events.append(
                    dg.AssetObservation(
                        asset_key=name,
                        metadata=observation_metadata(config, file_name, digest),
                        tags={DATA_VERSION_TAG: digest},
                    )
                )
        new_days, records_cursor = classified_whitelists(context.instance, state.get("records_cursor"))
        days = {**state.get("days", {}), **new_days}
        evaluation = whitelist_check_evaluation(days, digests["unknown_whitelist"])
        reported = [evaluation.passed, digests["unknown_whitelist"], evaluation.metadata["stale_days"].value]
        if reported != state.get("reported"):
            events.append(evaluation)
        cursor = json.dumps(
            {"digests": digests, "records_cursor": records_cursor, "days": days, "reported": reported},
            sort_keys=True,
        )
        if not events:
            return dg.SensorResult(skip_reason=dg.SkipReason("no config change"), cursor=cursor)
        return dg.SensorResult(asset_events=events, cursor=cursor)

    return config_sensor


def unchanged_config_sources(instance: dg.DagsterInstance, storage: GateStorage) -> set[dg.AssetKey]:
    """Config sources whose file still has the data version last observed: a run need not observe them
    again (each observation is a step of its own)."""
    config, unchanged = storage.config(), set()
    for name, file_name in CONFIG_SOURCE_FILES.items():
        key = dg.AssetKey(name)
        records = instance.fetch_observations(key, limit=1).records
        observed = records[0].asset_observation.metadata.get("sha256") if records else None
        if observed is not None and observed.value == config_digest(config, file_name):
            unchanged.add(key)
    return unchanged


def build(settings: Settings) -> dg.Definitions:
    interval = settings.pipeline_config().automation.config_sensor_interval_seconds
    return dg.Definitions(
        assets=[
            _config_source(name, file_name, description)
            for name, (file_name, description) in CONFIG_SOURCES.items()
        ],
        asset_checks=[classified_with_current_whitelist],
        sensors=[build_config_sensor(interval)],
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build(Settings.from_env())
