"""Group `ingest`: raw_runs and quarantined_files, and the per-day step that builds the daily layers.

The step `daily_tables` materializes raw_runs + quarantined_files (ingest) -> run_table (validated,
defs/validated.py) -> classified_runs (classified, defs/classified.py), each its own asset with its own
group, checks and lineage. One step instead of three because each layer only feeds the next: in one pass a
day is read, parsed, normalized, validated and classified in memory, and a cold build spreads the days over
worker processes. The step is subsettable: a whitelist backfill selects classified_runs alone and reads the
stored run tables.
"""

import hashlib

import dagster as dg
import pandas as pd

from gate_pipeline.dagster_helpers.metadata import OWNERS, column_schema, frame_markdown, per_day_metadata
from gate_pipeline.dagster_helpers.partitions import daily_partitions
from gate_pipeline.defs.classified import (
    CLASSIFIED_RUNS,
    FILES_READ,
    classified_check_spec,
    classified_results,
    classified_runs_spec,
)
from gate_pipeline.defs.resources import GateStorage
from gate_pipeline.defs.validated import RUN_TABLE, run_table_check_spec, run_table_spec, table_results
from gate_pipeline.lib import daily
from gate_pipeline.lib.ingest import IngestLimits
from gate_pipeline.lib.stage_clock import StageClock
from gate_pipeline.lib.tables import QuarantinedFiles
from gate_pipeline.settings import PipelineConfig, Settings

GROUP = "ingest"
FILE_COUNTS = ["files_discovered", "files_accepted", "files_quarantined", "files_ignored"]
RUN_COUNTS = ["runs_discovered", "runs_with_gate_result", "runs_quarantined"]
RAW_RUNS = dg.AssetKey(daily.RAW_RUNS)
QUARANTINED_FILES = dg.AssetKey(daily.QUARANTINED_FILES)
WHITELIST_SOURCE = dg.AssetKey("unknown_whitelist")
#: The per-day chain a new or changed day needs (what the artifact sensor requests).
INGEST_CHAIN = [RAW_RUNS, QUARANTINED_FILES, RUN_TABLE, CLASSIFIED_RUNS]


def build_daily_assets(daily_partitions_def: dg.PartitionsDefinition, pipeline: PipelineConfig) -> list:
    limits = IngestLimits(
        max_file_bytes=pipeline.ingest.max_file_bytes,
        timestamp_window_days=pipeline.ingest.timestamp_window_days,
    )
    workers = daily.resolve_workers(pipeline.ingest.workers)
    parallel_min_days = pipeline.ingest.parallel_min_days
    days_per_chunk = pipeline.ingest.days_per_chunk
    days_per_run = pipeline.ingest.max_days_per_run

    @dg.multi_asset(
        name="daily_tables",
        specs=[
            dg.AssetSpec(
                RAW_RUNS,
                group_name=GROUP,
                description="Parsed CI artifacts of one day: one row per run folder with a usable "
                "gate_result.json (payloads as canonical JSON, sha256 of every file).",
                owners=OWNERS,
                kinds={"pandas", "parquet"},
                skippable=True,
            ),
            dg.AssetSpec(
                QUARANTINED_FILES,
                group_name=GROUP,
                description="Files and runs that could not be used (for example not UTF-8, not JSON, too "
                "large, no gate_result.json, a duplicate run_id), each with path, sha256 and reason.",
                owners=OWNERS,
                kinds={"pandas", "parquet"},
                metadata=column_schema(QuarantinedFiles),
                skippable=True,
            ),
            run_table_spec(RAW_RUNS),
            classified_runs_spec(RUN_TABLE, WHITELIST_SOURCE),
        ],
        check_specs=[run_table_check_spec(), classified_check_spec()],
        partitions_def=daily_partitions_def,
        backfill_policy=(
            dg.BackfillPolicy.multi_run(days_per_run) if days_per_run else dg.BackfillPolicy.single_run()
        ),
        can_subset=True,
    )
    def daily_tables(context: dg.AssetExecutionContext, storage: GateStorage):
        selected = context.selected_asset_keys
        whitelist = storage.whitelist() if CLASSIFIED_RUNS in selected else None
        job = daily.DailyJob(
            artifacts_url=storage.artifacts_url,
            data_url=storage.data_url,
            storage_options=storage.storage_options,
            limits=limits,
            ingest=bool(selected & {RAW_RUNS, QUARANTINED_FILES}),
            table=RUN_TABLE in selected,
            whitelist=whitelist,
        )
        days = list(context.partition_keys)
        # Worker processes pay off where artifacts are read and parsed; re-classifying stored tables is
        # cheaper than starting them.
        n_workers = workers if job.ingest and len(days) >= parallel_min_days else 1
        results: list[daily.DayResult] = []
        files_read = 0
        table_failures: list[dict] = []
        classified_failures: list[dict] = []
        workers_clock, step_clock = StageClock(), StageClock()  # summed over the workers; this process
        chunks = daily.process_days(job, days, n_workers, days_per_chunk)
        while True:
            with step_clock.stage("waiting for workers"):
                chunk = next(chunks, None)
            if chunk is None:
                break
            workers_clock.add(chunk.stages)
            results.extend(chunk.days)
            files_read += chunk.files_read
            table_failures.extend(chunk.table_failures)
            classified_failures.extend(chunk.classified_failures)
            # One log line per chunk of days (not an event per day): the CLI's progress display follows it.
            with step_clock.stage("dagster events"):
                context.log.info(daily.days_done_message(chunk.days))
        processes = min(n_workers, len(days))
        context.log.info(f"{len(days)} day(s) in {processes} process(es)")
        outputs = []
        if job.ingest:
            outputs.append(_ingest_results(context, selected, storage, results, processes, files_read))
        if job.table:
            outputs.append(table_results(context, results, table_failures))
        if whitelist is not None and not table_failures:
            outputs.append(classified_results(context, whitelist, results, classified_failures, files_read))
        for output in outputs:
            yield from step_clock.timed_yields(output, work="building results", handling="dagster events")
        context.log.info(daily.stages_message(processes, workers_clock, step_clock))

    return [daily_tables]


def _ingest_results(
    context: dg.AssetExecutionContext,
    selected,
    storage: GateStorage,
    results: list[daily.DayResult],
    processes: int,
    files_read: int,
):
    per_day = {r.day: r.ingest_counts for r in results}
    totals = {k: sum(c[k] for c in per_day.values()) for k in FILE_COUNTS + RUN_COUNTS}
    quarantine = {r.day: r.quarantine if r.quarantine is not None else pd.DataFrame() for r in results}
    # Same digest as sha256 of all days' sorted manifest lines joined by "\n" (paths start with the day).
    manifest = hashlib.sha256()
    for i, line in enumerate(line for r in results for line in r.manifest):
        manifest.update(f"\n{line}".encode() if i else line.encode())
    # Each partition's event carries that day's own figures (context.add_asset_metadata per partition);
    # what the whole run covered is under run_* keys, the same on every day of the run.
    run_totals = {f"run_total_{k}": v for k, v in totals.items()}
    if RAW_RUNS in selected:
        per_day_metadata(
            context,
            RAW_RUNS,
            {
                r.day: {
                    "dagster/row_count": r.ingest_counts["runs_with_gate_result"],
                    **r.ingest_counts,
                    "files_read_by_kind": dg.MetadataValue.json(_files_by_kind(r.manifest)),
                }
                for r in results
            },
        )
        yield dg.MaterializeResult(
            asset_key=RAW_RUNS,
            metadata={
                "run_days": len(per_day),
                **run_totals,
                "processes": processes,
                FILES_READ: files_read,
                "run_artifact_manifest_sha256": manifest.hexdigest(),
                "artifacts_root": storage.artifacts_url,
            },
        )
    if QUARANTINED_FILES in selected:
        per_day_metadata(
            context,
            QUARANTINED_FILES,
            {day: _quarantine_metadata(qdf, per_day[day]) for day, qdf in quarantine.items()},
        )
        yield dg.MaterializeResult(
            asset_key=QUARANTINED_FILES,
            metadata={
                "run_days": len(per_day),
                "run_total_files_quarantined": totals["files_quarantined"],
                "run_total_runs_quarantined": totals["runs_quarantined"],
            },
        )


def _files_by_kind(manifest: list[str]) -> dict[str, int]:
    """Artifact files read, by kind (gate_result, drift_report, metrics), from the day's manifest lines."""
    kinds: dict[str, int] = {}
    for line in manifest:
        name = line.split("\t", 1)[0].rsplit("/", 1)[-1].removesuffix(".json")
        kinds[name] = kinds.get(name, 0) + 1
    return dict(sorted(kinds.items()))


def _quarantine_metadata(qdf: pd.DataFrame, counts: dict[str, int]) -> dict:
    """One day's quarantine: rows, counts by reason and by kind, and a preview."""

    def tally(column: str) -> dg.JsonMetadataValue:
        if qdf.empty:
            return dg.MetadataValue.json({})
        return dg.MetadataValue.json(
            {str(k): int(v) for k, v in qdf[column].value_counts().sort_index().items()}
        )

    return {
        "dagster/row_count": len(qdf),
        "files_quarantined": counts["files_quarantined"],
        "runs_quarantined": counts["runs_quarantined"],
        "by_reason": tally("reason"),
        "by_file_kind": tally("file_kind"),
        "preview": frame_markdown(qdf[["path", "reason", "detail"]] if not qdf.empty else qdf, 20),
    }


def build(settings: Settings) -> dg.Definitions:
    pipeline = settings.pipeline_config()
    return dg.Definitions(assets=build_daily_assets(daily_partitions(), pipeline))


@dg.definitions
def defs() -> dg.Definitions:
    return build(Settings.from_env())
