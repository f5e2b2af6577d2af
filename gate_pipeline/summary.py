"""The short summary `gate-pipeline run` prints: where outputs are, what was accepted and quarantined."""

from __future__ import annotations

import orjson

from gate_pipeline.settings import Settings


def print_summary(settings: Settings) -> dict:
    """Print the summary of all stored history; returns the decision (as in rollout_metrics.json)."""
    outputs = settings.store(settings.outputs_url)
    metrics = orjson.loads(outputs.read_bytes("rollout_metrics.json"))
    series = outputs.read_parquet("rollout_series.parquet")
    counts = metrics["statistics"]["counts"]
    files, runs = counts["files"], counts["runs"]
    print(f"\nCounts over {counts['days']} day(s) (discovered = accepted + quarantined):")
    print(
        f"  files: {files['discovered']} discovered = {files['accepted']} accepted"
        f" + {files['quarantined']} quarantined + {files['ignored_not_an_artifact']} ignored (not an artifact name)"
    )
    print(
        f"  runs:  {runs['discovered']} discovered = {runs['accepted']} accepted"
        f" + {runs['quarantined_no_usable_gate_result']} quarantined (no usable gate_result.json)"
        f" + {runs['quarantined_duplicate_run_id']} duplicate run_id"
    )
    print(f"  rollout_series rows: {len(series)}")
    print("\nunknown_rate per policy_hash:")
    stats = (
        series.assign(policy_hash=series["policy_hash"].fillna("<missing>"))
        .groupby("policy_hash")["unknown_rate"]
        .agg(["count", "min", "median", "max"])
    )
    print(stats.to_string(float_format=lambda v: f"{v:.4f}") if not stats.empty else "  (no runs)")
    decision = metrics["decision"]
    print(
        f"\nDecision: {decision['verdict']} for policy_hash {decision['policy_hash']} "
        f"({decision['current_phase']} → {decision['next_phase'] or 'final'}): {decision['why']}"
    )
    for rule in decision["rules"]:
        tag = " (observe-only)" if rule["observe_only"] else ""
        print(f"  {rule['verdict']:<8} {rule['name']}{tag}: {rule['why']}")
    print("\nOutputs:")
    for name in sorted(outputs.list_names()):
        if not name.startswith("_"):
            print(f"  {outputs.url(name)}")
    return decision
