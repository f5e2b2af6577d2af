"""The statistics sections under their former module name: everything here lives in
:mod:`gate_pipeline.lib.stats` (``sections``, ``document`` and one module per statistic family)."""

from gate_pipeline.lib.stats import (
    COUNT_KEYS,
    SECTIONS,
    STATISTICS_COLUMNS,
    Runs,
    Section,
    counts_section,
    methods_document,
    read_history,
    statistics_columns,
    table_csv_bytes,
)

__all__ = [
    "COUNT_KEYS",
    "SECTIONS",
    "STATISTICS_COLUMNS",
    "Runs",
    "Section",
    "counts_section",
    "methods_document",
    "read_history",
    "statistics_columns",
    "table_csv_bytes",
]
