"""Which policy a rollout decision is about: the candidate and its baseline. Pure pandas, no Dagster.

During a rollout an old and a new policy_hash interleave (a 50% phase runs both), so "the hash of the most
recent run" flips run by run. The candidate is instead the most recently *introduced* hash still in use:
hashes are ranked by their first run (timestamp, ties by hash), the newest first, and the first one holding
at least ``min_share`` of the last ``recent_runs`` runs with a hash is the candidate. Interleaving never
flips it (the introduction order does not change when the old hash runs again); a newer hash below the
share (a stray run, or a rollout that was rolled back and no longer runs) is passed over. If no hash reaches
the share (possible only when ``min_share`` is above 1 / the number of recent hashes), the most common recent
hash is the candidate, ties to the later introduced. The baseline is the hash introduced just before the
candidate. Runs with a null policy_hash belong to no policy: never candidate or baseline, not counted in
any share.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gate_pipeline.lib.series import in_series_order


def introduction_order(df: pd.DataFrame) -> list[str]:
    """The non-null policy hashes by their first run: timestamp (null last), ties by hash; oldest first."""
    return _introduction_order(*_in_series_order(df))


def _introduction_order(hashes: np.ndarray, ts_key: np.ndarray) -> list[str]:
    known = ~pd.isna(hashes)
    if not known.any():
        return []
    codes, uniques = pd.factorize(hashes[known])  # numbered by first appearance in series order
    _, first = np.unique(codes, return_index=True)
    first_ts = ts_key[known][first]
    return [
        str(uniques[i]) for i in sorted(range(len(uniques)), key=lambda i: (first_ts[i], str(uniques[i])))
    ]


def candidate_policy(
    df: pd.DataFrame, min_share: float, *, recent_runs: int
) -> tuple[str | None, str | None]:
    """(candidate, baseline) policy hashes of the runs in ``df`` (columns policy_hash, timestamp; run_id
    breaks timestamp ties when present).

    See the module docstring for the rule; the input row order does not matter. (None, None) when no run has
    a policy_hash; baseline None when the candidate is the first hash ever seen. ``min_share`` in (0, 1],
    ``recent_runs`` >= 1."""
    return ordered_candidate(df, min_share, recent_runs=recent_runs)[1:]


def ordered_candidate(
    df: pd.DataFrame, min_share: float, *, recent_runs: int
) -> tuple[list[str], str | None, str | None]:
    """(:func:`introduction_order`, candidate, baseline) of ``df``, as those two functions give them, the runs
    put in series order once for both (a decision needs both; each is a pass over every run)."""
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must be in (0, 1], got {min_share!r}")
    if recent_runs < 1:
        raise ValueError(f"recent_runs must be at least 1, got {recent_runs!r}")
    hashes, ts_key = _in_series_order(df)
    order = _introduction_order(hashes, ts_key)
    if not order:
        return order, None, None
    return (order, *choose_candidate(order, hashes[~pd.isna(hashes)][-recent_runs:], min_share))


def choose_candidate(order: list[str], recent: np.ndarray, min_share: float) -> tuple[str, str | None]:
    """(candidate, baseline) from the introduction order and the last ``recent_runs`` hashes (non-null, in
    series order): the rule of the module docstring."""
    share = pd.Series(recent).astype(str).value_counts(normalize=True)
    chosen = next((h for h in reversed(order) if share.get(h, 0.0) >= min_share), None)
    if chosen is None:
        rank = {h: i for i, h in enumerate(order)}
        chosen = max(share.index, key=lambda h: (share[h], rank[h]))
    i = order.index(chosen)
    return chosen, (order[i - 1] if i > 0 else None)


def _in_series_order(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """policy_hash values and timestamp keys (ns; null = int64 max) in (timestamp, run_id) order."""
    if df.empty:
        return np.array([], dtype=object), np.array([], dtype=np.int64)
    ts = pd.to_datetime(df["timestamp"], utc=True, errors="coerce", cache=False)
    ts_key = np.where(
        ts.isna().to_numpy(), np.iinfo(np.int64).max, ts.to_numpy(dtype="datetime64[ns]").view("i8")
    )
    # The history is stored in series order: then no sort, and only the run_ids of tied timestamps are read
    # (turning 100k run_ids into text keys cost more than the rest of a decision).
    steps = np.diff(ts_key)
    ties = np.flatnonzero(steps == 0)
    tied = np.union1d(ties, ties + 1)
    if (steps >= 0).all() and (not len(ties) or in_series_order(ts_key[tied], _run_key(df, tied))):
        order = np.arange(len(ts_key))
    else:
        order = np.lexsort((_run_key(df), ts_key))
    return df["policy_hash"].to_numpy(dtype=object)[order], ts_key[order]


def _run_key(df: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
    """run_id as text ("" for null; all "" without the column) of all rows or of the positions ``rows``."""
    if "run_id" not in df.columns:  # a frame without run ids (e.g. hand-built in a test): timestamps order it
        return np.full(len(df) if rows is None else len(rows), "", dtype=object)
    run_id = df["run_id"] if rows is None else df["run_id"].iloc[rows]
    return run_id.astype(object).where(run_id.notna(), "").astype(str).to_numpy()


class LeadingHashes:
    """The policy hashes of a history already in series order (no null timestamp), indexed once, answering
    for its first ``n`` runs (:meth:`upto`) what :func:`introduction_order`, :func:`ordered_candidate` and a
    policy's row positions give for those runs, without a pass over them (the decision timeline evaluates
    the runs up to the end of every day)."""

    def __init__(self, df: pd.DataFrame):
        n = len(df)
        hashes = df["policy_hash"].to_numpy(dtype=object) if "policy_hash" in df.columns else np.full(n, None)
        ts_key = pd.to_datetime(df["timestamp"], utc=True).to_numpy(dtype="datetime64[ns]").view("i8")
        self.hashes = hashes
        self.known_rows = np.flatnonzero(~pd.isna(hashes))
        codes, uniques = pd.factorize(hashes[self.known_rows])  # numbered by first appearance
        _, first = np.unique(codes, return_index=True)
        self.first_row = self.known_rows[first]  # ascending, as the numbering is by first appearance
        self.names = [str(u) for u in uniques]
        first_ts = ts_key[self.first_row]
        self.by_introduction = sorted(range(len(uniques)), key=lambda i: (first_ts[i], self.names[i]))
        grouped = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[grouped], np.arange(len(uniques) + 1))
        self.rows_of = {
            uniques[i]: self.known_rows[grouped[bounds[i] : bounds[i + 1]]] for i in range(len(uniques))
        }

    def upto(self, n: int) -> Leading:
        return Leading(self, n)


class Leading:
    """The first ``n`` runs of a :class:`LeadingHashes` history."""

    def __init__(self, index: LeadingHashes, n: int):
        self.index, self.n = index, n
        self.known = int(np.searchsorted(index.known_rows, n))  # how many of them have a hash

    def any(self) -> bool:
        return self.known > 0

    def introduction_order(self) -> list[str]:
        seen = int(np.searchsorted(self.index.first_row, self.n))  # hashes first seen among them
        return [self.index.names[i] for i in self.index.by_introduction if i < seen]

    def ordered_candidate(
        self, min_share: float, *, recent_runs: int
    ) -> tuple[list[str], str | None, str | None]:
        order = self.introduction_order()
        if not order:
            return order, None, None
        rows = self.index.known_rows[max(0, self.known - recent_runs) : self.known]
        return (order, *choose_candidate(order, self.index.hashes[rows], min_share))

    def positions_of(self, h: str) -> np.ndarray:
        rows = self.index.rows_of.get(h)
        return rows[: int(np.searchsorted(rows, self.n))] if rows is not None else np.zeros(0, dtype=np.intp)


__all__ = [
    "Leading",
    "LeadingHashes",
    "candidate_policy",
    "choose_candidate",
    "introduction_order",
    "ordered_candidate",
]
