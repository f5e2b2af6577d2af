"""Daily partitions keyed by the artifact layout's date folder (UTC day the run finished)."""

import dagster as dg

from gate_pipeline.settings import PipelineConfig


def daily_partitions(config: PipelineConfig) -> dg.DailyPartitionsDefinition:
    # end_offset=1 includes today's (still filling) day, where CI drops new runs.
    return dg.DailyPartitionsDefinition(start_date=config.partitions.start_date, end_offset=1)
