"""Group `classified`: classified_runs, every run's unknown reasons classed against the current whitelist.

Materialized by the per-day step in defs/ingest.py from the stored run_table (never from JSON); a whitelist
edit is a backfill of classified_runs and what sits downstream. This module holds the asset's spec, its
check and the metadata it reports.
"""

import dagster as dg

from gate_pipeline.dagster_helpers.metadata import OWNERS, column_schema, not_built, per_day_metadata
from gate_pipeline.lib import daily
from gate_pipeline.lib.tables import ClassifiedRuns
from gate_pipeline.lib.whitelist import Whitelist

GROUP = "classified"
CLASSIFIED_RUNS = dg.AssetKey(daily.CLASSIFIED_RUNS)
CLASSIFIED_CHECK = dg.AssetCheckKey(CLASSIFIED_RUNS, "classified_runs_schema")
FILES_READ = "artifact_files_read"  # artifact files the step read (a whitelist backfill reads none)


def classified_runs_spec(run_table: dg.AssetKey, whitelist: dg.AssetKey) -> dg.AssetSpec:
    return dg.AssetSpec(
        CLASSIFIED_RUNS,
        deps=[run_table, whitelist],
        group_name=GROUP,
        description="Every run with its unknown reasons classified against the current whitelist "
        "(known noise or not). After a whitelist edit, backfill it to re-classify the history.",
        owners=OWNERS,
        kinds={"pandas", "parquet"},
        metadata=column_schema(ClassifiedRuns),
        skippable=True,
    )


def classified_check_spec() -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        CLASSIFIED_CHECK.name,
        asset=CLASSIFIED_RUNS,
        blocking=True,
        description="Every row matches the ClassifiedRuns model.",
    )


def classified_results(
    context: dg.AssetExecutionContext,
    whitelist: Whitelist,
    results: list[daily.DayResult],
    failures: list[dict],
    files_read: int,
):
    classified = [r for r in results if r.classified_rows is not None]
    if not failures:
        days = {r.day: not_built(r.missing_input) for r in results if r.classified_rows is None}
        for r in classified:
            days[r.day] = {
                "dagster/row_count": r.classified_rows,
                "runs_with_whitelisted_reason": r.whitelisted_runs,
                "runs_with_non_whitelisted_reason": r.non_whitelisted_runs,
            }
        per_day_metadata(context, CLASSIFIED_RUNS, days)
        yield dg.MaterializeResult(
            asset_key=CLASSIFIED_RUNS,
            metadata={
                "run_days": len(classified),
                "run_total_rows": sum(r.classified_rows for r in classified),
                "run_days_without_run_table": sum(1 for r in results if r.missing_input is not None),
                "whitelist_sha256": whitelist.sha256,
                FILES_READ: files_read,
                "whitelist_entries": len(whitelist.entries),
                "run_total_runs_with_whitelisted_reason": sum(r.whitelisted_runs for r in classified),
                "run_total_runs_with_non_whitelisted_reason": sum(r.non_whitelisted_runs for r in classified),
            },
        )
    if CLASSIFIED_CHECK in context.selected_asset_check_keys:
        yield dg.AssetCheckResult(
            asset_key=CLASSIFIED_RUNS,
            check_name=CLASSIFIED_CHECK.name,
            passed=not failures,
            metadata={"failure_count": len(failures), "failure_cases": dg.MetadataValue.json(failures[:100])},
        )
