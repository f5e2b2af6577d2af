"""Risk differences and ratios (seed 000): whitelisted vs non-whitelisted unknowns, FAIL given a reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from gate_pipeline.lib.stats.config import AnalysisConfig
from gate_pipeline.lib.stats.document import Section, to_jsonable
from gate_pipeline.lib.stats.intervals import (
    estimate_cols,
    fail_comparison,
    fail_comparison_columns,
    newcombe_paired_diff,
    paired_ratio,
    wilson,
)
from gate_pipeline.lib.stats.runs import (
    Runs,
    as_runs,
    has_items,
    item_outcome_counts,
    json_sets,
    no_nan,
    outcome_flags,
)


@dataclass
class RiskResult:
    """Risk differences / ratios. See :func:`risk_measures` for definitions. ``scope`` says that both pool
    the runs of every policy_hash (the null hash included)."""

    whitelist_comparison: dict[str, Any]
    by_reason: pd.DataFrame = field(repr=False)
    scope: str = "pooled: all policy hashes"


_RISK_REASON_COLUMNS = ["reason", *fail_comparison_columns("with", "without")]


def risk_measures(classified: pd.DataFrame | Runs, cfg: AnalysisConfig | None = None) -> RiskResult:
    """Risk difference and risk ratio (seed 000), each with a CI at ``cfg.confidence_level``.

    1. ``whitelist_comparison`` - "unknown rate of whitelisted vs non-whitelisted classes":
       p_W = share of runs with >= 1 whitelisted class, p_N = share of runs with >= 1 non-whitelisted reason,
       both over ALL runs of the table. Why this definition: gate_result.json gives one unknown_rate per run
       with no split per reason, so a per-class unknown rate cannot be attributed; the share of runs in which
       a class of unknowns shows up is observable, binomial, and uses one denominator for both sides.
       Both shares come from the same runs (paired data), so the difference p_W - p_N uses Newcombe's paired
       hybrid score interval and the ratio p_W / p_N the paired log method (var = (b+c)/((a+b)(a+c))), with
       a = runs with both kinds, b = whitelisted only, c = non-whitelisted only, d = neither.
       RD > 0 means known noise shows up in more runs than unexplained unknowns.
    2. ``by_reason`` - per top reason: P(FAIL | reason listed) vs P(FAIL | reason not listed) over runs with a
       known outcome (independent groups): Wilson per rate, Newcombe hybrid score for the difference, Katz
       log interval for the ratio. Sorted by reason.

    Empty cells give status ``empty_cell`` and None; a ratio with a zero denominator rate ``undefined``.
    """
    cfg = cfg or AnalysisConfig()
    z = cfg.z
    runs = as_runs(classified)
    n = len(runs.df)
    has_w = has_items(runs, "whitelisted_classes")
    has_n = has_items(runs, "non_whitelisted_reasons")
    a = int((has_w & has_n).sum())
    b = int((has_w & ~has_n).sum())
    c = int((~has_w & has_n).sum())
    d = n - a - b - c
    rw, rn = wilson(a + b, n, z), wilson(a + c, n, z)
    comp: dict[str, Any] = {
        "definition": "share of runs with >=1 whitelisted class vs share with >=1 non-whitelisted reason",
        "runs": n,
        "runs_both": a,
        "runs_whitelisted_only": b,
        "runs_non_whitelisted_only": c,
        "runs_neither": d,
        "whitelisted_runs": a + b,
        "non_whitelisted_runs": a + c,
        **estimate_cols("whitelisted_", rw),
        **estimate_cols("non_whitelisted_", rn),
        **estimate_cols("risk_difference", newcombe_paired_diff(a, b, c, d, z)),
        **estimate_cols("risk_ratio", paired_ratio(a, b, c, d, z)),
        "methods": {
            "rate": "wilson",
            "risk_difference": "newcombe_paired_hybrid_score",
            "risk_ratio": "log_paired",
        },
    }

    known, _, is_fail = outcome_flags(runs, cfg)
    r_codes, r_items = json_sets(runs, "top_reasons")
    total_known = int(known.sum())
    total_fail = int((known & is_fail).sum())
    out = []
    for reason, _size, n1, x1 in item_outcome_counts(r_codes, r_items, known, is_fail):
        n0, x0 = total_known - n1, total_fail - x1
        out.append(
            {
                "reason": reason,
                **fail_comparison("with", n1, x1, "without", n0, x0, z),
            }
        )
    return RiskResult(comp, no_nan(pd.DataFrame(out, columns=_RISK_REASON_COLUMNS)))


def risk_section(history: pd.DataFrame | Runs, cfg: AnalysisConfig) -> Section:
    result = risk_measures(history, cfg)
    comparison = result.whitelist_comparison
    numbers = {
        "whitelisted_vs_non_whitelisted_risk_difference": comparison.get("risk_difference"),
        "whitelisted_vs_non_whitelisted_risk_ratio": comparison.get("risk_ratio"),
    }
    return Section("risk_measures", to_jsonable(result), {"risk_by_reason": result.by_reason}, numbers)
