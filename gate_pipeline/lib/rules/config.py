"""Decision config models, their loading and the cross-checks pydantic cannot express."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gate_pipeline.lib.config import ConfigError, parse_document
from gate_pipeline.lib.rules.fmt import fmt_num as _fmt_num
from gate_pipeline.lib.stats import METRICS_PREFIX

Comparator = Literal["<", "<=", ">=", ">"]
Aggregate = Literal["count", "rate", "mean", "median", "p50", "p95", "p99", "min", "max", "sum"]
Severity = Literal["ERROR", "WARN"]
RuleKind = Literal["absolute", "relative", "min_evidence", "rollback"]
RuleVerdict = Literal["PASS", "FAIL", "HOLD", "ROLLBACK"]
DecisionVerdict = Literal["GO", "HOLD", "NO_GO", "ROLLBACK"]

RULE_KINDS: tuple[str, ...] = ("absolute", "relative", "min_evidence", "rollback")
QUANTILES = {"median": 0.5, "p50": 0.5, "p95": 0.95, "p99": 0.99}

#: Numeric encoding of the decision, for plotting the decision over time.
DECISION_NUMBERS: dict[str, int] = {"GO": 1, "HOLD": 0, "NO_GO": -1, "ROLLBACK": -2}

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
}

Scalar = str | int | float | bool


class _Strict(BaseModel):
    # Unknown keys are errors: a typo in a threshold name must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Match(_Strict):
    """Which values count as a hit for ``count``/``rate``: exactly one of ``equals``, ``in``, or
    ``comparator`` + ``value``."""

    equals: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    comparator: Comparator | None = None
    value: float | None = None

    def describe(self) -> str:
        if self.equals is not None:
            return f"={self.equals}"
        if self.in_ is not None:
            return " in {" + ",".join(str(x) for x in self.in_) + "}"
        return f" {self.comparator} {_fmt_num(self.value)}"


class Metric(_Strict):
    """What is aggregated: a run-table column or ``metrics.<key>`` (a metrics.json value)."""

    column: str = Field(min_length=1)
    aggregate: Aggregate
    match: Match | None = None
    label: str | None = None
    unit: str | None = None

    def display(self) -> str:
        if self.label:
            return self.label
        if self.aggregate in ("rate", "count") and self.match is not None:
            return f"{self.column}{self.match.describe()} {self.aggregate}"
        return f"{self.aggregate} {self.column}"


class _RuleBase(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = Field(min_length=1)
    severity: Severity = "ERROR"
    observe_only: bool = False
    min_n: int = Field(default=1, ge=1)


class AbsoluteRule(_RuleBase):
    """PASS when ``aggregate(metric) <comparator> threshold`` (per stratum if ``per_stratum``).

    Decided on the rule's interval (``decision.interval``): PASS when it lies wholly on the good side, FAIL
    when wholly on the bad side, HOLD otherwise. ``per_stratum``: every stratum (``strata`` or all present
    ones, by ``strata_column``) is its own test and must pass; a stratum with too little evidence (or a
    listed stratum without runs) is HOLD, never FAIL."""

    kind: Literal["absolute"]
    metric: Metric
    comparator: Comparator
    threshold: float
    per_stratum: bool = False
    strata: list[str] | None = None


class Baseline(_Strict):
    """What the current aggregate is compared with.

    * ``column``: ``aggregate`` (default: the metric's) of ``column`` over the same runs, using only runs
      where both values are present (paired).
    * ``policy``: the same aggregate over the runs of ``policy_hash`` (``previous`` = the policy first seen
      just before the current one).
    * ``window``: the same aggregate over all runs in ``(end - 2*days, end - days]``; the current side is
      then restricted to the current policy's runs in ``(end - days, end]``.
    """

    source: Literal["column", "policy", "window"]
    column: str | None = None
    aggregate: Aggregate | None = None
    policy_hash: str | None = None
    days: float | None = Field(default=None, gt=0)


class RelativeRule(_RuleBase):
    """PASS when ``measure(current, baseline) <comparator> threshold``.

    Measures: ``ratio`` = cur/base, ``relative_change`` = cur/base - 1 (Keptn's "<=+10%" is
    ``relative_change <= 0.10``), ``reduction`` = 1 - cur/base (">= 30% fewer samples" is
    ``reduction >= 0.30``), ``difference`` = cur - base ("escalations <= baseline" is ``difference <= 0``).
    """

    kind: Literal["relative"]
    metric: Metric
    baseline: Baseline
    measure: Literal["ratio", "relative_change", "reduction", "difference"]
    comparator: Comparator
    threshold: float


class MinEvidenceRule(_RuleBase):
    """PASS when ``runs >= min_runs`` or ``days >= min_days`` (``require: all`` needs both); else HOLD.

    ``days`` is the span from the current policy's first run to ``now`` (or to its last run)."""

    kind: Literal["min_evidence"]
    min_runs: int | None = Field(default=None, ge=1)
    min_days: float | None = Field(default=None, gt=0)
    require: Literal["any", "all"] = "any"


class RollbackRule(_RuleBase):
    """ROLLBACK when the interval lies wholly on the trigger's side of ``aggregate(metric) <comparator>
    threshold``; PASS when wholly on the other side; HOLD otherwise."""

    kind: Literal["rollback"]
    metric: Metric
    comparator: Comparator
    threshold: float


Rule = Annotated[AbsoluteRule | RelativeRule | MinEvidenceRule | RollbackRule, Field(discriminator="kind")]


class Phase(_Strict):
    description: str = ""
    rules: list[Rule] = Field(default_factory=list)


class PolicySelection(_Strict):
    """``mode: latest`` = the most recently introduced policy_hash (latest first run) that holds at least
    ``min_recent_share`` of the last ``recent_runs`` runs, so an old and a new hash interleaving during a
    rollout never flip the decided one; its baseline is the hash introduced before it.
    ``mode: explicit`` uses ``policy_hash``."""

    mode: Literal["latest", "explicit"] = "latest"
    policy_hash: str | None = None
    recent_runs: int = Field(default=50, ge=1)
    min_recent_share: float = Field(default=0.1, gt=0, le=1)


class DecisionSettings(_Strict):
    """How every counted rule is decided: on an interval, at these one-sided error rates.

    ``interval: sequential`` (default) = anytime-valid confidence sequences, valid however often the
    decision is re-evaluated; ``fixed`` = fixed-sample intervals, for a one-off analysis only.
    GO needs every counted rule's interval on the good side at ``alpha_go`` (each rule at alpha suffices for
    an intersection). NO_GO and ROLLBACK are unions over rules and strata: their tests share
    ``alpha_no_go`` and ``alpha_rollback`` family-wise (``multiplicity``: holm or bonferroni)."""

    interval: Literal["sequential", "fixed"]
    alpha_go: float = Field(gt=0, lt=0.5)
    alpha_no_go: float = Field(gt=0, lt=0.5)
    alpha_rollback: float = Field(gt=0, lt=0.5)
    multiplicity: Literal["holm", "bonferroni"]
    mixture_strength: float = Field(gt=0)
    runs_needed_max: int = Field(ge=1)


class DecisionConfig(_Strict):
    """The whole decision config (``config/policy_constants.yaml``)."""

    schema_version: Literal["1"] = "1"
    name: str = Field(min_length=1)
    description: str = ""
    phase_order: list[str] = Field(min_length=1)
    current_phase: str
    policy: PolicySelection = Field(default_factory=PolicySelection)
    strata_column: str = "stratum"
    decision: DecisionSettings
    shared_rules: list[Rule] = Field(default_factory=list)
    phases: dict[str, Phase]

    def next_phase(self) -> str | None:
        """The phase after ``current_phase``, or None when it is the last one."""
        i = self.phase_order.index(self.current_phase)
        return self.phase_order[i + 1] if i + 1 < len(self.phase_order) else None

    def rules_for(
        self, phase: str | None = None
    ) -> list[AbsoluteRule | RelativeRule | MinEvidenceRule | RollbackRule]:
        """Shared rules plus the phase's own rules, sorted by name."""
        ph = self.phases.get(phase or self.current_phase)
        rules = list(self.shared_rules) + (list(ph.rules) if ph else [])
        return sorted(rules, key=lambda r: r.name)


class DecisionConfigError(ConfigError):
    """A decision config that cannot be used (a ConfigError: one ``<source>: <path>: <problem>`` line per
    problem); ``problems`` are (key path, message) pairs."""


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _loc_to_path(loc: Sequence[Any]) -> str:
    out = ""
    prev: list[Any] = []
    for part in loc:
        # pydantic inserts the discriminator tag (e.g. "absolute") after a rule's list index; drop it.
        if (
            isinstance(part, str)
            and part in RULE_KINDS
            and len(prev) >= 2
            and isinstance(prev[-1], int)
            and prev[-2] in ("rules", "shared_rules")
        ):
            prev.append(part)
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
        prev.append(part)
    return out


def _pydantic_problems(err: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for e in err.errors(include_url=False):
        path = _loc_to_path(e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] in ("union_tag_not_found", "union_tag_invalid"):
            path = f"{path}.kind" if path else "kind"
            got = e.get("input", {}).get("kind") if isinstance(e.get("input"), dict) else None
            msg = f"must be one of {', '.join(RULE_KINDS)}" + (f" (got {got!r})" if got is not None else "")
        problems.append((path, msg))
    return problems


def _check_metric(path: str, m: Metric) -> list[tuple[str, str]]:
    out = []
    if m.aggregate == "rate" and m.match is None:
        out.append((f"{path}.match", "aggregate 'rate' needs a match (equals, in, or comparator+value)"))
    if m.match is not None:
        if m.aggregate not in ("rate", "count"):
            out.append((f"{path}.match", f"match only applies to rate/count, not {m.aggregate!r}"))
        mt = m.match
        forms = [mt.equals is not None, mt.in_ is not None, mt.comparator is not None or mt.value is not None]
        if sum(forms) != 1:
            out.append((f"{path}.match", "give exactly one of equals, in, or comparator+value"))
        elif (mt.comparator is None) != (mt.value is None):
            out.append((f"{path}.match", "comparator and value go together"))
        elif mt.in_ is not None and not mt.in_:
            out.append((f"{path}.match.in", "must not be empty"))
    if m.column.startswith(METRICS_PREFIX) and len(m.column) == len(METRICS_PREFIX):
        out.append((f"{path}.column", "'metrics.' needs a key, e.g. metrics.latency_ms"))
    return out


def _check_rule(path: str, r: Any) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if isinstance(r, AbsoluteRule | RelativeRule | RollbackRule):
        out += _check_metric(f"{path}.metric", r.metric)
    if isinstance(r, AbsoluteRule) and r.strata is not None and not r.per_stratum:
        out.append((f"{path}.strata", "strata only applies with per_stratum: true"))
    if isinstance(r, MinEvidenceRule) and r.min_runs is None and r.min_days is None:
        out.append((path, "min_evidence needs min_runs and/or min_days"))
    if isinstance(r, RelativeRule):
        b = r.baseline
        bp = f"{path}.baseline"
        if b.source == "column" and not b.column:
            out.append((f"{bp}.column", "required when source is 'column'"))
        if b.source != "column" and b.column is not None:
            out.append((f"{bp}.column", f"only applies when source is 'column' (source is {b.source!r})"))
        if b.source == "window" and b.days is None:
            out.append((f"{bp}.days", "required when source is 'window'"))
        if b.source != "window" and b.days is not None:
            out.append((f"{bp}.days", f"only applies when source is 'window' (source is {b.source!r})"))
        if b.source != "policy" and b.policy_hash is not None:
            out.append(
                (f"{bp}.policy_hash", f"only applies when source is 'policy' (source is {b.source!r})")
            )
        if b.aggregate == "rate" and r.metric.match is None:
            out.append((f"{bp}.aggregate", "'rate' needs metric.match"))
    return out


def _cross_check(cfg: DecisionConfig) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if len(set(cfg.phase_order)) != len(cfg.phase_order):
        problems.append(("phase_order", "phase names must be unique"))
    if cfg.current_phase not in cfg.phase_order:
        problems.append(("current_phase", f"{cfg.current_phase!r} is not in phase_order {cfg.phase_order}"))
    for key in sorted(cfg.phases):
        if key not in cfg.phase_order:
            problems.append((f"phases.{key}", f"phase {key!r} is not in phase_order {cfg.phase_order}"))
    if cfg.policy.mode == "explicit" and not cfg.policy.policy_hash:
        problems.append(("policy.policy_hash", "required when mode is 'explicit'"))
    if cfg.policy.mode == "latest" and cfg.policy.policy_hash is not None:
        problems.append(("policy.policy_hash", "must be omitted when mode is 'latest'"))
    shared_names: dict[str, str] = {}
    for i, r in enumerate(cfg.shared_rules):
        path = f"shared_rules[{i}]"
        problems += _check_rule(path, r)
        if r.name in shared_names:
            problems.append((f"{path}.name", f"duplicate rule name {r.name!r} (also {shared_names[r.name]})"))
        shared_names.setdefault(r.name, path)
    for phase in cfg.phase_order:
        ph = cfg.phases.get(phase)
        if ph is None:
            continue
        names = dict(shared_names)
        for i, r in enumerate(ph.rules):
            path = f"phases.{phase}.rules[{i}]"
            problems += _check_rule(path, r)
            if r.name in names:
                problems.append((f"{path}.name", f"duplicate rule name {r.name!r} (also {names[r.name]})"))
            names.setdefault(r.name, path)
    if cfg.current_phase in cfg.phase_order and not any(not r.observe_only for r in cfg.rules_for()):
        problems.append(
            (f"phases.{cfg.current_phase}.rules", "the current phase has no counted (non observe_only) rule")
        )
    return problems


def parse_decision_config(data: Any, source: str) -> DecisionConfig:
    """Validate an already-parsed mapping; raises DecisionConfigError naming ``source`` and key paths."""
    if not isinstance(data, dict):
        raise DecisionConfigError(source, [("", f"top level must be a mapping, got {type(data).__name__}")])
    try:
        cfg = DecisionConfig.model_validate(data)
    except ValidationError as err:
        raise DecisionConfigError(source, _pydantic_problems(err)) from None
    problems = _cross_check(cfg)
    if problems:
        raise DecisionConfigError(source, problems)
    return cfg


def load_decision_config(raw: bytes, source: str) -> DecisionConfig:
    """Parse YAML or JSON bytes (lib.config's one parser) into a validated DecisionConfig.

    Raises DecisionConfigError whose message names ``source``, each key path
    (e.g. ``phases.warn.rules[2].threshold``) and the problem. Validation stays here (not
    ``lib.config.load_model``) because rule paths drop pydantic's discriminator tag and say which kinds
    exist."""
    try:
        data = parse_document(raw, source)
    except ConfigError as exc:
        raise DecisionConfigError(source, exc.problems) from None
    return parse_decision_config(data, source)
