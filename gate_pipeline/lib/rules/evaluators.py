"""Rule evaluators: absolute (optionally per stratum), rollback, relative and min_evidence."""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import pandas as pd

from gate_pipeline.lib.rules.config import (
    _COMPARE,
    AbsoluteRule,
    MinEvidenceRule,
    RelativeRule,
    RollbackRule,
    RuleVerdict,
)
from gate_pipeline.lib.rules.explain import _ci_text, _evidence_text, _no_data_text, _thr_text
from gate_pipeline.lib.rules.fmt import fmt_num as _fmt_num
from gate_pipeline.lib.rules.fmt import fmt_pct as _fmt_pct
from gate_pipeline.lib.rules.fmt import iso as _iso
from gate_pipeline.lib.rules.results import RuleResult, StratumResult
from gate_pipeline.lib.rules.selection import _NO_POSITIONS, _Selection
from gate_pipeline.lib.rules.values import _Agg, _aggregate, _Ctx, _match_hits, _stratum_labels, _values_of


def _ci_decide(
    cmp: str, thr: float, value: float, ci: tuple[float, float] | None, straddle: bool
) -> tuple[bool | None, bool]:
    """Return (condition holds? None = undecided, straddles?)."""
    f = _COMPARE[cmp]
    if straddle and ci is not None:
        lo_ok, hi_ok = f(ci[0], thr), f(ci[1], thr)
        if lo_ok != hi_ok:
            return None, True
    return f(value, thr), False


def _eval_condition(
    rule: AbsoluteRule | RollbackRule, positions: np.ndarray, ctx: _Ctx, scope: str
) -> tuple[RuleVerdict, _Agg, str]:
    m = rule.metric
    agg = _aggregate(ctx.vals(positions, m.column), m.aggregate, m.match, ctx.z)
    if agg.value is None or agg.n < rule.min_n:
        return "HOLD", agg, _no_data_text(m.column, agg, len(positions), ctx, rule.min_n, scope)
    straddle_on = rule.hold_on_ci_straddle
    if straddle_on is None:
        straddle_on = m.aggregate == "rate"
    holds, straddles = _ci_decide(rule.comparator, rule.threshold, agg.value, agg.ci, straddle_on)
    evidence = _evidence_text(m, agg)
    cond = f"{rule.comparator} {_thr_text(m, rule.threshold)}"
    ci_txt = _ci_text(m, agg.ci, ctx.cfg.confidence_level)
    if straddles:
        return (
            "HOLD",
            agg,
            f"{evidence}, but the {ci_txt} straddles the threshold {cond}, so more evidence is needed",
        )
    suffix = f" ({ci_txt})" if ci_txt and straddle_on else ""
    if isinstance(rule, RollbackRule):
        if holds:
            return "ROLLBACK", agg, f"{evidence} is {cond}{suffix}: the rollback trigger fired"
        return "PASS", agg, f"{evidence} is not {cond}{suffix}: the rollback trigger did not fire"
    if holds:
        return "PASS", agg, f"{evidence} meets the threshold {cond}{suffix}"
    return "FAIL", agg, f"{evidence} violates the threshold {cond}{suffix}"


_VERDICT_RANK = {"ROLLBACK": 3, "FAIL": 2, "HOLD": 1, "PASS": 0}


def _base_result(rule: Any, **kw: Any) -> RuleResult:
    return RuleResult(
        name=rule.name,
        kind=rule.kind,
        description=rule.description,
        severity=rule.severity,
        observe_only=rule.observe_only,
        **kw,
    )


def _eval_absolute(rule: AbsoluteRule | RollbackRule, cur: np.ndarray, ctx: _Ctx) -> RuleResult:
    if isinstance(rule, AbsoluteRule) and rule.per_stratum:
        col = ctx.cfg.strata_column
        labels = _stratum_labels(cur, col, ctx)
        names = sorted(set(labels.tolist())) if rule.strata is None else sorted(rule.strata)
        subs: list[tuple[StratumResult, _Agg]] = []
        for s in names:
            pos = cur[labels == s]
            verdict, agg, why = _eval_condition(rule, pos, ctx, f"in stratum {s}")
            sr = StratumResult(
                name=s,
                verdict=verdict,
                observed=agg.value,
                n=agg.n,
                ci_low=agg.ci[0] if agg.ci else None,
                ci_high=agg.ci[1] if agg.ci else None,
                why=f"stratum {s}: {why}",
            )
            subs.append((sr, agg))
        if not subs:
            return _base_result(
                rule,
                verdict="HOLD",
                metric=rule.metric.display(),
                observed=None,
                comparator=rule.comparator,
                threshold=rule.threshold,
                n=0,
                why="no data: there are no runs for the current policy, so no stratum can pass",
            )
        # The deciding stratum is the worst one (ties: first by name) so the headline shows the problem.
        worst_sr, worst_agg = max(subs, key=lambda t: (_VERDICT_RANK[t[0].verdict], -names.index(t[0].name)))
        verdict = worst_sr.verdict
        n_ok = sum(1 for sr, _ in subs if sr.verdict == "PASS")
        why = (
            f"all {len(subs)} strata pass; worst shown: {worst_sr.why}"
            if verdict == "PASS"
            else f"{n_ok} of {len(subs)} strata pass; {worst_sr.why}"
        )
        return _base_result(
            rule,
            verdict=verdict,
            metric=rule.metric.display(),
            observed=worst_agg.value,
            comparator=rule.comparator,
            threshold=rule.threshold,
            ci_low=worst_agg.ci[0] if worst_agg.ci else None,
            ci_high=worst_agg.ci[1] if worst_agg.ci else None,
            ci_method=worst_agg.ci_method,
            n=sum(a.n for _, a in subs),
            missing=sum(a.missing for _, a in subs),
            stratum=worst_sr.name,
            strata=[sr for sr, _ in subs],
            details={"strata_column": col},
            why=why,
        )
    verdict, agg, why = _eval_condition(rule, cur, ctx, "for the current policy")
    n_evidence, evidence = _evidence_runs(rule, cur, ctx)
    details: dict[str, Any] = {"evidence_runs": n_evidence}
    if agg.k is not None:
        details["hits"] = agg.k
    if agg.invalid:
        details["non_numeric"] = agg.invalid
    return _base_result(
        rule,
        verdict=verdict,
        metric=rule.metric.display(),
        observed=agg.value,
        comparator=rule.comparator,
        threshold=rule.threshold,
        ci_low=agg.ci[0] if agg.ci else None,
        ci_high=agg.ci[1] if agg.ci else None,
        ci_method=agg.ci_method,
        n=agg.n,
        missing=agg.missing,
        details=details,
        evidence_run_ids=evidence,
        why=why,
    )


EVIDENCE_RUN_IDS = 50  # enough to triage from the UI; the full list is one filter away in rollout_series.csv


def _evidence_runs(
    rule: AbsoluteRule | RollbackRule, positions: np.ndarray, ctx: _Ctx
) -> tuple[int, list[str]]:
    """How many runs are behind the number, and the first ``EVIDENCE_RUN_IDS`` of their ids, sorted: the runs
    matching a rate's condition (e.g. the FAIL runs), or, for other aggregates, the runs whose own value
    violates the comparator (e.g. unknown_rate above the threshold)."""
    m = rule.metric
    vals = ctx.vals(positions, m.column)
    if m.match is not None:
        mask = _match_hits(vals, m.match)
    else:
        with np.errstate(invalid="ignore"):
            mask = vals.is_num & ~_COMPARE[rule.comparator](vals.num, rule.threshold)
    chosen = positions[np.asarray(mask, dtype=bool)]
    if "run_id" in ctx.runs.columns:
        ids = ctx.objects(chosen, "run_id")
        if len(ids) and pd.api.types.infer_dtype(ids, skipna=False) == "string":
            # Every id is a str (str(v) is v): no per-value conversion, and only the listed ones fully ordered.
            return len(ids), heapq.nsmallest(EVIDENCE_RUN_IDS, ids.tolist())
    ids = sorted(str(rid) for rid in _values_of(chosen, "run_id", ctx))
    return len(ids), ids[:EVIDENCE_RUN_IDS]


def _measure(kind: str, cur: float, base: float) -> float | None:
    if kind == "difference":
        return cur - base
    if base == 0:
        return None
    ratio = cur / base
    return {"ratio": ratio, "relative_change": ratio - 1, "reduction": 1 - ratio}[kind]


def _eval_relative(rule: RelativeRule, cur: np.ndarray, ctx: _Ctx, sel: _Selection) -> RuleResult:
    m, b = rule.metric, rule.baseline
    base_agg_name = b.aggregate or m.aggregate
    details: dict[str, Any] = {"baseline_source": b.source}
    if b.source == "column":
        bcol = b.column or m.column
        cv, bv = ctx.vals(cur, m.column), ctx.vals(cur, bcol)
        # Paired: only runs that carry both values, so a run missing its baseline cannot skew the ratio.
        both = np.flatnonzero(~cv.missing & ~bv.missing)
        cur_agg = _aggregate(cv.take(both), m.aggregate, m.match, ctx.z)
        base_agg = _aggregate(bv.take(both), base_agg_name, m.match, ctx.z)
        cur_agg.missing = len(cur) - len(both)
        details["baseline"] = f"{base_agg_name} {bcol} (same runs)"
        scope = f"for the current policy with both {m.column} and {bcol}"
    elif b.source == "policy":
        target = b.policy_hash or "previous"
        bhash = sel.previous if target == "previous" else target
        details["baseline_policy_hash"] = bhash
        bpos = sel.positions_of(bhash) if bhash else _NO_POSITIONS
        cur_agg = _aggregate(ctx.vals(cur, m.column), m.aggregate, m.match, ctx.z)
        base_agg = _aggregate(ctx.vals(bpos, m.column), base_agg_name, m.match, ctx.z)
        details["baseline"] = f"{base_agg_name} {m.column} (policy {bhash})"
        scope = "for the current policy"
        if bhash is None:
            return _base_result(
                rule,
                verdict="HOLD",
                metric=m.display(),
                observed=None,
                comparator=rule.comparator,
                threshold=rule.threshold,
                n=cur_agg.n,
                missing=cur_agg.missing,
                details=details,
                why="no data: there is no earlier policy_hash to compare with, so the rule cannot pass",
            )
    else:
        days = float(b.days)  # validated present
        end = sel.end
        cut = end - pd.Timedelta(days=days)
        start = end - pd.Timedelta(days=2 * days)
        ts = ctx.runs["timestamp"]
        in_cur = ((ts > cut) & (ts <= end)).to_numpy(dtype=bool)
        cur = cur[in_cur[cur]]
        bpos = np.flatnonzero(((ts > start) & (ts <= cut)).to_numpy(dtype=bool))
        cur_agg = _aggregate(ctx.vals(cur, m.column), m.aggregate, m.match, ctx.z)
        base_agg = _aggregate(ctx.vals(bpos, m.column), base_agg_name, m.match, ctx.z)
        details["baseline"] = f"{base_agg_name} {m.column} in ({_iso(start)}, {_iso(cut)}]"
        scope = f"for the current policy in the last {days:g} days"
    details["current_value"] = cur_agg.value
    details["baseline_value"] = base_agg.value
    details["baseline_n"] = base_agg.n
    common = {"metric": m.display(), "comparator": rule.comparator, "threshold": rule.threshold}
    if cur_agg.value is None or cur_agg.n < rule.min_n:
        why = _no_data_text(m.column, cur_agg, len(cur), ctx, rule.min_n, scope)
        return _base_result(
            rule,
            verdict="HOLD",
            observed=None,
            n=cur_agg.n,
            missing=cur_agg.missing,
            details=details,
            why=why,
            **common,
        )
    if base_agg.value is None or base_agg.n < rule.min_n:
        why = f"no data: the baseline ({details['baseline']}) has {base_agg.n} usable values, so the rule cannot pass"
        return _base_result(
            rule,
            verdict="HOLD",
            observed=None,
            n=cur_agg.n,
            missing=cur_agg.missing,
            details=details,
            why=why,
            **common,
        )
    value = _measure(rule.measure, cur_agg.value, base_agg.value)
    cur_txt = _fmt_pct(cur_agg.value) if m.aggregate == "rate" else _fmt_num(cur_agg.value, m.unit)
    base_txt = _fmt_pct(base_agg.value) if base_agg_name == "rate" else _fmt_num(base_agg.value, m.unit)
    head = f"{m.display()} = {cur_txt} vs baseline {details['baseline']} = {base_txt}"
    if value is None:
        return _base_result(
            rule,
            verdict="HOLD",
            observed=None,
            n=cur_agg.n,
            missing=cur_agg.missing,
            details=details,
            why=f"{head}: the baseline is 0, so the {rule.measure} is undefined",
            **common,
        )
    pct = rule.measure != "difference" and rule.measure != "ratio"
    val_txt = _fmt_pct(value) if pct else _fmt_num(value)
    thr_txt = _fmt_pct(rule.threshold) if pct else _fmt_num(rule.threshold)
    ok = _COMPARE[rule.comparator](value, rule.threshold)
    verdict: RuleVerdict = "PASS" if ok else "FAIL"
    why = (
        f"{head}: {rule.measure} {val_txt} {'meets' if ok else 'violates'} the threshold "
        f"{rule.comparator} {thr_txt}"
    )
    return _base_result(
        rule,
        verdict=verdict,
        observed=value,
        n=cur_agg.n,
        missing=cur_agg.missing,
        details=details,
        why=why,
        **common,
    )


def _eval_min_evidence(rule: MinEvidenceRule, sel: _Selection) -> RuleResult:
    n, days = len(sel.current), sel.days
    checks: list[tuple[str, bool]] = []
    if rule.min_runs is not None:
        checks.append((f"{n} runs (needs >= {rule.min_runs})", n >= rule.min_runs))
    if rule.min_days is not None:
        d = days if days is not None else 0.0
        checks.append((f"{d:.1f} days (needs >= {rule.min_days:g})", d >= rule.min_days))
    ok = any(c for _, c in checks) if rule.require == "any" else all(c for _, c in checks)
    joiner = " or " if rule.require == "any" else " and "
    text = joiner.join(t for t, _ in checks)
    if n == 0:
        why = "no data: there are no runs for the current policy, so there is no evidence yet"
    else:
        why = f"{text}: {'enough evidence' if ok else 'not enough evidence yet'}"
    primary_thr = float(rule.min_runs) if rule.min_runs is not None else float(rule.min_days)  # type: ignore[arg-type]
    observed = float(n) if rule.min_runs is not None else days
    return _base_result(
        rule,
        verdict="PASS" if ok and n > 0 else "HOLD",
        metric="runs" if rule.min_runs is not None else "days",
        observed=observed,
        comparator=">=",
        threshold=primary_thr,
        n=n,
        details={
            "runs": n,
            "days": None if days is None else round(days, 6),
            "min_runs": rule.min_runs,
            "min_days": rule.min_days,
            "require": rule.require,
        },
        why=why,
    )
