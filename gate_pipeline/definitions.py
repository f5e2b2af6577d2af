"""The one Definitions object: assembled from gate_pipeline.defs when the code location loads."""

import dagster as dg

from gate_pipeline.defs.analysis import CONFIG_SOURCE_FILES, build_config_sources, statistics_assets
from gate_pipeline.defs.decision import build_decision_assets, load_decision_config_from
from gate_pipeline.defs.ingest import build_daily_assets
from gate_pipeline.defs.partitions import daily_partitions
from gate_pipeline.defs.resources import GateStorage
from gate_pipeline.defs.sensors import automation_sensor, build_artifact_sensor
from gate_pipeline.defs.series import rollout_series
from gate_pipeline.settings import Settings

ALL_ASSETS_JOB = "gate_pipeline_all"
RECLASSIFY_JOB = "reclassify_history"


def build_definitions(settings: Settings) -> dg.Definitions:
    pipeline = settings.pipeline_config()
    daily = daily_partitions(pipeline)
    storage = GateStorage.from_settings(settings)
    decision_cfg, _ = load_decision_config_from(storage)
    return dg.Definitions(
        assets=[
            *build_config_sources(pipeline.automation.config_observe_cron),
            *build_daily_assets(daily, pipeline),
            rollout_series,
            *statistics_assets,
            *build_decision_assets(decision_cfg),
        ],
        jobs=[
            dg.define_asset_job(ALL_ASSETS_JOB, selection=dg.AssetSelection.all(include_sources=True)),
            # After a whitelist edit: re-classify stored run tables and everything downstream; no JSON is read.
            dg.define_asset_job(
                RECLASSIFY_JOB,
                # The config sources are in it so an edited file is observed first (the CLI skips unchanged ones).
                selection=dg.AssetSelection.assets("classified_runs").downstream()
                | dg.AssetSelection.assets(*CONFIG_SOURCE_FILES),
                description="Re-classify all history from stored run tables after a whitelist change, in one run.",
            ),
        ],
        sensors=[build_artifact_sensor(daily, pipeline.sensor), automation_sensor],
        resources={"storage": storage},
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
