"""Analysis layer: config sources, classified_runs (per day), rollout statistics (all history)."""

from datetime import UTC, datetime

import dagster as dg
import orjson
import pandas as pd

from gate_pipeline.defs.metadata import OWNERS, column_schema, frame_markdown, readable
from gate_pipeline.defs.resources import GateStorage
from gate_pipeline.lib import analysis
from gate_pipeline.lib.classify import classify_runs
from gate_pipeline.lib.stats import AnalysisConfig, load_analysis_config, to_jsonable
from gate_pipeline.lib.storage import parquet_bytes, sha256_bytes
from gate_pipeline.lib.tables import BatchValidator, ClassifiedRuns
from gate_pipeline.lib.whitelist import Whitelist, load_whitelist, whitelist_health

WHITELIST_FILE = "unknown_whitelist.json"
ANALYSIS_FILE = "analysis.yaml"
DECISION_FILE = "policy_constants.yaml"
HISTORY_FILE = "rollout_runs.parquet"  # written by rollout_series: the classified, deduplicated history
VERSIONS_FOLDER = "classified_runs_versions"  # <day>.sha256: digest of each stored classified_runs file


def load_whitelist_from(storage: GateStorage) -> Whitelist:
    config = storage.config()
    return load_whitelist(config.read_bytes(WHITELIST_FILE), config.url(WHITELIST_FILE))


def load_analysis_config_from(storage: GateStorage) -> AnalysisConfig:
    config = storage.config()
    if not config.exists(ANALYSIS_FILE):
        return AnalysisConfig()
    return load_analysis_config(config.read_bytes(ANALYSIS_FILE), config.url(ANALYSIS_FILE))


def _config_source(name: str, file_name: str, description: str, observe_cron: str):
    """An observable source asset whose data version is the sha256 of the config file's bytes.

    Observed on `automation.config_observe_cron` by the automation sensor, so an edit marks everything
    downstream unsynced in the UI.
    """

    @dg.observable_source_asset(
        name=name,
        group_name="config",
        description=description,
        required_resource_keys={"storage"},
        automation_condition=dg.AutomationCondition.cron_tick_passed(observe_cron),
        owners=OWNERS,
    )
    def _observe(context) -> dg.ObserveResult:
        config = context.resources.storage.config()
        digest = sha256_bytes(config.read_bytes(file_name)) if config.exists(file_name) else "absent"
        return dg.ObserveResult(
            data_version=dg.DataVersion(digest),
            metadata={"path": dg.MetadataValue.path(config.url(file_name)), "sha256": digest},
        )

    return _observe


def build_config_sources(observe_cron: str) -> list:
    return [
        _config_source(
            "unknown_whitelist",
            WHITELIST_FILE,
            "Known unknown reasons (exact or glob), the class each maps to, owner and expiry (seed 000).",
            observe_cron,
        ),
        _config_source(
            "analysis_config",
            ANALYSIS_FILE,
            "Statistics parameters: strata column, recurrence k, spike MAD k, WARN threshold.",
            observe_cron,
        ),
        _config_source(
            "decision_config",
            DECISION_FILE,
            "Rollout phases and decision rules (seed 001 policy_constants).",
            observe_cron,
        ),
    ]


def build_classified_runs(daily: dg.PartitionsDefinition):
    @dg.asset(
        deps=["run_table", "unknown_whitelist"],
        group_name="analysis",
        partitions_def=daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description="Every run with its unknown classes against the current whitelist, computed from the stored "
        "run_table (never from JSON). A whitelist edit is a backfill of this asset and what sits downstream.",
        owners=OWNERS,
        kinds={"pandas", "parquet"},
        metadata=column_schema(ClassifiedRuns),
        check_specs=[
            dg.AssetCheckSpec(
                "classified_runs_schema",
                asset="classified_runs",
                blocking=True,
                description="pandera ClassifiedRuns validated lazily.",
            )
        ],
    )
    def classified_runs(context: dg.AssetExecutionContext, storage: GateStorage):
        whitelist = load_whitelist_from(storage)
        data = storage.data()
        validator = BatchValidator(ClassifiedRuns)
        rows, whitelisted_runs, non_whitelisted_runs, no_run_table = 0, 0, 0, []
        for day in context.partition_keys:
            name = f"{day}.parquet"
            if not data.exists("run_table", name):
                # A day without artifacts has no run table: nothing to classify (a UI "all partitions"
                # backfill selects such days too). Counted in the metadata, never silently.
                no_run_table.append(day)
                continue
            table = data.read_parquet("run_table", name)
            classified = classify_runs(table, whitelist)
            validator.add(day, classified)
            payload = parquet_bytes(classified)
            data.write_bytes(payload, "classified_runs", name)
            # A digest per day lets rollout_series re-read only the days that changed.
            data.write_bytes(sha256_bytes(payload).encode(), VERSIONS_FOLDER, f"{day}.sha256")
            rows += len(classified)
            whitelisted_runs += int((classified["whitelisted_classes"] != "[]").sum())
            non_whitelisted_runs += int((classified["non_whitelisted_reasons"] != "[]").sum())
        failures = validator.flush()
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "days": len(context.partition_keys) - len(no_run_table),
                "days_without_run_table": len(no_run_table),
                "whitelist_sha256": whitelist.sha256,
                "whitelist_entries": len(whitelist.entries),
                "runs_with_whitelisted_reason": whitelisted_runs,
                "runs_with_non_whitelisted_reason": non_whitelisted_runs,
            }
        )
        yield dg.AssetCheckResult(
            check_name="classified_runs_schema",
            passed=not failures,
            metadata={"failure_count": len(failures), "failure_cases": dg.MetadataValue.json(failures[:100])},
        )

    return classified_runs


def load_classified_history(storage: GateStorage) -> pd.DataFrame:
    return storage.data().read_parquet(HISTORY_FILE)


STATISTICS_DESCRIPTIONS = {
    "unknown_rate_summary": "unknown_rate min / median / p95 / max per policy_hash, per stratum and overall "
    "(seed 000 Zielgrößen, seed 003 tails).",
    "unknown_class_frequencies": "Unknown class frequency table overall and per policy_hash, and recurring unknown "
    "patterns per policy_hash.",
    "unknown_spikes": "Runs above median + k·MAD of unknown_rate, grouped by top reason, with FAIL rate among spikes "
    "vs elsewhere (seed 000 outlier definition).",
    "unknown_risk_measures": "Risk difference / ratio: whitelisted vs non-whitelisted unknowns, FAIL given a reason vs "
    "without it (95% CIs: Wilson, Newcombe, Katz log).",
    "stratum_metrics": "Per stratum and policy_hash: WARN/FAIL counts and rates, combined rate, unknown rate and "
    "causes, overrides, and the pairwise Δ of the combined rate with its CI (seed 001).",
    "warn_threshold_recommendation": "Median-based WARN threshold for unknown_rate and its false-positive rate on "
    "history, with and without the whitelist (seed 000).",
}


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
            group_name="analysis",
            description=description,
            owners=OWNERS,
            kinds={"pandas", "csv"},
            automation_condition=dg.AutomationCondition.eager(),
        )
        for name, description in STATISTICS_DESCRIPTIONS.items()
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "whitelist_entries_current",
            asset="unknown_class_frequencies",
            description="Warns about expired or never-matching whitelist entries, naming their owners.",
        )
    ],
)
def rollout_statistics(storage: GateStorage):
    """All statistics assets in one step: the classified history is read once (it is the expensive part)."""
    history = load_classified_history(storage)
    cfg = load_analysis_config_from(storage)
    outputs, data = storage.outputs(), storage.data()
    for asset_name, compute in analysis.SECTIONS.items():
        section = compute(history, cfg)
        data.write_bytes(
            orjson.dumps(section.document, option=orjson.OPT_SORT_KEYS), "statistics", f"{section.name}.json"
        )
        paths = {
            name: outputs.write_bytes(analysis.table_csv_bytes(df), "tables", f"{name}.csv")
            for name, df in section.tables.items()
        }
        yield dg.MaterializeResult(asset_key=asset_name, metadata=_section_metadata(section, paths))
    yield from _whitelist_health_results(storage, history)


def _whitelist_health_results(storage: GateStorage, history: pd.DataFrame):
    whitelist = load_whitelist_from(storage)
    latest_day = history["date"].max() if not history.empty else datetime.now(UTC).date().isoformat()
    health = whitelist_health(whitelist, history, datetime.fromisoformat(latest_day).date())
    yield dg.AssetCheckResult(
        check_name="whitelist_entries_current",
        asset_key="unknown_class_frequencies",
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


statistics_assets = [rollout_statistics]
