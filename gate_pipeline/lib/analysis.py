"""The statistics sections under their former module name: everything here lives in
:mod:`gate_pipeline.lib.stats` (``sections``, ``document`` and one module per statistic family)."""

from gate_pipeline.lib.stats import (
    COUNT_KEYS,
    ROOT_ENTRY_REASONS,
    SECTIONS,
    STATISTICS_COLUMNS,
    Runs,
    Section,
    Statistics,
    class_section,
    compute_statistics,
    counts_section,
    methods_document,
    read_history,
    risk_section,
    spike_section,
    statistics_columns,
    strata_section,
    table_csv_bytes,
    unknown_rate_section,
    warn_threshold_section,
)
from gate_pipeline.lib.stats.spikes import SPIKE_RUNS_IN_DOCUMENT

__all__ = [
    "COUNT_KEYS",
    "ROOT_ENTRY_REASONS",
    "SECTIONS",
    "SPIKE_RUNS_IN_DOCUMENT",
    "STATISTICS_COLUMNS",
    "Runs",
    "Section",
    "Statistics",
    "class_section",
    "compute_statistics",
    "counts_section",
    "methods_document",
    "read_history",
    "risk_section",
    "spike_section",
    "statistics_columns",
    "strata_section",
    "table_csv_bytes",
    "unknown_rate_section",
    "warn_threshold_section",
]
