"""Rollout statistics from classified runs (seeds 000, 001, 003, 004). Pure pandas, no Dagster.

Modules: :mod:`.config` (parameters), :mod:`.intervals` (confidence intervals), :mod:`.runs` (the history and
its shared per-run arrays), one module per statistic family (:mod:`.summary`, :mod:`.classes`, :mod:`.spikes`,
:mod:`.risk`, :mod:`.strata`, :mod:`.warn`, :mod:`.baseline`), :mod:`.document` (JSON / CSV of results) and :mod:`.sections`
(what the pipeline publishes).

Conventions shared by every statistic:

- Input is ``classified_runs`` (run_table columns + ``unknown_classes``, ``whitelisted_classes``,
  ``non_whitelisted_reasons``) as a DataFrame or a :class:`Runs`; ``unknown_rate_summary`` needs only
  run_table columns.
- Rates of an outcome (WARN, FAIL) use the runs whose ``outcome`` is not null as denominator; runs with a null
  outcome are counted in an ``outcome_null`` column, never silently dropped.
- Every result table is sorted deterministically (documented per function) and contains no NaN: an undefined
  number is ``None`` with a ``*status`` column that says why (``empty_cell``, ``undefined``, ``ci_undefined``).
- Confidence intervals are at ``AnalysisConfig.confidence_level`` (default 0.95); see :mod:`.intervals`.
"""

from gate_pipeline.lib.stats.baseline import (
    BaselineTables,
    ComparedRuns,
    StandardizedDiff,
    baseline_comparison,
    baseline_section,
    paradox_warnings,
    standardized_diff,
)
from gate_pipeline.lib.stats.classes import class_frequencies, class_section, recurring_patterns
from gate_pipeline.lib.stats.config import (
    METRICS_PREFIX,
    AnalysisConfig,
    AnalysisConfigError,
    load_analysis_config,
)
from gate_pipeline.lib.stats.document import (
    Section,
    object_columns,
    table_csv_bytes,
    table_csv_chunks,
    to_jsonable,
)
from gate_pipeline.lib.stats.intervals import (
    DiffCI,
    RateCI,
    RatioCI,
    katz_ratio,
    newcombe_diff,
    newcombe_paired_diff,
    paired_ratio,
    wilson,
    wilson_bounds,
)
from gate_pipeline.lib.stats.risk import RiskResult, risk_measures, risk_section
from gate_pipeline.lib.stats.runs import Runs, stratum_series
from gate_pipeline.lib.stats.sections import (
    COUNT_KEYS,
    ROOT_ENTRY_REASONS,
    SECTIONS,
    STATISTICS_COLUMNS,
    Statistics,
    compute_sections,
    compute_statistics,
    counts_section,
    history_frame,
    methods_bytes,
    methods_document,
    read_history,
    section_columns,
    statistics_columns,
)
from gate_pipeline.lib.stats.spikes import SpikeResult, spike_section, spikes
from gate_pipeline.lib.stats.strata import StrataTables, strata_section, stratum_metrics
from gate_pipeline.lib.stats.summary import unknown_rate_section, unknown_rate_summary
from gate_pipeline.lib.stats.warn import WarnThresholdResult, warn_threshold, warn_threshold_section

__all__ = [
    "COUNT_KEYS",
    "ROOT_ENTRY_REASONS",
    "METRICS_PREFIX",
    "SECTIONS",
    "STATISTICS_COLUMNS",
    "AnalysisConfig",
    "AnalysisConfigError",
    "BaselineTables",
    "ComparedRuns",
    "DiffCI",
    "RateCI",
    "RatioCI",
    "RiskResult",
    "Runs",
    "Section",
    "SpikeResult",
    "StandardizedDiff",
    "Statistics",
    "StrataTables",
    "WarnThresholdResult",
    "baseline_comparison",
    "baseline_section",
    "class_frequencies",
    "class_section",
    "compute_sections",
    "compute_statistics",
    "counts_section",
    "katz_ratio",
    "load_analysis_config",
    "methods_bytes",
    "methods_document",
    "newcombe_diff",
    "newcombe_paired_diff",
    "object_columns",
    "paired_ratio",
    "paradox_warnings",
    "history_frame",
    "read_history",
    "recurring_patterns",
    "risk_measures",
    "risk_section",
    "spike_section",
    "spikes",
    "standardized_diff",
    "section_columns",
    "statistics_columns",
    "strata_section",
    "stratum_metrics",
    "stratum_series",
    "table_csv_bytes",
    "table_csv_chunks",
    "to_jsonable",
    "unknown_rate_section",
    "unknown_rate_summary",
    "warn_threshold",
    "warn_threshold_section",
    "wilson",
    "wilson_bounds",
]
