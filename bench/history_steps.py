"""Peak RSS and CPU of the whole-history steps (rollout_series, statistics, decision_timeline, decision) on a
stored data folder, each step in its own process (as the CLI runs them: Dagster, execute_in_process), and a
larger history made from a smaller one by copying its classified days with shifted dates and run ids.

    .venv/bin/python bench/history_steps.py --data /tmp/hs100k/out/_data --config /tmp/hs100k/config \\
        --work /tmp/steps1m --copies 10

`--data`: the data folder of a cold build (its classified_runs and counts are read, never written);
`--copies N`: the history in `--work/data` is N copies of those days, copy k shifted by k x (days spanned)
days, its run ids suffixed `~k` (k > 0), so 100k runs become N x 100k with the same per-day shape.
Each step's process prints its peak RSS (ru_maxrss: Dagster and the imports included, as in a CLI run),
the RSS before the step (after imports) and its CPU time (user + sys); the series cache starts empty.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

STEPS = {
    "series": ["rollout_series"],
    "statistics": [
        "unknown_rate_stats",
        "class_frequencies",
        "unknown_spikes",
        "risk_measures",
        "stratum_metrics",
        "warn_threshold",
        "baseline_deltas",
    ],
    "timeline": ["decision_timeline"],
    "decision": ["gate_decision", "rollout_report"],
}


def _shift(day: str, days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def make_history(source: Path, target: Path, copies: int) -> int:
    """`copies` copies of the classified days of `source` into `target` (a data folder); rows written."""
    from gate_pipeline.lib.storage import parquet_bytes, sha256_bytes

    days = sorted(p.stem for p in (source / "classified_runs").glob("*.parquet"))
    span = (date.fromisoformat(days[-1]) - date.fromisoformat(days[0])).days + 1
    for folder in ("classified_runs", "classified_runs_versions", "ingest_counts", "table_counts"):
        (target / folder).mkdir(parents=True, exist_ok=True)
    rows = 0
    for day in days:
        frame = pd.read_parquet(source / "classified_runs" / f"{day}.parquet")
        counts = {
            name: (source / name / f"{day}.json").read_bytes()
            for name in ("ingest_counts", "table_counts")
            if (source / name / f"{day}.json").exists()
        }
        for k in range(copies):
            new_day = _shift(day, k * span)
            copy = frame.copy()
            if k:
                copy["run_id"] = copy["run_id"] + f"~{k}"
                copy["timestamp"] = copy["timestamp"] + pd.Timedelta(days=k * span)
                copy["date"] = new_day
                copy["run_path"] = new_day + copy["run_path"].str.slice(len(day))
            payload = parquet_bytes(copy)
            (target / "classified_runs" / f"{new_day}.parquet").write_bytes(payload)
            (target / "classified_runs_versions" / f"{new_day}.sha256").write_text(sha256_bytes(payload))
            for name, raw in counts.items():
                (target / name / f"{new_day}.json").write_bytes(raw)
            rows += len(copy)
    return rows


def run_step(work: Path, config: Path, step: str) -> dict:
    """One step in this process (the child side)."""
    import dagster as dg

    from gate_pipeline.definitions import build_definitions
    from gate_pipeline.settings import Settings

    data = work / "data"
    days = sorted(p.stem for p in (data / "classified_runs").glob("*.parquet"))
    (work / "artifacts").mkdir(exist_ok=True)
    settings = Settings(
        artifacts_url=str(work / "artifacts"),
        data_url=str(data),
        outputs_url=str(work / "out"),
        config_url=str(config),
        start_date=days[0],
    )
    defs = build_definitions(settings)
    job = defs.resolve_job_def("gate_pipeline_all")
    before = _rss_mb()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey(k) for k in STEPS[step]],
            raise_on_error=True,
        )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "step": step,
        "success": result.success,
        "wall_s": round(time.perf_counter() - t0, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime - usage0.ru_utime - usage0.ru_stime, 2),
        "rss_before_mb": round(before),
        "peak_mb": round(usage.ru_maxrss / 1024),
    }


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="data folder of a cold build (read only)")
    p.add_argument("--config", type=Path, required=True, help="the config folder that build used")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--copies", type=int, default=1)
    p.add_argument("--steps", default=",".join(STEPS))
    p.add_argument(
        "--keep-series", action="store_true", help="reuse the stored series outputs (other steps only)"
    )
    p.add_argument("--run-step", help=argparse.SUPPRESS)  # the child side
    args = p.parse_args(argv)
    work = args.work.resolve()
    if args.run_step:
        print(json.dumps(run_step(work, args.config.resolve(), args.run_step)))
        return 0
    if not (work / "data" / "classified_runs").exists():
        if args.data is None:
            p.error("--data is needed to make the history")
        t0 = time.perf_counter()
        rows = make_history(args.data.resolve(), work / "data", args.copies)
        print(f"history: {rows} rows in {time.perf_counter() - t0:.0f}s", flush=True)
    for name in ("out", "home") if not args.keep_series else ("home",):
        shutil.rmtree(work / name, ignore_errors=True)
    stored = ["statistics", "decision_timeline.parquet"]
    if not args.keep_series:
        stored += ["rollout_series_cache", "rollout_runs.parquet"]
    for name in stored:
        target = work / "data" / name
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    (work / "home").mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(work / "home")}
    results = []
    for step in args.steps.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--config",
            str(args.config),
            "--work",
            str(work),
            "--run-step",
            step,
        ]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode:
            print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(
            f"  {step}: peak {r['peak_mb']} MB (before the step {r['rss_before_mb']} MB), "
            f"cpu {r['cpu_s']} s, wall {r['wall_s']} s",
            flush=True,
        )
    (work / "steps.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
