"""Result models of a decision: one RuleResult per rule (with its strata), and the Decision."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gate_pipeline.lib.rules.config import Comparator, DecisionVerdict, RuleKind, RuleVerdict, Severity


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StratumResult(_Out):
    """One stratum of a per_stratum rule."""

    name: str
    verdict: RuleVerdict
    observed: float | None
    n: int
    ci_low: float | None = None
    ci_high: float | None = None
    runs_needed: int | None = None
    why: str


class RuleResult(_Out):
    """The evaluation of one rule, with its evidence and a one-sentence explanation."""

    name: str
    kind: RuleKind
    description: str
    severity: Severity
    observe_only: bool
    verdict: RuleVerdict
    metric: str | None
    observed: float | None
    comparator: Comparator | None
    threshold: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_method: str | None = None
    method: str | None = None
    n: int
    missing: int = 0
    stratum: str | None = None
    strata: list[StratumResult] = Field(default_factory=list)
    details: dict[str, float | int | str | None] = Field(default_factory=dict)
    evidence_run_ids: list[str] = Field(default_factory=list)
    why: str


class DecisionMethod(_Out):
    """How the verdicts were reached: interval kind, error rates and how they are split over the tests."""

    interval: str
    description: str
    alpha_go: float
    alpha_no_go: float
    alpha_rollback: float
    multiplicity: str
    no_go_tests: int
    rollback_tests: int


class DecisionWarning(_Out):
    """Something a reader of the verdict must know that does not change it, named so CI can match on it.

    ``simpsons_paradox``: against its baseline policy, the candidate's pooled rate difference and its
    difference at the baseline's stratum mix point in opposite directions (lib/stats/baseline.py)."""

    name: str
    metric: str
    policy_hash: str
    baseline_hash: str
    pooled_diff: float
    standardized_diff: float
    message: str


class Decision(_Out):
    """The go/no-go decision for advancing ``current_phase`` -> ``next_phase``."""

    verdict: DecisionVerdict
    decision_as_number: int
    why: str
    config_name: str
    current_phase: str
    next_phase: str | None
    policy_hash: str | None
    policy_selection: str
    previous_policy_hash: str | None
    n_runs: int
    days: float | None
    first_run_at: str | None
    last_run_at: str | None
    evaluated_at: str | None
    counted_rules: int
    method: DecisionMethod
    rules: list[RuleResult]
    warnings: list[DecisionWarning] = Field(default_factory=list)

    def with_warnings(self, warnings: list[dict]) -> Decision:
        """This decision with ``warnings`` (DecisionWarning fields) attached; the verdict is unchanged."""
        return self.model_copy(update={"warnings": [DecisionWarning(**w) for w in warnings]})
