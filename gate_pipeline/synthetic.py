"""Seeded synthetic CI artifacts in the default layout, for tests, benchmarks and the bundled sample.

    python -m gate_pipeline.synthetic --out /tmp/artifacts --runs 10000 --days 30 --bad 0.01 --seed 7

The same seed and arguments always give the same files (the creation order can be shuffled with
--order-seed to prove that outputs do not depend on it). Files are generated and written one day at a
time, so memory stays flat (tens of MB) whatever the number of runs.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import orjson

REASONS_WHITELISTED = ["flaky_test", "infra_timeout", "infra_dns", "network_blip", "cache_miss"]
REASONS_OTHER = ["schema_drift", "contract_violation", "missing_owner", "parser_error"]
BAD_KINDS = ["not_json", "not_utf8", "not_object", "empty", "too_large"]


@dataclass(frozen=True)
class CorpusSpec:
    runs: int = 60
    days: int = 12
    start: date = date(2026, 3, 1)
    policy_hashes: tuple[str, ...] = ("a6f53e", "b71c02")
    bad_fraction: float = 0.0
    field_issue_fraction: float = 0.03
    duplicates: int = 0
    seed: int = 7
    too_large_bytes: int = 1_100_000


def _gate_result(rng: random.Random, run_id: str, ts: str, policy: str, late_policy: bool) -> dict:
    spike = rng.random() < 0.08
    reasons: list[str] = []
    if spike:
        reasons.append(rng.choice(["infra_timeout", "network_blip", "schema_drift"]))
    n_extra = rng.choice([0, 1, 1, 2])
    pool = REASONS_WHITELISTED + REASONS_OTHER
    for reason in rng.sample(pool, n_extra):
        if reason not in reasons:
            reasons.append(reason)
    rate = round(min(1.0, rng.betavariate(2, 30) + (rng.uniform(0.15, 0.35) if spike else 0.0)), 4)
    # Real failures come from non-whitelisted causes, independent of the noisy whitelisted ones (seed 000).
    fail_p = 0.04 + (0.25 if any(r in REASONS_OTHER for r in reasons) else 0.0) - (0.02 if late_policy else 0)
    u = rng.random()
    outcome = (
        "FAIL" if u < fail_p else "WARN" if u < fail_p + 0.1 else "COMMENT" if u < fail_p + 0.3 else "PASS"
    )
    if rng.random() < 0.1:
        outcome = outcome.lower()  # producers are not consistent about case
    return {
        "run_id": run_id,
        "timestamp": ts,
        "policy_hash": policy,
        "outcome": outcome,
        "unknown_rate": rate,
        "top_reasons": reasons,
    }


def _drift_report(rng: random.Random, gate: dict) -> dict | None:
    u = rng.random()
    if u < 0.1:
        return None
    state = "pinned" if u < 0.55 else "unpinned" if u < 0.95 else "floating"
    out = gate["outcome"].upper()
    return {
        "run_id": gate["run_id"],
        "policy_hash": gate["policy_hash"],
        "schema_version": "1",
        "policy_state": state,
        "WARN_count": (1 if out == "WARN" else 0) + rng.choice([0, 0, 1]),
        "FAIL_count": 1 if out == "FAIL" else 0,
        "Unknown_count": rng.choice([0, 1, 2, 3]),
        "Overrides_count": rng.choice([0, 0, 0, 1]),
        "unknown_causes": {"contract": rng.choice([0, 1]), "schema": rng.choice([0, 0, 1])},
    }


def _metrics(rng: random.Random, late_policy: bool) -> dict | None:
    if rng.random() < 0.3:
        return None
    base = rng.choice([800, 1000, 1200])
    return {
        "samples_used": int(base * rng.uniform(0.55, 0.75)),
        "baseline_samples": base,
        "decision_disagreement": 1 if rng.random() < 0.005 else 0,
        "escalations": 0,
        "baseline_escalations": 0,
        "success": 1 if rng.random() < (0.975 if late_policy else 0.96) else 0,
        "latency_ms": round(rng.lognormvariate(5.1, 0.25), 1),
        "arm": "production" if rng.random() < 0.5 else "pipeline",
    }


def _field_issue(rng: random.Random, gate: dict) -> None:
    kind = rng.choice(["drop_rate", "bad_outcome", "drop_ts", "drop_policy", "rate_string", "drop_run_id"])
    if kind == "drop_rate":
        gate.pop("unknown_rate")
    elif kind == "bad_outcome":
        gate["outcome"] = "MAYBE"
    elif kind == "drop_ts":
        gate.pop("timestamp")
    elif kind == "drop_policy":
        gate.pop("policy_hash")
    elif kind == "rate_string":
        gate["unknown_rate"] = "high"
    else:
        gate.pop("run_id")


def _bad_bytes(kind: str, size: int) -> bytes:
    return {
        "not_json": b'{"run_id": "r-trunc", "outcome": "PA',
        "not_utf8": b'{"run_id": "r\xff\xfe", "outcome": "PASS"}',
        "not_object": b'["PASS", 0.1]',
        "empty": b"",
        "too_large": b'{"padding": "' + b" " * size + b'"}',
    }[kind]


# Runs per write batch: a day is generated and written as one batch (split into batches of this many
# runs if it holds more), so memory stays bounded at any corpus size (1M runs is ~2.6M files).
BATCH_RUNS = 20_000


def _first_run(spec: CorpusSpec, day_index: int) -> int:
    """Index of the first run on day `day_index`: the smallest i with i * days // runs >= day_index."""
    return -(-day_index * spec.runs // spec.days)


def _add_run(
    files: dict[str, bytes], rng: random.Random, spec: CorpusSpec, i: int, day_index: int, counts: dict
) -> None:
    day = spec.start + timedelta(days=day_index)
    secs = rng.randrange(86_400)
    ts = f"{day.isoformat()}T{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}Z"
    late = day_index >= spec.days // 2
    policy = spec.policy_hashes[
        min(len(spec.policy_hashes) - 1, day_index * len(spec.policy_hashes) // spec.days)
    ]
    run_id = f"r{i:07d}"
    folder = f"{day.isoformat()}/{run_id}"
    gate = _gate_result(rng, run_id, ts, policy, late)
    drift = _drift_report(rng, gate)
    metrics = _metrics(rng, late)
    if rng.random() < spec.field_issue_fraction:
        _field_issue(rng, gate)
        counts["field_issues"] += 1
    files[f"{folder}/gate_result.json"] = orjson.dumps(gate)
    if drift is not None:
        files[f"{folder}/drift_report.json"] = orjson.dumps(drift)
    if metrics is not None:
        files[f"{folder}/metrics.json"] = orjson.dumps(metrics)
    counts["runs"] += 1
    if spec.bad_fraction and rng.random() < spec.bad_fraction:
        kind = rng.choice(BAD_KINDS)
        target = rng.choice(["gate_result.json", "drift_report.json", "metrics.json"])
        files[f"{folder}/{target}"] = _bad_bytes(kind, spec.too_large_bytes)
        counts["bad_files"] += 1


def _add_duplicate(files: dict[str, bytes], spec: CorpusSpec, d: int, counts: dict) -> None:
    """A retried job reusing an earlier run_id (deterministic: draws nothing from the seeded rng)."""
    day = spec.start + timedelta(days=(d * 3) % spec.days)
    original = f"r{(d * 7) % max(spec.runs, 1):07d}"
    gate = {
        "run_id": original,
        "timestamp": f"{day.isoformat()}T23:59:0{d % 10}Z",
        "policy_hash": spec.policy_hashes[0],
        "outcome": "PASS",
        "unknown_rate": 0.01,
        "top_reasons": [],
    }
    files[f"{day.isoformat()}/{original}-retry{d}/gate_result.json"] = orjson.dumps(gate)
    counts["duplicates"] += 1


def _write_batch(out: Path, files: dict[str, bytes], order_rng: random.Random | None) -> int:
    paths = sorted(files)
    if order_rng is not None:
        order_rng.shuffle(paths)
    made: set[Path] = set()
    for rel in paths:
        target = out / rel
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        target.write_bytes(files[rel])
    return len(paths)


def generate(out: Path, spec: CorpusSpec, order_seed: int | None = None) -> dict[str, int]:
    """Write the corpus under `out`; returns counts of what was written (for tests to assert against).

    Streams: runs are drawn in run order from one seeded rng (run i lies on day i * days // runs) and
    written one day at a time (at most BATCH_RUNS runs per batch), so memory does not grow with the
    corpus. Without `order_seed` files are created in sorted path order; with it, each batch's creation
    order is shuffled (days are the pipeline's partitions, so this is the arrival order that matters).
    """
    if spec.days < 1 and (spec.runs or spec.duplicates):
        raise ValueError(f"days must be >= 1, got {spec.days}")
    rng = random.Random(spec.seed)
    order_rng = random.Random(order_seed) if order_seed is not None else None
    counts = {"runs": 0, "bad_files": 0, "field_issues": 0, "duplicates": 0, "files": 0}
    duplicates_by_day: dict[int, list[int]] = {}
    for d in range(spec.duplicates):
        duplicates_by_day.setdefault((d * 3) % spec.days, []).append(d)
    for day_index in range(spec.days):
        first, end = _first_run(spec, day_index), _first_run(spec, day_index + 1)
        for batch_start in range(first, max(end, first + 1), BATCH_RUNS):
            files: dict[str, bytes] = {}
            batch_end = min(end, batch_start + BATCH_RUNS)
            for i in range(batch_start, batch_end):
                _add_run(files, rng, spec, i, day_index, counts)
            if batch_end >= end:  # the day's last batch also gets its duplicate folders
                for d in duplicates_by_day.get(day_index, ()):
                    _add_duplicate(files, spec, d, counts)
            counts["files"] += _write_batch(out, files, order_rng)
    return counts


SAMPLE_SPEC = CorpusSpec(runs=72, days=12, start=date(2026, 3, 1), seed=2026, field_issue_fraction=0.05)


def write_sample(out: Path) -> dict[str, int]:
    """The bundled sample: a clean corpus plus exactly one bad input of each kind the pipeline handles."""
    counts = generate(out, SAMPLE_SPEC)
    bad = {
        "2026-03-02/r0000006/gate_result.json": _bad_bytes("not_json", 0),
        "2026-03-03/r0000012/drift_report.json": _bad_bytes("not_utf8", 0),
        "2026-03-04/r0000018/metrics.json": _bad_bytes("not_object", 0),
        "2026-03-05/r0000024/drift_report.json": _bad_bytes("empty", 0),
        "2026-03-06/r0000030/metrics.json": _bad_bytes("too_large", SAMPLE_SPEC.too_large_bytes),
        # A run folder whose CI job died before writing gate_result.json.
        "2026-03-07/r-aborted-0001/metrics.json": orjson.dumps({"samples_used": 1, "baseline_samples": 1}),
        # A retried job that reused the run_id of an earlier run on the same day.
        "2026-03-08/r0000045-retry/gate_result.json": orjson.dumps(
            {
                "run_id": "r0000045",
                "timestamp": "2026-03-08T23:59:59Z",
                "policy_hash": "b71c02",
                "outcome": "WARN",
                "unknown_rate": 0.05,
                "top_reasons": ["flaky_test"],
            }
        ),
        # Files that are not artifacts are counted as ignored, never read.
        "2026-03-09/r0000050/build.log": b"not an artifact\n",
    }
    for rel, data in bad.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    counts["bad_inputs"] = len(bad)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 3, 1))
    parser.add_argument("--bad", type=float, default=0.0, help="fraction of runs with one bad file")
    parser.add_argument("--duplicates", type=int, default=0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--order-seed", type=int, default=None, help="shuffle file creation order (within each day)"
    )
    parser.add_argument("--sample", action="store_true", help="write the bundled sample corpus instead")
    args = parser.parse_args(argv)
    if args.sample:
        print(orjson.dumps(write_sample(args.out), option=orjson.OPT_SORT_KEYS).decode())
        return
    spec = CorpusSpec(
        runs=args.runs,
        days=args.days,
        start=args.start,
        bad_fraction=args.bad,
        duplicates=args.duplicates,
        seed=args.seed,
    )
    counts = generate(args.out, spec, args.order_seed)
    print(orjson.dumps(counts, option=orjson.OPT_SORT_KEYS).decode())


if __name__ == "__main__":
    main()
