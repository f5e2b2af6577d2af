"""rollout_series: every run of every day, deduplicated and sorted, published as CSV + parquet."""

import dagster as dg
import orjson
import pandas as pd

from gate_pipeline.defs.analysis import HISTORY_FILE, VERSIONS_FOLDER
from gate_pipeline.defs.metadata import OWNERS, column_schema
from gate_pipeline.defs.resources import GateStorage
from gate_pipeline.lib import series as series_lib
from gate_pipeline.lib.analysis import counts_section
from gate_pipeline.lib.storage import sha256_bytes
from gate_pipeline.lib.tables import RolloutSeries, validate

SOURCE_TABLE = "classified_runs"


UNION_FILE = "rollout_union.parquet"  # every stored day's classified rows, before cross-day dedupe
UNION_VERSIONS = "rollout_union_versions.json"  # day -> digest of the classified_runs file it came from


def load_union(storage: GateStorage) -> tuple[pd.DataFrame, list[str], int]:
    """The union of all stored days, re-reading only days whose classified_runs file changed since last time."""
    data = storage.data()
    versions = {
        name.removesuffix(".sha256"): digest.decode()
        for name, digest in data.read_folder(VERSIONS_FOLDER, suffix=".sha256").items()
    }
    cached, cached_versions = None, {}
    if data.exists(UNION_FILE) and data.exists(UNION_VERSIONS):
        cached, cached_versions = data.read_parquet(UNION_FILE), orjson.loads(data.read_bytes(UNION_VERSIONS))
    union, read = series_lib.update_union(
        cached, cached_versions, versions, lambda day: data.read_parquet(SOURCE_TABLE, f"{day}.parquet")
    )
    if cached is None or versions != cached_versions:  # a day was read, or one disappeared
        data.write_parquet(union, UNION_FILE)
        data.write_bytes(orjson.dumps(versions, option=orjson.OPT_SORT_KEYS), UNION_VERSIONS)
    return union, read, len(versions)


@dg.asset(
    deps=[SOURCE_TABLE],
    group_name="analysis",
    description="The rollout time series (seed 000): one row per run over all days, sorted by (timestamp, "
    "run_id), written byte-identically as rollout_series.csv and .parquet to the outputs location.",
    owners=OWNERS,
    kinds={"pandas", "csv", "parquet"},
    metadata=column_schema(RolloutSeries),
    # eager() waits until no parent partition is missing, which never happens for daily parents (days
    # without artifacts stay missing), so that clause is dropped: a new day updates the series.
    automation_condition=dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing()),
)
def rollout_series(storage: GateStorage) -> dg.MaterializeResult:
    union, days_read, days = load_union(storage)
    runs, cross_day_dups = series_lib.combine_days([union])
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
            "days_read": len(days_read),
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
