"""pandera models: one DataFrameModel per table, a description on every field.

Validated at the asset boundary with `lazy=True` so every failure is reported at once.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

_OUTCOMES = ["PASS", "COMMENT", "WARN", "FAIL"]
_SHA256 = r"^[0-9a-f]{64}$"


class RunTable(pa.DataFrameModel):
    """One row per accepted CI run of one day (daily partition), joining its three artifact files."""

    run_id: Series[str] = pa.Field(description="Run id from gate_result.json, else the run folder name.")
    run_id_source: Series[str] = pa.Field(isin=["file", "folder"], description="Where run_id came from.")
    timestamp: Series[pd.DatetimeTZDtype] = pa.Field(
        dtype_kwargs={"unit": "ns", "tz": "UTC"},
        description="Run finish time (UTC) from gate_result.json, else midnight of the date folder.",
    )
    timestamp_source: Series[str] = pa.Field(
        isin=["file", "date_folder"], description="Where timestamp came from."
    )
    date: Series[str] = pa.Field(
        str_matches=r"^\d{4}-\d{2}-\d{2}$", description="Date folder = partition key."
    )
    run_path: Series[str] = pa.Field(unique=True, description="Run folder relative to the artifacts root.")
    policy_hash: Series[str] = pa.Field(
        nullable=True, description="Policy version hash; null if missing/invalid."
    )
    outcome: Series[str] = pa.Field(
        nullable=True, isin=_OUTCOMES, description="Gate outcome, upper-cased; null if missing/invalid."
    )
    unknown_rate: Series[float] = pa.Field(
        nullable=True, ge=0.0, le=1.0, description="Fraction of the gate's checks that ended unknown (0..1)."
    )
    top_reasons: Series[str] = pa.Field(
        str_startswith="[",
        str_endswith="]",
        description="Most frequent unknown reasons, most frequent first (JSON array).",
    )
    policy_state: Series[str] = pa.Field(nullable=True, description="drift_report policy_state, lower-cased.")
    stratum: Series[str] = pa.Field(
        isin=["pinned", "unpinned", "unknown"], description="Default stratum from policy_state."
    )
    drift_schema_version: Series[str] = pa.Field(nullable=True, description="drift_report schema_version.")
    warn_count: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=0, description="drift_report WARN_count.")
    fail_count: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=0, description="drift_report FAIL_count.")
    unknown_count: Series[pd.Int64Dtype] = pa.Field(
        nullable=True, ge=0, description="drift_report Unknown_count."
    )
    overrides_count: Series[pd.Int64Dtype] = pa.Field(
        nullable=True, ge=0, description="drift_report Overrides_count (manual overrides in the run)."
    )
    unknown_causes: Series[str] = pa.Field(
        str_startswith="{",
        str_endswith="}",
        description="drift_report unknown causes {cause: count} (JSON object).",
    )
    metrics: Series[str] = pa.Field(
        str_startswith="{",
        str_endswith="}",
        description="metrics.json content, canonical JSON with sorted keys.",
    )
    has_drift_report: Series[bool] = pa.Field(description="Whether a usable drift_report.json was present.")
    has_metrics: Series[bool] = pa.Field(description="Whether a usable metrics.json was present.")
    field_issues: Series[str] = pa.Field(
        str_startswith="[",
        str_endswith="]",
        description="Unknown classes from ingestion naming missing/invalid fields.",
    )
    gate_sha256: Series[str] = pa.Field(str_matches=_SHA256, description="sha256 of gate_result.json bytes.")
    drift_sha256: Series[str] = pa.Field(nullable=True, description="sha256 of drift_report.json bytes.")
    metrics_sha256: Series[str] = pa.Field(nullable=True, description="sha256 of metrics.json bytes.")
    duplicate_count: Series[int] = pa.Field(
        ge=1, description="Copies of this run_id discovered (1 = unique)."
    )

    class Config:
        strict = True
        ordered = True
        # Unique per day; the same run_id on two days is resolved later by the series (documented rule).
        unique = ["date", "run_id"]


class QuarantinedFiles(pa.DataFrameModel):
    """One row per quarantined file or run: nothing bad is dropped silently."""

    date: Series[str] = pa.Field(description="Date folder (partition key).")
    path: Series[str] = pa.Field(description="File or run folder path relative to the artifacts root.")
    run_path: Series[str] = pa.Field(description="Run folder the file belongs to.")
    file_kind: Series[str] = pa.Field(
        isin=["gate_result", "drift_report", "metrics", "run", "entry"],
        description="Artifact kind, run (a run folder), or entry (anything else refused).",
    )
    sha256: Series[str] = pa.Field(nullable=True, description="sha256 of the bytes read (null if unread).")
    size_bytes: Series[int] = pa.Field(ge=0, description="File size in bytes (0 for run rows).")
    reason: Series[str] = pa.Field(
        isin=[
            "empty",
            "not_utf8",
            "not_json",
            "not_object",
            "too_large",
            "too_deep",
            "unreadable",
            "symlink_refused",
            "not_a_regular_file",
            "unreadable_folder",
            "not_a_date_folder",
            "date_outside_window",
            "date_folder_not_built",
            "missing_gate_result",
            "gate_result_quarantined",
            "normalize_failed",
            "duplicate_run_id",
        ],
        description="Why it was quarantined.",
    )
    detail: Series[str] = pa.Field(description="Human detail (parser message, size, winning duplicate).")

    class Config:
        strict = True
        ordered = True


class RolloutSeries(pa.DataFrameModel):
    """The rollout time series: one row per run over all days, sorted by (timestamp, run_id)."""

    run_id: Series[str] = pa.Field(unique=True, description="Run id (unique across all days).")
    timestamp: Series[str] = pa.Field(description="UTC ISO-8601 timestamp (…Z).")
    date: Series[str] = pa.Field(description="Date folder.")
    policy_hash: Series[str] = pa.Field(nullable=True, description="Policy version hash.")
    outcome: Series[str] = pa.Field(nullable=True, isin=_OUTCOMES, description="Gate outcome.")
    unknown_rate: Series[float] = pa.Field(nullable=True, ge=0.0, le=1.0, description="Unknown rate 0..1.")
    top_reasons: Series[str] = pa.Field(description="Top unknown reasons, `;`-joined, most frequent first.")
    stratum: Series[str] = pa.Field(description="pinned / unpinned / unknown.")
    warn_count: Series[pd.Int64Dtype] = pa.Field(nullable=True, description="drift_report WARN_count.")
    fail_count: Series[pd.Int64Dtype] = pa.Field(nullable=True, description="drift_report FAIL_count.")
    unknown_count: Series[pd.Int64Dtype] = pa.Field(nullable=True, description="drift_report Unknown_count.")
    overrides_count: Series[pd.Int64Dtype] = pa.Field(
        nullable=True, description="drift_report Overrides_count."
    )
    field_issues: Series[str] = pa.Field(description="Ingestion unknown classes, `;`-joined.")
    unknown_classes: Series[str] = pa.Field(
        description="All unknown classes of the run (whitelist applied), `;`-joined."
    )
    run_path: Series[str] = pa.Field(description="Run folder relative to the artifacts root.")

    class Config:
        strict = True
        ordered = True


class BatchValidator:
    """Validates many per-day frames in few pandera calls (each call has a fixed cost of ~0.15 s).

    Frames are concatenated up to `batch_rows` rows; failure cases name the day they came from.
    """

    def __init__(self, model: type[pa.DataFrameModel], batch_rows: int = 250_000):
        self.model, self.batch_rows = model, batch_rows
        self._frames: list[tuple[str, pd.DataFrame]] = []
        self._rows = 0
        self.failures: list[dict] = []

    def add(self, label: str, df: pd.DataFrame) -> None:
        self._frames.append((label, df))
        self._rows += len(df)
        if self._rows >= self.batch_rows:
            self.flush()

    def flush(self) -> list[dict]:
        if not self._frames:
            return self.failures
        labels = [label for label, df in self._frames for _ in range(len(df))]
        combined = pd.concat([df for _, df in self._frames], ignore_index=True)
        for case in validate(self.model, combined):
            index = case.get("index")
            day = labels[int(index)] if index not in (None, "None", "nan") and str(index).isdigit() else None
            self.failures.append({"day": day, **case})
        self._frames, self._rows = [], 0
        return self.failures


def validate(model: type[pa.DataFrameModel], df: pd.DataFrame) -> list[dict]:
    """All schema failures at once (lazy); an empty list means the frame is valid."""
    try:
        model.validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        cols = [
            c for c in ("schema_context", "column", "check", "failure_case", "index") if c in cases.columns
        ]
        return cases[cols].astype(str).to_dict("records")
    return []


def column_descriptions(model: type[pa.DataFrameModel]) -> list[tuple[str, str, str]]:
    """(name, dtype, description) of every field, for the UI's table schema."""
    schema = model.to_schema()
    return [(name, str(col.dtype), col.description or "") for name, col in schema.columns.items()]


class ClassifiedRuns(RunTable):
    """run_table plus the unknown classes of each run, against one whitelist version (daily partition)."""

    unknown_classes: Series[str] = pa.Field(
        str_startswith="[",
        str_endswith="]",
        description="All unknown classes of the run, sorted: whitelisted:<class>, non_whitelisted:<reason>, "
        "unknown_field_missing/invalid:<field>, cause:<contract|schema>.",
    )
    whitelisted_classes: Series[str] = pa.Field(
        str_startswith="[",
        str_endswith="]",
        description="The whitelisted:<class> labels of the run's top reasons.",
    )
    non_whitelisted_reasons: Series[str] = pa.Field(
        str_startswith="[", str_endswith="]", description="Top reasons no (unexpired) whitelist entry covers."
    )
    whitelist_sha256: Series[str] = pa.Field(
        str_matches=_SHA256, description="sha256 of the unknown_whitelist.json used to classify."
    )

    class Config:
        strict = True
        ordered = True


_VERDICTS = ["GO", "HOLD", "NO_GO", "ROLLBACK"]
_CSV_LIST = "`;`-joined, sorted"


class WhatIfRuns(pa.DataFrameModel):
    """What-if replay (changed_runs.csv): every run whose unknown classes differ between the current and the
    candidate config, in history order (timestamp, run_id)."""

    run_id: Series[str] = pa.Field(unique=True, description="Run id.")
    timestamp: Series[str] = pa.Field(description="Run finish time, UTC (…Z).")
    date: Series[str] = pa.Field(description="Date folder of the run.")
    policy_hash: Series[str] = pa.Field(nullable=True, description="Policy version hash.")
    outcome: Series[str] = pa.Field(nullable=True, isin=_OUTCOMES, description="Gate outcome.")
    unknown_rate: Series[float] = pa.Field(nullable=True, ge=0.0, le=1.0, description="Unknown rate 0..1.")
    classes_removed: Series[str] = pa.Field(
        description=f"Classes the run has under the current config and not under the candidate, {_CSV_LIST}."
    )
    classes_added: Series[str] = pa.Field(
        description=f"Classes the run has under the candidate config and not under the current, {_CSV_LIST}."
    )
    unknown_classes_current: Series[str] = pa.Field(
        str_startswith="[", str_endswith="]", description="All unknown classes under the current config."
    )
    unknown_classes_candidate: Series[str] = pa.Field(
        str_startswith="[", str_endswith="]", description="All unknown classes under the candidate config."
    )

    class Config:
        strict = True
        ordered = True


class WhatIfTimeline(pa.DataFrameModel):
    """What-if replay (timeline.csv): the decision at the end of each day under both configs, side by side."""

    date: Series[str] = pa.Field(unique=True, description="UTC day; the decision as it stood at its end.")
    policy_hash_current: Series[str] = pa.Field(nullable=True, description="Policy decided on (current).")
    phase_current: Series[str] = pa.Field(nullable=True, description="Its phase then (current).")
    verdict_current: Series[str] = pa.Field(nullable=True, isin=_VERDICTS, description="Verdict (current).")
    n_runs_current: Series[pd.Int64Dtype] = pa.Field(nullable=True, description="Runs of evidence (current).")
    deciding_rule_current: Series[str] = pa.Field(
        nullable=True, description="The rule that decided the verdict, empty for GO (current)."
    )
    policy_hash_candidate: Series[str] = pa.Field(nullable=True, description="Policy decided on (candidate).")
    phase_candidate: Series[str] = pa.Field(nullable=True, description="Its phase then (candidate).")
    verdict_candidate: Series[str] = pa.Field(
        nullable=True, isin=_VERDICTS, description="Verdict (candidate)."
    )
    n_runs_candidate: Series[pd.Int64Dtype] = pa.Field(
        nullable=True, description="Runs of evidence (candidate)."
    )
    deciding_rule_candidate: Series[str] = pa.Field(
        nullable=True, description="The rule that decided the verdict, empty for GO (candidate)."
    )
    verdict_changes: Series[bool] = pa.Field(description="Whether the two verdicts differ that day.")

    class Config:
        strict = True
        ordered = True


class WhatIfClassCounts(pa.DataFrameModel):
    """What-if replay (class_counts.csv): runs carrying each unknown class under both configs."""

    kind: Series[str] = pa.Field(description="whitelisted / non_whitelisted / field / cause / other.")
    class_: Series[str] = pa.Field(alias="class", description="The class label.")
    runs_current: Series[int] = pa.Field(ge=0, description="Runs with the class under the current config.")
    runs_candidate: Series[int] = pa.Field(
        ge=0, description="Runs with the class under the candidate config."
    )
    change: Series[int] = pa.Field(description="runs_candidate - runs_current.")

    class Config:
        strict = True
        ordered = True
