"""The published decision document (rollout_metrics.json) from the stored history: one function the decision
asset and what-if replay (lib/whatif.py) both call, so a replay under a config gives the bytes a backfill
under that config publishes. Pure logic: no Dagster imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from gate_pipeline.lib import lifecycle, reports, rules
from gate_pipeline.lib.lifecycle import LogEntry
from gate_pipeline.lib.provenance import MANIFEST_COLUMNS, provenance
from gate_pipeline.lib.stats import AnalysisConfig, paradox_warnings

#: The classified, deduplicated history (data store) the statistics and the decision read.
HISTORY_FILE = "rollout_runs.parquet"
SCHEMA_VERSION = "1"  # rollout_metrics.json's schema_version
#: History columns the chart of the report reads (besides what the rules read).
CHART_COLUMNS = frozenset({"timestamp", "run_id", "policy_hash", "unknown_rate"})
# The config files a decision depends on, hashed into its provenance as config_sha256.
DECISION_FILE = "policy_constants.yaml"
ANALYSIS_FILE = "analysis.yaml"


def check_candidate_settings(
    analysis: AnalysisConfig, decision: rules.DecisionConfig, decision_source: str, analysis_source: str
) -> None:
    """The statistics and the decision must name the same candidate policy: with ``policy.mode: latest``,
    analysis.yaml's candidate_recent_runs / candidate_min_share must equal policy_constants.yaml's
    policy.recent_runs / policy.min_recent_share (otherwise the statistics, the baseline comparison and the
    decision could each describe another policy_hash). Raises DecisionConfigError naming both files."""
    policy = decision.policy
    if policy.mode != "latest":
        return
    pairs = [
        ("recent_runs", policy.recent_runs, "candidate_recent_runs", analysis.candidate_recent_runs),
        ("min_recent_share", policy.min_recent_share, "candidate_min_share", analysis.candidate_min_share),
    ]
    problems = [
        (
            f"policy.{key}",
            f"{value} differs from {analysis_source}: {other_key}: {other}; the statistics and the decision "
            "would pick the candidate policy differently (set both to the same value)",
        )
        for key, value, other_key, other in pairs
        if value != other
    ]
    if problems:
        raise rules.DecisionConfigError(decision_source, problems)


def frame_columns(cfg: rules.DecisionConfig) -> set[str]:
    """History columns the decision needs as a frame: what the rules of any phase read (the phase log
    decides which phase's rules apply), plus the chart's columns."""
    phases = (cfg.model_copy(update={"current_phase": phase}) for phase in cfg.phase_order)
    return set().union(*map(rules.used_columns, phases)) | CHART_COLUMNS


def history_columns(cfg: rules.DecisionConfig) -> set[str]:
    """Every history column :func:`decide` reads: the frame's, the manifest's and the whitelist versions."""
    return frame_columns(cfg) | {*MANIFEST_COLUMNS, "whitelist_sha256"}


def config_files(decision_raw: bytes, analysis_raw: bytes | None) -> dict[str, bytes]:
    """The decision's config files by name (analysis.yaml only when there is one)."""
    files = {DECISION_FILE: decision_raw}
    if analysis_raw is not None:
        files[ANALYSIS_FILE] = analysis_raw
    return files


@dataclass(frozen=True)
class Published:
    decision: rules.Decision
    evaluated: rules.Decision  # the rules' decision before the statistics' warnings are attached
    history: pd.DataFrame  # the frame the rules read (frame_columns), in the history's column order
    hashes: dict[str, str]  # the provenance
    document: dict[str, Any]  # rollout_metrics.json
    payload: bytes  # its canonical bytes


def decide(
    table: pa.Table,
    cfg: rules.DecisionConfig,
    entries: list[LogEntry],
    *,
    whitelist_sha256: str,
    config: dict[str, bytes],
    statistics: dict[str, Any],
    decision: rules.Decision | None = None,
    manifest_sha256: str | None = None,
    frame: pd.DataFrame | None = None,
) -> Published:
    """The decision over the stored history ``table`` (at least :func:`history_columns`, less the frame's
    when ``frame`` is given and the manifest's when ``manifest_sha256`` is) in the phase the
    log gives the decided policy, and rollout_metrics.json with ``statistics`` and the provenance.
    ``decision``: one already evaluated on the same rule columns, config and log (not evaluated again; its
    warnings come from these ``statistics``). ``manifest_sha256``: the history's artifact manifest hash when
    already known (computed otherwise); ``frame``: the :func:`frame_columns` frame of ``table`` when already
    made (it is only read)."""
    wanted = frame_columns(cfg)
    # The manifest hash comes from Arrow; only what the rules and the chart read becomes a pandas frame (the
    # hash columns are most of the history's bytes).
    history = (
        table.select([c for c in table.column_names if c in wanted]).to_pandas(split_blocks=True)
        if frame is None
        else frame
    )
    evaluated = lifecycle.evaluate_in_phase(history, cfg, entries) if decision is None else decision
    # Named warnings that do not change the verdict (Simpson's paradox against the baseline policy).
    decision = evaluated.with_warnings(
        paradox_warnings(
            statistics.get("baseline_comparison"), evaluated.policy_hash, evaluated.previous_policy_hash
        )
    )
    hashes = provenance(table, whitelist_sha256, config, manifest_sha256=manifest_sha256)
    document = reports.rollout_metrics_document(decision, statistics, hashes, SCHEMA_VERSION)
    return Published(decision, evaluated, history, hashes, document, reports.dumps_canonical(document))
