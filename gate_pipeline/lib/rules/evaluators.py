"""Rule evaluators: absolute (optionally per stratum), rollback, relative and min_evidence.

Evaluation is two-step: ``prepare_*`` turns a rule into ``Unit`` tests (one per stratum for per-stratum
rules), the engine gives every unit the level its family allows (Holm / Bonferroni), and ``finish`` turns the
units into the RuleResult: FAIL / ROLLBACK when the interval lies wholly on the bad side at that level, PASS
when wholly on the good side at ``alpha_go``, HOLD otherwise."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gate_pipeline.lib.rules.config import (
    _COMPARE,
    AbsoluteRule,
    DecisionSettings,
    MinEvidenceRule,
    RelativeRule,
    RollbackRule,
    RuleVerdict,
)
from gate_pipeline.lib.rules.explain import (
    _evidence_text,
    _interval_text,
    _no_data_text,
    _settle_text,
    _thr_text,
)
from gate_pipeline.lib.rules.fmt import fmt_num as _fmt_num
from gate_pipeline.lib.rules.fmt import fmt_pct as _fmt_pct
from gate_pipeline.lib.rules.fmt import iso as _iso
from gate_pipeline.lib.rules.inference import RelativeTest, make_test
from gate_pipeline.lib.rules.results import RuleResult, StratumResult
from gate_pipeline.lib.rules.selection import _NO_POSITIONS, _Selection
from gate_pipeline.lib.rules.values import _Agg, _aggregate, _Ctx, _match_hits, _stratum_labels, _values_of

_VERDICT_RANK = {"ROLLBACK": 3, "FAIL": 2, "HOLD": 1, "PASS": 0}


def bad_above(rule: AbsoluteRule | RollbackRule | RelativeRule) -> bool:
    """True when values above the threshold are the bad side (a rollback rule's comparator is its trigger)."""
    if isinstance(rule, RollbackRule):
        return rule.comparator in (">", ">=")
    return rule.comparator in ("<", "<=")


def family_of(rule: Any) -> str:
    return "rollback" if isinstance(rule, RollbackRule) else "no_go"


@dataclass
class Unit:
    """One test of a rule: the rule itself, or one stratum of a per-stratum rule."""

    stratum: str | None
    observed: float | None
    n: int
    test: Any | None  # None: no (or too little) data, so HOLD with ``no_data``
    head: str  # the evidence sentence
    fmt: Callable[[float], str]
    no_data: str = ""
    projectable: bool = True  # "about N more runs" can be computed
    rejected: bool = False  # set by the engine (family-wise)
    alpha_bad: float = 0.0  # set by the engine: the level the bad side is judged at
    family_size: int = 1


@dataclass
class Pending:
    rule: Any
    units: list[Unit]
    kw: dict[str, Any] = field(default_factory=dict)  # RuleResult fields known before the verdict


def _base_result(rule: Any, **kw: Any) -> RuleResult:
    return RuleResult(
        name=rule.name,
        kind=rule.kind,
        description=rule.description,
        severity=rule.severity,
        observe_only=rule.observe_only,
        **kw,
    )


def _unit(rule: AbsoluteRule | RollbackRule, positions: np.ndarray, ctx: _Ctx, scope: str, name=None) -> Unit:
    m = rule.metric
    agg = _aggregate(ctx.vals(positions, m.column), m.aggregate, m.match)
    fmt = _fmt_pct if m.aggregate == "rate" else (lambda x: _fmt_num(x, m.unit))
    unit = Unit(name, agg.value, agg.n, None, _evidence_text(m, agg), fmt)
    unit.agg = agg  # type: ignore[attr-defined]
    if agg.value is None or agg.n < rule.min_n:
        unit.no_data = _no_data_text(m.column, agg, len(positions), ctx, rule.min_n, scope)
        return unit
    unit.test = make_test(agg, m.aggregate, rule.threshold, bad_above(rule), ctx.spec)
    unit.projectable = m.aggregate == "rate" or m.aggregate in ("median", "p50", "p95", "p99")
    return unit


def unit_verdict(rule: Any, u: Unit, s: DecisionSettings) -> RuleVerdict:
    if u.test is None:
        return "HOLD"
    if u.rejected:
        return "ROLLBACK" if isinstance(rule, RollbackRule) else "FAIL"
    return "PASS" if u.test.good_at(s.alpha_go) else "HOLD"


def _unit_why(
    rule: Any, u: Unit, verdict: str, s: DecisionSettings, cond: str
) -> tuple[str, Any, int | None]:
    if u.test is None:
        return u.no_data, (None, None), None
    ci = u.test.interval(u.alpha_bad, s.alpha_go)
    iv = _interval_text(u.fmt, ci)
    trigger = isinstance(rule, RollbackRule)
    what = "trigger" if trigger else "threshold"
    if verdict == "ROLLBACK":
        return f"{u.head}; the {iv} lies wholly past the trigger {cond}: the rollback trigger fired", ci, None
    if verdict == "FAIL":
        return f"{u.head}; the {iv} lies wholly past the threshold {cond}", ci, None
    if verdict == "PASS":
        tail = ": the rollback trigger did not fire" if trigger else ""
        return f"{u.head}; the {iv} lies wholly on the safe side of the {what} {cond}{tail}", ci, None
    more = u.test.runs_more(u.alpha_bad, s.alpha_go) if u.projectable else None
    settle = _settle_text(more, u.projectable, s.runs_needed_max, u.stratum)
    return (
        f"{u.head}, but the {iv} straddles the {what} {cond}, so more evidence is needed: {settle}",
        ci,
        more,
    )


def _method_text(rule: Any, u: Unit | None, s: DecisionSettings) -> str | None:
    if u is None or u.test is None:
        return None
    fam = "ROLLBACK" if family_of(rule) == "rollback" else "NO_GO"
    fam_alpha = s.alpha_rollback if fam == "ROLLBACK" else s.alpha_no_go
    if rule.observe_only:
        split = f"{fam} side at alpha={fam_alpha:g} one-sided (observe-only: not in the family)"
    else:
        split = (
            f"{fam} side at alpha={u.alpha_bad:.4g} one-sided ({s.multiplicity} over {u.family_size} "
            f"counted {fam} test{'s' if u.family_size != 1 else ''}, family alpha={fam_alpha:g})"
        )
    return f"{u.test.method}; GO side at alpha={s.alpha_go:g} one-sided; {split}"


def _worst(rule: Any, units: list[Unit]) -> Unit:
    """The stratum with the worst observed value (ties: first by name); strata without data only when no
    stratum has a value."""
    valued = [u for u in units if u.observed is not None]
    if not valued:
        return units[0]
    sign = -1.0 if bad_above(rule) else 1.0
    return min(valued, key=lambda u: (sign * u.observed, u.stratum or ""))


def prepare_absolute(rule: AbsoluteRule | RollbackRule, cur: np.ndarray, ctx: _Ctx) -> Pending:
    base = {"metric": rule.metric.display(), "comparator": rule.comparator, "threshold": rule.threshold}
    if isinstance(rule, AbsoluteRule) and rule.per_stratum:
        col = ctx.cfg.strata_column
        labels = _stratum_labels(cur, col, ctx)
        names = sorted(set(labels.tolist())) if rule.strata is None else sorted(rule.strata)
        units = [_unit(rule, cur[labels == s], ctx, f"in stratum {s}", s) for s in names]
        return Pending(rule, units, {**base, "details": {"strata_column": col}})
    unit = _unit(rule, cur, ctx, "for the current policy")
    n_evidence, evidence = _evidence_runs(rule, cur, ctx)
    details: dict[str, Any] = {"evidence_runs": n_evidence}
    agg: _Agg = unit.agg  # type: ignore[attr-defined]
    if agg.k is not None:
        details["hits"] = agg.k
    if agg.invalid:
        details["non_numeric"] = agg.invalid
    kw = {**base, "missing": agg.missing, "details": details, "evidence_run_ids": evidence}
    return Pending(rule, [unit], kw)


def finish(p: Pending, s: DecisionSettings) -> RuleResult:
    """The RuleResult once the engine has set every unit's family-wise level."""
    rule = p.rule
    if "verdict" in p.kw:  # decided before any test (e.g. no baseline policy)
        return _base_result(rule, **p.kw)
    m = getattr(rule, "metric", None)
    cond = (
        f"{rule.comparator} {_thr_text(m, rule.threshold)}"
        if not isinstance(rule, RelativeRule)
        else p.kw.pop("cond")
    )
    details = dict(p.kw.pop("details", {}))
    if isinstance(rule, AbsoluteRule) and rule.per_stratum:
        if not p.units:
            return _base_result(
                rule,
                verdict="HOLD",
                n=0,
                observed=None,
                details=details,
                why="no data: there are no runs for the current policy, so no stratum can pass",
                **p.kw,
            )
        strata, verdicts, cis = [], [], {}
        for u in p.units:
            v = unit_verdict(rule, u, s)
            why, ci, more = _unit_why(rule, u, v, s, cond)
            cis[u.stratum] = ci
            verdicts.append(v)
            strata.append(
                StratumResult(
                    name=u.stratum or "",
                    verdict=v,
                    observed=u.observed,
                    n=u.n,
                    ci_low=ci[0],
                    ci_high=ci[1],
                    runs_needed=more,
                    why=f"stratum {u.stratum}: {why}",
                )
            )
        verdict = max(verdicts, key=lambda v: _VERDICT_RANK[v])
        worst = _worst(rule, p.units)
        wsr = next(x for x in strata if x.name == worst.stratum)
        counts = {v: [x.name for x in strata if x.verdict == v] for v in ("FAIL", "HOLD")}
        if verdict == "PASS":
            why = f"all {len(strata)} strata pass; worst observed: {wsr.why}"
        else:
            parts = [
                f"{len(v)} {k.lower()} ({', '.join(v)})"
                for k, v in (("FAIL", counts["FAIL"]), ("HOLD", counts["HOLD"]))
                if v
            ]
            why = f"{sum(1 for x in strata if x.verdict == 'PASS')} of {len(strata)} strata pass, {', '.join(parts)}; worst observed: {wsr.why}"
        ci = cis[worst.stratum]
        details.update(_level_details(worst, s))
        return _base_result(
            rule,
            verdict=verdict,
            observed=worst.observed,
            ci_low=_finite(ci[0]),
            ci_high=_finite(ci[1]),
            ci_method=None if worst.test is None else worst.test.ci_method,
            method=_method_text(rule, worst, s),
            n=sum(u.n for u in p.units),
            missing=sum(u.agg.missing for u in p.units if hasattr(u, "agg")),
            stratum=worst.stratum,
            strata=strata,
            details=details,
            why=why,
            **p.kw,
        )
    (u,) = p.units
    verdict = unit_verdict(rule, u, s)
    why, ci, more = _unit_why(rule, u, verdict, s, cond)
    details.update(_level_details(u, s))
    if more is not None:
        details["runs_needed"] = more
    return _base_result(
        rule,
        verdict=verdict,
        observed=u.observed,
        ci_low=_finite(ci[0]),
        ci_high=_finite(ci[1]),
        ci_method=None if u.test is None else u.test.ci_method,
        method=_method_text(rule, u, s),
        n=u.n,
        details=details,
        why=why,
        **p.kw,
    )


def _finite(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _level_details(u: Unit, s: DecisionSettings) -> dict[str, Any]:
    if u.test is None:
        return {}
    return {"alpha_go": s.alpha_go, "alpha_stop": round(u.alpha_bad, 10), "family_tests": u.family_size}


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


def prepare_relative(rule: RelativeRule, cur: np.ndarray, ctx: _Ctx, sel: _Selection) -> Pending:
    m, b = rule.metric, rule.baseline
    base_agg_name = b.aggregate or m.aggregate
    details: dict[str, Any] = {"baseline_source": b.source}
    paired = b.source == "column"
    if b.source == "column":
        bcol = b.column or m.column
        cv, bv = ctx.vals(cur, m.column), ctx.vals(cur, bcol)
        # Paired: only runs that carry both values, so a run missing its baseline cannot skew the ratio.
        both = np.flatnonzero(~cv.missing & ~bv.missing)
        cur_agg = _aggregate(cv.take(both), m.aggregate, m.match)
        base_agg = _aggregate(bv.take(both), base_agg_name, m.match)
        cur_agg.missing = len(cur) - len(both)
        details["baseline"] = f"{base_agg_name} {bcol} (same runs)"
        scope = f"for the current policy with both {m.column} and {bcol}"
    elif b.source == "policy":
        target = b.policy_hash or "previous"
        bhash = sel.previous if target == "previous" else target
        details["baseline_policy_hash"] = bhash
        bpos = sel.positions_of(bhash) if bhash else _NO_POSITIONS
        cur_agg = _aggregate(ctx.vals(cur, m.column), m.aggregate, m.match)
        base_agg = _aggregate(ctx.vals(bpos, m.column), base_agg_name, m.match)
        details["baseline"] = f"{base_agg_name} {m.column} (policy {bhash})"
        scope = "for the current policy"
    else:
        days = float(b.days)  # validated present
        end = sel.end
        cut = end - pd.Timedelta(days=days)
        start = end - pd.Timedelta(days=2 * days)
        ts = ctx.runs["timestamp"]
        in_cur = ((ts > cut) & (ts <= end)).to_numpy(dtype=bool)
        cur = cur[in_cur[cur]]
        bpos = np.flatnonzero(((ts > start) & (ts <= cut)).to_numpy(dtype=bool))
        cur_agg = _aggregate(ctx.vals(cur, m.column), m.aggregate, m.match)
        base_agg = _aggregate(ctx.vals(bpos, m.column), base_agg_name, m.match)
        details["baseline"] = f"{base_agg_name} {m.column} in ({_iso(start)}, {_iso(cut)}]"
        scope = f"for the current policy in the last {days:g} days"
    details["current_value"] = cur_agg.value
    details["baseline_value"] = base_agg.value
    details["baseline_n"] = base_agg.n
    pct = rule.measure not in ("difference", "ratio")
    fmt = _fmt_pct if pct else _fmt_num
    common = {"metric": m.display(), "comparator": rule.comparator, "threshold": rule.threshold}
    kw = {
        **common,
        "missing": cur_agg.missing,
        "details": details,
        "cond": f"{rule.comparator} {fmt(rule.threshold)}",
    }
    unit = Unit(None, None, cur_agg.n, None, "", fmt, projectable=False)

    def hold(why: str) -> Pending:
        kw.pop("cond")
        return Pending(rule, [], {**kw, "verdict": "HOLD", "observed": None, "n": cur_agg.n, "why": why})

    if b.source == "policy" and details["baseline_policy_hash"] is None:
        return hold("no data: there is no earlier policy_hash to compare with, so the rule cannot pass")
    if cur_agg.value is None or cur_agg.n < rule.min_n:
        return hold(_no_data_text(m.column, cur_agg, len(cur), ctx, rule.min_n, scope))
    if base_agg.value is None or base_agg.n < rule.min_n:
        return hold(
            f"no data: the baseline ({details['baseline']}) has {base_agg.n} usable values, so the rule cannot pass"
        )
    value = _measure(rule.measure, cur_agg.value, base_agg.value)
    cur_txt = _fmt_pct(cur_agg.value) if m.aggregate == "rate" else _fmt_num(cur_agg.value, m.unit)
    base_txt = _fmt_pct(base_agg.value) if base_agg_name == "rate" else _fmt_num(base_agg.value, m.unit)
    head = f"{m.display()} = {cur_txt} vs baseline {details['baseline']} = {base_txt}"
    if value is None:
        return hold(f"{head}: the baseline is 0, so the {rule.measure} is undefined")
    unit.observed = value
    unit.head = f"{head}: {rule.measure} {fmt(value)}"
    unit.test = RelativeTest(
        cur_agg,
        base_agg,
        m.aggregate,
        base_agg_name,
        rule.measure,
        rule.threshold,
        bad_above(rule),
        ctx.spec,
        paired,
    )
    return Pending(rule, [unit], kw)


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
