"""unknown_rate spikes above median + k·MAD (seed 000 outlier definition), related to FAIL by top reason."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gate_pipeline.lib.distributions import median_abs_deviation
from gate_pipeline.lib.stats.config import AnalysisConfig
from gate_pipeline.lib.stats.document import Section, object_columns, to_jsonable
from gate_pipeline.lib.stats.intervals import (
    fail_comparison,
    fail_comparison_columns,
)
from gate_pipeline.lib.stats.runs import (
    Runs,
    as_runs,
    candidate_label,
    groups,
    item_outcome_counts,
    json_sets,
    no_nan,
    outcome_flags,
    policy_coded,
    rates_of,
    sort_cols,
)


@dataclass
class SpikeResult:
    """Spikes of unknown_rate, per policy_hash: runs above their policy's median + k*scale*MAD (the bound at
    least median + spike_min_excess). Policies differ in their typical unknown_rate, so one pooled median
    would hide a policy whose every run sits above another's.

    ``by_policy``: per policy_hash label (a null hash is ``null_group_label``): runs with a rate, median, MAD
    (unscaled), bound, spikes, status. The top-level ``median`` / ``mad`` / ``bound`` / ``n_runs`` /
    ``status`` are the candidate policy's (``policy_hash``; :func:`candidate_label`), the one the decision
    uses; ``n_spikes`` counts spike runs of every policy.

    ``by_reason``: per (policy_hash, top reason of its spike runs; ``no_reason_label`` if a spike run lists
    none), the FAIL rate among that policy's spike runs with that reason vs among the policy's other runs
    with a known outcome, with Wilson CIs, Newcombe risk difference and Katz risk ratio (spike minus/over
    other).
    """

    policy_hash: str | None
    n_runs: int
    median: float | None
    mad: float | None
    bound: float | None
    n_spikes: int
    status: str  # ok | empty | no_candidate
    null_group_label: str
    by_policy: pd.DataFrame = field(repr=False)
    spike_runs: pd.DataFrame = field(repr=False)
    by_reason: pd.DataFrame = field(repr=False)


SPIKE_RUN_COLUMNS = ["run_id", "timestamp", "date", "policy_hash", "unknown_rate", "outcome", "top_reasons"]
BY_POLICY_COLUMNS = ["policy_hash", "runs", "median", "mad", "bound", "spikes", "status"]


def spikes(classified: pd.DataFrame | Runs, cfg: AnalysisConfig | None = None) -> SpikeResult:
    """Find unknown_rate spikes per policy_hash (seed 000 outlier definition; stability per policy version)
    and relate them, by top reason, to FAIL.

    Within each policy_hash, a run is a spike when ``unknown_rate > bound`` with bound = median +
    max(k * scale * MAD, spike_min_excess) over that policy's non-null rates, MAD = median(|x - median|)
    (``scipy.stats.median_abs_deviation``, scale 1). ``spike_runs`` (with its policy's ``bound``) is sorted
    by (timestamp, run_id); ``by_policy`` by policy_hash; ``by_reason`` by (policy_hash, reason).
    """
    cfg = cfg or AnalysisConfig()
    z = cfg.z
    runs = as_runs(classified)
    classified = runs.df
    rates = rates_of(runs).to_numpy()
    valid = ~np.isnan(rates)
    cols = [c for c in SPIKE_RUN_COLUMNS if c in classified.columns]
    known, _, is_fail = outcome_flags(runs, cfg)
    r_codes, r_items = json_sets(runs, "top_reasons")
    is_spike = np.zeros(len(rates), dtype=bool)
    bound_of_run = np.full(len(rates), np.nan)
    policies, reasons = [], []
    for (h,), idx in groups(policy_coded(runs, cfg)):
        r = rates[idx][valid[idx]]
        if not len(r):
            policies.append((h, 0, None, None, None, 0, "empty"))
            continue
        med = float(np.median(r))
        mad = float(median_abs_deviation(r))
        bound = med + max(cfg.spike_mad_k * cfg.spike_mad_scale * mad, cfg.spike_min_excess)
        spike = rates[idx] > bound  # NaN compares False
        is_spike[idx] = spike
        bound_of_run[idx] = bound
        policies.append((h, len(r), med, mad, bound, int(spike.sum()), "ok"))
        total_known, total_fail = int(known[idx].sum()), int((known & is_fail)[idx].sum())
        at = idx[spike]
        per_reason = item_outcome_counts(r_codes[at], r_items, known[at], is_fail[at], cfg.no_reason_label)
        for reason, size, n_s, f_s in per_reason:
            comparison = fail_comparison("spike", n_s, f_s, "other", total_known - n_s, total_fail - f_s, z)
            reasons.append({"policy_hash": h, "reason": reason, "spike_runs": size, **comparison})
    by_policy = sort_cols(pd.DataFrame(policies, columns=BY_POLICY_COLUMNS), ["policy_hash"])
    by_reason = sort_cols(pd.DataFrame(reasons, columns=_SPIKE_REASON_COLUMNS), ["policy_hash", "reason"])
    sort_keys = [c for c in ("timestamp", "run_id") if c in cols]
    spike_runs = object_columns(classified.loc[is_spike, cols]).assign(bound=bound_of_run[is_spike])
    spike_runs = sort_cols(spike_runs, sort_keys) if sort_keys else spike_runs
    candidate = candidate_label(runs, cfg)
    row = by_policy[by_policy["policy_hash"] == candidate] if candidate is not None else by_policy.iloc[0:0]
    if row.empty:
        head: tuple = (0, None, None, None)
        status = "empty" if not valid.any() else "no_candidate"
    else:
        rec = row.iloc[0]
        head, status = (int(rec["runs"]), rec["median"], rec["mad"], rec["bound"]), str(rec["status"])
    return SpikeResult(
        candidate,
        *head,
        int(is_spike.sum()),
        status,
        cfg.null_group_label,
        no_nan(by_policy),
        no_nan(spike_runs),
        no_nan(by_reason),
    )


_SPIKE_REASON_COLUMNS = ["policy_hash", "reason", "spike_runs", *fail_comparison_columns("spike", "other")]


SPIKE_RUNS_IN_DOCUMENT = 100  # the highest ones; tables/spike_runs.csv has every spike run


def spike_section(history: pd.DataFrame | Runs, cfg: AnalysisConfig) -> Section:
    result = spikes(history, cfg)
    numbers = {"spike_bound": result.bound, "spikes": result.n_spikes, "unknown_rate_median": result.median}
    top = result.spike_runs.sort_values(["unknown_rate", "run_id"], ascending=[False, True], kind="stable")
    # Only the listed spike runs become JSON (converting every spike run cell by cell, to drop all but
    # the first SPIKE_RUNS_IN_DOCUMENT, cost ~0.3 s at 100k runs).
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    document = to_jsonable({**fields, "spike_runs": top.head(SPIKE_RUNS_IN_DOCUMENT)})
    document["spike_runs_listed"] = min(SPIKE_RUNS_IN_DOCUMENT, len(top))
    tables = {
        "spike_runs": result.spike_runs,
        "spikes_by_policy": result.by_policy,
        "spikes_by_reason": result.by_reason,
    }
    return Section("spikes", document, tables, numbers)
