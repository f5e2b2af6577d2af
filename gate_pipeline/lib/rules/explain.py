"""The "why" sentences: evidence, thresholds, intervals, missing data and the decision summary."""

from __future__ import annotations

from gate_pipeline.lib.rules.config import Metric
from gate_pipeline.lib.rules.fmt import fmt_num as _fmt_num
from gate_pipeline.lib.rules.fmt import fmt_pct as _fmt_pct
from gate_pipeline.lib.rules.results import RuleResult
from gate_pipeline.lib.rules.values import _Agg, _Ctx


def _evidence_text(metric: Metric, agg: _Agg) -> str:
    if metric.aggregate == "rate":
        text = f"{metric.display()} {agg.k}/{agg.n} = {_fmt_pct(agg.value)}"
    elif metric.aggregate == "count":
        text = f"{metric.display()} = {agg.k} of {agg.n} runs"
    else:
        text = f"{metric.display()} = {_fmt_num(agg.value, metric.unit)} over {agg.n} runs"
    # Missing values are surfaced, never silently dropped.
    return f"{text} ({agg.missing} without a usable value)" if agg.missing else text


def _thr_text(metric: Metric, thr: float) -> str:
    return _fmt_pct(thr) if metric.aggregate == "rate" else _fmt_num(thr, metric.unit)


def _interval_text(fmt, ci: tuple[float | None, float | None]) -> str:
    lo = "-inf (too few runs to bound it)" if ci[0] is None or ci[0] == float("-inf") else fmt(ci[0])
    hi = "+inf (too few runs to bound it)" if ci[1] is None or ci[1] == float("inf") else fmt(ci[1])
    return f"interval {lo} to {hi}"


def _settle_text(more: int | None, projectable: bool, max_runs: int, stratum: str | None = None) -> str:
    where = f" in stratum {stratum}" if stratum is not None else ""
    if not projectable:
        return "more runs would narrow it"
    if more is None:
        return f"at the current rate even {max_runs} runs{where} would not settle it"
    return f"about {more} more run{'s' if more != 1 else ''}{where} at the current rate would settle it"


def _no_data_text(column: str, agg: _Agg, total: int, ctx: _Ctx, min_n: int, scope: str) -> str:
    if not ctx.has_column(column):
        return f"no data: column {column!r} is not in the run table, so the rule cannot pass"
    if total == 0:
        return f"no data: there are no runs {scope}, so the rule cannot pass"
    if agg.n == 0:
        return f"no data: none of the {total} runs {scope} has a usable value for {column}"
    return f"not enough data: {agg.n} runs {scope} have a value for {column}, the rule needs at least {min_n}"


def _summary(verdict: str, counted: list[RuleResult]) -> str:
    def names(v: str) -> list[str]:
        return [r.name for r in counted if r.verdict == v]

    if not counted:
        return "HOLD: no counted rule was evaluated, so there is nothing to base a GO on"
    if verdict == "ROLLBACK":
        return f"ROLLBACK: rollback trigger fired on its interval ({', '.join(names('ROLLBACK'))})"
    if verdict == "NO_GO":
        return (
            f"NO_GO: {len(names('FAIL'))} counted rule(s) failed, their intervals wholly past the threshold "
            f"({', '.join(names('FAIL'))})"
        )
    if verdict == "HOLD":
        return f"HOLD: {len(names('HOLD'))} counted rule(s) need more evidence ({', '.join(names('HOLD'))})"
    return f"GO: all {len(counted)} counted rules pass"
