"""Small helpers turning pure results into Dagster metadata (UI-readable)."""

from collections.abc import Mapping

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from gate_pipeline.lib.stats.document import object_columns
from gate_pipeline.lib.tables import column_descriptions

OWNERS = ["team:data-platform"]


def column_schema(model: type[pa.DataFrameModel]) -> dict[str, dg.TableSchema]:
    """`dagster/column_schema` metadata built from a pandera model, so the UI shows columns + descriptions."""
    columns = [
        dg.TableColumn(name, dtype, description) for name, dtype, description in column_descriptions(model)
    ]
    return {"dagster/column_schema": dg.TableSchema(columns=columns)}


def readable(value: float, digits: int = 4) -> float:
    """A float rounded to a few significant digits for display (exact values live in the JSON outputs)."""
    return float(f"{value:.{digits}g}")


def frame_markdown(df: pd.DataFrame, max_rows: int = 40) -> dg.MarkdownMetadataValue:
    if df.empty:
        return dg.MetadataValue.md("_no rows_")
    shown = object_columns(df.head(max_rows))  # coded (Categorical) columns shown as their cells
    text = shown.to_markdown(index=False)
    if len(df) > max_rows:
        text += f"\n\n_{len(df) - max_rows} more rows in the stored table_"
    return dg.MetadataValue.md(text)


def not_built(missing_input: str | None) -> dict[str, object]:
    """A day of the run's range whose asset was not built, because the stored input it needs is missing."""
    return {"dagster/row_count": 0, "missing_input": missing_input or "none"}


def per_day_metadata(
    context: dg.AssetExecutionContext, key: dg.AssetKey, per_day: Mapping[str, Mapping[str, object]]
) -> None:
    """Give each partition's materialization of ``key`` that day's own metadata, in a run over a range.

    Dagster writes one event per partition of the range; the step's `MaterializeResult` metadata goes on
    every one of them, these entries only on their day's (and win over a key of the same name)."""
    for day, metadata in per_day.items():
        context.add_asset_metadata(dict(metadata), asset_key=key, partition_key=day)
