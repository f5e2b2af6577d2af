"""rollout_series: every run of every day, deduplicated and sorted, published as CSV + parquet."""

import dagster as dg
import orjson

from gate_pipeline.defs.analysis import HISTORY_FILE
from gate_pipeline.defs.metadata import OWNERS, column_schema
from gate_pipeline.defs.resources import GateStorage
from gate_pipeline.lib import series as series_lib
from gate_pipeline.lib.analysis import counts_section
from gate_pipeline.lib.storage import sha256_bytes
from gate_pipeline.lib.tables import RolloutSeries, validate

SOURCE_TABLE = "classified_runs"


def load_history(storage: GateStorage, table: str = SOURCE_TABLE):
    """All stored days of a per-day table, combined with the duplicate rule (what downstream assets read)."""
    data = storage.data()
    names = [n for n in data.list_names(table) if n.endswith(".parquet")]
    return series_lib.combine_days([data.read_parquet(table, n) for n in names]), len(names)


@dg.asset(
    deps=[SOURCE_TABLE],
    group_name="analysis",
    description="The rollout time series (seed 000): one row per run over all days, sorted by (timestamp, "
    "run_id), written byte-identically as rollout_series.csv and .parquet to the outputs location.",
    owners=OWNERS,
    kinds={"pandas", "csv", "parquet"},
    metadata=column_schema(RolloutSeries),
    automation_condition=dg.AutomationCondition.eager(),
)
def rollout_series(storage: GateStorage) -> dg.MaterializeResult:
    (runs, cross_day_dups), days = load_history(storage)
    series = series_lib.rollout_series(runs)
    failures = validate(RolloutSeries, series)
    if failures:
        raise dg.Failure(
            "rollout_series violates its schema",
            metadata={"failure_cases": dg.MetadataValue.json(failures[:50])},
        )
    csv = series_lib.series_csv_bytes(series)
    outputs = storage.outputs()
    csv_url = outputs.write_bytes(csv, "rollout_series.csv")
    outputs.write_parquet(series, "rollout_series.parquet")
    data = storage.data()
    data.write_parquet(runs, HISTORY_FILE)
    counts = counts_section(
        [orjson.loads(b) for b in data.read_folder("ingest_counts", suffix=".json").values()],
        [orjson.loads(b) for b in data.read_folder("table_counts", suffix=".json").values()],
        len(cross_day_dups),
        len(series),
    )
    data.write_bytes(orjson.dumps(counts, option=orjson.OPT_SORT_KEYS), "statistics", "counts.json")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(series),
            "days": days,
            "duplicates_across_days": len(cross_day_dups),
            "runs_discovered": counts["runs"]["discovered"],
            "runs_quarantined": counts["runs"]["quarantined_no_usable_gate_result"]
            + counts["runs"]["quarantined_duplicate_run_id"],
            "counts_balanced": counts["balanced"],
            "policy_hashes": dg.MetadataValue.json(sorted(series["policy_hash"].dropna().unique().tolist())),
            "csv": dg.MetadataValue.path(csv_url),
            "csv_sha256": sha256_bytes(csv),
        }
    )
