"""Ingest and validated layers: raw_runs + quarantined_files (per day) → run_table (per day, blocking check)."""

import dagster as dg
import orjson
import pandas as pd

from gate_pipeline.defs.metadata import OWNERS, column_schema, counts_markdown, frame_markdown
from gate_pipeline.defs.resources import GateStorage
from gate_pipeline.lib.ingest import IngestLimits, scan_day
from gate_pipeline.lib.normalize import normalize_day
from gate_pipeline.lib.storage import sha256_bytes
from gate_pipeline.lib.tables import BatchValidator, QuarantinedFiles, RunTable
from gate_pipeline.settings import PipelineConfig

FILE_COUNTS = ["files_discovered", "files_accepted", "files_quarantined", "files_ignored"]
RUN_COUNTS = ["runs_discovered", "runs_with_gate_result", "runs_quarantined"]
TABLE_COUNTS = ["runs_in", "runs_accepted", "duplicates_quarantined"]


def partition_file(day: str) -> str:
    return f"{day}.parquet"


def build_ingest_assets(daily: dg.PartitionsDefinition, pipeline: PipelineConfig) -> list:
    limits = IngestLimits(max_file_bytes=pipeline.ingest.max_file_bytes)

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                "raw_runs",
                group_name="ingest",
                description="Parsed CI artifacts of one day: one row per run folder with a usable gate_result.json "
                "(payloads as canonical JSON, sha256 of every file).",
                owners=OWNERS,
                kinds={"pandas", "parquet"},
            ),
            dg.AssetSpec(
                "quarantined_files",
                group_name="ingest",
                description="Files and runs that could not be used (not UTF-8, not JSON, not an object, empty, "
                "too large, missing gate_result.json, duplicate run_id) with path, sha256 and reason.",
                owners=OWNERS,
                kinds={"pandas", "parquet"},
                metadata=column_schema(QuarantinedFiles),
            ),
        ],
        partitions_def=daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def artifact_ingest(context: dg.AssetExecutionContext, storage: GateStorage):
        artifacts, data = storage.artifacts(), storage.data()
        per_day: dict[str, dict[str, int]] = {}
        quarantined: list[pd.DataFrame] = []
        manifest_lines: list[str] = []
        for day in context.partition_keys:
            scan = scan_day(artifacts, day, limits)
            data.write_parquet(scan.raw_runs, "raw_runs", partition_file(day))
            data.write_parquet(scan.quarantine, "quarantined_files", partition_file(day))
            quarantined.append(scan.quarantine)
            per_day[day] = scan.counts
            data.write_bytes(
                orjson.dumps(scan.counts, option=orjson.OPT_SORT_KEYS), "ingest_counts", f"{day}.json"
            )
            manifest_lines.extend(f"{path}\t{size}\t{digest}" for path, size, digest in scan.manifest)
            context.log_event(
                dg.AssetObservation(asset_key="raw_runs", partition=day, metadata=dict(scan.counts))
            )
        totals = {k: sum(c[k] for c in per_day.values()) for k in FILE_COUNTS + RUN_COUNTS}
        manifest_sha = sha256_bytes("\n".join(sorted(manifest_lines)).encode())
        yield dg.MaterializeResult(
            asset_key="raw_runs",
            metadata={
                **totals,
                "days": len(per_day),
                "artifact_manifest_sha256": manifest_sha,
                "artifacts_root": storage.artifacts_url,
                "counts_per_day": dg.MetadataValue.md(counts_markdown(per_day, FILE_COUNTS + RUN_COUNTS)),
            },
        )
        qdf = pd.concat(quarantined, ignore_index=True) if quarantined else pd.DataFrame()
        yield dg.MaterializeResult(
            asset_key="quarantined_files",
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

    @dg.asset(
        deps=["raw_runs"],
        group_name="validated",
        partitions_def=daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description="One row per accepted CI run of a day, joining gate_result, drift_report and metrics; "
        "missing/invalid fields are null with an unknown class naming the field; duplicates resolved.",
        owners=OWNERS,
        kinds={"pandas", "parquet"},
        metadata=column_schema(RunTable),
        check_specs=[
            dg.AssetCheckSpec(
                "run_table_schema",
                asset="run_table",
                blocking=True,
                description="pandera RunTable validated lazily: every failure case is listed.",
            )
        ],
    )
    def run_table(context: dg.AssetExecutionContext, storage: GateStorage):
        data = storage.data()
        per_day: dict[str, dict[str, int]] = {}
        validator = BatchValidator(RunTable)
        rows = 0
        field_issue_runs = 0
        for day in context.partition_keys:
            raw = data.read_parquet("raw_runs", partition_file(day))
            table, dup_quarantine = normalize_day(raw)
            validator.add(day, table)
            data.write_parquet(table, "run_table", partition_file(day))
            data.write_parquet(dup_quarantine, "run_table_duplicates", partition_file(day))
            per_day[day] = {
                "runs_in": len(raw),
                "runs_accepted": len(table),
                "duplicates_quarantined": len(dup_quarantine),
            }
            data.write_bytes(
                orjson.dumps(per_day[day], option=orjson.OPT_SORT_KEYS), "table_counts", f"{day}.json"
            )
            rows += len(table)
            field_issue_runs += int((table["field_issues"] != "[]").sum())
            context.log_event(
                dg.AssetObservation(asset_key="run_table", partition=day, metadata=per_day[day])
            )
        failures = validator.flush()
        totals = {k: sum(c[k] for c in per_day.values()) for k in TABLE_COUNTS}
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                **totals,
                "runs_with_field_issues": field_issue_runs,
                "counts_per_day": dg.MetadataValue.md(counts_markdown(per_day, TABLE_COUNTS)),
            }
        )
        yield dg.AssetCheckResult(
            check_name="run_table_schema",
            passed=not failures,
            metadata={
                "failure_count": len(failures),
                "failure_cases": dg.MetadataValue.json(failures[:100]),
                "days_checked": len(per_day),
            },
        )

    return [artifact_ingest, run_table]
