"""The statistics' parameters: :class:`AnalysisConfig` and its loader (``config/analysis.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gate_pipeline.lib.config import ConfigError, ConfigProblem, load_model
from gate_pipeline.lib.stats.intervals import z_for

#: A strata column naming a key of metrics.json (``metrics.arm``) starts with this.
METRICS_PREFIX = "metrics."


#: A bad analysis config is the project's one config error (the name stays for existing callers).
AnalysisConfigError = ConfigError


class BaselineExclusion(BaseModel):
    """Runs left out of both sides of the baseline comparison: those carrying an unknown class matching one of
    ``classes`` (and, when ``outcomes`` is given, with one of those outcomes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", description="Name reported with the excluded counts.")
    classes: list[str] = Field(
        min_length=1,
        description="Unknown classes (classified_runs.unknown_classes, e.g. 'whitelisted:infra'); shell-style "
        "patterns ('whitelisted:infra*') match several.",
    )
    outcomes: list[str] | None = Field(
        None,
        min_length=1,
        description="Only runs with one of these outcomes (upper-cased); omitted = any outcome.",
    )

    @field_validator("outcomes")
    @classmethod
    def _upper(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else sorted({x.upper() for x in v})


class BaselineComparisonConfig(BaseModel):
    """The candidate policy against its baseline policy (the one introduced before it): pooled and
    stratum-standardized differences of outcome rates, and which runs are compared."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metrics: list[Literal["fail_rate", "warn_fail_rate"]] = Field(
        default_factory=lambda: ["fail_rate", "warn_fail_rate"],
        min_length=1,
        description="Outcome rates compared (candidate - baseline): fail_rate = fail_outcomes, warn_fail_rate "
        "= fail_outcomes + warn_outcomes, over the runs with an outcome.",
    )
    exclude: list[BaselineExclusion] = Field(
        default_factory=lambda: [
            BaselineExclusion(
                name="whitelisted_infra_failures", classes=["whitelisted:infra*"], outcomes=["FAIL"]
            )
        ],
        description="Runs left out of both sides by unknown class (counted per side and class in the outputs).",
    )
    direction_tolerance: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="A difference whose absolute value is at most this has no direction; the Simpson's "
        "paradox warning needs pooled and standardized differences with opposite directions.",
    )

    @field_validator("metrics")
    @classmethod
    def _unique_metrics(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("metrics must be unique")
        return v

    @field_validator("exclude")
    @classmethod
    def _unique_names(cls, v: list[BaselineExclusion]) -> list[BaselineExclusion]:
        names = [e.name for e in v]
        if len(set(names)) != len(names):
            raise ValueError(f"exclusion names must be unique, got {names}")
        return v


class AnalysisConfig(BaseModel):
    """Parameters of the rollout statistics (``config/analysis.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: str = Field("1", description="Config format version.")
    strata_column: str = Field(
        "stratum",
        description="Run column defining strata, or 'metrics.<key>' for a string value of metrics.json.",
    )
    strata_missing_label: str = Field("unknown", min_length=1, description="Stratum for null/missing values.")
    strata_comparisons: list[tuple[str, str]] = Field(
        default_factory=lambda: [("unpinned", "pinned")],
        description="Pairs (a, b): delta = combined WARN+FAIL rate of a minus that of b. Always reported.",
    )
    strata_all_pairs: bool = Field(True, description="Also compare every other pair of observed strata.")
    recurrence_min_runs: int = Field(3, ge=1, description="k: a reason recurring in >= k runs is a pattern.")
    recurrence_min_share: float = Field(
        0.2, gt=0, le=1, description="...or in >= this share of the policy_hash's runs."
    )
    spike_mad_k: float = Field(3.0, gt=0, description="Spike bound = median + k * scale * MAD.")
    spike_mad_scale: float = Field(1.4826, gt=0, description="MAD scale (1.4826 = consistent with sigma).")
    spike_min_excess: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Floor of bound - median (one percentage point of unknown_rate), so MAD = 0 (most runs at "
        "the median, e.g. 0) does not make every run above the median a spike.",
    )
    warn_threshold_multiplier: float = Field(
        2.0, gt=0, description="Recommended WARN threshold = multiplier * median unknown_rate ..."
    )
    warn_threshold_floor: float = Field(
        0.02,
        ge=0,
        le=1,
        description="... but at least this value (2 percentage points), so a median of 0 does not give a "
        "threshold of 0 that WARNs on any unknown.",
    )
    warn_threshold_min_runs: int = Field(
        40,
        ge=1,
        description="No WARN threshold from fewer runs of a policy_hash (status insufficient_runs); seed 000 "
        "asks for about 40 runs before deriving thresholds.",
    )
    candidate_min_share: float = Field(
        0.1,
        gt=0,
        le=1,
        description="The candidate policy is the most recently introduced policy_hash holding at least this "
        "share of the last candidate_recent_runs runs (gate_pipeline.lib.policies.candidate_policy).",
    )
    candidate_recent_runs: int = Field(
        50,
        ge=1,
        description="How many of the latest runs with a policy_hash candidate_min_share counts over.",
    )
    baseline_comparison: BaselineComparisonConfig = Field(
        default_factory=BaselineComparisonConfig,
        description="Candidate against baseline policy: pooled and stratum-standardized rate differences, "
        "excluded runs by class, the compared run ids.",
    )
    confidence_level: float = Field(0.95, gt=0, lt=1, description="Level of every confidence interval.")
    fail_outcomes: list[str] = Field(default_factory=lambda: ["FAIL"], min_length=1)
    warn_outcomes: list[str] = Field(default_factory=lambda: ["WARN"], min_length=1)
    no_reason_label: str = Field("(none)", min_length=1, description="Reason label for runs without reasons.")
    null_group_label: str = Field("(null)", min_length=1, description="Group label for a null policy_hash.")

    @field_validator("strata_column")
    @classmethod
    def _strata_column(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        if v.startswith(METRICS_PREFIX) and not v[len(METRICS_PREFIX) :]:
            raise ValueError("'metrics.' needs a key, e.g. 'metrics.arm'")
        return v

    @field_validator("fail_outcomes", "warn_outcomes")
    @classmethod
    def _upper(cls, v: list[str]) -> list[str]:
        return sorted({x.upper() for x in v})

    @model_validator(mode="after")
    def _disjoint(self) -> AnalysisConfig:
        both = set(self.fail_outcomes) & set(self.warn_outcomes)
        if both:
            raise ConfigProblem("warn_outcomes", f"overlaps fail_outcomes: {sorted(both)}")
        return self

    @property
    def z(self) -> float:
        """Two-sided normal quantile for ``confidence_level`` (1.959964 for 0.95)."""
        return z_for(self.confidence_level)


def load_analysis_config(raw: bytes, source: str) -> AnalysisConfig:
    """Parse YAML (or JSON) bytes into :class:`AnalysisConfig`; an empty file is all defaults.

    Raises :class:`~gate_pipeline.lib.config.ConfigError` naming ``source``, the key and the problem."""
    return load_model(raw, source, AnalysisConfig, empty_is_default=True)
