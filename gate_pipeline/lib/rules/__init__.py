"""Decision config (phases, rules) and the go/no-go evaluation of a classified run table.

Pure logic: no Dagster imports. The config is ``config/policy_constants.yaml`` (YAML or JSON).

Semantics, in the spirit of Argo Rollouts AnalysisRuns and Keptn quality gates:

* ``phase_order`` lists the rollout phases; ``current_phase`` is the phase the decision is about, i.e. the
  question is "may we advance from ``current_phase`` to the next phase?".  The rules evaluated are
  ``shared_rules`` (every phase) plus ``phases.<current_phase>.rules``.
* Rule kinds

  - ``absolute``: ``aggregate(metric) <comparator> threshold`` must hold to PASS (an Argo successCondition).
  - ``relative``: a measure (ratio, relative_change, reduction, difference) of the current aggregate
    against a baseline aggregate must satisfy ``<comparator> threshold``.  The baseline is another column
    of the same runs, an earlier policy_hash, or the preceding time window (Keptn's relative criteria).
  - ``min_evidence``: ``runs >= min_runs`` OR (``require: all``: AND) ``days >= min_days``; unmet is HOLD.
  - ``rollback``: ``aggregate(metric) <comparator> threshold`` is the *trigger*; when it fires the rule is
    ROLLBACK (an Argo failureCondition that aborts the rollout).

* Rule verdicts: PASS, FAIL, HOLD (no or too little data, or a confidence interval straddling the
  threshold, like Argo's Inconclusive), ROLLBACK.  Missing data is never a pass.
* ``observe_only`` rules (Argo's dryRun) are computed and reported but not counted.
* Decision precedence over counted rules: ROLLBACK > NO_GO (any FAIL) > HOLD (any HOLD, or no counted
  rule at all) > GO.  ``severity`` (ERROR | WARN) only sets the severity of the Dagster asset check;
  it does not change the decision.

"""

from gate_pipeline.lib.rules.config import (
    DECISION_NUMBERS,
    AbsoluteRule,
    Baseline,
    DecisionConfig,
    DecisionConfigError,
    Match,
    Metric,
    MinEvidenceRule,
    Phase,
    PolicySelection,
    RelativeRule,
    RollbackRule,
    load_decision_config,
    parse_decision_config,
)
from gate_pipeline.lib.rules.engine import decision_as_number, evaluate, used_columns
from gate_pipeline.lib.rules.results import Decision, RuleResult, StratumResult

__all__ = [
    "DECISION_NUMBERS",
    "AbsoluteRule",
    "Baseline",
    "Decision",
    "DecisionConfig",
    "DecisionConfigError",
    "Match",
    "Metric",
    "MinEvidenceRule",
    "Phase",
    "PolicySelection",
    "RelativeRule",
    "RollbackRule",
    "RuleResult",
    "StratumResult",
    "decision_as_number",
    "evaluate",
    "load_decision_config",
    "parse_decision_config",
    "used_columns",
]
