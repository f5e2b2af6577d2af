"""Benchmark: cold build of the whole asset graph vs a naive script vs a bare read loop (issue 2; hooks for issue 5).

    make bench                                   # sizes 10k,100k, 3 trials each
    make bench BENCH_ARGS="--sizes 1000000"      # 1M runs, when asked
    make bench BENCH_ARGS="--sizes 100000 --repeat 1 --incremental --profile"
    .venv/bin/python bench/run_bench.py --sizes 1000000 --generate-only   # pre-generate a corpus only

For each size a seeded corpus is generated once into bench/results/<size>/artifacts (reused while its
marker file matches), then each trial times, as separate subprocesses on a warm page cache:
  (a) `gate-pipeline run` (fresh DAGSTER_HOME and --out per trial), split into Dagster start-up,
      each step's duration (read from the run's step stats) and the tail after the last step;
  (b) bench/naive_reference.py (json.load loop + csv + statistics.median);
  (c) bench/bare_read.py (walk + open + read, no parsing).
Wall time and peak RSS come from os.wait4 on each child. Medians of the trials are reported, all trial
values are kept, and the latest figures replace the generated section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent
RUN_LINE = re.compile(r"dagster run (\S+) \((success|FAILED)\), instance (.+)$", re.M)
INCREMENTAL_PREFIX = "inc-"

import dagster_floor  # noqa: E402  (bench/ is run as a script: its folder is on sys.path)
import issue5  # noqa: E402
import whatif as whatif_bench  # noqa: E402
from bench_report import machine, report, write_benchmarks_md  # noqa: E402

# --------------------------------------------------------------------------------------------- corpus


def days_for(runs: int, override: int | None = None) -> int:
    """~1 day per 1,000 runs, at least 10 days, at most a year (or the --days override)."""
    return override if override else min(365, max(10, round(runs / 1000)))


def _generator_fingerprint() -> str:
    # A changed generator invalidates the cached corpora (their content would differ).
    return hashlib.sha256((ROOT / "gate_pipeline" / "synthetic.py").read_bytes()).hexdigest()[:16]


def ensure_corpus(
    size_dir: Path, runs: int, days: int, bad: float, duplicates: int, seed: int
) -> tuple[Path, dict]:
    """Generate the corpus once; reuse it while the marker (spec + generator fingerprint) matches."""
    artifacts = size_dir / "artifacts"
    marker = size_dir / "corpus.json"
    spec = {
        "runs": runs,
        "days": days,
        "bad": bad,
        "duplicates": duplicates,
        "seed": seed,
        "generator": _generator_fingerprint(),
    }
    _remove_incremental_days(artifacts)  # left behind by an interrupted --incremental
    if marker.exists() and artifacts.is_dir():
        stored = json.loads(marker.read_text())
        if stored.get("spec") == spec:
            print(f"  corpus: reusing {artifacts} ({stored['counts']})")
            return artifacts, stored["counts"]
    shutil.rmtree(artifacts, ignore_errors=True)
    marker.unlink(missing_ok=True)
    tmp = size_dir / "artifacts.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    size_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"  corpus: generating {runs} runs over {days} days (bad={bad}, duplicates={duplicates}, seed={seed}) ...",
        flush=True,
    )
    t0 = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "gate_pipeline.synthetic",
        "--out",
        str(tmp),
        "--runs",
        str(runs),
        "--days",
        str(days),
        "--bad",
        str(bad),
        "--duplicates",
        str(duplicates),
        "--seed",
        str(seed),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    counts = json.loads(out.strip().splitlines()[-1])
    tmp.rename(artifacts)
    marker.write_text(json.dumps({"spec": spec, "counts": counts}, sort_keys=True, indent=1))
    print(f"  corpus: {counts} in {time.perf_counter() - t0:.1f}s")
    return artifacts, counts


def generate_only(args: argparse.Namespace) -> None:
    """--generate-only: make sure the corpus of each size exists (generate or reuse), time it, nothing else."""
    for runs in args.sizes:
        days = days_for(runs, args.days)
        print(f"\n== {runs} runs, {days} days: corpus only ==", flush=True)
        t0 = time.perf_counter()
        artifacts, counts = ensure_corpus(
            args.results / str(runs), runs, days, args.bad, args.duplicates, args.seed
        )
        # The generator is the only child, so the children's peak RSS is its peak (KiB on Linux).
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(
            f"  {artifacts}: {counts} ready in {time.perf_counter() - t0:.1f}s "
            f"(generator peak RSS so far {peak_mb:.0f} MB)",
            flush=True,
        )


def corpus_size(artifacts: Path) -> tuple[int, int]:
    files = total = 0
    for dirpath, _, filenames in os.walk(artifacts):
        for name in filenames:
            files += 1
            total += os.stat(os.path.join(dirpath, name)).st_size
    return files, total


# --------------------------------------------------------------------------------------------- children


@dataclass
class ChildResult:
    wall_s: float
    maxrss_mb: float
    returncode: int
    started: float  # epoch seconds, comparable with Dagster's step stats
    ended: float
    stdout: str
    cpu_s: float = 0.0  # user + system of the child and of every descendant it waited for (os.wait4)


def run_child(cmd: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> ChildResult:
    """Run one child; wall time and its own peak RSS via os.wait4 (per child, unlike RUSAGE_CHILDREN)."""
    with tempfile.TemporaryFile() as out:
        started = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        ended = time.time()
        proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(text)
    # Linux reports ru_maxrss in KiB.
    cpu = usage.ru_utime + usage.ru_stime
    return ChildResult(wall, usage.ru_maxrss / 1024, proc.returncode, started, ended, text, cpu)


def _child_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["DAGSTER_HOME"] = str(home)
    env.pop("CI_ARTIFACT_PATH", None)
    env.pop("GATE_PIPELINE_OUT", None)
    return env


@dataclass
class PipelineRun:
    child: ChildResult
    run_id: str | None
    success: bool = True
    failure: str = ""
    steps: dict[str, float] = field(default_factory=dict)  # step_key -> seconds, in execution order
    startup_s: float = 0.0
    gaps_s: float = 0.0
    tail_s: float = 0.0
    startup_parts: dict[str, float] = field(default_factory=dict)  # the start-up split by the run's events
    events: int = 0  # Dagster events the run stored
    stages: dict = field(default_factory=dict)  # daily_tables' stage times (lib/daily.stages_message)

    @property
    def workers_cpu_s(self) -> float:
        """CPU of daily_tables' worker processes, from its stage line (0 when it ran in-process). They are
        children of a forkserver the CLI never waits for, so os.wait4 does not include them."""
        if not self.stages or self.stages.get("processes", 1) <= 1:
            return 0.0
        return sum(v["cpu_s"] for v in self.stages["workers"].values())

    @property
    def cpu_s(self) -> float:
        """User + system CPU of the CLI (os.wait4, with the children it waited for) and its workers."""
        return self.child.cpu_s + self.workers_cpu_s

    @property
    def compute_s(self) -> float:
        return sum(self.steps.values())


def step_stats(home: Path, run_id: str) -> list[tuple[str, float, float]]:
    """(step_key, start, end) epoch seconds of one run, from the run's instance."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        stats = instance.get_run_step_stats(run_id)
    finally:
        instance.dispose()
    rows = [(s.step_key, s.start_time, s.end_time) for s in stats if s.start_time and s.end_time]
    return sorted(rows, key=lambda r: r[1])


def bench_config(results: Path) -> Path:
    """The repo's config, except that date folders in the future are built: the synthetic corpora run from
    2026-03-01 for up to 365 days, past today, and the contenders must all read the same days."""
    config = results / "config"
    shutil.rmtree(config, ignore_errors=True)
    shutil.copytree(ROOT / "config", config)
    pipeline = config / "pipeline.yaml"
    data = yaml.safe_load(pipeline.read_text()) or {}
    data.setdefault("partitions", {})["max_future_days"] = 3650
    pipeline.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def run_pipeline(
    artifacts: Path, out: Path, home: Path, log: Path, fresh: bool = True, config: Path | None = None
) -> PipelineRun:
    """One `gate-pipeline run`; fresh=True wipes --out and DAGSTER_HOME first (a cold build)."""
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    cmd = [str(VENV_BIN / "gate-pipeline"), "run", "--artifacts", str(artifacts), "--out", str(out)]
    if config is not None:
        cmd += ["--config", str(config)]
    child = run_child(cmd, _child_env(home), log)
    match = RUN_LINE.search(child.stdout)
    if not match:
        tail = "\n".join(child.stdout.splitlines()[-30:])
        raise SystemExit(
            f"gate-pipeline run did not start a run (exit {child.returncode}); log {log}:\n{tail}"
        )
    result = PipelineRun(child, match.group(1), success=child.returncode == 0 and match.group(2) == "success")
    if not result.success:
        # A failed run is still timed (up to the failure) and flagged in the report, not silently dropped.
        failed = [
            line.strip()
            for line in child.stdout.splitlines()
            if "Execution of step" in line and "failed" in line
        ]
        result.failure = "; ".join(dict.fromkeys(failed)) or f"exit {child.returncode}"
        print(f"  WARNING: gate-pipeline run FAILED ({result.failure}); log {log}", flush=True)
    stats = step_stats(home, result.run_id)
    if stats:
        result.steps = {key: end - start for key, start, end in stats}
        first, last = stats[0][1], max(end for _, _, end in stats)
        result.startup_s = max(0.0, first - child.started)
        result.tail_s = max(0.0, child.ended - last)
        result.gaps_s = max(0.0, (last - first) - result.compute_s)
        run_breakdown(home, result)
    return result


def run_breakdown(home: Path, result: PipelineRun) -> None:
    """From the run's event log: the start-up split at run creation (its first event, the planned
    events) and the run's start, the number of events, and daily_tables' stage line."""
    import dagster as dg

    from gate_pipeline.lib.daily import STAGES_LOG

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        logs = instance.all_logs(result.run_id)
    finally:
        instance.dispose()
    result.events = len(logs)

    def first(kind: str) -> float | None:
        return next(
            (e.timestamp for e in logs if e.dagster_event and e.dagster_event.event_type_value == kind), None
        )

    created, started, step = logs[0].timestamp if logs else None, first("PIPELINE_START"), first("STEP_START")
    if created and started and step:
        result.startup_parts = {
            "process start to run creation (imports, Definitions, instance, listing the corpus)": created
            - result.child.started,
            "run creation (planned events: one per asset and partition)": started - created,
            "run start to first step": step - started,
        }
    for entry in logs:
        if entry.user_message.startswith(STAGES_LOG):
            result.stages = json.loads(entry.user_message[len(STAGES_LOG) :])


# --------------------------------------------------------------------------------------------- trials


@dataclass
class SizeResult:
    runs: int
    days: int
    files: int
    bytes: int
    pipeline: list[PipelineRun] = field(default_factory=list)
    naive: list[ChildResult] = field(default_factory=list)
    script: list[ChildResult] = field(default_factory=list)
    bare: list[ChildResult] = field(default_factory=list)
    incremental: PipelineRun | None = None
    incremental_cold: PipelineRun | None = None

    @staticmethod
    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    @property
    def pipeline_s(self) -> float:
        return self.med([p.child.wall_s for p in self.pipeline])

    @property
    def naive_s(self) -> float:
        return self.med([c.wall_s for c in self.naive])

    @property
    def script_s(self) -> float:
        return self.med([c.wall_s for c in self.script])

    @property
    def bare_s(self) -> float:
        return self.med([c.wall_s for c in self.bare])

    def breakdown(self) -> dict[str, float]:
        """Median seconds of each part of the pipeline's wall time."""
        parts: dict[str, list[float]] = {"start-up (to first step)": [p.startup_s for p in self.pipeline]}
        for key in dict.fromkeys(k for p in self.pipeline for k in p.steps):
            parts[f"step {key}"] = [p.steps.get(key, 0.0) for p in self.pipeline]
        parts["gaps between steps"] = [p.gaps_s for p in self.pipeline]
        parts["tail (after last step)"] = [p.tail_s for p in self.pipeline]
        return {name: self.med(vals) for name, vals in parts.items()}


def bench_size(args: argparse.Namespace, runs: int, keep_last: bool) -> SizeResult:
    repeat = args.repeats[runs]
    size_dir = args.results / str(runs)
    days = days_for(runs, args.days)
    if args.corpus:  # a corpus generated elsewhere (shared, read-only): used as it is
        artifacts = args.corpus
        days = sum(1 for d in artifacts.iterdir() if re.match(r"^\d{4}-\d{2}-\d{2}$", d.name))
        size_dir.mkdir(parents=True, exist_ok=True)
    print(f"\n== {runs} runs, {days} days ==", flush=True)
    if not args.corpus:
        artifacts, _ = ensure_corpus(size_dir, runs, days, args.bad, args.duplicates, args.seed)
    files, nbytes = corpus_size(artifacts)
    result = SizeResult(runs, days, files, nbytes)
    print(f"  corpus: {files} files, {nbytes / 1e6:.1f} MB")

    def warm() -> None:
        # Right before every timed command, so each one starts from the same warm page/dentry cache
        # (measured: a second pass over the same days is ~2.7x faster than the first).
        run_child([sys.executable, str(BENCH / "bare_read.py"), str(artifacts)])

    for trial in range(1, repeat + 1):
        tdir = size_dir / f"trial-{trial}"
        warm()
        pipe = run_pipeline(
            artifacts, tdir / "out", tdir / "dagster_home", tdir / "pipeline.log", config=args.config_dir
        )
        children = {}
        if args.script:
            # The one-loop script a user would write (shared/bench/naive.py), interleaved with ours.
            warm()
            children["script"] = run_child(
                [sys.executable, str(args.script), str(artifacts), str(tdir / "script.csv")],
                log=tdir / "script.log",
            )
        warm()
        children["naive"] = naive = run_child(
            [sys.executable, str(BENCH / "naive_reference.py"), str(artifacts), str(tdir / "naive.csv")],
            log=tdir / "naive.log",
        )
        warm()
        children["bare read"] = bare = run_child(
            [sys.executable, str(BENCH / "bare_read.py"), str(artifacts)], log=tdir / "bare.log"
        )
        for name, child in children.items():
            if child.returncode != 0:
                raise SystemExit(f"{name} failed (exit {child.returncode}):\n{child.stdout[-2000:]}")
        result.pipeline.append(pipe)
        result.naive.append(naive)
        result.bare.append(bare)
        if "script" in children:
            result.script.append(children["script"])
        steps = ", ".join(f"{k} {v:.1f}s" for k, v in pipe.steps.items())
        print(
            f"  trial {trial}/{repeat}: pipeline {pipe.child.wall_s:.1f}s ({pipe.child.maxrss_mb:.0f} MB; "
            f"start-up {pipe.startup_s:.1f}s, {steps}, tail {pipe.tail_s:.1f}s) | "
            + (f"script {children['script'].wall_s:.1f}s | " if "script" in children else "")
            + f"naive {naive.wall_s:.1f}s "
            f"({naive.maxrss_mb:.0f} MB) | bare read {bare.wall_s:.2f}s ({bare.maxrss_mb:.0f} MB)",
            flush=True,
        )
        # Keep only the last trial's outputs (disk), and the last cold build for --incremental.
        if trial < repeat or not keep_last:
            shutil.rmtree(tdir / "out", ignore_errors=True)
            shutil.rmtree(tdir / "dagster_home", ignore_errors=True)
    return result


PROBES = {
    "python + import dagster": "import dagster",
    "+ import gate_pipeline.definitions": "import dagster, gate_pipeline.definitions",
    "+ build Definitions": (
        "from gate_pipeline.definitions import build_definitions, ALL_ASSETS_JOB;"
        "from gate_pipeline.settings import Settings;"
        "build_definitions(Settings.from_env()).resolve_job_def(ALL_ASSETS_JOB)"
    ),
    "+ fresh SQLite instance": (
        "import sys, dagster as dg; from gate_pipeline.definitions import build_definitions, ALL_ASSETS_JOB;"
        "from gate_pipeline.settings import Settings;"
        "build_definitions(Settings.from_env()).resolve_job_def(ALL_ASSETS_JOB);"
        "i = dg.DagsterInstance.get(); i.get_runs(limit=1); i.dispose()"
    ),
}


def startup_probes(args: argparse.Namespace, repeat: int = 3) -> dict[str, float]:
    """Cumulative cost of what happens before the first step, each as a fresh process (median of `repeat`)."""
    out: dict[str, float] = {}
    for name, code in PROBES.items():
        walls = []
        for i in range(repeat):
            home = args.results / "probe_home" / str(i)
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True)
            shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
            child = run_child([sys.executable, "-c", code], _child_env(home))
            if child.returncode != 0:
                raise SystemExit(f"start-up probe {name!r} failed:\n{child.stdout[-2000:]}")
            walls.append(child.wall_s)
        out[name] = statistics.median(walls)
    shutil.rmtree(args.results / "probe_home", ignore_errors=True)
    return out


# --------------------------------------------------------------------------------------------- incremental


def _remove_incremental_days(artifacts: Path) -> None:
    if not artifacts.is_dir():
        return
    for day in artifacts.iterdir():
        # Only days the benchmark added hold inc-* runs only; never touch a generated day.
        if (
            day.is_dir()
            and all(p.name.startswith(INCREMENTAL_PREFIX) for p in day.iterdir())
            and any(day.iterdir())
        ):
            shutil.rmtree(day)


def add_incremental_runs(artifacts: Path, count: int, seed: int) -> tuple[str, int]:
    """Write `count` new runs (fresh run_ids) into a new day folder after the corpus's last day."""
    import orjson

    from gate_pipeline import synthetic

    last = max(d.name for d in artifacts.iterdir() if re.match(r"^\d{4}-\d{2}-\d{2}$", d.name))
    new_day = date.fromisoformat(last) + timedelta(days=1)
    with tempfile.TemporaryDirectory() as tmp:
        spec = synthetic.CorpusSpec(runs=count, days=1, start=new_day, seed=seed + 1)
        synthetic.generate(Path(tmp), spec)
        src_day = Path(tmp) / new_day.isoformat()
        dst_day = artifacts / new_day.isoformat()
        written = 0
        for run_dir in sorted(src_day.iterdir()):
            new_id = f"{INCREMENTAL_PREFIX}{run_dir.name}"
            target = dst_day / new_id
            target.mkdir(parents=True)
            for f in sorted(run_dir.iterdir()):
                payload = orjson.loads(f.read_bytes())
                if "run_id" in payload:  # fresh ids so the new runs never collide with history
                    payload["run_id"] = new_id
                (target / f.name).write_bytes(orjson.dumps(payload))
                written += 1
    return new_day.isoformat(), written


def bench_incremental(args: argparse.Namespace, result: SizeResult) -> None:
    """After the last cold build: 100 new runs in a new day, then a second run over the same --out/instance."""
    size_dir = args.results / str(result.runs)
    tdir = size_dir / f"trial-{args.repeats[result.runs]}"
    artifacts = size_dir / "artifacts"
    day, files = add_incremental_runs(artifacts, args.incremental_runs, args.seed)
    print(
        f"\n== incremental: {args.incremental_runs} new runs ({files} files) in {day}, second run over "
        f"{tdir / 'out'} ==",
        flush=True,
    )
    try:
        inc = run_pipeline(
            artifacts,
            tdir / "out",
            tdir / "dagster_home",
            tdir / "incremental.log",
            fresh=False,
            config=args.config_dir,
        )
    finally:
        shutil.rmtree(artifacts / day, ignore_errors=True)  # keep the cached corpus as generated
    result.incremental = inc
    result.incremental_cold = result.pipeline[-1]
    cold = result.incremental_cold
    for key in dict.fromkeys([*cold.steps, *inc.steps]):
        print(
            f"  step {key:<20} cold {cold.steps.get(key, 0.0):8.2f}s  incremental {inc.steps.get(key, 0.0):8.2f}s"
        )
    ratio = inc.compute_s / cold.compute_s if cold.compute_s else float("nan")
    print(
        f"  step time: cold {cold.compute_s:.2f}s, incremental {inc.compute_s:.2f}s = {ratio:.1%} "
        f"(issue 5 target <= 2%); wall {inc.child.wall_s:.1f}s vs {cold.child.wall_s:.1f}s"
    )


def bench_backfill(args: argparse.Namespace, result: SizeResult) -> list[str]:
    """Whitelist backfill over all history in one run, against the last cold build (issue 5: <= 10%)."""
    size_dir = args.results / str(result.runs)
    tdir = size_dir / f"trial-{args.repeats[result.runs]}"
    cold = result.pipeline[-1]
    print(f"\n== whitelist backfill over {tdir / 'out'} ==", flush=True)
    bf = issue5.whitelist_backfill(
        run_child,
        step_stats,
        _child_env,
        VENV_BIN,
        size_dir / "artifacts",
        tdir / "out",
        tdir / "dagster_home",
        tdir / "backfill.log",
        base_config=args.config_dir,
    )
    ratio = bf.wall_s / cold.child.wall_s
    line = (
        f"Whitelist backfill (issue 5) after the {result.runs:,}-run cold build: wall {bf.wall_s:.1f}s vs cold "
        f"{cold.child.wall_s:.1f}s = {ratio:.1%} (target <= 10%: {'met' if ratio <= 0.10 else 'NOT met'}); step time "
        f"{bf.compute_s:.1f}s vs {cold.compute_s:.1f}s; artifact files read: {bf.files_read} (target 0)"
        + ("" if bf.success else " — backfill FAILED")
    )
    print("  " + line)
    return ["", line]


def bench_whatif(args: argparse.Namespace, result: SizeResult) -> list[str]:
    """What-if replay on the last cold build's outputs (bench/whatif.py), against that build's wall time (a
    backfill before it leaves the same stored runs)."""
    tdir = args.results / str(result.runs) / f"trial-{args.repeats[result.runs]}"
    print(f"\n== what-if replay over {tdir / 'out'} ==", flush=True)
    cold = result.pipeline[-1].child.wall_s
    return ["", *whatif_bench.bench_whatif(tdir / "out", args.config_dir, tdir / "dagster_home", cold)]


def bench_floor(args: argparse.Namespace, result: SizeResult, startup_s: float) -> list[str]:
    """Dagster's own cost for our graph with no-op steps (bench/dagster_floor.py), against the issue-5 budgets."""
    from gate_pipeline.definitions import build_definitions
    from gate_pipeline.settings import Settings

    size_dir = args.results / str(result.runs)
    tdir = size_dir / f"trial-{args.repeats[result.runs]}"
    cold = result.pipeline[-1]
    days = sorted(
        d.name for d in (size_dir / "artifacts").iterdir() if re.match(r"^\d{4}-\d{2}-\d{2}$", d.name)
    )
    new_day = (date.fromisoformat(days[-1]) + timedelta(days=1)).isoformat()
    print(
        f"\n== Dagster floor: the same graph with no-op steps, on a copy of {tdir / 'dagster_home'} ==",
        flush=True,
    )
    settings = Settings.from_env(
        artifacts_url=str(size_dir / "artifacts"),
        outputs_url=str(tdir / "out"),
        data_url=str(tdir / "out" / "_data"),
        start_date=days[0],
    )
    real = build_definitions(settings)
    floors = {}
    with warnings.catch_warnings():  # Dagster's beta warnings for APIs we use on purpose
        warnings.simplefilter("ignore")
        floors["SQLite (the default instance; a copy of this trial's)"] = dagster_floor.measure(
            real, tdir / "dagster_home", size_dir, new_day, days, repeat=3
        )
        try:
            floors["Postgres (scale-out instance storage, a loopback server)"] = (
                dagster_floor.measure_postgres(real, size_dir, new_day, days, repeat=3)
            )
        except RuntimeError as exc:  # no PostgreSQL server binaries on this machine
            print(f"  Postgres floor skipped: {str(exc).splitlines()[0]}")
    lines = [
        "Dagster floor (issue 5; `bench/dagster_floor.py`): our asset graph with every step a no-op, median of 3. "
        f"Budgets: 2% of the cold build's step time = {0.02 * cold.compute_s:.2f}s for one new day; 10% of its wall "
        f"= {0.10 * cold.child.wall_s:.1f}s for a whitelist backfill over {len(days)} days, which also pays "
        f"{startup_s:.2f}s of process start-up (the probe below).",
        "",
    ]
    for storage, (inc, bf) in floors.items():
        bf_wall = startup_s + bf.run_wall_s
        lines.append(
            f"- {storage}: one new day {inc.steps_s:.2f}s of step time ({inc.events} events) = "
            f"{inc.steps_s / cold.compute_s:.1%} of the cold step time; the backfill {bf.run_wall_s:.2f}s of run wall "
            f"({bf.events} events) + start-up = {bf_wall:.1f}s = {bf_wall / cold.child.wall_s:.1%} of the cold wall."
        )
    print("  " + "\n  ".join(lines))
    return ["", *lines]


def bench_sensor(args: argparse.Namespace, largest: int) -> list[str]:
    print("\n== sensor ticks ==", flush=True)
    artifacts = args.results / str(largest) / "artifacts"
    first, steady, listed = issue5.local_sensor_ticks(artifacts)
    local = (
        f"Sensor tick (issue 5), local {largest:,}-run history, lookback 3 days: first tick {first * 1000:.0f} ms, "
        f"steady tick median {steady * 1000:.0f} ms ({listed:,} files listed per tick)"
    )
    first, steady, listed = issue5.s3_sensor_ticks()
    s3 = (
        f"Sensor tick (issue 5), 10,000 keys in 100 date prefixes on the moto S3 server (loopback, through s3fs), "
        f"lookback 3 days: first tick {first * 1000:.0f} ms, steady tick median {steady * 1000:.0f} ms "
        f"({listed:,} keys listed per tick)"
    )
    print("  " + local + "\n  " + s3)
    return ["", local, "", s3]


# --------------------------------------------------------------------------------------------- profile


def profile_ingest(args: argparse.Namespace, runs: int, top: int = 25) -> str:
    """cProfile of the per-day pass (`daily.process_chunk`: ingest → run_table → classified_runs) in one
    process, no Dagster: what dominates per run."""
    from gate_pipeline.lib import daily
    from gate_pipeline.lib.ingest import IngestLimits
    from gate_pipeline.lib.whitelist import load_whitelist

    artifacts = args.results / str(runs) / "artifacts"
    days = sorted(d.name for d in artifacts.iterdir() if re.match(r"^\d{4}-\d{2}-\d{2}$", d.name))
    days = days[: args.profile_days] if args.profile_days else days
    whitelist_path = ROOT / "config" / "unknown_whitelist.json"
    whitelist = load_whitelist(whitelist_path.read_bytes(), str(whitelist_path))
    with tempfile.TemporaryDirectory() as tmp:
        job = daily.DailyJob(str(artifacts), tmp, {}, IngestLimits(), True, True, whitelist)
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        for chunk in daily.chunk_days(days, 2):  # the chunks a 2-worker run would hand out, here in turn
            daily.process_chunk(job, chunk)
        prof.disable()
        total = time.perf_counter() - t0
    prof_path = args.results / str(runs) / "ingest.prof"
    prof.dump_stats(str(prof_path))
    lines = [
        f"In-process profile of the per-day pass, {runs}-run corpus, {len(days)} day(s), under cProfile "
        f"(inflates pure-Python code more than C code); total {total:.1f}s"
    ]
    for order in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(order).print_stats(top)
        body = buf.getvalue()
        lines.append(f"\nTop {top} by {order}:")
        lines.append(body[body.find("   ncalls") :].rstrip())
    lines.append(f"\nfull profile: {prof_path} (python -m pstats)")
    text = "\n".join(lines)
    (args.results / str(runs) / "ingest_profile.txt").write_text(text + "\n")
    return text


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000", help="comma-separated run counts (1000000 when asked)")
    p.add_argument(
        "--repeat",
        default="3",
        help="trials per size (median reported); one number, or one per size like 3,1",
    )
    p.add_argument(
        "--days", type=int, default=None, help="override days per corpus (default ~runs/1000, 10..365)"
    )
    p.add_argument("--bad", type=float, default=0.002, help="fraction of runs with one bad file")
    p.add_argument("--duplicates", type=int, default=10, help="duplicate run_id folders in each corpus")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--results", type=Path, default=BENCH / "results", help="corpora and trial outputs (git-ignored)"
    )
    p.add_argument(
        "--incremental",
        action="store_true",
        help="after the largest size, add new runs in a new day and time a second run (issue 5)",
    )
    p.add_argument("--incremental-runs", type=int, default=100)
    p.add_argument(
        "--backfill", action="store_true", help="time a whitelist backfill after the largest cold build"
    )
    p.add_argument(
        "--sensor", action="store_true", help="time sensor ticks: largest corpus locally, 10k keys on S3"
    )
    p.add_argument(
        "--whatif",
        action="store_true",
        help="time `gate-pipeline whatif` (a candidate whitelist, a candidate threshold) after the largest "
        "cold build, against it (issue 17: <= 10%%)",
    )
    p.add_argument("--profile", action="store_true", help="cProfile the pure ingest path at the largest size")
    p.add_argument(
        "--profile-days",
        type=int,
        default=None,
        help="profile only the first N days (days are alike; saves time at 100k+)",
    )
    p.add_argument(
        "--script",
        type=Path,
        default=ROOT.parent / "shared" / "bench" / "naive.py",
        help="the one-loop reference script the targets are set against (skipped with a note when absent)",
    )
    p.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help="use this existing corpus (e.g. a shared /work/corpus100k) for the one size in --sizes instead "
        "of generating one; it is only read (not with --incremental)",
    )
    p.add_argument("--benchmarks-md", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    p.add_argument(
        "--generate-only",
        action="store_true",
        help="only generate (or reuse) the corpora for --sizes, print counts and time, and exit",
    )
    args = p.parse_args(argv)
    args.sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip())
    args.results = args.results.resolve()
    repeats = [int(r) for r in str(args.repeat).split(",") if r.strip()]
    if len(repeats) == 1:
        repeats *= len(args.sizes)
    if len(repeats) != len(args.sizes) or min(repeats) < 1:
        p.error(
            f"--repeat: give one count or one per size ({len(args.sizes)}), each >= 1; got {args.repeat!r}"
        )
    args.repeats = dict(zip(args.sizes, repeats, strict=True))
    args.config_dir = None  # set by main() once the results folder exists
    if args.corpus and (len(args.sizes) != 1 or args.incremental or not args.corpus.is_dir()):
        p.error("--corpus: one size in --sizes, an existing folder, and no --incremental (it adds a day)")
    if not args.script.is_file():
        print(f"note: {args.script} not found: no pipeline/script ratio this run (give --script)")
        args.script = None
    return args


def compile_package() -> None:
    """Byte-compile gate_pipeline as an install does (``make setup`` too): with PYTHONDONTWRITEBYTECODE set,
    as on these machines, every CLI call would otherwise compile ~60 modules again (~0.2 s per call, 5% of
    a what-if)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "gate_pipeline")], check=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.generate_only:
        generate_only(args)
        return 0
    print(
        f"bench: sizes {args.sizes}, trials {args.repeats}, days per size "
        f"{[days_for(s, args.days) for s in args.sizes]}, bad fraction {args.bad}; {machine()}"
    )
    args.results.mkdir(parents=True, exist_ok=True)
    args.config_dir = bench_config(args.results)
    compile_package()
    results: list[SizeResult] = []
    largest = args.sizes[-1]
    for runs in args.sizes:
        keep = (args.incremental or args.backfill or args.whatif) and runs == largest
        results.append(bench_size(args, runs, keep_last=keep))
    if args.incremental:
        bench_incremental(args, results[-1])
    extra: list[str] = []
    if args.backfill:
        extra += bench_backfill(args, results[-1])
    if args.whatif:
        extra += bench_whatif(args, results[-1])
    if args.sensor:
        extra += bench_sensor(args, largest)
    profile_text = None
    if args.profile:
        print(f"\n== profiling the ingest path at {largest} runs (in-process, cProfile) ==", flush=True)
        profile_text = profile_ingest(args, largest)
        print(profile_text)
    print("\n== start-up probes ==", flush=True)
    probes = startup_probes(args)
    for name, secs in probes.items():
        print(f"  {name:<36} {secs:6.2f}s")
    if args.incremental or args.backfill:
        extra += bench_floor(args, results[-1], probes["+ fresh SQLite instance"])
    section = report(results, profile_text, probes)
    if extra:
        section += "\n\n" + "\n".join(extra)
    print("\n" + section)
    if not args.no_write:
        write_benchmarks_md(args.benchmarks_md, section)
        print(f"\nwrote {args.benchmarks_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
