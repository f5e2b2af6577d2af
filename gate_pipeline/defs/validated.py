"""Group `validated`: run_table, one row per accepted run of a day, checked against the RunTable model.

Materialized by the per-day step in defs/ingest.py (one pass per day); this module holds the asset's spec,
its check and the metadata it reports.
"""

import dagster as dg

from gate_pipeline.dagster_helpers.metadata import OWNERS, column_schema, not_built, per_day_metadata
from gate_pipeline.lib import daily
from gate_pipeline.lib.tables import RunTable

GROUP = "validated"
RUN_TABLE = dg.AssetKey(daily.RUN_TABLE)
RUN_TABLE_CHECK = dg.AssetCheckKey(RUN_TABLE, "run_table_schema")
TABLE_COUNTS = ["runs_in", "runs_accepted", "duplicates_quarantined", "runs_failed"]


def run_table_spec(raw_runs: dg.AssetKey) -> dg.AssetSpec:
    return dg.AssetSpec(
        RUN_TABLE,
        deps=[raw_runs],
        group_name=GROUP,
        description="One row per accepted CI run of a day, joining gate_result, drift_report and metrics. "
        "Missing or invalid fields are null with an unknown class naming the field; duplicate runs resolved.",
        owners=OWNERS,
        kinds={"pandas", "parquet"},
        metadata=column_schema(RunTable),
        skippable=True,
    )


def run_table_check_spec() -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        RUN_TABLE_CHECK.name,
        asset=RUN_TABLE,
        blocking=True,
        description="Every row matches the RunTable model (all failures are listed).",
    )


def table_results(context: dg.AssetExecutionContext, results: list[daily.DayResult], failures: list[dict]):
    per_day = {r.day: r.table_counts for r in results if r.table_counts is not None}
    missing = sorted(r.day for r in results if r.missing_input == daily.RAW_RUNS)
    totals = {k: sum(c[k] for c in per_day.values()) for k in TABLE_COUNTS}
    per_day_metadata(context, RUN_TABLE, {r.day: _day_metadata(r) for r in results})
    yield dg.MaterializeResult(
        asset_key=RUN_TABLE,
        metadata={
            "run_days": len(results),
            **{f"run_total_{k}": v for k, v in totals.items()},
            "run_total_runs_with_field_issues": sum(r.field_issue_runs for r in results),
            "run_days_without_raw_runs": len(missing),
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


def _day_metadata(result: daily.DayResult) -> dict:
    """One day's run_table figures, on that day's materialization."""
    if result.table_counts is None:
        return not_built(result.missing_input)
    counts = result.table_counts
    return {
        "dagster/row_count": counts["runs_accepted"],
        **counts,
        "runs_with_field_issues": result.field_issue_runs,
    }
