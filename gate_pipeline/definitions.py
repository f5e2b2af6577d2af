"""The one Definitions object: assembled from gate_pipeline.defs when the code location loads."""


import dagster as dg

from gate_pipeline.defs.ingest import build_ingest_assets
from gate_pipeline.defs.partitions import daily_partitions
from gate_pipeline.defs.resources import GateStorage
from gate_pipeline.defs.series import rollout_series
from gate_pipeline.settings import Settings

ALL_ASSETS_JOB = "gate_pipeline_all"


def build_definitions(settings: Settings) -> dg.Definitions:
    pipeline = settings.pipeline_config()
    daily = daily_partitions(pipeline)
    return dg.Definitions(
        assets=[*build_ingest_assets(daily, pipeline), rollout_series],
        jobs=[dg.define_asset_job(ALL_ASSETS_JOB, selection=dg.AssetSelection.all())],
        resources={"storage": GateStorage.from_settings(settings)},
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
