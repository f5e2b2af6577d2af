"""The short summary `gate-pipeline run` prints: where outputs are, what was accepted and quarantined."""

from __future__ import annotations

import dagster as dg
import orjson

from gate_pipeline.settings import Settings


def _latest_metadata(result, asset: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    return {k: v.value for k, v in events[-1].materialization.metadata.items()} if events else {}


def print_summary(settings: Settings, result) -> dict:
    """Print the summary; returns the decision (as in rollout_metrics.json)."""
    raw = _latest_metadata(result, "raw_runs")
    table = _latest_metadata(result, "run_table")
    outputs = settings.store(settings.outputs_url)
    series = outputs.read_parquet("rollout_series.parquet")
    print("\nCounts (discovered = accepted + quarantined):")
    print(
        f"  files: {raw.get('files_discovered', 0)} discovered = {raw.get('files_accepted', 0)} accepted"
        f" + {raw.get('files_quarantined', 0)} quarantined + {raw.get('files_ignored', 0)} ignored (not an artifact name)"
    )
    print(
        f"  runs:  {raw.get('runs_discovered', 0)} discovered = {table.get('runs_accepted', 0)} accepted"
        f" + {raw.get('runs_quarantined', 0)} quarantined (no usable gate_result.json)"
        f" + {table.get('duplicates_quarantined', 0)} duplicate run_id"
    )
    print(f"  rollout_series rows: {len(series)}")
    print("\nunknown_rate per policy_hash:")
    stats = (
        series.assign(policy_hash=series["policy_hash"].fillna("<missing>"))
        .groupby("policy_hash")["unknown_rate"]
        .agg(["count", "min", "median", "max"])
    )
    print(stats.to_string(float_format=lambda v: f"{v:.4f}") if not stats.empty else "  (no runs)")
    decision = orjson.loads(outputs.read_bytes("rollout_metrics.json"))["decision"]
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
