"""The short summary `gate-pipeline run` prints: where outputs are, what was accepted and quarantined."""

from __future__ import annotations

import orjson

from gate_pipeline.lib.analysis import ROOT_ENTRY_REASONS
from gate_pipeline.settings import Settings


def print_summary(settings: Settings) -> dict:
    """Print the summary of all stored history; returns the decision (as in rollout_metrics.json)."""
    outputs = settings.store(settings.outputs_url)
    metrics = orjson.loads(outputs.read_bytes("rollout_metrics.json"))
    counts = metrics["statistics"]["counts"]
    files, runs = counts["files"], counts["runs"]
    print(f"\nCounts over {counts['days']} day(s) (discovered = accepted + quarantined):")
    entries = counts["entries"]
    not_built = " + ".join(f"{entries[k]} {k}" for k in ROOT_ENTRY_REASONS)
    print(
        f"  top-level entries: {entries['discovered']} discovered = {entries['date_folders_built']} date "
        f"folders built + {not_built}"
    )
    print(
        f"  files: {files['discovered']} discovered = {files['accepted']} accepted"
        f" + {files['quarantined']} quarantined + {files['ignored_not_an_artifact']} ignored (not an artifact name)"
    )
    print(
        f"  runs:  {runs['discovered']} discovered = {runs['accepted']} accepted"
        f" + {runs['quarantined_no_usable_gate_result']} quarantined (no usable gate_result.json)"
        f" + {runs['quarantined_duplicate_run_id']} duplicate run_id"
        f" + {runs['quarantined_normalize_failed']} failed normalization"
    )
    print(f"  rollout_series rows: {runs['accepted']}")
    # The same numbers the report shows (statistics section unknown_rate_by_group), not recomputed here.
    rows = [r for r in metrics["statistics"]["unknown_rate_by_group"] if r["group_by"] == "policy_hash"]
    print("\nunknown_rate per policy_hash:")
    print(f"  {'policy_hash':<12} {'n':>6} {'min':>8} {'median':>8} {'max':>8}")
    for r in rows:
        values = [f"{r[k]:8.4f}" if r[k] is not None else f"{'-':>8}" for k in ("min", "median", "max")]
        print(f"  {r['group']:<12} {r['n']:>6} " + " ".join(values))
    if not rows:
        print("  (no runs)")
    decision = metrics["decision"]
    print(
        f"\nDecision: {decision['verdict']} for policy_hash {decision['policy_hash']} "
        f"({decision['current_phase']} → {decision['next_phase'] or 'final'}): {decision['why']}"
    )
    for warning in decision.get("warnings", []):  # named; they never change the verdict
        print(f"  WARNING  {warning['name']} ({warning['metric']}): {warning['message']}")
    for rule in decision["rules"]:
        tag = " (observe-only)" if rule["observe_only"] else ""
        print(f"  {rule['verdict']:<8} {rule['name']}{tag}: {rule['why']}")
    print("\nOutputs:")
    for name in sorted(outputs.list_names()):
        if not name.startswith("_"):
            print(f"  {outputs.url(name)}")
    return decision
