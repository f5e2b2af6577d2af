"""The median-based WARN threshold for unknown_rate and its false positives on history, per policy_hash
(derive the threshold from the median, judge its false-positive rate before the phase change, after
about 40 runs, stable per policy version)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gate_pipeline.lib.stats.config import AnalysisConfig
from gate_pipeline.lib.stats.document import Section, to_jsonable
from gate_pipeline.lib.stats.intervals import RateCI, wilson
from gate_pipeline.lib.stats.runs import (
    Runs,
    as_runs,
    candidate_label,
    groups,
    has_items,
    outcome_flags,
    policy_coded,
    rates_of,
)


@dataclass
class WarnThresholdResult:
    """Recommended WARN threshold for unknown_rate and its false positives on history, per policy_hash.

    Definitions, within one policy_hash (runs with a null unknown_rate or null outcome are excluded and
    counted in ``excluded_runs``):

    - threshold = max(warn_threshold_multiplier * median(unknown_rate), warn_threshold_floor), derived only
      from at least ``warn_threshold_min_runs`` runs; fewer give status ``insufficient_runs``, threshold None
      and no false-positive figures (None). A run is *flagged* when its (effective) unknown_rate > threshold.
    - A run's outcome is a *signal* when it is in fail_outcomes or warn_outcomes (the gate itself raised it),
      *clean* otherwise. A flagged run with a signal is a true positive (``flagged_fail`` + ``flagged_warn``);
      a flagged clean run is a **false positive**. WARN outcomes are therefore never false positives.
    - ``false_discovery_rate`` = false positives / flagged runs: the share of the threshold's WARNs that
      would have been noise. ``false_positive_rate`` = false positives / clean runs: the classical rate, the
      share of clean runs the threshold would WARN on. Both with Wilson intervals; None (status
      ``empty_cell``) without flagged resp. clean runs.
    - *without* whitelist: effective rate = unknown_rate as is. *with* whitelist: runs whose unknowns are
      fully whitelisted (>= 1 top reason, every one covered: whitelisted_classes non-empty and
      non_whitelisted_reasons empty) get effective rate 0, the others keep theirs. The threshold is the same
      on both sides (from the raw rates) so the difference isolates the whitelist's effect.
    - ``fp_runs_avoided`` = false positives without - with; ``false_discovery_rate_reduction`` and
      ``false_positive_rate_reduction`` = without - with (None if either is undefined);
      ``fp_relative_reduction`` = fp_runs_avoided / false positives without (None if that is 0).

    ``by_policy`` holds these figures for every policy_hash (a null hash is ``null_group_label``); the
    top-level fields are the candidate policy's (``policy_hash``), the one the decision uses. No figure here
    pools policies.
    """

    policy_hash: str | None
    n_runs: int
    excluded_runs: int
    min_runs: int
    median: float | None
    threshold: float | None
    without_whitelist: dict[str, Any] | None
    with_whitelist: dict[str, Any] | None
    fp_runs_avoided: int | None
    false_discovery_rate_reduction: float | None
    false_positive_rate_reduction: float | None
    fp_relative_reduction: float | None
    status: str  # ok | empty | insufficient_runs | no_candidate
    by_policy: list[dict[str, Any]] = field(default_factory=list)


def _fp_block(flagged: np.ndarray, fail: np.ndarray, warn: np.ndarray, z: float) -> dict[str, Any]:
    clean = ~fail & ~warn
    n_flag = int(flagged.sum())
    fp = int((flagged & clean).sum())
    n_clean = int(clean.sum())
    return {
        "flagged_runs": n_flag,
        "flagged_fail": int((flagged & fail).sum()),
        "flagged_warn": int((flagged & warn).sum()),
        "false_positives": fp,
        "clean_runs": n_clean,
        **_rate_block("false_discovery_rate", wilson(fp, n_flag, z)),
        **_rate_block("false_positive_rate", wilson(fp, n_clean, z)),
    }


def _rate_block(name: str, r: RateCI) -> dict[str, Any]:
    return {
        name: r.rate,
        f"{name}_ci_low": r.ci_low,
        f"{name}_ci_high": r.ci_high,
        f"{name}_status": r.status,
    }


def _difference(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
    return a[key] - b[key] if a[key] is not None and b[key] is not None else None


def _policy_threshold(
    h: str,
    r: np.ndarray,
    fail: np.ndarray,
    warn: np.ndarray,
    fully_wl: np.ndarray,
    excluded: int,
    cfg: AnalysisConfig,
) -> dict[str, Any]:
    """The threshold figures of one policy from its usable runs (rates ``r`` and their flags)."""
    n = len(r)
    out: dict[str, Any] = {
        "policy_hash": h,
        "n_runs": n,
        "excluded_runs": excluded,
        "min_runs": cfg.warn_threshold_min_runs,
    }
    out["median"] = float(np.median(r)) if n else None
    none = dict.fromkeys(
        (
            "threshold",
            "without_whitelist",
            "with_whitelist",
            "fp_runs_avoided",
            "false_discovery_rate_reduction",
            "false_positive_rate_reduction",
            "fp_relative_reduction",
        )
    )
    if n < cfg.warn_threshold_min_runs:
        return {**out, **none, "status": "empty" if n == 0 else "insufficient_runs"}
    thr = max(cfg.warn_threshold_multiplier * out["median"], cfg.warn_threshold_floor)
    without = _fp_block(r > thr, fail, warn, cfg.z)
    with_ = _fp_block(np.where(fully_wl, 0.0, r) > thr, fail, warn, cfg.z)
    with_["fully_whitelisted_runs"] = int(fully_wl.sum())
    avoided = without["false_positives"] - with_["false_positives"]
    return {
        **out,
        "threshold": thr,
        "without_whitelist": without,
        "with_whitelist": with_,
        "fp_runs_avoided": avoided,
        "false_discovery_rate_reduction": _difference(without, with_, "false_discovery_rate"),
        "false_positive_rate_reduction": _difference(without, with_, "false_positive_rate"),
        "fp_relative_reduction": avoided / without["false_positives"] if without["false_positives"] else None,
        "status": "ok",
    }


def warn_threshold(classified: pd.DataFrame | Runs, cfg: AnalysisConfig | None = None) -> WarnThresholdResult:
    """Median-based WARN threshold and its false positives with / without whitelist, per policy_hash.

    See :class:`WarnThresholdResult` for the exact definitions.
    """
    cfg = cfg or AnalysisConfig()
    runs = as_runs(classified)
    rates = rates_of(runs).to_numpy()
    known, is_warn, is_fail = outcome_flags(runs, cfg)
    use = known & ~np.isnan(rates)
    fully_wl = has_items(runs, "whitelisted_classes") & ~has_items(runs, "non_whitelisted_reasons")
    by_policy = []
    for (h,), idx in sorted(groups(policy_coded(runs, cfg)), key=lambda g: str(g[0][0])):
        at = idx[use[idx]]
        by_policy.append(
            _policy_threshold(h, rates[at], is_fail[at], is_warn[at], fully_wl[at], len(idx) - len(at), cfg)
        )
    candidate = candidate_label(runs, cfg)
    chosen = next((p for p in by_policy if p["policy_hash"] == candidate), None)
    if chosen is None:
        status = "empty" if not use.any() else "no_candidate"
        chosen = _policy_threshold(candidate, np.zeros(0), *(np.zeros(0, bool),) * 3, 0, cfg) | {
            "status": status
        }
    fields = {k: v for k, v in chosen.items() if k != "policy_hash"}
    return WarnThresholdResult(policy_hash=candidate, **fields, by_policy=by_policy)


def warn_threshold_section(history: pd.DataFrame | Runs, cfg: AnalysisConfig) -> Section:
    result = warn_threshold(history, cfg)
    without, with_ = result.without_whitelist or {}, result.with_whitelist or {}
    numbers = {
        "recommended_threshold": result.threshold,
        "false_discovery_rate_without_whitelist": without.get("false_discovery_rate"),
        "false_discovery_rate_with_whitelist": with_.get("false_discovery_rate"),
        "false_positive_rate_without_whitelist": without.get("false_positive_rate"),
        "false_positive_rate_with_whitelist": with_.get("false_positive_rate"),
        "fp_runs_avoided": result.fp_runs_avoided,
    }
    return Section("warn_threshold", to_jsonable(result), {}, numbers)
