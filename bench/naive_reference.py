"""Naive reference: what a person would write in ten minutes without a framework.

    python bench/naive_reference.py <artifacts root> <out.csv>

One loop over every run folder: json.load of gate_result.json, drift_report.json and metrics.json
(bad files skipped and counted), one CSV row per run (sorted by timestamp, run_id), then
statistics.median of unknown_rate per policy_hash. Prints one JSON line of counts and medians.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import sys

KINDS = ("gate_result.json", "drift_report.json", "metrics.json")
COLUMNS = [
    "run_id",
    "timestamp",
    "policy_hash",
    "outcome",
    "unknown_rate",
    "top_reasons",
    "policy_state",
    "has_metrics",
]


def _load(path: str):
    """json.load, or None for a missing/bad file (the reference has no quarantine table, just a count)."""
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh)
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError):
        return False
    return value if isinstance(value, dict) else False


def build_rows(root: str) -> tuple[list[list], int]:
    """One row per run folder with a usable gate_result.json; returns (rows, bad files)."""
    rows: list[list] = []
    bad = 0
    for day in sorted(os.listdir(root)):
        day_dir = os.path.join(root, day)
        if not os.path.isdir(day_dir):
            continue
        for run in sorted(os.listdir(day_dir)):
            run_dir = os.path.join(day_dir, run)
            gate, drift, metrics = (_load(os.path.join(run_dir, k)) for k in KINDS)
            bad += sum(1 for v in (gate, drift, metrics) if v is False)
            if not gate:
                continue
            rate = gate.get("unknown_rate")
            rows.append(
                [
                    str(gate.get("run_id") or run),
                    str(gate.get("timestamp") or f"{day}T00:00:00Z"),
                    gate.get("policy_hash") or "",
                    str(gate.get("outcome") or "").upper(),
                    rate if isinstance(rate, (int, float)) else "",
                    json.dumps(gate.get("top_reasons") or []),
                    (drift or {}).get("policy_state", ""),
                    bool(metrics),
                ]
            )
    rows.sort(key=lambda r: (r[1], r[0]))
    return rows, bad


def main(argv: list[str]) -> int:
    root, out = argv[0], argv[1]
    rows, bad = build_rows(root)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    by_policy: dict[str, list[float]] = {}
    for row in rows:
        if row[4] != "":
            by_policy.setdefault(row[2] or "<missing>", []).append(float(row[4]))
    medians = {k: statistics.median(v) for k, v in sorted(by_policy.items())}
    print(json.dumps({"rows": len(rows), "bad_files": bad, "median_unknown_rate": medians}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
