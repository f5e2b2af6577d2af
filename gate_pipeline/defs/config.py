"""Group `config`: the config files as observable source assets, so an edit shows downstream as unsynced.

Each source's data version is the sha256 of the file's bytes. The automation sensor observes them on
`automation.config_observe_cron` (config/pipeline.yaml); the CLI observes a file only when it changed.
"""

import dagster as dg

from gate_pipeline.dagster_helpers.metadata import OWNERS
from gate_pipeline.defs.resources import ANALYSIS_FILE, DECISION_FILE, WHITELIST_FILE, GateStorage
from gate_pipeline.lib.storage import Store, sha256_bytes
from gate_pipeline.settings import Settings

GROUP = "config"
#: Source asset name -> (config file, description shown in the UI).
CONFIG_SOURCES = {
    "unknown_whitelist": (
        WHITELIST_FILE,
        "Known unknown reasons (exact or glob pattern): the class each maps to, its owner and expiry date.",
    ),
    "analysis_config": (
        ANALYSIS_FILE,
        "Statistics parameters: strata column, recurrence threshold, spike bound, WARN threshold rule.",
    ),
    "decision_config": (
        DECISION_FILE,
        "Rollout phases, the policy under decision and the rules (thresholds) each phase must pass.",
    ),
}
CONFIG_SOURCE_FILES = {name: file_name for name, (file_name, _) in CONFIG_SOURCES.items()}


def config_digest(config: Store, file_name: str) -> str:
    """The data version of a config source: sha256 of the file's bytes."""
    return sha256_bytes(config.read_bytes(file_name)) if config.exists(file_name) else "absent"


def _config_source(name: str, file_name: str, description: str, observe_cron: str):
    # multi_observable_source_asset (one spec) rather than observable_source_asset: owners and kinds reach
    # the asset graph (the UI) only through an AssetSpec.
    @dg.multi_observable_source_asset(
        name=name,
        specs=[
            dg.AssetSpec(
                name,
                group_name=GROUP,
                description=description,
                owners=OWNERS,
                kinds={file_name.rsplit(".", 1)[-1]},
                automation_condition=dg.AutomationCondition.cron_tick_passed(observe_cron),
            )
        ],
        required_resource_keys={"storage"},
    )
    def _observe(context):
        config = context.resources.storage.config()
        digest = config_digest(config, file_name)
        yield dg.ObserveResult(
            asset_key=name,
            data_version=dg.DataVersion(digest),
            metadata={"path": dg.MetadataValue.path(config.url(file_name)), "sha256": digest},
        )

    return _observe


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


def build(settings: Settings) -> dg.Definitions:
    cron = settings.pipeline_config().automation.config_observe_cron
    return dg.Definitions(
        assets=[
            _config_source(name, file_name, description, cron)
            for name, (file_name, description) in CONFIG_SOURCES.items()
        ]
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build(Settings.from_env())
