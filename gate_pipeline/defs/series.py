"""Group `series`: rollout_series, every run of every day, deduplicated and sorted, as CSV + parquet."""

from datetime import UTC, datetime

import dagster as dg
import orjson

from gate_pipeline.dagster_helpers.conditions import SEEN_EVENT_ID, follows_parent, latest_event_id
from gate_pipeline.dagster_helpers.metadata import OWNERS, column_schema
from gate_pipeline.defs.resources import GateStorage
from gate_pipeline.lib import daily, series_cache
from gate_pipeline.lib.analysis import counts_section
from gate_pipeline.lib.discovery import date_window, list_top_level
from gate_pipeline.lib.ingest import quarantine_frame
from gate_pipeline.lib.memory import release_memory
from gate_pipeline.lib.published import HISTORY_FILE
from gate_pipeline.lib.tables import RolloutSeries
from gate_pipeline.settings import Settings

GROUP = "series"
SOURCE_TABLE = daily.CLASSIFIED_RUNS
VERSIONS_FOLDER = daily.CLASSIFIED_VERSIONS  # <day>.sha256: digest of each stored classified_runs file
# Per-day formatted + validated fragments (lib/series_cache.py, update_series).
CACHE_FOLDER = "rollout_series_cache"


def root_entries(storage: GateStorage, built: set[str]) -> list[tuple]:
    """Quarantine rows for the top-level entries that are not built: not a date folder, a symlink, a date
    folder outside the window (partitions.start_date .. today + partitions.max_future_days), or a date folder
    in it with no stored day (empty, or not materialized)."""
    partitions = storage.settings().pipeline_config().partitions
    first, last = date_window(partitions.start_date, partitions.max_future_days, datetime.now(UTC).date())
    inside, refused = list_top_level(storage.artifacts().root).accounted(first, last)
    unbuilt = [
        (d, "date_folder_not_built", "no files, or not materialized") for d in inside if d not in built
    ]
    return [
        ("", name, name, "entry", None, 0, reason, detail)
        for name, reason, detail in sorted(refused + unbuilt)
    ]


def classified_versions(storage: GateStorage) -> dict[str, str]:
    """Day → digest of its stored classified_runs file."""
    return {
        name.removesuffix(".sha256"): digest.decode()
        for name, digest in storage.data().read_folder(VERSIONS_FOLDER, suffix=".sha256").items()
    }


@dg.asset(
    deps=[SOURCE_TABLE],
    group_name=GROUP,
    description="The rollout time series: one row per run over all days, sorted by time (then run id), "
    "published as rollout_series.csv and rollout_series.parquet.",
    owners=OWNERS,
    kinds={"pandas", "csv", "parquet"},
    metadata=column_schema(RolloutSeries),
    # Not eager(): it waits for every daily parent partition (days without artifacts stay missing) and
    # loses days that land while the series runs (dagster_helpers/conditions.py).
    automation_condition=follows_parent(SOURCE_TABLE),
)
def rollout_series(context: dg.AssetExecutionContext, storage: GateStorage) -> dg.MaterializeResult:
    release_memory()  # what the daily step left behind, before the history is read
    # Taken before the inputs are read: every day classified up to this event is in them.
    seen = latest_event_id(context.instance, dg.AssetKey(SOURCE_TABLE))
    data = storage.data()
    versions = classified_versions(storage)
    outputs = storage.outputs()
    try:
        # Streamed to the three files in bounded chunks (each published atomically when the block ends), so
        # the step never holds the whole history's outputs in memory.
        with (
            outputs.open_write("rollout_series.csv") as csv,
            outputs.open_write("rollout_series.parquet") as series_parquet,
            data.open_write(HISTORY_FILE) as history_parquet,
        ):
            built = series_cache.write_series(
                data,
                CACHE_FOLDER,
                versions,
                lambda day: data.read_parquet(SOURCE_TABLE, f"{day}.parquet"),
                series_cache.SeriesSinks(csv, series_parquet, history_parquet),
            )
    except series_cache.SeriesSchemaError as exc:
        raise dg.Failure(
            "rollout_series violates its schema",
            metadata={"failure_cases": dg.MetadataValue.json(exc.failures[:50])},
        ) from exc
    csv_url = outputs.url("rollout_series.csv")
    ingest_counts = data.read_folder("ingest_counts", suffix=".json")
    entries = root_entries(storage, {name.removesuffix(".json") for name in ingest_counts})
    # Quarantine rows of what no day's quarantined_files holds: refused top-level entries and the losing
    # copies of run_ids found on several days (path, reason, detail), in the data store.
    data.write_parquet(quarantine_frame(entries), "quarantined_entries.parquet")
    data.write_parquet(quarantine_frame(built.duplicate_losers), "cross_day_duplicates.parquet")
    counts = counts_section(
        [orjson.loads(b) for b in ingest_counts.values()],
        [orjson.loads(b) for b in data.read_folder("table_counts", suffix=".json").values()],
        built.cross_day_duplicates,
        built.rows,
        entries,
    )
    data.write_bytes(orjson.dumps(counts, option=orjson.OPT_SORT_KEYS), "statistics", "counts.json")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": built.rows,
            **({SEEN_EVENT_ID: seen} if seen is not None else {}),
            "days": len(versions),
            "days_read": len(built.days_built),
            "series_cache": built.cache,
            "duplicates_across_days": built.cross_day_duplicates,
            "runs_discovered": counts["runs"]["discovered"],
            "runs_quarantined": counts["runs"]["quarantined_no_usable_gate_result"]
            + counts["runs"]["quarantined_duplicate_run_id"]
            + counts["runs"]["quarantined_normalize_failed"],
            "counts_balanced": counts["balanced"],
            "policy_hashes": dg.MetadataValue.json(built.policy_hashes),
            "csv": dg.MetadataValue.path(csv_url),
            "csv_sha256": built.csv_sha256,
        }
    )


def build(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[rollout_series])


@dg.definitions
def defs() -> dg.Definitions:
    return build(Settings.from_env())
