"""The outputs people and CI read, one module each (pure logic, no Dagster; same inputs, same bytes):

- canonical.py: canonical JSON (``normalize_json``, ``dumps_canonical``), the project's one JSON writer
- rollout_metrics.py: the rollout_metrics.json document
- chart.py: the unknown_rate PNG; chart_cache.py: reuse of a stored PNG while its inputs are unchanged
- markdown.py: rollout_series_v1.md; ci_comment.py: ci_comment.md; markdown_table.py: the table writer
"""

from gate_pipeline.lib.reports.canonical import dumps_canonical, normalize_json
from gate_pipeline.lib.reports.chart import CHART_MAX_POINTS, daily_unknown_rate, render_chart
from gate_pipeline.lib.reports.chart_cache import (
    CHART_CACHE,
    chart_inputs,
    chart_key,
    chart_png,
    chart_rule_line,
)
from gate_pipeline.lib.reports.ci_comment import render_ci_comment
from gate_pipeline.lib.reports.markdown import render_report_md
from gate_pipeline.lib.reports.markdown_table import markdown_table
from gate_pipeline.lib.reports.rollout_metrics import PROVENANCE_KEYS, key_figures, rollout_metrics_document

__all__ = [
    "CHART_CACHE",
    "CHART_MAX_POINTS",
    "PROVENANCE_KEYS",
    "chart_inputs",
    "chart_key",
    "chart_png",
    "chart_rule_line",
    "daily_unknown_rate",
    "dumps_canonical",
    "key_figures",
    "markdown_table",
    "normalize_json",
    "render_chart",
    "render_ci_comment",
    "render_report_md",
    "rollout_metrics_document",
]
