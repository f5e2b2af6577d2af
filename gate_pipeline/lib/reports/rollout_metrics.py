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
