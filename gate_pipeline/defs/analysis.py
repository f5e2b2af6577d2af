"""Analysis layer: config sources and the rollout statistics (all history); classified_runs is in defs/ingest.py."""

from datetime import UTC, datetime

import dagster as dg
import orjson
import pandas as pd

from gate_pipeline.defs.metadata import OWNERS, frame_markdown, readable
from gate_pipeline.defs.resources import GateStorage
from gate_pipeline.lib import analysis, daily
from gate_pipeline.lib.stats import AnalysisConfig, load_analysis_config, to_jsonable
from gate_pipeline.lib.storage import Store, sha256_bytes
from gate_pipeline.lib.whitelist import Whitelist, load_whitelist, whitelist_health

WHITELIST_FILE = "unknown_whitelist.json"
ANALYSIS_FILE = "analysis.yaml"
DECISION_FILE = "policy_constants.yaml"
HISTORY_FILE = "rollout_runs.parquet"  # written by rollout_series: the classified, deduplicated history
VERSIONS_FOLDER = daily.CLASSIFIED_VERSIONS  # <day>.sha256: digest of each stored classified_runs file


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
        digest = config_digest(config, file_name)
        return dg.ObserveResult(
            data_version=dg.DataVersion(digest),
            metadata={"path": dg.MetadataValue.path(config.url(file_name)), "sha256": digest},
        )

    return _observe


def config_digest(config: Store, file_name: str) -> str:
    """The data version of a config source: sha256 of the file's bytes."""
    return sha256_bytes(config.read_bytes(file_name)) if config.exists(file_name) else "absent"


CONFIG_SOURCE_FILES = {
    "unknown_whitelist": WHITELIST_FILE,
    "analysis_config": ANALYSIS_FILE,
    "decision_config": DECISION_FILE,
}


def unchanged_config_sources(instance: dg.DagsterInstance, storage: GateStorage) -> set[dg.AssetKey]:
    """Config sources whose file still has the data version last observed: a run need not observe them
    again (each observation is a step of its own)."""
    config, unchanged = storage.config(), set()
    for name, file_name in CONFIG_SOURCE_FILES.items():
        key = dg.AssetKey(name)
        records = instance.fetch_observations(key, limit=1).records
        observed = records[0].asset_observation.metadata.get("sha256") if records else None
        if observed is not None and observed.value == config_digest(config, file_name):
            unchanged.add(key)
    return unchanged


def build_config_sources(observe_cron: str) -> list:
    return [
        _config_source(
            "unknown_whitelist",
            CONFIG_SOURCE_FILES["unknown_whitelist"],
            "Known unknown reasons (exact or glob), the class each maps to, owner and expiry (seed 000).",
            observe_cron,
        ),
        _config_source(
            "analysis_config",
            CONFIG_SOURCE_FILES["analysis_config"],
            "Statistics parameters: strata column, recurrence k, spike MAD k, WARN threshold.",
            observe_cron,
        ),
        _config_source(
            "decision_config",
            CONFIG_SOURCE_FILES["decision_config"],
            "Rollout phases and decision rules (seed 001 policy_constants).",
            observe_cron,
        ),
    ]


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
    cfg = load_analysis_config_from(storage)
    outputs, data = storage.outputs(), storage.data()
    # Only the columns the sections read: the file hashes and metrics JSON are most of the history's bytes.
    columns = analysis.statistics_columns(cfg)
    history = analysis.read_history(data.read_bytes(HISTORY_FILE), columns).to_pandas()
    runs = analysis.Runs(history)  # per-run arrays the sections share (outcome flags, labels, parsed JSON)
    methods = analysis.methods_document(cfg)  # embedded as statistics.methods in rollout_metrics.json
    data.write_bytes(
        orjson.dumps(to_jsonable(methods), option=orjson.OPT_SORT_KEYS), "statistics", "methods.json"
    )
    for asset_name, compute in analysis.SECTIONS.items():
        section = compute(runs, cfg)
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
