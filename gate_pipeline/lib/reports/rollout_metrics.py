"""rollout_metrics.json: the decision, the statistics and the provenance as one canonical document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gate_pipeline.lib.reports.canonical import normalize_json
from gate_pipeline.lib.rules import Decision

PROVENANCE_KEYS: tuple[str, ...] = (
    "artifact_manifest_sha256",
    "code_version",
    "config_sha256",
    "whitelist_sha256",
)


def rollout_metrics_document(
    decision: Decision, statistics: Mapping[str, Any], provenance: Mapping[str, Any], schema_version: str
) -> dict[str, Any]:
    """Build the rollout_metrics.json document (validates against schemas/rollout_metrics.schema.json).

    ``provenance`` must hold exactly: artifact_manifest_sha256, whitelist_sha256, config_sha256 (sha256 hex)
    and code_version."""
    missing = sorted(set(PROVENANCE_KEYS) - set(provenance))
    extra = sorted(set(provenance) - set(PROVENANCE_KEYS))
    if missing or extra:
        raise ValueError(f"provenance: missing keys {missing}, unknown keys {extra}")
    return normalize_json(
        {
            "schema_version": schema_version,
            "policy_hash": decision.policy_hash,
            "decision": decision,
            "statistics": dict(statistics),
            "provenance": dict(provenance),
        }
    )


def key_figures(document: Mapping[str, Any]) -> dict[str, Any]:
    """The figures an operator compares before and after a whitelist or config change, from a
    rollout_metrics.json document: the verdict, runs by unknown-reason kind, and the candidate WARN
    threshold's false-discovery and false-positive rates with the whitelist (None without a threshold)."""
    statistics = document.get("statistics", {})
    kinds: dict[str, int] = {}
    for row in statistics.get("class_frequencies", {}).get("frequencies", []):
        if row.get("scope") == "overall" and row.get("kind") in ("whitelisted", "non_whitelisted"):
            kinds[row["kind"]] = kinds.get(row["kind"], 0) + int(row.get("runs") or 0)
    with_whitelist = (statistics.get("warn_threshold") or {}).get("with_whitelist") or {}
    return {
        "verdict": document.get("decision", {}).get("verdict"),
        "class occurrences, whitelisted": kinds.get("whitelisted", 0),
        "class occurrences, non-whitelisted": kinds.get("non_whitelisted", 0),
        "false_discovery_rate (WARN threshold, with whitelist)": with_whitelist.get("false_discovery_rate"),
        "false_positive_rate (WARN threshold, with whitelist)": with_whitelist.get("false_positive_rate"),
    }
