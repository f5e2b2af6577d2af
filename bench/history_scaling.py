"""Does the cost grow with history? Cold build (wall, peak RSS, the RSS peak of each step), then one new day
of N runs on top of it (step time, wall), then a whitelist backfill (wall, artifact files read), on one corpus.

    .venv/bin/python bench/history_scaling.py --artifacts /work/corpus100k --work /tmp/hs100k [--new-day-runs 1000]
        [--backfill] [--floor] [--in-place] [--skip-cold]

Run it on two corpus sizes (e.g. 100k and 1M runs) and compare: issue 16 asks for the 1M peak RSS <= 1.5 GiB and
<= 1.3x the 100k peak, one new day after 1M <= 1.5x the same day after 100k (step time), and the backfill at 1M
<= 10% of its cold build's wall with 0 artifact files read.

The pipeline runs as a subprocess (`gate-pipeline run` / `backfill`, the bench's config copy that builds future
date folders); its peak RSS comes from `os.wait4`, and a thread samples its resident size (/proc/<pid>/status,
every 50 ms) so each step's own peak can be read against the run's step stats. Worker processes of the daily
step are separate processes with their own, smaller peaks (not in these figures).

The new day is written into a hard-linked copy of the corpus (`--work/artifacts`, `cp -al`, so the corpus
stays untouched for other readers), or with `--in-place` into the corpus itself and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import issue5  # noqa: E402
import run_bench  # noqa: E402  (the bench's helpers: config copy, step stats, child env, new-day writer)

SAMPLE_S = 0.05


@dataclass
class Measured:
    what: str
    wall_s: float
    peak_mb: float  # os.wait4 ru_maxrss of the CLI process
    returncode: int
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds
    step_peak_mb: dict[str, float] = field(default_factory=dict)  # step -> highest sampled RSS in it
    files_read: int | None = None
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def step_s(self) -> float:
        return sum(self.steps.values())


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_sampled(
    cmd: list[str], home: Path, log: Path
) -> tuple[run_bench.ChildResult, list[tuple[float, int]]]:
    """Run one child like run_bench.run_child, sampling its RSS (epoch s, KiB) meanwhile."""
    samples: list[tuple[float, int]] = []
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        started = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=run_bench._child_env(home), cwd=run_bench.ROOT
        )
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append((time.time(), _rss_kb(proc.pid)))
                done.wait(SAMPLE_S)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        done.set()
        thread.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text("utf-8", "replace")
    result = run_bench.ChildResult(wall, usage.ru_maxrss / 1024, proc.returncode, started, time.time(), text)
    return result, samples


def measure(what: str, cmd: list[str], home: Path, log: Path) -> Measured:
    load = os.getloadavg()
    child, samples = run_sampled(cmd, home, log)
    m = Measured(what, child.wall_s, child.maxrss_mb, child.returncode, load=load)
    run = run_bench.RUN_LINE.search(child.stdout)
    if run:
        for key, start, end in run_bench.step_stats(home, run.group(1)):
            m.steps[key] = end - start
            inside = [kb for t, kb in samples if start <= t <= end]
            m.step_peak_mb[key] = max(inside, default=0) / 1024
    reads = re.search(r"artifact files read(?: during the backfill)?: (\d+)", child.stdout)
    m.files_read = int(reads.group(1)) if reads else None
    if child.returncode != 0:
        print(f"  WARNING: {what} exited {child.returncode}; log {log}", flush=True)
    return m


def show(m: Measured) -> None:
    top = sorted(m.step_peak_mb.items(), key=lambda kv: -kv[1])[:4]
    print(
        f"  {m.what}: wall {m.wall_s:.1f}s, steps {m.step_s:.1f}s, peak RSS {m.peak_mb:.0f} MB, "
        f"files read {m.files_read}, load {m.load[0]:.1f}",
        flush=True,
    )
    print("    step s: " + ", ".join(f"{k} {v:.1f}" for k, v in m.steps.items() if v >= 0.05))
    print("    step peak MB: " + ", ".join(f"{k} {v:.0f}" for k, v in top))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True, help="out, instance, config copy, logs, results.json")
    p.add_argument("--new-day-runs", type=int, default=1000, help="0: no incremental run")
    p.add_argument("--backfill", action="store_true", help="then a whitelist backfill over all days")
    p.add_argument("--floor", action="store_true", help="then Dagster's floor for the new day (no-op steps)")
    p.add_argument(
        "--in-place", action="store_true", help="add the new day to the corpus itself (then remove)"
    )
    p.add_argument("--skip-cold", action="store_true", help="reuse --work's out/instance from an earlier run")
    args = p.parse_args(argv)

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    config = run_bench.bench_config(work)
    out, home = work / "out", work / "dagster_home"
    artifacts = args.artifacts.resolve()
    if not args.in_place and args.new_day_runs:
        linked = work / "artifacts"
        if not linked.exists():
            print(f"hard-linking {artifacts} into {linked} ...", flush=True)
            subprocess.run(["cp", "-al", str(artifacts), str(linked)], check=True)
        artifacts = linked
    exe = str(run_bench.VENV_BIN / "gate-pipeline")
    common = ["--artifacts", str(artifacts), "--out", str(out), "--config", str(config)]
    results: list[Measured] = []

    if not args.skip_cold:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        run_bench.run_child([sys.executable, str(BENCH / "bare_read.py"), str(artifacts)])  # warm the cache
        results.append(measure("cold build", [exe, "run", *common], home, work / "cold.log"))
        show(results[-1])

    if args.new_day_runs:
        day, files = run_bench.add_incremental_runs(artifacts, args.new_day_runs, seed=7)
        try:
            m = measure(
                f"new day {day} ({args.new_day_runs} runs)", [exe, "run", *common], home, work / "inc.log"
            )
        finally:
            shutil.rmtree(artifacts / day, ignore_errors=True)
        results.append(m)
        show(m)
        # The next run sees the day gone and removes it again (a run of its own, not timed here).
        measure("new day removed", [exe, "run", *common], home, work / "inc-removed.log")

    if args.backfill:
        wl_config = issue5.edited_whitelist_config(config, work / "config-backfill")
        cmd = [exe, "backfill", "--artifacts", str(artifacts), "--out", str(out), "--config", str(wl_config)]
        results.append(measure("whitelist backfill", cmd, home, work / "backfill.log"))
        show(results[-1])

    if args.floor and args.new_day_runs:
        print(run_floor(artifacts, out, home, work), flush=True)

    (work / "results.json").write_text(json.dumps([asdict(m) for m in results], indent=1))
    return 0


def run_floor(artifacts: Path, out: Path, home: Path, work: Path) -> str:
    """bench/dagster_floor.py's one-new-day floor on a copy of this instance (median of 3)."""
    import warnings
    from datetime import date, timedelta

    import dagster_floor

    from gate_pipeline.definitions import build_definitions
    from gate_pipeline.settings import Settings

    days = sorted(d.name for d in artifacts.iterdir() if re.match(r"^\d{4}-\d{2}-\d{2}$", d.name))
    new_day = (date.fromisoformat(days[-1]) + timedelta(days=1)).isoformat()
    settings = Settings.from_env(
        artifacts_url=str(artifacts), outputs_url=str(out), data_url=str(out / "_data"), start_date=days[0]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inc, _ = dagster_floor.measure(build_definitions(settings), home, work, new_day, days, repeat=3)
    return f"  Dagster floor, one new day: {inc.steps_s:.2f}s of step time, {inc.run_wall_s:.2f}s run wall ({inc.events} events)"


if __name__ == "__main__":
    sys.exit(main())
