"""The per-day layers as one step: raw_runs + quarantined_files (ingest) → run_table (validated) →
classified_runs (analysis), each its own asset with its own group, checks and lineage.

One step instead of three because each layer only feeds the next: in one pass a day is read, parsed,
normalized, validated and classified in memory, and a cold build spreads the days over worker processes.
The step is subsettable: a whitelist backfill selects classified_runs alone and reads the stored run tables.
"""

import hashlib

import dagster as dg
import pandas as pd

from gate_pipeline.defs.analysis import load_whitelist_from
from gate_pipeline.defs.metadata import OWNERS, column_schema, counts_markdown, frame_markdown
from gate_pipeline.defs.resources import GateStorage
from gate_pipeline.lib import daily
from gate_pipeline.lib.ingest import IngestLimits
from gate_pipeline.lib.tables import ClassifiedRuns, QuarantinedFiles, RunTable
from gate_pipeline.settings import PipelineConfig

FILES_READ = "artifact_files_read"  # artifact files this step read (a whitelist backfill reads none)
FILE_COUNTS = ["files_discovered", "files_accepted", "files_quarantined", "files_ignored"]
RUN_COUNTS = ["runs_discovered", "runs_with_gate_result", "runs_quarantined"]
TABLE_COUNTS = ["runs_in", "runs_accepted", "duplicates_quarantined", "runs_failed"]
RAW_RUNS, QUARANTINED_FILES, RUN_TABLE, CLASSIFIED_RUNS = (
    dg.AssetKey(name)
    for name in (daily.RAW_RUNS, daily.QUARANTINED_FILES, daily.RUN_TABLE, daily.CLASSIFIED_RUNS)
)
RUN_TABLE_CHECK = dg.AssetCheckKey(RUN_TABLE, "run_table_schema")
CLASSIFIED_CHECK = dg.AssetCheckKey(CLASSIFIED_RUNS, "classified_runs_schema")


def build_daily_assets(daily_partitions: dg.PartitionsDefinition, pipeline: PipelineConfig) -> list:
    limits = IngestLimits(
        max_file_bytes=pipeline.ingest.max_file_bytes,
        timestamp_window_days=pipeline.ingest.timestamp_window_days,
    )
    workers = daily.resolve_workers(pipeline.ingest.workers)
    parallel_min_days = pipeline.ingest.parallel_min_days

    @dg.multi_asset(
        name="daily_tables",
        specs=[
            dg.AssetSpec(
                RAW_RUNS,
                group_name="ingest",
                description="Parsed CI artifacts of one day: one row per run folder with a usable gate_result.json "
                "(payloads as canonical JSON, sha256 of every file).",
                owners=OWNERS,
                kinds={"pandas", "parquet"},
                skippable=True,
            ),
            dg.AssetSpec(
                QUARANTINED_FILES,
                group_name="ingest",
                description="Files and runs that could not be used (not UTF-8, not JSON, not an object, empty, "
                "too large, missing gate_result.json, duplicate run_id) with path, sha256 and reason.",
                owners=OWNERS,
                kinds={"pandas", "parquet"},
                metadata=column_schema(QuarantinedFiles),
                skippable=True,
            ),
            dg.AssetSpec(
                RUN_TABLE,
                deps=[RAW_RUNS],
                group_name="validated",
                description="One row per accepted CI run of a day, joining gate_result, drift_report and metrics; "
                "missing/invalid fields are null with an unknown class naming the field; duplicates resolved.",
                owners=OWNERS,
                kinds={"pandas", "parquet"},
                metadata=column_schema(RunTable),
                skippable=True,
            ),
            dg.AssetSpec(
                CLASSIFIED_RUNS,
                deps=[RUN_TABLE, "unknown_whitelist"],
                group_name="analysis",
                description="Every run with its unknown classes against the current whitelist, computed from the "
                "run_table (never from JSON). A whitelist edit is a backfill of this asset and what sits downstream.",
                owners=OWNERS,
                kinds={"pandas", "parquet"},
                metadata=column_schema(ClassifiedRuns),
                skippable=True,
            ),
        ],
        check_specs=[
            dg.AssetCheckSpec(
                RUN_TABLE_CHECK.name,
                asset=RUN_TABLE,
                blocking=True,
                description="pandera RunTable validated lazily: every failure case is listed.",
            ),
            dg.AssetCheckSpec(
                CLASSIFIED_CHECK.name,
                asset=CLASSIFIED_RUNS,
                blocking=True,
                description="pandera ClassifiedRuns validated lazily.",
            ),
        ],
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=True,
    )
    def daily_tables(context: dg.AssetExecutionContext, storage: GateStorage):
        selected = context.selected_asset_keys
        whitelist = load_whitelist_from(storage) if CLASSIFIED_RUNS in selected else None
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
        for chunk in daily.process_days(job, days, n_workers):
            results.extend(chunk.days)
            files_read += chunk.files_read
            table_failures.extend(chunk.table_failures)
            classified_failures.extend(chunk.classified_failures)
            for day in chunk.days:
                counts = {**(day.ingest_counts or {}), **(day.table_counts or {})}
                if counts:  # one observation per day: the per-partition counts in the UI
                    key = RUN_TABLE if day.table_counts is not None else RAW_RUNS
                    context.log_event(dg.AssetObservation(asset_key=key, partition=day.day, metadata=counts))
        processes = min(n_workers, len(days))
        context.log.info(f"{len(days)} day(s) in {processes} process(es)")
        if job.ingest:
            yield from _ingest_results(selected, storage, results, processes, files_read)
        if job.table:
            yield from _table_results(context, results, table_failures)
        if whitelist is not None and not table_failures:
            yield from _classified_results(context, whitelist, results, classified_failures, files_read)

    return [daily_tables]


def _ingest_results(
    selected, storage: GateStorage, results: list[daily.DayResult], processes: int, files_read: int
):
    per_day = {r.day: r.ingest_counts for r in results}
    totals = {k: sum(c[k] for c in per_day.values()) for k in FILE_COUNTS + RUN_COUNTS}
    # Same digest as sha256 of all days' sorted manifest lines joined by "\n" (paths start with the day).
    manifest = hashlib.sha256()
    for i, line in enumerate(line for r in results for line in r.manifest):
        manifest.update(f"\n{line}".encode() if i else line.encode())
    if RAW_RUNS in selected:
        yield dg.MaterializeResult(
            asset_key=RAW_RUNS,
            metadata={
                **totals,
                "days": len(per_day),
                "processes": processes,
                FILES_READ: files_read,
                "artifact_manifest_sha256": manifest.hexdigest(),
                "artifacts_root": storage.artifacts_url,
                "counts_per_day": dg.MetadataValue.md(counts_markdown(per_day, FILE_COUNTS + RUN_COUNTS)),
            },
        )
    if QUARANTINED_FILES in selected:
        frames = [r.quarantine for r in results if r.quarantine is not None and not r.quarantine.empty]
        qdf = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        yield dg.MaterializeResult(
            asset_key=QUARANTINED_FILES,
            metadata={
                "dagster/row_count": len(qdf),
                "files_quarantined": totals["files_quarantined"],
                "runs_quarantined": totals["runs_quarantined"],
                "by_reason": dg.MetadataValue.json(
                    {}
                    if qdf.empty
                    else {str(k): int(v) for k, v in qdf["reason"].value_counts().sort_index().items()}
                ),
                "preview": frame_markdown(qdf[["path", "reason", "detail"]] if not qdf.empty else qdf, 20),
            },
        )


def _table_results(context: dg.AssetExecutionContext, results, failures: list[dict]):
    per_day = {r.day: r.table_counts for r in results if r.table_counts is not None}
    missing = sorted(r.day for r in results if r.missing_input == daily.RAW_RUNS)
    totals = {k: sum(c[k] for c in per_day.values()) for k in TABLE_COUNTS}
    yield dg.MaterializeResult(
        asset_key=RUN_TABLE,
        metadata={
            "dagster/row_count": totals["runs_accepted"],
            **totals,
            "runs_with_field_issues": sum(r.field_issue_runs for r in results),
            "days_without_raw_runs": len(missing),
            "counts_per_day": dg.MetadataValue.md(counts_markdown(per_day, TABLE_COUNTS)),
        },
    )
    if RUN_TABLE_CHECK in context.selected_asset_check_keys:
        yield dg.AssetCheckResult(
            asset_key=RUN_TABLE,
            check_name=RUN_TABLE_CHECK.name,
            passed=not failures,
            metadata={
                "failure_count": len(failures),
                "failure_cases": dg.MetadataValue.json(failures[:100]),
                "days_checked": len(per_day),
            },
        )


def _classified_results(
    context: dg.AssetExecutionContext, whitelist, results, failures: list[dict], files_read: int
):
    classified = [r for r in results if r.classified_rows is not None]
    if not failures:
        yield dg.MaterializeResult(
            asset_key=CLASSIFIED_RUNS,
            metadata={
                "dagster/row_count": sum(r.classified_rows for r in classified),
                "days": len(classified),
                "days_without_run_table": sum(1 for r in results if r.missing_input is not None),
                "whitelist_sha256": whitelist.sha256,
                FILES_READ: files_read,
                "whitelist_entries": len(whitelist.entries),
                "runs_with_whitelisted_reason": sum(r.whitelisted_runs for r in classified),
                "runs_with_non_whitelisted_reason": sum(r.non_whitelisted_runs for r in classified),
            },
        )
    if CLASSIFIED_CHECK in context.selected_asset_check_keys:
        yield dg.AssetCheckResult(
            asset_key=CLASSIFIED_RUNS,
            check_name=CLASSIFIED_CHECK.name,
            passed=not failures,
            metadata={"failure_count": len(failures), "failure_cases": dg.MetadataValue.json(failures[:100])},
        )
