"""Small helpers turning pure results into Dagster metadata (UI-readable)."""

from collections.abc import Mapping

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from gate_pipeline.lib.reports.markdown_table import markdown_table
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


def counts_markdown(per_day: Mapping[str, Mapping[str, int]], keys: list[str]) -> str:
    """Per-partition counts as a markdown table (plus a total row)."""
    rows = [[day, *(str(c.get(k, 0)) for k in keys)] for day, c in sorted(per_day.items())]
    rows.append(["**total**", *(str(sum(c.get(k, 0) for c in per_day.values())) for k in keys)])
    return markdown_table(["day", *keys], rows)


def frame_markdown(df: pd.DataFrame, max_rows: int = 40) -> dg.MarkdownMetadataValue:
    if df.empty:
        return dg.MetadataValue.md("_no rows_")
    shown = df.head(max_rows)
    text = shown.to_markdown(index=False)
    if len(df) > max_rows:
        text += f"\n\n_{len(df) - max_rows} more rows in the stored table_"
    return dg.MetadataValue.md(text)
