"""Which policy a rollout decision is about: the candidate and its baseline. Pure pandas, no Dagster.

During a rollout an old and a new policy_hash interleave (a 50% phase runs both), so "the hash of the most
recent run" flips run by run. The candidate is instead the most recently *introduced* hash: hashes are
ranked by their first run in (timestamp, run_id) order, the newest first, and the first one whose runs make
up at least ``min_share`` of the runs since its own first run is the candidate. A newer hash below that
share (a stray or aborted run) is passed over. The baseline is the hash introduced just before the
candidate. Runs with a null policy_hash belong to no policy: they are never candidate or baseline and do
not count in any share.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gate_pipeline.lib.series import in_series_order


def introduction_order(df: pd.DataFrame) -> list[str]:
    """The non-null policy hashes in the order of their first run by (timestamp, run_id)."""
    return [str(h) for h in pd.unique(_ordered_hashes(df)) if not pd.isna(h)]


def candidate_policy(df: pd.DataFrame, min_share: float) -> tuple[str | None, str | None]:
    """(candidate, baseline) policy hashes of the runs in ``df`` (columns policy_hash, timestamp, run_id).

    See the module docstring for the rule; the input row order does not matter. (None, None) when no run has
    a policy_hash; baseline None when the candidate is the first hash ever seen. ``min_share`` in (0, 1]."""
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must be in (0, 1], got {min_share!r}")
    hashes = _ordered_hashes(df)
    known = ~pd.isna(hashes)
    if not known.any():
        return None, None
    codes, uniques = pd.factorize(hashes[known])  # codes numbered by first appearance
    order = [str(h) for h in uniques]
    _, first = np.unique(codes, return_index=True)
    totals = np.bincount(codes, minlength=len(order))
    n = len(codes)
    for i in range(len(order) - 1, -1, -1):
        since = n - int(first[i])  # runs with a hash from this hash's first run on
        if totals[i] >= min_share * since:
            return order[i], (order[i - 1] if i > 0 else None)
    return order[0], None  # unreachable: the oldest hash has every run since its first


def _ordered_hashes(df: pd.DataFrame) -> np.ndarray:
    """policy_hash values in (timestamp, run_id) order (null timestamps last, then by run_id)."""
    if df.empty:
        return np.array([], dtype=object)
    ts = pd.to_datetime(df["timestamp"], utc=True, errors="coerce")
    ts_key = np.where(
        ts.isna().to_numpy(), np.iinfo(np.int64).max, ts.to_numpy(dtype="datetime64[ns]").view("i8")
    )
    run_key = df["run_id"].astype(object).where(df["run_id"].notna(), "").astype(str).to_numpy()
    # The history is stored in series order: then no sort.
    order = np.arange(len(ts_key)) if in_series_order(ts_key, run_key) else np.lexsort((run_key, ts_key))
    return df["policy_hash"].to_numpy(dtype=object)[order]


__all__ = ["candidate_policy", "introduction_order"]
