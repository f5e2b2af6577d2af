"""The median-based WARN threshold for unknown_rate and its false positives on history (seed 000)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from gate_pipeline.lib.stats.config import AnalysisConfig
from gate_pipeline.lib.stats.document import Section, to_jsonable
from gate_pipeline.lib.stats.intervals import wilson
from gate_pipeline.lib.stats.runs import Runs, as_runs, has_items, outcome_flags, rates_of


@dataclass
class WarnThresholdResult:
    """Recommended WARN threshold for unknown_rate and its false-positive rate on history.

    Definitions (runs with a null unknown_rate or null outcome are excluded and counted in ``excluded_runs``):
    - threshold = max(warn_threshold_multiplier * median(unknown_rate), warn_threshold_floor); a run is
      *flagged* when its (effective) unknown_rate > threshold.
    - false positive = a flagged run whose outcome is not FAIL. ``fp_rate`` = false positives / flagged runs
      (the share of WARNs that would have been noise; Wilson CI). ``fp_rate_of_non_fail`` = false positives /
      non-FAIL runs (the classical FPR) is reported alongside.
    - *without* whitelist: effective rate = unknown_rate as is.
      *with* whitelist: runs whose unknowns are fully whitelisted (>= 1 top reason, every one covered, i.e.
      whitelisted_classes non-empty and non_whitelisted_reasons empty) get effective rate 0, the others keep
      their rate. The threshold is the same on both sides (from the raw history) so the difference isolates
      the whitelist's effect.
    - ``fp_runs_avoided`` = fp_without - fp_with; ``fp_rate_reduction`` = fp_rate without - with (None if either
      is undefined); ``fp_relative_reduction`` = fp_runs_avoided / fp_without (None if fp_without = 0).
    """

    n_runs: int
    excluded_runs: int
    median: float | None
    threshold: float | None
    without_whitelist: dict[str, Any]
    with_whitelist: dict[str, Any]
    fp_runs_avoided: int | None
    fp_rate_reduction: float | None
    fp_relative_reduction: float | None
    status: str  # ok | empty


def _fp_block(flagged: np.ndarray, fail: np.ndarray, z: float) -> dict[str, Any]:
    n_flag = int(flagged.sum())
    fp = int((flagged & ~fail).sum())
    non_fail = int((~fail).sum())
    r = wilson(fp, n_flag, z)
    return {
        "flagged_runs": n_flag,
        "false_positives": fp,
        "true_positives": n_flag - fp,
        "fp_rate": r.rate,
        "fp_rate_ci_low": r.ci_low,
        "fp_rate_ci_high": r.ci_high,
        "fp_rate_status": r.status,
        "non_fail_runs": non_fail,
        "fp_rate_of_non_fail": fp / non_fail if non_fail else None,
    }


def warn_threshold(classified: pd.DataFrame | Runs, cfg: AnalysisConfig | None = None) -> WarnThresholdResult:
    """Median-based WARN threshold and its false-positive rate with / without whitelist.

    See :class:`WarnThresholdResult` for the exact definitions.
    """
    cfg = cfg or AnalysisConfig()
    z = cfg.z
    runs = as_runs(classified)
    classified = runs.df
    rates = rates_of(runs).to_numpy()
    known, _, is_fail = outcome_flags(runs, cfg)
    use = known & ~np.isnan(rates)
    n = int(use.sum())
    excluded = len(classified) - n
    if n == 0:
        empty = _fp_block(np.zeros(0, bool), np.zeros(0, bool), z)
        return WarnThresholdResult(0, excluded, None, None, empty, dict(empty), None, None, None, "empty")
    r = rates[use]
    fail = is_fail[use]
    med = float(np.median(r))
    thr = max(cfg.warn_threshold_multiplier * med, cfg.warn_threshold_floor)
    has_w = has_items(runs, "whitelisted_classes")
    has_n = has_items(runs, "non_whitelisted_reasons")
    fully_wl = (has_w & ~has_n)[use]
    without = _fp_block(r > thr, fail, z)
    with_ = _fp_block(np.where(fully_wl, 0.0, r) > thr, fail, z)
    with_["fully_whitelisted_runs"] = int(fully_wl.sum())
    avoided = without["false_positives"] - with_["false_positives"]
    red = (
        without["fp_rate"] - with_["fp_rate"]
        if without["fp_rate"] is not None and with_["fp_rate"] is not None
        else None
    )
    rel = avoided / without["false_positives"] if without["false_positives"] else None
    return WarnThresholdResult(n, excluded, med, thr, without, with_, avoided, red, rel, "ok")


def warn_threshold_section(history: pd.DataFrame | Runs, cfg: AnalysisConfig) -> Section:
    result = warn_threshold(history, cfg)
    numbers = {
        "recommended_threshold": result.threshold,
        "fp_rate_without_whitelist": result.without_whitelist.get("fp_rate"),
        "fp_rate_with_whitelist": result.with_whitelist.get("fp_rate"),
        "fp_runs_avoided": result.fp_runs_avoided,
    }
    return Section("warn_threshold", to_jsonable(result), {}, numbers)
