"""The decision: prepare the run table, select the policy, evaluate every rule, combine the verdicts."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from gate_pipeline.lib import intervals as iv
from gate_pipeline.lib.rules.config import (
    DECISION_NUMBERS,
    DecisionConfig,
    DecisionSettings,
    DecisionVerdict,
    MinEvidenceRule,
    RelativeRule,
)
from gate_pipeline.lib.rules.evaluators import (
    Pending,
    _eval_min_evidence,
    family_of,
    finish,
    prepare_absolute,
    prepare_relative,
)
from gate_pipeline.lib.rules.explain import _summary
from gate_pipeline.lib.rules.fmt import iso as _iso
from gate_pipeline.lib.rules.results import Decision, DecisionMethod, RuleResult
from gate_pipeline.lib.rules.selection import _Selection
from gate_pipeline.lib.rules.values import PrefixCache, _Ctx
from gate_pipeline.lib.stats import METRICS_PREFIX


def used_columns(cfg: DecisionConfig) -> set[str]:
    """Every run-table column the evaluation of ``cfg``'s current rules can read."""
    used = {"timestamp", "run_id", "policy_hash", cfg.strata_column}
    for rule in cfg.rules_for():
        metric = getattr(rule, "metric", None)
        baseline = getattr(rule, "baseline", None)
        for col in (metric.column if metric else None, baseline.column if baseline else None):
            if col:
                used.add("metrics" if col.startswith(METRICS_PREFIX) else col)
    return used


def _is_sorted(ts: pd.Series, run_id: pd.Series) -> bool:
    """True when rows are already in (timestamp, run_id) order, so a stable sort would not move any row."""
    if len(ts) < 2:
        return True
    if ts.isna().any():
        return False
    rid = run_id.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(rid, skipna=False) != "string":
        return False
    t = ts.to_numpy(dtype="datetime64[ns]").view("i8")
    later, same = t[1:] > t[:-1], t[1:] == t[:-1]
    if not (later | same).all():
        return False
    tie = np.flatnonzero(same)
    return bool((rid[tie + 1] >= rid[tie]).all()) if len(tie) else True


_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def _columns_of(runs: pd.DataFrame, columns: set[str] | None) -> pd.DataFrame:
    # Only the columns the rules read: copying and sorting a 30-column history dominated the runtime.
    keep = [c for c in runs.columns if columns is None or c in columns]
    if runs.columns.is_unique:
        # The columns themselves, not copies (selecting a list of columns copied them: ~55 MB at 1M runs).
        df = pd.DataFrame({c: runs[c] for c in keep}, index=runs.index, copy=False)
    else:
        df = runs[keep].copy(deep=False)
    if "timestamp" not in df.columns and len(df) == 0:
        df["timestamp"] = pd.Series([], dtype="datetime64[ns, UTC]")
    if "timestamp" not in df.columns:
        raise ValueError("run table has no 'timestamp' column")
    if df["timestamp"].dtype != _UTC_NS:  # the stored history is already UTC: nothing to convert
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    if "run_id" not in df.columns:
        df["run_id"] = ""
    return df


def _prepare(runs: pd.DataFrame, columns: set[str] | None = None) -> pd.DataFrame:
    df = _columns_of(runs, columns)
    # Stable order so row order of the input never changes the outcome (the stored history is usually
    # already in this order, then the sort is skipped).
    if _is_sorted(df["timestamp"], df["run_id"]):
        df.index = pd.RangeIndex(len(df))
    else:
        df = df.sort_values(["timestamp", "run_id"], kind="mergesort").reset_index(drop=True)
    return df


def prefix_cache(history: pd.DataFrame) -> PrefixCache | None:
    """A :class:`PrefixCache` for evaluating leading parts of ``history`` (``history.iloc[:n]``), or None
    when ``history`` is not in (timestamp, run_id) order (each leading part would be re-ordered first)."""
    df = _columns_of(history, None)
    if not _is_sorted(df["timestamp"], df["run_id"]):
        return None
    df.index = pd.RangeIndex(len(df))
    return PrefixCache(df)


def evaluate(
    runs: pd.DataFrame,
    cfg: DecisionConfig,
    *,
    now: datetime | None = None,
    cache: PrefixCache | None = None,
) -> Decision:
    """Evaluate the current phase's rules on the classified run table and return the Decision.

    ``now`` bounds the evidence window (days, time-window baselines); default: the latest run's timestamp,
    which keeps the result a pure function of the data.  Input row order does not matter. ``cache``
    (:func:`prefix_cache`): ``runs`` are the first rows of its history, in that order; per-run work is
    shared with other evaluations of the same history."""
    if cache is None:
        df = _prepare(runs, used_columns(cfg))
    elif len(runs) > len(cache.history):
        raise ValueError("the runs are not a leading part of the cached history")
    else:  # the same rows, already prepared and in order: a slice of the cache's copy, no copy per call
        df = cache.leading(used_columns(cfg), len(runs))
    now_ts = None
    if now is not None:
        now_ts = pd.Timestamp(now)
        now_ts = now_ts.tz_localize("UTC") if now_ts.tzinfo is None else now_ts.tz_convert("UTC")
    sel = _Selection(df, cfg, now_ts, None if cache is None else cache.hashes(len(df)))
    ctx = _Ctx(df, cfg, now_ts, cache)
    results: list[RuleResult] = []
    pending: list[Pending] = []
    for rule in cfg.rules_for():
        if isinstance(rule, MinEvidenceRule):
            results.append(_eval_min_evidence(rule, sel))
        elif isinstance(rule, RelativeRule):
            pending.append(prepare_relative(rule, sel.current, ctx, sel))
        else:
            pending.append(prepare_absolute(rule, sel.current, ctx))
    sizes = assign_levels(pending, cfg.decision)
    results += [finish(p, cfg.decision) for p in pending]
    results.sort(key=lambda r: r.name)
    counted = [r for r in results if not r.observe_only]
    verdicts = {r.verdict for r in counted}
    if not counted:
        verdict: DecisionVerdict = "HOLD"
    elif "ROLLBACK" in verdicts:
        verdict = "ROLLBACK"
    elif "FAIL" in verdicts:
        verdict = "NO_GO"
    elif "HOLD" in verdicts:
        verdict = "HOLD"
    else:
        verdict = "GO"
    return Decision(
        verdict=verdict,
        decision_as_number=DECISION_NUMBERS[verdict],
        why=_summary(verdict, counted),
        config_name=cfg.name,
        current_phase=cfg.current_phase,
        next_phase=cfg.next_phase(),
        policy_hash=sel.hash,
        policy_selection=cfg.policy.mode,
        previous_policy_hash=sel.previous,
        n_runs=len(sel.current),
        days=None if sel.days is None else round(sel.days, 6),
        first_run_at=_iso(sel.first),
        last_run_at=_iso(sel.last),
        evaluated_at=_iso(now_ts) if now_ts is not None else None,
        counted_rules=len(counted),
        method=_method(cfg.decision, sizes),
        rules=results,
    )


def assign_levels(pending: list[Pending], s: DecisionSettings) -> dict[str, int]:
    """Give every test the level its bad side is judged at: NO_GO and ROLLBACK are unions over the counted
    tests (rules x strata), so each family shares its alpha (Holm or Bonferroni). Observe-only rules are not in
    a family (they stop nothing) and use the family alpha alone. Returns the family sizes."""
    sizes = {}
    for family, alpha in (("no_go", s.alpha_no_go), ("rollback", s.alpha_rollback)):
        members = [p for p in pending if family_of(p.rule) == family]
        units = [u for p in members if not p.rule.observe_only for u in p.units]
        sizes[family] = m = len(units)
        if m:
            levels = [alpha / (m - j) for j in range(m)]
            pvals = np.array([u.test.p_bad(levels) if u.test is not None else 1.0 for u in units])
            rejected, level = iv.familywise_reject(pvals, alpha, s.multiplicity)
            for u, r, a in zip(units, rejected.tolist(), level.tolist(), strict=True):
                u.rejected, u.alpha_bad, u.family_size = bool(r), float(a), m
        for p in members:
            if p.rule.observe_only:
                for u in p.units:
                    u.alpha_bad = alpha
                    u.rejected = u.test is not None and u.test.p_bad([alpha]) <= alpha
    return sizes


def _method(s: DecisionSettings, sizes: dict[str, int]) -> DecisionMethod:
    kind = (
        "anytime-valid confidence sequences (beta-binomial mixture, Howard et al. 2021): valid however often "
        "the decision is re-evaluated"
        if s.interval == "sequential"
        else "fixed-sample intervals (exact binomial): valid for a one-off analysis, not under repeated looks"
    )
    description = (
        f"{kind}. GO: every counted rule's interval on the good side at alpha={s.alpha_go:g} one-sided. "
        f"NO_GO: {s.multiplicity} over {sizes['no_go']} counted tests at family-wise alpha={s.alpha_no_go:g}. "
        f"ROLLBACK: {s.multiplicity} over {sizes['rollback']} triggers at family-wise alpha={s.alpha_rollback:g}."
    )
    return DecisionMethod(
        interval=s.interval,
        description=description,
        alpha_go=s.alpha_go,
        alpha_no_go=s.alpha_no_go,
        alpha_rollback=s.alpha_rollback,
        multiplicity=s.multiplicity,
        no_go_tests=sizes["no_go"],
        rollback_tests=sizes["rollback"],
    )
