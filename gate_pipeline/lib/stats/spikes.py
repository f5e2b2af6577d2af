"""unknown_rate spikes above median + k·MAD (seed 000 outlier definition), related to FAIL by top reason."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pandas as pd

from gate_pipeline.lib.stats.config import AnalysisConfig
from gate_pipeline.lib.stats.document import Section, to_jsonable
from gate_pipeline.lib.stats.intervals import (
    fail_comparison,
    fail_comparison_columns,
)
from gate_pipeline.lib.stats.runs import (
    Runs,
    as_runs,
    item_outcome_counts,
    json_sets,
    no_nan,
    outcome_flags,
    rates_of,
    sort_cols,
)


@dataclass
class SpikeResult:
    """Spikes of unknown_rate above median + k*scale*MAD (bound at least median + spike_min_excess).

    ``by_reason``: per top reason of the spike runs (``no_reason_label`` if a spike run lists none), the FAIL
    rate among spike runs with that reason vs the FAIL rate among all other runs with a known outcome
    ("elsewhere" = every run that is not a spike run listing this reason, spikes with other reasons included),
    with Wilson CIs, Newcombe risk difference and Katz risk ratio (spike minus/over elsewhere).
    """

    n_runs: int
    median: float | None
    mad: float | None
    bound: float | None
    n_spikes: int
    status: str  # ok | empty
    spike_runs: pd.DataFrame = field(repr=False)
    by_reason: pd.DataFrame = field(repr=False)


SPIKE_RUN_COLUMNS = ["run_id", "timestamp", "date", "policy_hash", "unknown_rate", "outcome", "top_reasons"]


def spikes(classified: pd.DataFrame | Runs, cfg: AnalysisConfig | None = None) -> SpikeResult:
    """Find unknown_rate spikes (seed 000 outlier definition) and relate them, by top reason, to FAIL.

    A run is a spike when ``unknown_rate > bound`` with bound = median + max(k * scale * MAD,
    spike_min_excess) over all non-null rates, MAD = median(|x - median|). ``spike_runs`` is sorted by
    (timestamp, run_id); ``by_reason`` by reason. See :class:`SpikeResult` for the FAIL comparison.
    """
    cfg = cfg or AnalysisConfig()
    z = cfg.z
    runs = as_runs(classified)
    classified = runs.df
    rates = rates_of(runs)
    valid = rates.dropna()
    n = int(len(valid))
    cols = [c for c in SPIKE_RUN_COLUMNS if c in classified.columns]
    br_cols = _SPIKE_REASON_COLUMNS
    if n == 0:
        return SpikeResult(
            0,
            None,
            None,
            None,
            0,
            "empty",
            no_nan(classified[cols].iloc[0:0]),
            pd.DataFrame(columns=br_cols),
        )
    med = float(valid.median())
    mad = float((valid - med).abs().median())
    bound = med + max(cfg.spike_mad_k * cfg.spike_mad_scale * mad, cfg.spike_min_excess)
    is_spike = (rates > bound).fillna(False).to_numpy()
    sort_keys = [c for c in ("timestamp", "run_id") if c in cols]
    spike_runs = classified.loc[is_spike, cols]
    spike_runs = sort_cols(spike_runs.reset_index(drop=True), sort_keys) if sort_keys else spike_runs

    known, _, is_fail = outcome_flags(runs, cfg)
    r_codes, r_items = json_sets(runs, "top_reasons")
    total_known = int(known.sum())
    total_fail = int((known & is_fail).sum())
    out = []
    per_reason = item_outcome_counts(
        r_codes[is_spike], r_items, known[is_spike], is_fail[is_spike], cfg.no_reason_label
    )
    for reason, size, n_s, f_s in per_reason:
        n_o, f_o = total_known - n_s, total_fail - f_s
        out.append(
            {
                "reason": reason,
                "spike_runs": size,
                **fail_comparison("spike", n_s, f_s, "other", n_o, f_o, z),
            }
        )
    by_reason = no_nan(pd.DataFrame(out, columns=br_cols))
    return SpikeResult(n, med, mad, bound, int(is_spike.sum()), "ok", no_nan(spike_runs), by_reason)


_SPIKE_REASON_COLUMNS = ["reason", "spike_runs", *fail_comparison_columns("spike", "other")]


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
    return Section(
        "spikes", document, {"spike_runs": result.spike_runs, "spikes_by_reason": result.by_reason}, numbers
    )
