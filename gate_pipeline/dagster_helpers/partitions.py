"""Daily partitions keyed by the artifact layout's date folder (UTC day the run finished)."""

import dagster as dg

from gate_pipeline.settings import PipelineConfig


def daily_partitions(config: PipelineConfig) -> dg.DailyPartitionsDefinition:
    # end_offset=1 includes today's (still filling) day, where CI drops new runs; max_future_days more are
    # accepted (clock skew between CI and this machine), the same window the CLI builds.
    return dg.DailyPartitionsDefinition(
        start_date=config.partitions.start_date, end_offset=1 + config.partitions.max_future_days
    )
