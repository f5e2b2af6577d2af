"""Group `statistics`: the rollout statistics over the whole classified history, one asset per family.

All families are computed in one step (`rollout_statistics`), one section at a time, each from only the history
columns it reads (memory stays that of the largest section, not of the whole history's columns). Each writes
its JSON section to the data store and its tables as CSV to the outputs.
"""

import hashlib
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from gate_pipeline.dagster_helpers.metadata import OWNERS, frame_markdown, readable
from gate_pipeline.defs.resources import GateStorage
from gate_pipeline.defs.series import HISTORY_FILE
from gate_pipeline.lib import analysis, stored_statistics
from gate_pipeline.lib.memory import release_memory
from gate_pipeline.lib.stats import to_jsonable
from gate_pipeline.lib.storage import Store
from gate_pipeline.lib.whitelist import whitelist_health
from gate_pipeline.settings import Settings

GROUP = "statistics"
STATISTICS_DESCRIPTIONS = {
    "unknown_rate_stats": "Unknown rate per run: min, median, p95 and max per policy, per stratum and "
    "overall, with exact intervals for the median and p95.",
    "class_frequencies": "How often each unknown class occurs, overall and per policy, and the "
    "unknown reasons that keep recurring under a policy.",
    "unknown_spikes": "Runs whose unknown rate is far above their policy's median (median + k x MAD, at "
    "least a floor above it), per policy and top reason, with the FAIL rate among spikes against the rest.",
    "risk_measures": "Risk difference and risk ratio with 95% intervals: whitelisted against "
    "other unknowns, and FAIL with a reason against FAIL without it.",
    "stratum_metrics": "Per stratum and policy: WARN and FAIL counts and rates, unknown rate and causes, "
    "overrides, and the difference between strata with its interval.",
    "warn_threshold": "A recommended WARN threshold for the unknown rate per policy (from "
    "its median, once a policy has enough runs) and how many clean runs it would have flagged, with and "
    "without the whitelist; the candidate policy's is the headline.",
    "baseline_deltas": "The candidate policy against its baseline: FAIL and WARN+FAIL rate differences "
    "pooled and re-weighted to the baseline's stratum mix, a Simpson's paradox warning when they disagree in "
    "direction, the runs excluded by class, and every run compared (tables/compared_runs.csv).",
}
WHITELIST_CHECK = "whitelist_entries_current"


def _section_metadata(section: analysis.Section, paths: dict[str, str]) -> dict:
    # Plain numbers (no NaN/None) so the UI can plot them across materializations.
    metadata = {
        key: readable(value) if isinstance(value, float) else value
        for key, value in to_jsonable(section.numbers).items()
        if value is not None
    }
    metadata.update({f"table[{name}]": frame_markdown(df) for name, df in section.tables.items()})
    metadata.update({f"csv[{name}]": dg.MetadataValue.path(path) for name, path in paths.items()})
    return metadata


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            name,
            deps=["rollout_series", "analysis_config"],
            group_name=GROUP,
            description=description,
            owners=OWNERS,
            kinds={"pandas", "csv"},
            automation_condition=dg.AutomationCondition.eager(),
        )
        for name, description in STATISTICS_DESCRIPTIONS.items()
    ],
    check_specs=[
        dg.AssetCheckSpec(
            WHITELIST_CHECK,
            asset="class_frequencies",
            description="Warns about expired or never-matching whitelist entries, naming their owners.",
        )
    ],
)
def rollout_statistics(storage: GateStorage):
    """All statistics assets in one step, a section at a time from only the history columns it reads."""
    release_memory()
    cfg = storage.analysis_config()
    outputs, data = storage.outputs(), storage.data()
    # What these statistics are computed from, for what-if replay to take them over instead of computing them
    # again. The old key goes first (a crash half-way leaves no key naming these sources), the new one last.
    key = stored_statistics.source_key(stored_statistics.file_sha256(data, HISTORY_FILE), cfg)
    data.delete(stored_statistics.KEY_FILE)
    documents = {"methods": analysis.methods_bytes(cfg)}
    data.write_bytes(documents["methods"], "statistics", "methods.json")
    tables: dict[str, str] = {}  # name -> sha256 of the CSV written
    with data.open_read(HISTORY_FILE) as source:

        def read(columns: list[str], arrow: list[str]) -> pd.DataFrame:
            # Only the columns a section reads (the file hashes and metrics JSON are most of the history's
            # bytes), a column at a time, text through its dictionary (run ids are mostly distinct).
            # The previous section's frame and arrays (freed as their references went; a garbage collection
            # per section cost ~0.3 s of CPU).
            release_memory(collect=False)
            return analysis.history_frame(source, columns, unique=["run_id"], arrow=arrow)

        # One section at a time (what-if replay's compute_statistics publishes the same bytes): memory is the
        # largest section's, not the sum of them all.
        for asset_name, section, document in analysis.compute_sections(read, cfg):
            documents[section.name] = document
            data.write_bytes(document, "statistics", f"{section.name}.json")
            paths = {}
            for name, df in section.tables.items():
                tables[name], paths[name] = _write_csv(outputs, df, "tables", f"{name}.csv")
            yield dg.MaterializeResult(asset_key=asset_name, metadata=_section_metadata(section, paths))
            del section
        history = read(["top_reasons", "date"], [])
    data.write_bytes(stored_statistics.key_document(key, documents, tables), stored_statistics.KEY_FILE)
    yield from _whitelist_health_results(storage, history)


def _write_csv(store: Store, df: pd.DataFrame, *parts: str) -> tuple[str, str]:
    """The table's CSV written a slice at a time (compared_runs lists nearly every run): (sha256, path)."""
    digest = hashlib.sha256()
    with store.open_write(*parts) as handle:
        for piece in analysis.table_csv_chunks(df):
            digest.update(piece)
            handle.write(piece)
    return digest.hexdigest(), str(store.path(*parts))


def _whitelist_health_results(storage: GateStorage, history: pd.DataFrame):
    whitelist = storage.whitelist()
    latest_day = history["date"].max() if not history.empty else datetime.now(UTC).date().isoformat()
    health = whitelist_health(whitelist, history, datetime.fromisoformat(latest_day).date())
    yield dg.AssetCheckResult(
        check_name=WHITELIST_CHECK,
        asset_key="class_frequencies",
        passed=health.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "problems": len(health),
            "owners": dg.MetadataValue.json(sorted(set(health["owner"])))
            if not health.empty
            else dg.MetadataValue.json([]),
            "entries": frame_markdown(health),
            "evaluated_on": latest_day,
        },
    )


def build(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[rollout_statistics])


@dg.definitions
def defs() -> dg.Definitions:
    return build(Settings.from_env())
