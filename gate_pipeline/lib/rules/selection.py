"""Which policy_hash the decision is about, its baseline policy and its evidence window."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gate_pipeline.lib.policies import Leading, introduction_order, ordered_candidate
from gate_pipeline.lib.rules.config import DecisionConfig

_NO_POSITIONS = np.zeros(0, dtype=np.intp)


class _Selection:
    """The decided policy (candidate), its baseline (the policy introduced before it) and its evidence window.

    ``mode: latest``: the most recently introduced policy_hash (latest first run; ties by hash) holding at
    least ``min_recent_share`` of the last ``recent_runs`` runs with a hash. Interleaving an old and a new
    hash never flips it: introduction order does not change when the old hash runs again. Evidence days run
    from the decided policy's first run to its own last run."""

    def __init__(
        self, runs: pd.DataFrame, cfg: DecisionConfig, now: pd.Timestamp | None, hashes: Leading | None = None
    ):
        self.runs = runs
        # ``hashes``: the same answers, indexed once for all leading parts of one history (the timeline).
        self._view = hashes if hashes is not None else _FrameHashes(runs)
        # One rule for the candidate, shared with the per-policy statistics (lib/policies.py).
        self._order: list[str] = []
        self.hash: str | None = None
        if self._view.any():
            if cfg.policy.mode == "explicit":
                self._order = self._view.introduction_order()
            else:  # the introduction order and the candidate from one ordering of the runs
                self._order, self.hash, _ = self._view.ordered_candidate(
                    cfg.policy.min_recent_share, recent_runs=cfg.policy.recent_runs
                )
        if cfg.policy.mode == "explicit":
            self.hash = cfg.policy.policy_hash
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
        # The decided policy's own span: a later policy's runs (or a late `now`) add no evidence days.
        span = None if self.first is None or pd.isna(self.last) else (self.last - self.first).total_seconds()
        self.days = None if span is None else max(0.0, span / 86400)
        self.previous = self._previous()

    def positions_of(self, h: str | None) -> np.ndarray:
        """Row positions (ascending) of the runs of policy ``h``."""
        return _NO_POSITIONS if h is None else self._view.positions_of(h)

    def _previous(self) -> str | None:
        """The policy introduced just before the decided one."""
        if self.hash is None or self.hash not in self._order:
            return None
        i = self._order.index(self.hash)
        return self._order[i - 1] if i > 0 else None


class _FrameHashes:
    """The policy hashes of ``runs`` as :class:`policies.Leading` answers for a leading part of a history."""

    def __init__(self, runs: pd.DataFrame):
        self.runs = runs
        has_hash = runs["policy_hash"].notna() if "policy_hash" in runs.columns else None
        self._hashes = runs["policy_hash"].where(has_hash) if has_hash is not None else None
        self._any = has_hash is not None and bool(has_hash.any())

    def any(self) -> bool:
        return self._any

    def introduction_order(self) -> list[str]:
        return introduction_order(self.runs)

    def ordered_candidate(
        self, min_share: float, *, recent_runs: int
    ) -> tuple[list[str], str | None, str | None]:
        return ordered_candidate(self.runs, min_share, recent_runs=recent_runs)

    def positions_of(self, h: str) -> np.ndarray:
        if self._hashes is None:
            return _NO_POSITIONS
        return np.flatnonzero((self._hashes == h).fillna(False).to_numpy(dtype=bool))
