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

* Every counted rule decides on an interval, never on a point estimate (``decision`` in the config):
  PASS when the interval lies wholly on the good side of the threshold (at ``alpha_go``), FAIL (ROLLBACK for a
  rollback trigger) when it lies wholly on the bad side, HOLD otherwise, with "about N more runs at the
  current rate would settle it". ``decision.interval: sequential`` (default) uses anytime-valid confidence
  sequences, valid however often the decision is re-evaluated; ``fixed`` uses fixed-sample intervals, for a
  one-off analysis. NO_GO and ROLLBACK are unions over rules and strata, so each family shares its alpha
  (Holm or Bonferroni over the counted tests). Intervals and tests: ``gate_pipeline.lib.intervals``;
  which one a rule uses: ``inference``; docs/DECISIONS.md explains it for operators.
* Rates: beta-binomial mixture confidence sequence (sequential) or Clopper-Pearson (fixed). Quantiles: the
  rate of the indicator ``value <= threshold`` against q, with the quantile's interval by inversion over the
  order statistics. Means: Student t (fixed-sample only). count/sum/min/max: the observed value. Relative
  rules: one-sided bounds of each side at alpha/2 (Newcombe for fixed-sample rate differences).
* Missing data is never a pass. ``observe_only`` rules (Argo's dryRun) are computed and reported but not
  counted. Decision precedence over counted rules: ROLLBACK > NO_GO (any FAIL) > HOLD (any HOLD, or no
  counted rule at all) > GO. ``severity`` (ERROR | WARN) only sets the severity of the Dagster asset check.
* The decided policy is the most recently introduced policy_hash (``policy``), its baseline the one
  introduced before it; evidence days run from its first to its last run.

Percentiles use linear interpolation between order statistics (numpy's default method).
"""

from gate_pipeline.lib.rules.config import (
    DECISION_NUMBERS,
    AbsoluteRule,
    Baseline,
    DecisionConfig,
    DecisionConfigError,
    DecisionSettings,
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
from gate_pipeline.lib.rules.engine import evaluate, prefix_cache, used_columns
from gate_pipeline.lib.rules.results import (
    Decision,
    DecisionMethod,
    DecisionWarning,
    RuleResult,
    StratumResult,
)
from gate_pipeline.lib.rules.values import PrefixCache

__all__ = [
    "DECISION_NUMBERS",
    "AbsoluteRule",
    "Baseline",
    "Decision",
    "DecisionConfig",
    "DecisionConfigError",
    "DecisionMethod",
    "DecisionWarning",
    "DecisionSettings",
    "Match",
    "Metric",
    "MinEvidenceRule",
    "Phase",
    "PolicySelection",
    "PrefixCache",
    "RelativeRule",
    "RollbackRule",
    "RuleResult",
    "StratumResult",
    "evaluate",
    "load_decision_config",
    "parse_decision_config",
    "prefix_cache",
    "used_columns",
]
