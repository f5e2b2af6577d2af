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

Confidence intervals (level ``confidence_level``, default 95%):

* ``rate``: Wilson score interval.
* ``mean``: normal approximation, mean +/- z * s / sqrt(n) (sample sd, n >= 2).
* ``median``/``p50``/``p95``/``p99``: distribution-free order-statistic interval: ranks
  floor(nq - z*sqrt(nq(1-q))) and ceil(nq + z*sqrt(nq(1-q))) (1-based, clipped to 1..n) of the sorted
  values.
* ``count``, ``sum``, ``min``, ``max`` and all relative measures: none.

Percentiles use linear interpolation between order statistics (numpy's default method).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import PurePath
from statistics import NormalDist
from typing import Annotated, Any, Literal

import numpy as np
import orjson
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gate_pipeline.lib.stats import wilson_bounds

# --------------------------------------------------------------------------------------------------
# Config models
# --------------------------------------------------------------------------------------------------

Comparator = Literal["<", "<=", ">=", ">"]
Aggregate = Literal["count", "rate", "mean", "median", "p50", "p95", "p99", "min", "max", "sum"]
Severity = Literal["ERROR", "WARN"]
RuleKind = Literal["absolute", "relative", "min_evidence", "rollback"]
RuleVerdict = Literal["PASS", "FAIL", "HOLD", "ROLLBACK"]
DecisionVerdict = Literal["GO", "HOLD", "NO_GO", "ROLLBACK"]

RULE_KINDS: tuple[str, ...] = ("absolute", "relative", "min_evidence", "rollback")
NUMERIC_AGGREGATES = frozenset({"mean", "median", "p50", "p95", "p99", "min", "max", "sum"})
QUANTILES = {"median": 0.5, "p50": 0.5, "p95": 0.95, "p99": 0.99}
METRICS_PREFIX = "metrics."

#: Numeric encoding of the decision, for plotting the decision over time.
DECISION_NUMBERS: dict[str, int] = {"GO": 1, "HOLD": 0, "NO_GO": -1, "ROLLBACK": -2}
#: Documented precedence, strongest first.
DECISION_PRECEDENCE: tuple[str, ...] = ("ROLLBACK", "NO_GO", "HOLD", "GO")

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

    def hits(self, v: Any) -> bool:
        """True when the (non-missing) value ``v`` satisfies this filter."""
        if self.equals is not None:
            return _scalar_eq(v, self.equals)
        if self.in_ is not None:
            return any(_scalar_eq(v, x) for x in self.in_)
        num = _as_number(v)
        return num is not None and _COMPARE[self.comparator](num, self.value)  # type: ignore[index,arg-type]

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

    ``hold_on_ci_straddle`` (default: true for ``rate``, false otherwise): HOLD when the confidence interval
    lies on both sides of the threshold. ``per_stratum``: every stratum (``strata`` or all present ones,
    by ``strata_column``) must pass; a listed stratum without runs is HOLD."""

    kind: Literal["absolute"]
    metric: Metric
    comparator: Comparator
    threshold: float
    per_stratum: bool = False
    strata: list[str] | None = None
    hold_on_ci_straddle: bool | None = None


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
    """ROLLBACK when the trigger ``aggregate(metric) <comparator> threshold`` fires; PASS otherwise."""

    kind: Literal["rollback"]
    metric: Metric
    comparator: Comparator
    threshold: float
    hold_on_ci_straddle: bool = False


Rule = Annotated[AbsoluteRule | RelativeRule | MinEvidenceRule | RollbackRule, Field(discriminator="kind")]


class Phase(_Strict):
    description: str = ""
    rules: list[Rule] = Field(default_factory=list)


class PolicySelection(_Strict):
    """``mode: latest`` = the policy_hash of the most recent run (by timestamp, then run_id);
    ``mode: explicit`` uses ``policy_hash``."""

    mode: Literal["latest", "explicit"] = "latest"
    policy_hash: str | None = None


class DecisionConfig(_Strict):
    """The whole decision config (``config/policy_constants.yaml``)."""

    schema_version: Literal["1"] = "1"
    name: str = Field(min_length=1)
    description: str = ""
    phase_order: list[str] = Field(min_length=1)
    current_phase: str
    policy: PolicySelection = Field(default_factory=PolicySelection)
    strata_column: str = "stratum"
    confidence_level: float = Field(default=0.95, gt=0.5, lt=1.0)
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


class DecisionConfigError(ValueError):
    """A config that cannot be used; ``problems`` are (key path, message) pairs."""

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]):
        self.source = source
        self.problems = list(problems)
        lines = [f"{source}: {path or '<root>'}: {msg}" for path, msg in self.problems]
        super().__init__("invalid decision config\n" + "\n".join(lines))


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


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
    """Parse YAML or JSON bytes (JSON when ``source`` ends in .json) into a validated DecisionConfig.

    Raises DecisionConfigError whose message names ``source``, each key path
    (e.g. ``phases.warn.rules[2].threshold``) and the problem."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecisionConfigError(source, [("", f"not UTF-8: {e}")]) from None
    if PurePath(source).suffix.lower() == ".json":
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise DecisionConfigError(source, [("", f"not valid JSON: {e}")]) from None
    else:
        try:
            data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
        except yaml.YAMLError as e:
            raise DecisionConfigError(source, [("", f"not valid YAML: {e}")]) from None
    return parse_decision_config(data, source)


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


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
    n: int
    missing: int = 0
    stratum: str | None = None
    strata: list[StratumResult] = Field(default_factory=list)
    details: dict[str, float | int | str | None] = Field(default_factory=dict)
    evidence_run_ids: list[str] = Field(default_factory=list)
    why: str


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
    rules: list[RuleResult]


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _is_missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and math.isnan(v)


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool | np.bool_):
        return float(v)
    if isinstance(v, int | float | np.integer | np.floating):
        f = float(v)
        return f if math.isfinite(f) else None
    return None


def _scalar_eq(v: Any, target: Any) -> bool:
    a, b = _as_number(v), _as_number(target)
    if a is not None and b is not None:
        return a == b
    return isinstance(v, str) and isinstance(target, str) and v == target


def _fmt_num(x: float | None, unit: str | None = None) -> str:
    if x is None:
        return "n/a"
    s = f"{x:.4g}"
    return f"{s} {unit}" if unit else s


def _fmt_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def _iso(ts: pd.Timestamp | None) -> str | None:
    if ts is None or pd.isna(ts):
        return None
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def wilson_interval(k: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (n > 0)."""
    return wilson_bounds(k, n, z)


def _quantile_ci(sorted_vals: np.ndarray, q: float, z: float) -> tuple[float, float]:
    n = len(sorted_vals)
    sd = math.sqrt(n * q * (1 - q))
    lo = min(max(math.floor(n * q - z * sd), 1), n)
    hi = min(max(math.ceil(n * q + z * sd), 1), n)
    return float(sorted_vals[lo - 1]), float(sorted_vals[hi - 1])


class _Agg:
    """One aggregate with its evidence."""

    def __init__(
        self,
        value: float | None,
        n: int,
        missing: int,
        *,
        k: int | None = None,
        invalid: int = 0,
        ci: tuple[float, float] | None = None,
        ci_method: str | None = None,
    ):
        self.value, self.n, self.missing, self.k = value, n, missing, k
        self.invalid, self.ci, self.ci_method = invalid, ci, ci_method


class _Vals:
    """A column's values at some row positions, classified once so rules aggregate with numpy.

    The classification mirrors the scalar helpers exactly: ``missing`` = ``_is_missing``; ``is_num`` =
    ``_as_number`` is not None (finite numbers and bools), with the value in ``num``; ``sval`` holds the
    value where it is a ``str`` (else None). A value that is neither missing nor numeric is "invalid" for
    numeric aggregates."""

    __slots__ = ("is_num", "missing", "num", "sval")

    def __init__(self, missing: np.ndarray, is_num: np.ndarray, num: np.ndarray, sval: np.ndarray | None):
        self.missing, self.is_num, self.num, self.sval = missing, is_num, num, sval

    def __len__(self) -> int:
        return len(self.missing)

    def take(self, idx: np.ndarray) -> _Vals:
        return _Vals(
            self.missing[idx], self.is_num[idx], self.num[idx], None if self.sval is None else self.sval[idx]
        )

    @staticmethod
    def empty(n: int) -> _Vals:
        return _Vals(np.ones(n, dtype=bool), np.zeros(n, dtype=bool), np.full(n, np.nan), None)

    @staticmethod
    def from_objects(obj: np.ndarray) -> _Vals:
        """Classify an object array element by element (exact); text columns take a C fast path."""
        n = len(obj)
        if n and pd.api.types.infer_dtype(obj, skipna=True) == "string":
            # Every non-null cell is a str; only the null cells go through the scalar helpers below.
            is_str = ~pd.isna(obj)
        else:
            is_str = np.fromiter((isinstance(v, str) for v in obj), dtype=bool, count=n)
        missing = np.zeros(n, dtype=bool)
        is_num = np.zeros(n, dtype=bool)
        num = np.full(n, np.nan)
        # Only non-strings need the scalar helpers; in text columns that is just the missing cells.
        for i in np.flatnonzero(~is_str):
            v = obj[i]
            v = v.item() if isinstance(v, np.generic) else v
            if _is_missing(v):
                missing[i] = True
                continue
            x = _as_number(v)
            if x is not None:
                is_num[i], num[i] = True, x
        sval = None
        if is_str.any():
            sval = np.empty(n, dtype=object)
            sval[is_str] = obj[is_str]
        return _Vals(missing, is_num, num, sval)

    @staticmethod
    def from_series(s: pd.Series) -> _Vals:
        """Classify a whole column, using its dtype where that decides the answer without a Python loop."""
        dtype = s.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "fiub":
            num = s.to_numpy(dtype=float)
            missing = np.isnan(num) if dtype.kind == "f" else np.zeros(len(num), dtype=bool)
            return _Vals(missing, np.isfinite(num), num, None)
        if isinstance(s.array, pd.arrays.IntegerArray | pd.arrays.FloatingArray | pd.arrays.BooleanArray):
            num = s.to_numpy(dtype=float, na_value=np.nan)
            missing = s.isna().to_numpy(dtype=bool) | np.isnan(num)
            return _Vals(missing, ~missing & np.isfinite(num), num, None)
        return _Vals.from_objects(s.to_numpy(dtype=object))


def _match_hits(vals: _Vals, match: Match) -> np.ndarray:
    """Vectorized ``Match.hits`` over the present values (missing cells never hit)."""

    def eq(target: Any) -> np.ndarray:
        t = _as_number(target)
        if t is not None:
            return vals.is_num & (vals.num == t)
        if isinstance(target, str) and vals.sval is not None:
            return vals.sval == target
        return np.zeros(len(vals), dtype=bool)

    if match.equals is not None:
        hits = eq(match.equals)
    elif match.in_ is not None:
        hits = np.zeros(len(vals), dtype=bool)
        for x in match.in_:
            hits |= eq(x)
    else:
        hits = vals.is_num & _COMPARE[match.comparator](vals.num, match.value)  # type: ignore[index,arg-type]
    return np.asarray(hits, dtype=bool) & ~vals.missing


def _aggregate(vals: _Vals, aggregate: str, match: Match | None, z: float) -> _Agg:
    missing = int(vals.missing.sum())
    if aggregate in ("count", "rate"):
        n = len(vals) - missing
        k = int(_match_hits(vals, match).sum()) if match is not None else n
        if aggregate == "count":
            return _Agg(float(k), n, missing, k=k)
        if n == 0:
            return _Agg(None, 0, missing, k=0)
        return _Agg(k / n, n, missing, k=k, ci=wilson_interval(k, n, z), ci_method="wilson")
    invalid = len(vals) - missing - int(vals.is_num.sum())
    # Stable sort: equal values (0.0 / -0.0) keep input order, exactly like sorted() on a list.
    arr = np.sort(vals.num[vals.is_num], kind="stable")
    n = len(arr)
    if n == 0:
        return _Agg(None, 0, missing + invalid, invalid=invalid)
    ci: tuple[float, float] | None = None
    method: str | None = None
    if aggregate == "mean":
        value = float(arr.mean())
        if n >= 2:
            half = z * float(arr.std(ddof=1)) / math.sqrt(n)
            ci, method = (value - half, value + half), "normal_mean"
    elif aggregate in QUANTILES:
        q = QUANTILES[aggregate]
        value = float(np.percentile(arr, q * 100, method="linear"))
        ci, method = _quantile_ci(arr, q, z), "order_statistic"
    elif aggregate == "min":
        value = float(arr[0])
    elif aggregate == "max":
        value = float(arr[-1])
    else:  # sum
        value = float(math.fsum(arr.tolist()))
    return _Agg(value, n, missing + invalid, invalid=invalid, ci=ci, ci_method=method)


class _Ctx:
    """Evaluation context: each column classified once (``_Vals``), metrics JSON parsed once per needed row."""

    def __init__(self, runs: pd.DataFrame, cfg: DecisionConfig, now: pd.Timestamp | None):
        self.runs = runs
        self.cfg = cfg
        self.z = NormalDist().inv_cdf((1 + cfg.confidence_level) / 2)
        self._metrics: dict[int, dict[str, Any]] = {}
        self._columns: dict[str, _Vals] = {}
        self._objects: dict[str, np.ndarray] = {}
        self.now = now

    def _parsed(self, pos: int) -> dict[str, Any]:
        got = self._metrics.get(pos)
        if got is None:
            raw = self.runs["metrics"].iat[pos] if "metrics" in self.runs.columns else None
            got = {}
            if isinstance(raw, str | bytes) and raw:
                try:
                    obj = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    obj = None
                got = obj if isinstance(obj, dict) else {}
            self._metrics[pos] = got
        return got

    def has_column(self, column: str) -> bool:
        if column.startswith(METRICS_PREFIX):
            return "metrics" in self.runs.columns
        return column in self.runs.columns

    def objects(self, positions: np.ndarray, column: str) -> np.ndarray:
        """Raw values of a table column at ``positions`` (object array; the column must exist)."""
        arr = self._objects.get(column)
        if arr is None:
            arr = self.runs[column].to_numpy(dtype=object)
            self._objects[column] = arr
        return arr[positions]

    def vals(self, positions: np.ndarray, column: str) -> _Vals:
        """Classified values of ``column`` (or ``metrics.<key>``) at the given row positions."""
        if column.startswith(METRICS_PREFIX):
            key = column[len(METRICS_PREFIX) :]
            # Only the rows asked for are parsed (and each at most once per evaluation).
            obj = np.empty(len(positions), dtype=object)
            for i, p in enumerate(positions.tolist()):
                obj[i] = self._parsed(p).get(key)
            return _Vals.from_objects(obj)
        if column not in self.runs.columns:
            return _Vals.empty(len(positions))
        full = self._columns.get(column)
        if full is None:
            full = _Vals.from_series(self.runs[column])
            self._columns[column] = full
        return full.take(positions)


def _ci_decide(
    cmp: str, thr: float, value: float, ci: tuple[float, float] | None, straddle: bool
) -> tuple[bool | None, bool]:
    """Return (condition holds? None = undecided, straddles?)."""
    f = _COMPARE[cmp]
    if straddle and ci is not None:
        lo_ok, hi_ok = f(ci[0], thr), f(ci[1], thr)
        if lo_ok != hi_ok:
            return None, True
    return f(value, thr), False


def _evidence_text(metric: Metric, agg: _Agg) -> str:
    if metric.aggregate == "rate":
        text = f"{metric.display()} {agg.k}/{agg.n} = {_fmt_pct(agg.value)}"
    elif metric.aggregate == "count":
        text = f"{metric.display()} = {agg.k} of {agg.n} runs"
    else:
        text = f"{metric.display()} = {_fmt_num(agg.value, metric.unit)} over {agg.n} runs"
    # Missing values are surfaced, never silently dropped.
    return f"{text} ({agg.missing} without a usable value)" if agg.missing else text


def _thr_text(metric: Metric, thr: float) -> str:
    return _fmt_pct(thr) if metric.aggregate == "rate" else _fmt_num(thr, metric.unit)


def _ci_text(metric: Metric, ci: tuple[float, float] | None, level: float) -> str:
    if ci is None:
        return ""
    fmt = _fmt_pct if metric.aggregate == "rate" else (lambda x: _fmt_num(x, metric.unit))
    return f"{level * 100:.0f}% CI {fmt(ci[0])} to {fmt(ci[1])}"


def _no_data_text(column: str, agg: _Agg, total: int, ctx: _Ctx, min_n: int, scope: str) -> str:
    if not ctx.has_column(column):
        return f"no data: column {column!r} is not in the run table, so the rule cannot pass"
    if total == 0:
        return f"no data: there are no runs {scope}, so the rule cannot pass"
    if agg.n == 0:
        return f"no data: none of the {total} runs {scope} has a usable value for {column}"
    return f"not enough data: {agg.n} runs {scope} have a value for {column}, the rule needs at least {min_n}"


# --------------------------------------------------------------------------------------------------
# Rule evaluation
# --------------------------------------------------------------------------------------------------


def _eval_condition(
    rule: AbsoluteRule | RollbackRule, positions: np.ndarray, ctx: _Ctx, scope: str
) -> tuple[RuleVerdict, _Agg, str]:
    m = rule.metric
    agg = _aggregate(ctx.vals(positions, m.column), m.aggregate, m.match, ctx.z)
    if agg.value is None or agg.n < rule.min_n:
        return "HOLD", agg, _no_data_text(m.column, agg, len(positions), ctx, rule.min_n, scope)
    straddle_on = rule.hold_on_ci_straddle
    if straddle_on is None:
        straddle_on = m.aggregate == "rate"
    holds, straddles = _ci_decide(rule.comparator, rule.threshold, agg.value, agg.ci, straddle_on)
    evidence = _evidence_text(m, agg)
    cond = f"{rule.comparator} {_thr_text(m, rule.threshold)}"
    ci_txt = _ci_text(m, agg.ci, ctx.cfg.confidence_level)
    if straddles:
        return (
            "HOLD",
            agg,
            f"{evidence}, but the {ci_txt} straddles the threshold {cond}, so more evidence is needed",
        )
    suffix = f" ({ci_txt})" if ci_txt and straddle_on else ""
    if isinstance(rule, RollbackRule):
        if holds:
            return "ROLLBACK", agg, f"{evidence} is {cond}{suffix}: the rollback trigger fired"
        return "PASS", agg, f"{evidence} is not {cond}{suffix}: the rollback trigger did not fire"
    if holds:
        return "PASS", agg, f"{evidence} meets the threshold {cond}{suffix}"
    return "FAIL", agg, f"{evidence} violates the threshold {cond}{suffix}"


_VERDICT_RANK = {"ROLLBACK": 3, "FAIL": 2, "HOLD": 1, "PASS": 0}


def _base_result(rule: Any, **kw: Any) -> RuleResult:
    return RuleResult(
        name=rule.name,
        kind=rule.kind,
        description=rule.description,
        severity=rule.severity,
        observe_only=rule.observe_only,
        **kw,
    )


def _stratum_labels(cur: np.ndarray, column: str, ctx: _Ctx) -> np.ndarray:
    """``str(value)`` per run, ``(missing)`` for missing values (object array aligned with ``cur``)."""
    vals = ctx.vals(cur, column)
    if vals.missing.all():
        return np.full(len(cur), "(missing)", dtype=object)
    if vals.sval is not None and (vals.missing | (vals.sval != None)).all():  # noqa: E711 - elementwise
        return np.where(vals.missing, "(missing)", vals.sval).astype(object)
    # Numeric or mixed strata: the exact per-value path.
    return np.array([_label(v) for v in _values_of(cur, column, ctx)], dtype=object)


def _label(v: Any) -> str:
    return "(missing)" if v is None else str(v)


def _values_of(positions: np.ndarray, column: str, ctx: _Ctx) -> list[Any]:
    """Python values at ``positions`` (missing -> None, numpy scalars unwrapped); the slow exact path."""
    if column.startswith(METRICS_PREFIX):
        key = column[len(METRICS_PREFIX) :]
        raw = [ctx._parsed(p).get(key) for p in positions.tolist()]
    elif column in ctx.runs.columns:
        raw = ctx.objects(positions, column).tolist()
    else:
        return [None] * len(positions)
    out = []
    for v in raw:
        v = v.item() if isinstance(v, np.generic) else v
        out.append(None if _is_missing(v) else v)
    return out


def _eval_absolute(rule: AbsoluteRule | RollbackRule, cur: np.ndarray, ctx: _Ctx) -> RuleResult:
    if isinstance(rule, AbsoluteRule) and rule.per_stratum:
        col = ctx.cfg.strata_column
        labels = _stratum_labels(cur, col, ctx)
        names = sorted(set(labels.tolist())) if rule.strata is None else sorted(rule.strata)
        subs: list[tuple[StratumResult, _Agg]] = []
        for s in names:
            pos = cur[labels == s]
            verdict, agg, why = _eval_condition(rule, pos, ctx, f"in stratum {s}")
            sr = StratumResult(
                name=s,
                verdict=verdict,
                observed=agg.value,
                n=agg.n,
                ci_low=agg.ci[0] if agg.ci else None,
                ci_high=agg.ci[1] if agg.ci else None,
                why=f"stratum {s}: {why}",
            )
            subs.append((sr, agg))
        if not subs:
            return _base_result(
                rule,
                verdict="HOLD",
                metric=rule.metric.display(),
                observed=None,
                comparator=rule.comparator,
                threshold=rule.threshold,
                n=0,
                why="no data: there are no runs for the current policy, so no stratum can pass",
            )
        # The deciding stratum is the worst one (ties: first by name) so the headline shows the problem.
        worst_sr, worst_agg = max(subs, key=lambda t: (_VERDICT_RANK[t[0].verdict], -names.index(t[0].name)))
        verdict = worst_sr.verdict
        n_ok = sum(1 for sr, _ in subs if sr.verdict == "PASS")
        why = (
            f"all {len(subs)} strata pass; worst shown: {worst_sr.why}"
            if verdict == "PASS"
            else f"{n_ok} of {len(subs)} strata pass; {worst_sr.why}"
        )
        return _base_result(
            rule,
            verdict=verdict,
            metric=rule.metric.display(),
            observed=worst_agg.value,
            comparator=rule.comparator,
            threshold=rule.threshold,
            ci_low=worst_agg.ci[0] if worst_agg.ci else None,
            ci_high=worst_agg.ci[1] if worst_agg.ci else None,
            ci_method=worst_agg.ci_method,
            n=sum(a.n for _, a in subs),
            missing=sum(a.missing for _, a in subs),
            stratum=worst_sr.name,
            strata=[sr for sr, _ in subs],
            details={"strata_column": col},
            why=why,
        )
    verdict, agg, why = _eval_condition(rule, cur, ctx, "for the current policy")
    n_evidence, evidence = _evidence_runs(rule, cur, ctx)
    details: dict[str, Any] = {"evidence_runs": n_evidence}
    if agg.k is not None:
        details["hits"] = agg.k
    if agg.invalid:
        details["non_numeric"] = agg.invalid
    return _base_result(
        rule,
        verdict=verdict,
        metric=rule.metric.display(),
        observed=agg.value,
        comparator=rule.comparator,
        threshold=rule.threshold,
        ci_low=agg.ci[0] if agg.ci else None,
        ci_high=agg.ci[1] if agg.ci else None,
        ci_method=agg.ci_method,
        n=agg.n,
        missing=agg.missing,
        details=details,
        evidence_run_ids=evidence,
        why=why,
    )


EVIDENCE_RUN_IDS = 50  # enough to triage from the UI; the full list is one filter away in rollout_series.csv


def _evidence_runs(
    rule: AbsoluteRule | RollbackRule, positions: np.ndarray, ctx: _Ctx
) -> tuple[int, list[str]]:
    """How many runs are behind the number, and the first ``EVIDENCE_RUN_IDS`` of their ids, sorted: the runs
    matching a rate's condition (e.g. the FAIL runs), or, for other aggregates, the runs whose own value
    violates the comparator (e.g. unknown_rate above the threshold)."""
    m = rule.metric
    vals = ctx.vals(positions, m.column)
    if m.match is not None:
        mask = _match_hits(vals, m.match)
    else:
        with np.errstate(invalid="ignore"):
            mask = vals.is_num & ~_COMPARE[rule.comparator](vals.num, rule.threshold)
    chosen = positions[np.asarray(mask, dtype=bool)]
    if "run_id" in ctx.runs.columns:
        ids = ctx.objects(chosen, "run_id")
        if len(ids) and pd.api.types.infer_dtype(ids, skipna=False) == "string":
            # Every id is a str (str(v) is v): no per-value conversion, and only the listed ones fully ordered.
            return len(ids), heapq.nsmallest(EVIDENCE_RUN_IDS, ids.tolist())
    ids = sorted(str(rid) for rid in _values_of(chosen, "run_id", ctx))
    return len(ids), ids[:EVIDENCE_RUN_IDS]


def _measure(kind: str, cur: float, base: float) -> float | None:
    if kind == "difference":
        return cur - base
    if base == 0:
        return None
    ratio = cur / base
    return {"ratio": ratio, "relative_change": ratio - 1, "reduction": 1 - ratio}[kind]


def _eval_relative(rule: RelativeRule, cur: np.ndarray, ctx: _Ctx, sel: _Selection) -> RuleResult:
    m, b = rule.metric, rule.baseline
    base_agg_name = b.aggregate or m.aggregate
    details: dict[str, Any] = {"baseline_source": b.source}
    if b.source == "column":
        bcol = b.column or m.column
        cv, bv = ctx.vals(cur, m.column), ctx.vals(cur, bcol)
        # Paired: only runs that carry both values, so a run missing its baseline cannot skew the ratio.
        both = np.flatnonzero(~cv.missing & ~bv.missing)
        cur_agg = _aggregate(cv.take(both), m.aggregate, m.match, ctx.z)
        base_agg = _aggregate(bv.take(both), base_agg_name, m.match, ctx.z)
        cur_agg.missing = len(cur) - len(both)
        details["baseline"] = f"{base_agg_name} {bcol} (same runs)"
        scope = f"for the current policy with both {m.column} and {bcol}"
    elif b.source == "policy":
        target = b.policy_hash or "previous"
        bhash = sel.previous if target == "previous" else target
        details["baseline_policy_hash"] = bhash
        bpos = sel.positions_of(bhash) if bhash else _NO_POSITIONS
        cur_agg = _aggregate(ctx.vals(cur, m.column), m.aggregate, m.match, ctx.z)
        base_agg = _aggregate(ctx.vals(bpos, m.column), base_agg_name, m.match, ctx.z)
        details["baseline"] = f"{base_agg_name} {m.column} (policy {bhash})"
        scope = "for the current policy"
        if bhash is None:
            return _base_result(
                rule,
                verdict="HOLD",
                metric=m.display(),
                observed=None,
                comparator=rule.comparator,
                threshold=rule.threshold,
                n=cur_agg.n,
                missing=cur_agg.missing,
                details=details,
                why="no data: there is no earlier policy_hash to compare with, so the rule cannot pass",
            )
    else:
        days = float(b.days)  # validated present
        end = sel.end
        cut = end - pd.Timedelta(days=days)
        start = end - pd.Timedelta(days=2 * days)
        ts = ctx.runs["timestamp"]
        in_cur = ((ts > cut) & (ts <= end)).to_numpy(dtype=bool)
        cur = cur[in_cur[cur]]
        bpos = np.flatnonzero(((ts > start) & (ts <= cut)).to_numpy(dtype=bool))
        cur_agg = _aggregate(ctx.vals(cur, m.column), m.aggregate, m.match, ctx.z)
        base_agg = _aggregate(ctx.vals(bpos, m.column), base_agg_name, m.match, ctx.z)
        details["baseline"] = f"{base_agg_name} {m.column} in ({_iso(start)}, {_iso(cut)}]"
        scope = f"for the current policy in the last {days:g} days"
    details["current_value"] = cur_agg.value
    details["baseline_value"] = base_agg.value
    details["baseline_n"] = base_agg.n
    common = {"metric": m.display(), "comparator": rule.comparator, "threshold": rule.threshold}
    if cur_agg.value is None or cur_agg.n < rule.min_n:
        why = _no_data_text(m.column, cur_agg, len(cur), ctx, rule.min_n, scope)
        return _base_result(
            rule,
            verdict="HOLD",
            observed=None,
            n=cur_agg.n,
            missing=cur_agg.missing,
            details=details,
            why=why,
            **common,
        )
    if base_agg.value is None or base_agg.n < rule.min_n:
        why = f"no data: the baseline ({details['baseline']}) has {base_agg.n} usable values, so the rule cannot pass"
        return _base_result(
            rule,
            verdict="HOLD",
            observed=None,
            n=cur_agg.n,
            missing=cur_agg.missing,
            details=details,
            why=why,
            **common,
        )
    value = _measure(rule.measure, cur_agg.value, base_agg.value)
    cur_txt = _fmt_pct(cur_agg.value) if m.aggregate == "rate" else _fmt_num(cur_agg.value, m.unit)
    base_txt = _fmt_pct(base_agg.value) if base_agg_name == "rate" else _fmt_num(base_agg.value, m.unit)
    head = f"{m.display()} = {cur_txt} vs baseline {details['baseline']} = {base_txt}"
    if value is None:
        return _base_result(
            rule,
            verdict="HOLD",
            observed=None,
            n=cur_agg.n,
            missing=cur_agg.missing,
            details=details,
            why=f"{head}: the baseline is 0, so the {rule.measure} is undefined",
            **common,
        )
    pct = rule.measure != "difference" and rule.measure != "ratio"
    val_txt = _fmt_pct(value) if pct else _fmt_num(value)
    thr_txt = _fmt_pct(rule.threshold) if pct else _fmt_num(rule.threshold)
    ok = _COMPARE[rule.comparator](value, rule.threshold)
    verdict: RuleVerdict = "PASS" if ok else "FAIL"
    why = (
        f"{head}: {rule.measure} {val_txt} {'meets' if ok else 'violates'} the threshold "
        f"{rule.comparator} {thr_txt}"
    )
    return _base_result(
        rule,
        verdict=verdict,
        observed=value,
        n=cur_agg.n,
        missing=cur_agg.missing,
        details=details,
        why=why,
        **common,
    )


def _eval_min_evidence(rule: MinEvidenceRule, sel: _Selection) -> RuleResult:
    n, days = len(sel.current), sel.days
    checks: list[tuple[str, bool]] = []
    if rule.min_runs is not None:
        checks.append((f"{n} runs (needs >= {rule.min_runs})", n >= rule.min_runs))
    if rule.min_days is not None:
        d = days if days is not None else 0.0
        checks.append((f"{d:.1f} days (needs >= {rule.min_days:g})", d >= rule.min_days))
    ok = any(c for _, c in checks) if rule.require == "any" else all(c for _, c in checks)
    joiner = " or " if rule.require == "any" else " and "
    text = joiner.join(t for t, _ in checks)
    if n == 0:
        why = "no data: there are no runs for the current policy, so there is no evidence yet"
    else:
        why = f"{text}: {'enough evidence' if ok else 'not enough evidence yet'}"
    primary_thr = float(rule.min_runs) if rule.min_runs is not None else float(rule.min_days)  # type: ignore[arg-type]
    observed = float(n) if rule.min_runs is not None else days
    return _base_result(
        rule,
        verdict="PASS" if ok and n > 0 else "HOLD",
        metric="runs" if rule.min_runs is not None else "days",
        observed=observed,
        comparator=">=",
        threshold=primary_thr,
        n=n,
        details={
            "runs": n,
            "days": None if days is None else round(days, 6),
            "min_runs": rule.min_runs,
            "min_days": rule.min_days,
            "require": rule.require,
        },
        why=why,
    )


# --------------------------------------------------------------------------------------------------
# Policy selection and the decision
# --------------------------------------------------------------------------------------------------


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


def used_columns(cfg: DecisionConfig) -> set[str]:
    """Every run-table column the evaluation of ``cfg``'s current rules can read."""
    used = {"timestamp", "run_id", "policy_hash", cfg.strata_column}
    for rule in cfg.rules_for():
        metric = getattr(rule, "metric", None)
        baseline = getattr(rule, "baseline", None)
        for col in (metric.column if metric else None, baseline.column if baseline else None):
            if col:
                used.add("metrics" if col.startswith(METRICS_PREFIX) else col)
    return used


def _is_sorted(ts: pd.Series, run_id: pd.Series) -> bool:
    """True when rows are already in (timestamp, run_id) order, so a stable sort would not move any row."""
    if len(ts) < 2:
        return True
    if ts.isna().any():
        return False
    rid = run_id.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(rid, skipna=False) != "string":
        return False
    t = ts.to_numpy(dtype="datetime64[ns]").view("i8")
    later, same = t[1:] > t[:-1], t[1:] == t[:-1]
    if not (later | same).all():
        return False
    tie = np.flatnonzero(same)
    return bool((rid[tie + 1] >= rid[tie]).all()) if len(tie) else True


_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def _prepare(runs: pd.DataFrame, columns: set[str] | None = None) -> pd.DataFrame:
    # Only the columns the rules read: copying and sorting a 30-column history dominated the runtime.
    keep = [c for c in runs.columns if columns is None or c in columns]
    df = runs[keep].copy(deep=False)
    if "timestamp" not in df.columns and len(df) == 0:
        df["timestamp"] = pd.Series([], dtype="datetime64[ns, UTC]")
    if "timestamp" not in df.columns:
        raise ValueError("run table has no 'timestamp' column")
    if df["timestamp"].dtype != _UTC_NS:  # the stored history is already UTC: nothing to convert
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    if "run_id" not in df.columns:
        df["run_id"] = ""
    # Stable order so row order of the input never changes the outcome (the stored history is usually
    # already in this order, then the sort is skipped).
    if _is_sorted(df["timestamp"], df["run_id"]):
        df.index = pd.RangeIndex(len(df))
    else:
        df = df.sort_values(["timestamp", "run_id"], kind="mergesort").reset_index(drop=True)
    return df


def _summary(verdict: str, counted: list[RuleResult]) -> str:
    def names(v: str) -> list[str]:
        return [r.name for r in counted if r.verdict == v]

    if not counted:
        return "HOLD: no counted rule was evaluated, so there is nothing to base a GO on"
    if verdict == "ROLLBACK":
        return f"ROLLBACK: rollback trigger fired ({', '.join(names('ROLLBACK'))})"
    if verdict == "NO_GO":
        return f"NO_GO: {len(names('FAIL'))} counted rule(s) failed ({', '.join(names('FAIL'))})"
    if verdict == "HOLD":
        return f"HOLD: {len(names('HOLD'))} counted rule(s) need more evidence ({', '.join(names('HOLD'))})"
    return f"GO: all {len(counted)} counted rules pass"


def evaluate(runs: pd.DataFrame, cfg: DecisionConfig, *, now: datetime | None = None) -> Decision:
    """Evaluate the current phase's rules on the classified run table and return the Decision.

    ``now`` bounds the evidence window (days, time-window baselines); default: the latest run's timestamp,
    which keeps the result a pure function of the data.  Input row order does not matter."""
    df = _prepare(runs, used_columns(cfg))
    now_ts = None
    if now is not None:
        now_ts = pd.Timestamp(now)
        now_ts = now_ts.tz_localize("UTC") if now_ts.tzinfo is None else now_ts.tz_convert("UTC")
    sel = _Selection(df, cfg, now_ts)
    ctx = _Ctx(df, cfg, now_ts)
    results: list[RuleResult] = []
    for rule in cfg.rules_for():
        if isinstance(rule, MinEvidenceRule):
            results.append(_eval_min_evidence(rule, sel))
        elif isinstance(rule, RelativeRule):
            results.append(_eval_relative(rule, sel.current, ctx, sel))
        else:
            results.append(_eval_absolute(rule, sel.current, ctx))
    results.sort(key=lambda r: r.name)
    counted = [r for r in results if not r.observe_only]
    verdicts = {r.verdict for r in counted}
    if not counted:
        verdict: DecisionVerdict = "HOLD"
    elif "ROLLBACK" in verdicts:
        verdict = "ROLLBACK"
    elif "FAIL" in verdicts:
        verdict = "NO_GO"
    elif "HOLD" in verdicts:
        verdict = "HOLD"
    else:
        verdict = "GO"
    return Decision(
        verdict=verdict,
        decision_as_number=DECISION_NUMBERS[verdict],
        why=_summary(verdict, counted),
        config_name=cfg.name,
        current_phase=cfg.current_phase,
        next_phase=cfg.next_phase(),
        policy_hash=sel.hash,
        policy_selection=cfg.policy.mode,
        previous_policy_hash=sel.previous,
        n_runs=len(sel.current),
        days=None if sel.days is None else round(sel.days, 6),
        first_run_at=_iso(sel.first),
        last_run_at=_iso(sel.last),
        evaluated_at=_iso(now_ts) if now_ts is not None else None,
        counted_rules=len(counted),
        rules=results,
    )


def decision_as_number(verdict: str) -> int:
    """GO=1, HOLD=0, NO_GO=-1, ROLLBACK=-2 (for plotting the decision over time)."""
    return DECISION_NUMBERS[verdict]


__all__ = [
    "DECISION_NUMBERS",
    "DECISION_PRECEDENCE",
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
    "wilson_interval",
]
