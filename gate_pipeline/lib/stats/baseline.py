"""The candidate policy against its baseline policy, without being misled by the stratum mix (issue 17 §4).

A pooled rate difference between two policies mixes two things: how each policy does within a stratum, and
how many of its runs fall in each stratum. When the candidate runs mostly in an easy stratum (say ``pinned``)
and the baseline mostly in a hard one, the pooled difference can favour the candidate although it does worse
in every stratum (Simpson's paradox). So beside the pooled difference this reports the **stratum-standardized
difference**: the candidate's per-stratum rates re-weighted to the baseline's stratum mix (direct
standardization, the baseline as the standard population), minus the baseline's rate,

    D_std = sum_s w_s (p_cand,s - p_base,s),   w_s = n_base,s / sum over the common strata of n_base,

and flags ``simpsons_paradox`` when D_std and the pooled difference point in opposite directions.

Methods (named in every output, :data:`METHODS`):

- pooled difference: Newcombe hybrid score (as everywhere in the statistics);
- standardized difference: MOVER (Zou & Donner 2008) over the per-stratum Wilson intervals, i.e. the
  stratified form of Newcombe's interval (with one stratum it *is* Newcombe's); beside it the Wald standard
  error of the stratified sum, sqrt(sum_s w_s^2 (p_c(1-p_c)/n_c + p_b(1-p_b)/n_b)), weights held fixed.
- Strata where one side has no compared runs carry no within-stratum difference: they are left out of the
  standardized difference (the weights are renormalized over the strata both sides have), and the share of
  each side's compared runs left out is reported (``baseline_share_uncovered``, ``candidate_share_uncovered``);
  no common stratum gives status ``no_common_strata``.

Baseline hygiene: ``baseline_comparison.exclude`` leaves runs carrying given unknown classes (optionally only
with given outcomes) out of both sides; excluded, outcome-null and compared runs add up to each side's runs,
and every run of the candidate pair is listed with its status in ``compared_runs``.

Pairs: every policy_hash with a predecessor in introduction order (:func:`~gate_pipeline.lib.policies.
introduction_order`) is compared with it, so the decision finds its own pair whatever its policy selection;
the candidate's pair (:func:`~gate_pipeline.lib.stats.runs.candidate_label`) is the headline and the one whose
runs are listed. Pure pandas / numpy, no Dagster.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pandera.pandas as pa
import pyarrow.types as pa_types
from pandera.typing import Series

from gate_pipeline.lib.stats.config import AnalysisConfig
from gate_pipeline.lib.stats.document import Section, to_jsonable
from gate_pipeline.lib.stats.intervals import DiffCI, estimate_cols, newcombe_diff, wilson_bounds
from gate_pipeline.lib.stats.runs import (
    Runs,
    as_runs,
    candidate_label,
    factorize,
    in_order,
    json_sets,
    no_nan,
    outcome_flags,
    policy_order,
    strata_coded,
)

WARNING_NAME = "simpsons_paradox"

METHODS = {
    "pooled_difference": "candidate rate - baseline rate over all compared runs; Newcombe hybrid score interval "
    "(1998, method 10)",
    "standardized_difference": "direct standardization to the baseline's stratum mix: sum_s w_s (p_cand,s - "
    "p_base,s), w_s = the baseline's share of compared runs in stratum s among the strata both sides have",
    "standardized_interval": "MOVER (Zou & Donner 2008) over per-stratum Wilson score intervals: the stratified "
    "Newcombe hybrid score interval (one stratum: Newcombe's)",
    "standardized_se": "Wald standard error of the stratified sum, sqrt(sum_s w_s^2 (p_c,s(1-p_c,s)/n_c,s + "
    "p_b,s(1-p_b,s)/n_b,s)), weights fixed",
    "empty_strata": "a stratum where one side has no compared runs is left out of the standardized difference "
    "(weights renormalized over the common strata); the share of each side's compared runs left out is "
    "reported; no common stratum: status no_common_strata",
    "mix_distance": "total variation distance between the two sides' stratum mixes: half the sum of the "
    "absolute differences of their shares of compared runs (0 = same mix, 1 = no stratum in common)",
    "simpsons_paradox": "pooled and standardized differences point in opposite directions (each counts as a "
    "direction only when its absolute value exceeds direction_tolerance)",
    "exclusions": "runs carrying an unknown class matched by an exclusion (shell-style pattern on "
    "classified_runs.unknown_classes), with one of its outcomes when given, are left out of both sides",
}

METRIC_LABELS = {"fail_rate": "FAIL rate", "warn_fail_rate": "WARN+FAIL rate"}

SIDES = ("candidate", "baseline")

COMPARISON_COLUMNS = [
    "policy_hash",
    "baseline_hash",
    "metric",
    *(
        f"{side}_{k}"
        for side in SIDES
        for k in ("runs", "excluded", "outcome_null", "compared", "events", "rate")
    ),
    "pooled_diff",
    "pooled_ci_low",
    "pooled_ci_high",
    "pooled_status",
    "standardized_candidate_rate",
    "standardized_baseline_rate",
    "standardized_diff",
    "standardized_ci_low",
    "standardized_ci_high",
    "standardized_se",
    "standardized_status",
    "strata_common",
    "strata_candidate_only",
    "strata_baseline_only",
    "candidate_share_uncovered",
    "baseline_share_uncovered",
    "mix_distance",
    "simpsons_paradox",
]

STRATA_COLUMNS = [
    "policy_hash",
    "baseline_hash",
    "metric",
    "stratum",
    "candidate_compared",
    "candidate_events",
    "candidate_rate",
    "candidate_share",
    "baseline_compared",
    "baseline_events",
    "baseline_rate",
    "baseline_share",
    "weight",
    "rate_diff",
    "treatment",
]

EXCLUSION_COLUMNS = [
    "policy_hash",
    "baseline_hash",
    "side",
    "side_policy_hash",
    "exclusion",
    "runs",
    "classes",
]


class ComparedRuns(pa.DataFrameModel):
    """tables/compared_runs.csv: every run of the candidate policy and of its baseline, and whether it was
    compared. Sorted by side (candidate first), timestamp, run_id."""

    side: Series[str] = pa.Field(isin=list(SIDES), description="candidate or baseline.")
    policy_hash: Series[str] = pa.Field(description="The run's policy_hash (the side's policy).")
    run_id: Series[str] = pa.Field(description="The run's id.")
    timestamp: Series[pd.DatetimeTZDtype] = pa.Field(
        nullable=True, dtype_kwargs={"unit": "ns", "tz": "UTC"}, description="When the run finished (UTC)."
    )
    stratum: Series[str] = pa.Field(description="The run's stratum (analysis config strata_column).")
    outcome: Series[str] = pa.Field(nullable=True, description="The gate's outcome (null when unknown).")
    status: Series[str] = pa.Field(
        isin=["compared", "excluded", "outcome_null"],
        description="compared; excluded (by an exclusion, see excluded_by); outcome_null (no outcome, so in no "
        "rate).",
    )
    excluded_by: Series[str] = pa.Field(
        description="The exclusions that matched the run, ';'-separated (empty when none)."
    )

    class Config:
        strict = True
        ordered = True


@dataclass
class BaselineTables:
    """The comparison of every (policy, its predecessor) pair; the candidate pair's runs in ``compared_runs``."""

    candidate: str | None
    baseline: str | None
    status: str  # ok | no_candidate | no_baseline
    comparisons: pd.DataFrame = field(repr=False)
    strata: pd.DataFrame = field(repr=False)
    exclusions: pd.DataFrame = field(repr=False)
    compared_runs: pd.DataFrame = field(repr=False)


@dataclass(frozen=True)
class StandardizedDiff:
    """sum_s w_s (p_cand,s - p_base,s) over the common strata, with its MOVER-Wilson interval and Wald se."""

    candidate_rate: float | None  # sum_s w_s p_cand,s
    baseline_rate: float | None  # sum_s w_s p_base,s
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    se: float | None
    status: str  # ok | no_common_strata
    weights: dict[str, float]
    candidate_share_uncovered: float | None
    baseline_share_uncovered: float | None


def standardized_diff(
    candidate: dict[str, tuple[int, int]], baseline: dict[str, tuple[int, int]], z: float
) -> StandardizedDiff:
    """The candidate's per-stratum rates at the baseline's stratum mix, minus the baseline's rate.

    ``candidate`` / ``baseline``: stratum -> (events, compared runs). Strata where a side has no runs are left
    out (weights renormalized over the common strata); see the module docstring for the interval."""
    n_cand = sum(n for _, n in candidate.values())
    n_base = sum(n for _, n in baseline.values())
    common = sorted(s for s in candidate if candidate[s][1] > 0 and baseline.get(s, (0, 0))[1] > 0)
    uncovered_c = (n_cand - sum(candidate[s][1] for s in common)) / n_cand if n_cand else None
    uncovered_b = (n_base - sum(baseline[s][1] for s in common)) / n_base if n_base else None
    if not common:
        return StandardizedDiff(
            None, None, None, None, None, None, "no_common_strata", {}, uncovered_c, uncovered_b
        )
    total = sum(baseline[s][1] for s in common)
    weights = {s: baseline[s][1] / total for s in common}
    rate_c = rate_b = var = 0.0
    low_sq = high_sq = 0.0
    for s in common:
        w = weights[s]
        (xc, nc), (xb, nb) = candidate[s], baseline[s]
        pc, pb = xc / nc, xb / nb
        lc, uc = wilson_bounds(xc, nc, z)
        lb, ub = wilson_bounds(xb, nb, z)
        rate_c += w * pc
        rate_b += w * pb
        var += w * w * (pc * (1 - pc) / nc + pb * (1 - pb) / nb)
        # MOVER: the candidate term enters with +w, the baseline term with -w.
        low_sq += (w * (pc - lc)) ** 2 + (w * (ub - pb)) ** 2
        high_sq += (w * (uc - pc)) ** 2 + (w * (pb - lb)) ** 2
    diff = rate_c - rate_b
    return StandardizedDiff(
        rate_c,
        rate_b,
        diff,
        max(-1.0, diff - math.sqrt(low_sq)),
        min(1.0, diff + math.sqrt(high_sq)),
        math.sqrt(var),
        "ok",
        weights,
        uncovered_c,
        uncovered_b,
    )


def direction(value: float | None, tolerance: float) -> int:
    """+1 / -1 when ``value`` is beyond ``tolerance`` either side of 0, else 0 (no direction)."""
    if value is None or abs(value) <= tolerance:
        return 0
    return 1 if value > 0 else -1


def is_paradox(pooled: float | None, standardized: float | None, tolerance: float) -> bool:
    """Simpson's paradox: both differences have a direction and the directions disagree."""
    return direction(pooled, tolerance) * direction(standardized, tolerance) < 0


def mix_distance(candidate: dict[str, int], baseline: dict[str, int]) -> float | None:
    """Total variation distance between two stratum mixes given as stratum -> runs (None if a side is empty)."""
    n_c, n_b = sum(candidate.values()), sum(baseline.values())
    if not n_c or not n_b:
        return None
    strata = set(candidate) | set(baseline)
    return 0.5 * sum(abs(candidate.get(s, 0) / n_c - baseline.get(s, 0) / n_b) for s in sorted(strata))


# ---------------------------------------------------------------------------------------------- per run
class _PerRun:
    """The per-run arrays the comparison needs: policy, stratum, outcome flags, exclusions."""

    def __init__(self, runs: Runs, cfg: AnalysisConfig):
        df = runs.df
        self.cfg = cfg
        self.hashes = df["policy_hash"].to_numpy(dtype=object)
        self.strata_codes, self.strata_names = strata_coded(runs, cfg)
        known, is_warn, is_fail = outcome_flags(runs, cfg)
        self.known = known
        self.events = {"fail_rate": known & is_fail, "warn_fail_rate": known & (is_fail | is_warn)}
        # The outcome per run as a code of its distinct values (-1: null).
        self.outcome_codes, self.outcome_names = factorize(df["outcome"].astype(object, copy=False))
        # Per run a code of its (classes, outcome) combination; per code the exclusions that match it.
        self.combo, self.combo_hits = self._exclusions(runs)
        names = [";".join(hit) for hit in self.combo_hits]
        self.combo_excluded_by = np.array(names, dtype=object)
        self.excluded = np.array([bool(n) for n in names], dtype=bool)[self.combo]

    def _exclusions(self, runs: Runs) -> tuple[np.ndarray, list[dict[str, tuple[str, ...]]]]:
        """Per run the code of its distinct (unknown classes, outcome) combination, and per code
        {exclusion name: the classes it matched} (in config order). Each combination is matched once."""
        rules = self.cfg.baseline_comparison.exclude
        n = len(runs.df)
        if not rules or n == 0:
            return np.zeros(n, dtype=np.intp), [{}]
        class_codes, class_items = json_sets(runs, "unknown_classes")
        out_codes, out_uniques = self.outcome_codes, self.outcome_names
        outcomes = [str(u).upper() for u in out_uniques] + [None]  # code -1 reads None
        key = (class_codes.astype(np.int64) + 1) * (len(out_uniques) + 1) + (out_codes + 1)
        keys, combo = np.unique(key, return_inverse=True)
        hits = []
        for k in keys.tolist():
            cc, oc = divmod(k, len(out_uniques) + 1)
            items, outcome = (class_items[cc - 1] if cc else []), outcomes[oc - 1]
            hit: dict[str, tuple[str, ...]] = {}
            for rule in rules:
                if rule.outcomes is not None and outcome not in rule.outcomes:
                    continue
                matched = tuple(c for c in items if any(fnmatch.fnmatchcase(c, p) for p in rule.classes))
                if matched:
                    hit[rule.name] = matched
            hits.append(hit)
        return combo.reshape(-1), hits

    def positions(self, policy: str) -> np.ndarray:
        return np.flatnonzero(self.hashes == policy)


@dataclass
class _Side:
    """One policy's runs split into excluded / outcome_null / compared, and its per-stratum counts."""

    runs: int
    excluded: int
    outcome_null: int
    compared: np.ndarray  # positions
    strata_runs: dict[str, int]
    strata_events: dict[str, dict[str, int]]  # metric -> stratum -> events


def _side(per: _PerRun, idx: np.ndarray, metrics: list[str]) -> _Side:
    excluded = per.excluded[idx]
    null = ~excluded & ~per.known[idx]
    compared = idx[~excluded & per.known[idx]]
    codes = per.strata_codes[compared]
    k = len(per.strata_names)
    runs_by = np.bincount(codes, minlength=k)
    names = per.strata_names
    strata_runs = {str(names[i]): int(runs_by[i]) for i in np.flatnonzero(runs_by)}
    events = {}
    for m in metrics:
        ev = np.bincount(codes, weights=per.events[m][compared].astype(float), minlength=k)
        events[m] = {str(names[i]): int(ev[i]) for i in np.flatnonzero(runs_by)}
    return _Side(len(idx), int(excluded.sum()), int(null.sum()), compared, strata_runs, events)


def _comparison_rows(
    h: str, b: str, cand: _Side, base: _Side, cfg: AnalysisConfig
) -> tuple[list[dict], list[dict]]:
    bc = cfg.baseline_comparison
    z = cfg.z
    rows, strata_rows = [], []
    mix = mix_distance(cand.strata_runs, base.strata_runs)
    all_strata = sorted(set(cand.strata_runs) | set(base.strata_runs))
    for metric in bc.metrics:
        ce = {s: (cand.strata_events[metric][s], n) for s, n in cand.strata_runs.items()}
        be = {s: (base.strata_events[metric][s], n) for s, n in base.strata_runs.items()}
        xc, nc = sum(x for x, _ in ce.values()), len(cand.compared)
        xb, nb = sum(x for x, _ in be.values()), len(base.compared)
        pooled: DiffCI = newcombe_diff(xc, nc, xb, nb, z)
        std = standardized_diff(ce, be, z)
        row: dict[str, Any] = {"policy_hash": h, "baseline_hash": b, "metric": metric}
        for side, s, x, n in (("candidate", cand, xc, nc), ("baseline", base, xb, nb)):
            row |= {
                f"{side}_runs": s.runs,
                f"{side}_excluded": s.excluded,
                f"{side}_outcome_null": s.outcome_null,
                f"{side}_compared": n,
                f"{side}_events": x,
                f"{side}_rate": x / n if n else None,
            }
        row |= estimate_cols("pooled", pooled)
        row["pooled_diff"] = row.pop("pooled")
        row |= {
            "standardized_candidate_rate": std.candidate_rate,
            "standardized_baseline_rate": std.baseline_rate,
            "standardized_diff": std.diff,
            "standardized_ci_low": std.ci_low,
            "standardized_ci_high": std.ci_high,
            "standardized_se": std.se,
            "standardized_status": std.status if pooled.status == "ok" else pooled.status,
            "strata_common": len(std.weights),
            "strata_candidate_only": sum(1 for s in cand.strata_runs if s not in base.strata_runs),
            "strata_baseline_only": sum(1 for s in base.strata_runs if s not in cand.strata_runs),
            "candidate_share_uncovered": std.candidate_share_uncovered,
            "baseline_share_uncovered": std.baseline_share_uncovered,
            "mix_distance": mix,
            "simpsons_paradox": is_paradox(pooled.diff, std.diff, bc.direction_tolerance),
        }
        rows.append(row)
        for s in all_strata:
            xcs, ncs = ce.get(s, (0, 0))
            xbs, nbs = be.get(s, (0, 0))
            rc, rb = (xcs / ncs if ncs else None), (xbs / nbs if nbs else None)
            treatment = (
                "standardized"
                if s in std.weights
                else ("left out: no baseline runs" if ncs else "left out: no candidate runs")
            )
            strata_rows.append(
                {
                    "policy_hash": h,
                    "baseline_hash": b,
                    "metric": metric,
                    "stratum": s,
                    "candidate_compared": ncs,
                    "candidate_events": xcs,
                    "candidate_rate": rc,
                    "candidate_share": ncs / nc if nc else None,
                    "baseline_compared": nbs,
                    "baseline_events": xbs,
                    "baseline_rate": rb,
                    "baseline_share": nbs / nb if nb else None,
                    "weight": std.weights.get(s),
                    "rate_diff": rc - rb if rc is not None and rb is not None else None,
                    "treatment": treatment,
                }
            )
    return rows, strata_rows


def _exclusion_rows(h: str, b: str, per: _PerRun, sides: dict[str, tuple[str, np.ndarray]]) -> list[dict]:
    rows = []
    for rule in per.cfg.baseline_comparison.exclude:
        for side in SIDES:
            policy, idx = sides[side]
            classes: dict[str, int] = {}
            runs = 0
            per_combo = np.bincount(per.combo[idx], minlength=len(per.combo_hits))
            for code in np.flatnonzero(per_combo).tolist():
                matched = per.combo_hits[code].get(rule.name)
                if matched:
                    count = int(per_combo[code])
                    runs += count
                    for c in matched:
                        classes[c] = classes.get(c, 0) + count
            rows.append(
                {
                    "policy_hash": h,
                    "baseline_hash": b,
                    "side": side,
                    "side_policy_hash": policy,
                    "exclusion": rule.name,
                    "runs": runs,
                    "classes": orjson.dumps(classes, option=orjson.OPT_SORT_KEYS).decode(),
                }
            )
    return rows


def _as_text(values: np.ndarray) -> np.ndarray:
    """``values.astype(str).astype(object)`` without a new str per cell when every cell is a str already
    (then it is the same cells): at 1M runs those copies were ~60 MB a column."""
    if pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty"):
        return values
    return values.astype(str).astype(object)


def _run_id_cells(run_id: pd.Series, idx: np.ndarray) -> np.ndarray:
    """The run ids of the rows ``idx`` as object cells (None where null), from an object or Arrow column."""
    if isinstance(run_id.dtype, pd.ArrowDtype):
        return run_id.array.take(idx).to_numpy(dtype=object, na_value=None)
    return run_id.to_numpy(dtype=object)[idx]


def _run_id_column(run_id: pd.Series, idx: np.ndarray) -> pd.Series | np.ndarray:
    """The run ids of the rows ``idx`` as text (``astype(str)`` of each: a null reads "None"); an Arrow
    column stays in Arrow (~13 MB at 1M runs, not ~75 MB of str)."""
    if isinstance(run_id.dtype, pd.ArrowDtype) and pa_types.is_string(run_id.dtype.pyarrow_dtype):
        return pd.Series(run_id.array.take(idx), copy=False).fillna("None")
    return _as_text(_run_id_cells(run_id, idx))


def _side_order(runs: Runs, idx: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """``idx`` ordered by (timestamp, NaT last; run_id). Ascending positions of a history already in that
    order (as stored) are in order: no sort keys (a fixed-width text copy of the run ids) are made."""
    stored_order = isinstance(runs.df["timestamp"].dtype, pd.DatetimeTZDtype) and runs.derived(
        ("in_order", "timestamp", "run_id"), lambda: in_order(runs.df, ["timestamp", "run_id"])
    )
    if stored_order and (len(idx) < 2 or bool((np.diff(idx) > 0).all())):
        return idx
    ts_key = np.where(np.isnat(ts[idx]), np.iinfo(np.int64).max, ts[idx].view("i8"))
    return idx[np.lexsort((_run_id_cells(runs.df["run_id"], idx).astype(str), ts_key))]


STATUS_NAMES = np.array(["compared", "excluded", "outcome_null"], dtype=object)


def _compared_runs(runs: Runs, per: _PerRun, sides: dict[str, tuple[str, np.ndarray]]) -> pd.DataFrame:
    """Every run of both sides with its status, candidate first, then by (timestamp, run_id). A per-run table
    of nearly the whole history: its text columns are coded (:func:`_coded`) and its run ids the history's
    own cells (or Arrow column), so it costs ~30 MB at 1M runs, not ~125 MB."""
    df = runs.df
    stamps = df["timestamp"]
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = pd.to_datetime(stamps, utc=True)
    ts = stamps.to_numpy(dtype="datetime64[ns]")  # UTC instants, NaT where unknown
    ordered = [_side_order(runs, sides[side][1], ts) for side in SIDES]
    idx = np.concatenate(ordered)
    side_code = np.repeat(np.arange(len(SIDES), dtype=np.int8), [len(o) for o in ordered])
    status = np.where(per.excluded[idx], 1, np.where(per.known[idx], 0, 2)).astype(np.int8)
    return pd.DataFrame(
        {
            "side": _coded(np.array(SIDES, dtype=object), side_code),
            "policy_hash": _coded(np.array([sides[s][0] for s in SIDES], dtype=object), side_code),
            "run_id": _run_id_column(df["run_id"], idx),
            "timestamp": pd.DatetimeIndex(ts[idx]).tz_localize("UTC"),
            "stratum": _coded(_as_text(per.strata_names.astype(object)), per.strata_codes[idx]),
            "outcome": _coded(per.outcome_names, per.outcome_codes[idx]),
            "status": _coded(STATUS_NAMES, status),
            "excluded_by": _coded(per.combo_excluded_by, per.combo[idx]),
        },
        copy=False,  # no consolidation copy of the object columns
    )


def _coded(names: np.ndarray, codes: np.ndarray) -> pd.Categorical:
    """The cells ``names[codes]`` (code -1: missing) as a Categorical of the distinct names: a byte a run, not
    an 8-byte pointer (compared_runs lists nearly every run). :func:`~gate_pipeline.lib.stats.document.
    object_columns` gives the cells back; the CSV holds them as text."""
    of_name, distinct = pd.factorize(names, use_na_sentinel=True)  # names may repeat; None is missing
    return pd.Categorical.from_codes(
        np.append(of_name, -1)[codes], categories=pd.Index(distinct, dtype=object, tupleize_cols=False)
    )


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})


def baseline_comparison(classified: pd.DataFrame | Runs, cfg: AnalysisConfig | None = None) -> BaselineTables:
    """Every policy (with a predecessor) against the policy introduced just before it; see the module
    docstring. Tables sorted by (policy_hash, baseline_hash, metric[, stratum]) resp. (…, side, exclusion)."""
    cfg = cfg or AnalysisConfig()
    runs = as_runs(classified)
    metrics = list(cfg.baseline_comparison.metrics)
    candidate = candidate_label(runs, cfg)
    order = policy_order(runs)
    pairs = [(order[i], order[i - 1]) for i in range(1, len(order))]
    baseline = dict(pairs).get(candidate) if candidate is not None else None
    status = "no_candidate" if candidate is None else ("no_baseline" if baseline is None else "ok")
    per = _PerRun(runs, cfg)
    rows: list[dict] = []
    strata_rows: list[dict] = []
    exclusion_rows: list[dict] = []
    compared = _empty(list(ComparedRuns.to_schema().columns))
    positions: dict[str, np.ndarray] = {}
    for h, b in sorted(pairs):
        for p in (h, b):
            if p not in positions:
                positions[p] = per.positions(p)
        cand, base = _side(per, positions[h], metrics), _side(per, positions[b], metrics)
        r, s = _comparison_rows(h, b, cand, base, cfg)
        rows += r
        strata_rows += s
        sides = {"candidate": (h, positions[h]), "baseline": (b, positions[b])}
        exclusion_rows += _exclusion_rows(h, b, per, sides)
        if h == candidate:
            compared = _compared_runs(runs, per, sides)
    return BaselineTables(
        candidate,
        baseline,
        status,
        no_nan(pd.DataFrame(rows, columns=COMPARISON_COLUMNS)) if rows else _empty(COMPARISON_COLUMNS),
        no_nan(pd.DataFrame(strata_rows, columns=STRATA_COLUMNS)) if strata_rows else _empty(STRATA_COLUMNS),
        pd.DataFrame(exclusion_rows, columns=EXCLUSION_COLUMNS)
        if exclusion_rows
        else _empty(EXCLUSION_COLUMNS),
        compared,
    )


def _pp(x: float) -> str:
    return f"{x * 100:+.1f} pp"


def paradox_warnings(document: dict | None, policy_hash: str | None, baseline_hash: str | None) -> list[dict]:
    """The ``simpsons_paradox`` warnings of the (policy_hash, baseline_hash) pair in a baseline_comparison
    section document: one per compared metric whose pooled and standardized differences disagree in direction.
    Plain dicts (name, metric, policy_hash, baseline_hash, pooled_diff, standardized_diff, message)."""
    if not document or policy_hash is None or baseline_hash is None:
        return []
    strata_column = document.get("strata_column", "stratum")
    out = []
    for row in document.get("comparisons", []):
        if (row["policy_hash"], row["baseline_hash"]) != (policy_hash, baseline_hash):
            continue
        if not row.get("simpsons_paradox"):
            continue
        pooled, std = row["pooled_diff"], row["standardized_diff"]
        label = METRIC_LABELS.get(row["metric"], row["metric"])
        better = "better" if pooled < 0 else "worse"
        std_better = "better" if std < 0 else "worse"
        mix = row.get("mix_distance")
        message = (
            f"Simpson's paradox in the {label}: pooled, policy {policy_hash} looks {better} than its baseline "
            f"{baseline_hash} ({_pp(pooled)}), but at the baseline's {strata_column} mix it is {std_better} "
            f"({_pp(std)})"
            + (
                f"; the two {strata_column} mixes differ by {mix * 100:.0f}% (total variation)"
                if mix is not None
                else ""
            )
            + f". Compare per {strata_column} before trusting the pooled difference."
        )
        out.append(
            {
                "name": WARNING_NAME,
                "metric": row["metric"],
                "policy_hash": policy_hash,
                "baseline_hash": baseline_hash,
                "pooled_diff": pooled,
                "standardized_diff": std,
                "message": message,
            }
        )
    return sorted(out, key=lambda w: w["metric"])


def baseline_section(history: pd.DataFrame | Runs, cfg: AnalysisConfig) -> Section:
    result = baseline_comparison(history, cfg)
    bc = cfg.baseline_comparison
    doc = {
        "candidate": result.candidate,
        "baseline": result.baseline,
        "status": result.status,
        "strata_column": cfg.strata_column,
        "metrics": list(bc.metrics),
        "direction_tolerance": bc.direction_tolerance,
        "exclude": [e.model_dump(mode="json") for e in bc.exclude],
        "comparisons": to_jsonable(result.comparisons),
        "strata": to_jsonable(result.strata),
        "exclusions": to_jsonable(result.exclusions),
        "compared_runs_file": "tables/compared_runs.csv",
        "compared_runs": int((result.compared_runs["status"] == "compared").sum()),
    }
    doc["warnings"] = paradox_warnings(doc, result.candidate, result.baseline)
    headline = result.comparisons[result.comparisons["policy_hash"] == result.candidate]
    numbers: dict[str, float | int | None] = {"simpsons_paradox_warnings": len(doc["warnings"])}
    for rec in headline.itertuples(index=False):
        numbers[f"pooled_diff[{rec.metric}]"] = rec.pooled_diff
        numbers[f"standardized_diff[{rec.metric}]"] = rec.standardized_diff
    numbers["excluded_runs[candidate]"] = int(headline["candidate_excluded"].iloc[0]) if len(headline) else 0
    numbers["excluded_runs[baseline]"] = int(headline["baseline_excluded"].iloc[0]) if len(headline) else 0
    tables = {
        "baseline_comparison": result.comparisons,
        "baseline_strata": result.strata,
        "baseline_exclusions": result.exclusions,
        "compared_runs": result.compared_runs,
    }
    return Section("baseline_comparison", doc, tables, numbers)
