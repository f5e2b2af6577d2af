"""Which policy_hash the decision is about, its baseline policy and its evidence window."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gate_pipeline.lib.rules.config import DecisionConfig

_NO_POSITIONS = np.zeros(0, dtype=np.intp)


class _Selection:
    def __init__(self, runs: pd.DataFrame, cfg: DecisionConfig, now: pd.Timestamp | None):
        self.runs = runs
        has_hash = (
            runs["policy_hash"].notna()
            if "policy_hash" in runs.columns
            else pd.Series(False, index=runs.index)
        )
        hashes = runs["policy_hash"].where(has_hash) if "policy_hash" in runs.columns else None
        self.hash: str | None = None
        if cfg.policy.mode == "explicit":
            self.hash = cfg.policy.policy_hash
        elif has_hash.any():
            # runs is sorted by (timestamp, run_id): the last run with a hash is the latest.
            self.hash = str(hashes[has_hash].iloc[-1])
        self._hashes = hashes
        self._has = has_hash
        self.current = self.positions_of(self.hash) if self.hash else _NO_POSITIONS
        ts = runs["timestamp"]
        self.first = ts.iat[int(self.current[0])] if len(self.current) else None
        self.last = ts.iat[int(self.current[-1])] if len(self.current) else None
        if now is not None:
            self.end = now
        elif len(runs):
            self.end = ts.iat[len(runs) - 1]
        else:
            self.end = pd.Timestamp(0, tz="UTC")
        self.days = None if self.first is None else max(0.0, (self.end - self.first).total_seconds() / 86400)
        self.previous = self._previous()

    def positions_of(self, h: str | None) -> np.ndarray:
        """Row positions (ascending) of the runs of policy ``h``."""
        if h is None or self._hashes is None:
            return _NO_POSITIONS
        mask = (self._hashes == h).fillna(False).to_numpy(dtype=bool)
        return np.flatnonzero(mask)

    def _previous(self) -> str | None:
        """The policy first seen just before the current one (order: first-seen timestamp, then hash)."""
        if self.hash is None or self._hashes is None or not self._has.any():
            return None
        df = pd.DataFrame({"h": self._hashes[self._has].astype(str), "t": self.runs["timestamp"][self._has]})
        # Runs are in (timestamp, run_id) order with NaT last, so a policy's first row holds its earliest
        # timestamp (= the groupby min, NaT only when all are NaT) without a groupby over the history.
        first = df.drop_duplicates("h", keep="first").sort_values(["t", "h"], kind="mergesort")
        order = first["h"].tolist()
        if self.hash not in order:
            return None
        i = order.index(self.hash)
        return order[i - 1] if i > 0 else None
