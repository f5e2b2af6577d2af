"""The per-day layers in one pass: artifacts → raw_runs + quarantined_files → run_table → classified_runs.

Pure logic (no Dagster). The `daily_tables` asset hands `process_days` the days of a run and which layers
are selected; each chunk of consecutive days is read, normalized, validated and classified in memory and
written through the `Store`, so no layer re-reads what the previous one just wrote. Chunks run in worker
processes when a run covers enough days (a cold build); a new day or a whitelist backfill stays in-process.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import orjson
import pandas as pd

from gate_pipeline.lib import ingest
from gate_pipeline.lib.classify import CLASSIFIED_COLUMNS, classify_runs
from gate_pipeline.lib.normalize import normalize_day
from gate_pipeline.lib.stage_clock import StageClock
from gate_pipeline.lib.storage import CountingStore, Store, parquet_bytes, sha256_bytes
from gate_pipeline.lib.tables import BatchValidator, ClassifiedRuns, RunTable
from gate_pipeline.lib.whitelist import Whitelist

# Folders of the data store, one file per day each.
RAW_RUNS = "raw_runs"
QUARANTINED_FILES = "quarantined_files"
RUN_TABLE = "run_table"
RUN_TABLE_DUPLICATES = "run_table_duplicates"
CLASSIFIED_RUNS = "classified_runs"
INGEST_COUNTS = "ingest_counts"
TABLE_COUNTS = "table_counts"
CLASSIFIED_VERSIONS = "classified_runs_versions"  # <day>.sha256 of each classified_runs file
PR_SET_PDEATHSIG = 1  # linux/prctl.h
DAILY_ASSETS = (RAW_RUNS, QUARANTINED_FILES, RUN_TABLE, CLASSIFIED_RUNS)


def day_file(day: str) -> str:
    return f"{day}.parquet"


# Every per-day file of the data store, by folder and suffix.
DAY_FILES = (
    (RAW_RUNS, ".parquet"),
    (QUARANTINED_FILES, ".parquet"),
    (RUN_TABLE, ".parquet"),
    (RUN_TABLE_DUPLICATES, ".parquet"),
    (CLASSIFIED_RUNS, ".parquet"),
    (INGEST_COUNTS, ".json"),
    (TABLE_COUNTS, ".json"),
    (CLASSIFIED_VERSIONS, ".sha256"),
)


def stored_days(data: Store) -> list[str]:
    """Days with any stored per-day file."""
    return sorted(
        {
            n.removesuffix(suffix)
            for folder, suffix in DAY_FILES
            for n in data.list_names(folder)
            if n.endswith(suffix)
        }
    )


def forget_day(data: Store, day: str) -> None:
    """Remove every stored file of a day whose date folder is gone (or emptied, or now outside the window), so
    the outputs equal a clean run of what is there now."""
    for folder, suffix in DAY_FILES:
        path = data.path(folder, f"{day}{suffix}")
        if path.exists():
            data.fs.rm(path.path)


@dataclass(frozen=True)
class DailyJob:
    """What a chunk needs, picklable for worker processes: store locations, limits and selected layers."""

    artifacts_url: str
    data_url: str
    storage_options: Mapping[str, Any]
    limits: ingest.IngestLimits
    ingest: bool
    table: bool
    whitelist: Whitelist | None  # classification is selected when set


@dataclass
class DayResult:
    day: str
    ingest_counts: dict[str, int] | None = None
    quarantine: pd.DataFrame | None = None
    manifest: list[str] = field(default_factory=list)  # "path\tsize\tsha256", sorted
    table_counts: dict[str, int] | None = None
    field_issue_runs: int = 0
    classified_rows: int | None = None  # None: not classified (no run table, or its batch failed)
    whitelisted_runs: int = 0
    non_whitelisted_runs: int = 0
    missing_input: str | None = None  # the stored table a selected layer needed and did not find


@dataclass
class ChunkResult:
    days: list[DayResult]
    table_failures: list[dict]
    classified_failures: list[dict]
    files_read: int
    stages: StageClock = field(default_factory=StageClock)  # where the chunk's worker spent its time


def process_chunk(job: DailyJob, days: list[str]) -> ChunkResult:
    """Every selected layer for consecutive days, with one pandera call for the whole chunk.

    A day's classified_runs is written only when the chunk's tables validated, so a blocking run_table
    failure never lets a classification through.
    """
    clock = StageClock()
    with clock.stage("other"):
        chunk = _process_chunk(job, days, clock)
    chunk.stages = clock
    return chunk


def _process_chunk(job: DailyJob, days: list[str], clock: StageClock) -> ChunkResult:
    artifacts = CountingStore(Store.at(job.artifacts_url, job.storage_options))
    data = Store.at(job.data_url, job.storage_options)
    results = [DayResult(day) for day in days]
    tables: dict[str, pd.DataFrame] = {}
    # Validated here only when nothing is classified; otherwise the ClassifiedRuns call below covers it.
    table_validator = BatchValidator(RunTable, batch_rows=10**9)
    for result in results:
        day = result.day
        raw = None
        if job.ingest:
            scan = ingest.scan_day(artifacts, day, job.limits, clock)
            raw = scan.raw_runs
            with clock.stage("writing"):
                data.write_parquet(raw, RAW_RUNS, day_file(day))
                data.write_parquet(scan.quarantine, QUARANTINED_FILES, day_file(day))
                data.write_bytes(_json(scan.counts), INGEST_COUNTS, f"{day}.json")
            result.ingest_counts, result.quarantine = scan.counts, scan.quarantine
            result.manifest = [f"{path}\t{size}\t{digest}" for path, size, digest in scan.manifest]
        if job.table:
            if raw is None:
                if not data.exists(RAW_RUNS, day_file(day)):
                    result.missing_input = RAW_RUNS
                    continue
                with clock.stage("reading"):
                    raw = data.read_parquet(RAW_RUNS, day_file(day))
            with clock.stage("normalizing"):
                table, rejected = normalize_day(raw, job.limits.timestamp_window_days)
            if job.whitelist is None:
                table_validator.add(day, table)
            with clock.stage("writing"):
                data.write_parquet(table, RUN_TABLE, day_file(day))
                data.write_parquet(rejected, RUN_TABLE_DUPLICATES, day_file(day))
            failed = int((rejected["reason"] == "normalize_failed").sum())
            result.table_counts = {
                "runs_in": len(raw),
                "runs_accepted": len(table),
                "duplicates_quarantined": len(rejected) - failed,
                "runs_failed": failed,
            }
            with clock.stage("writing"):
                data.write_bytes(_json(result.table_counts), TABLE_COUNTS, f"{day}.json")
            result.field_issue_runs = int((table["field_issues"] != "[]").sum())
            tables[day] = table
    if job.whitelist is None:
        with clock.stage("validating"):
            table_failures = table_validator.flush()
        return ChunkResult(results, table_failures, [], artifacts.reads)
    if job.table:
        # ClassifiedRuns is RunTable plus the class columns: one pandera call checks both tables; a failure
        # in a run_table column is the run_table check's, and then nothing is classified.
        with clock.stage("classifying"):
            classified = {day: classify_runs(table, job.whitelist) for day, table in tables.items()}
        with clock.stage("validating"):
            table_failures, classified_failures = _split_failures(_validate(classified))
        if table_failures:
            classified = {}
    else:
        with clock.stage("classifying"):  # includes reading the stored run tables
            classified = _classify_stored(job.whitelist, data, results)
        with clock.stage("validating"):
            table_failures, classified_failures = [], _validate(classified)
    if not classified_failures:
        with clock.stage("writing"):
            _write_classified(data, results, classified)
    return ChunkResult(results, table_failures, classified_failures, artifacts.reads)


def _validate(classified: dict[str, pd.DataFrame]) -> list[dict]:
    validator = BatchValidator(ClassifiedRuns, batch_rows=10**9)
    for day, frame in classified.items():
        validator.add(day, frame)
    return validator.flush()


def _split_failures(failures: list[dict]) -> tuple[list[dict], list[dict]]:
    classified_only = [f for f in failures if f.get("column") in CLASSIFIED_COLUMNS]
    return [f for f in failures if f.get("column") not in CLASSIFIED_COLUMNS], classified_only


def _classify_stored(whitelist: Whitelist, data: Store, results: list[DayResult]) -> dict[str, pd.DataFrame]:
    classified = {}
    for result in results:
        if not data.exists(RUN_TABLE, day_file(result.day)):
            # A day without artifacts has no run table: nothing to classify (a UI "all partitions"
            # backfill selects such days too). Reported per day, never silently.
            result.missing_input = RUN_TABLE
            continue
        classified[result.day] = classify_runs(data.read_parquet(RUN_TABLE, day_file(result.day)), whitelist)
    return classified


def _write_classified(data: Store, results: list[DayResult], classified: dict[str, pd.DataFrame]) -> None:
    for result in results:
        frame = classified.get(result.day)
        if frame is None:
            continue
        payload = parquet_bytes(frame)
        data.write_bytes(payload, CLASSIFIED_RUNS, day_file(result.day))
        # A digest per day lets rollout_series re-read only the days that changed.
        data.write_bytes(sha256_bytes(payload).encode(), CLASSIFIED_VERSIONS, f"{result.day}.sha256")
        result.classified_rows = len(frame)
        result.whitelisted_runs = int((frame["whitelisted_classes"] != "[]").sum())
        result.non_whitelisted_runs = int((frame["non_whitelisted_reasons"] != "[]").sum())


#: Start of the step's log line per finished chunk of days (the CLI's progress display reads it).
DAYS_DONE_LOG = "daily_tables days done:"
#: A day's run count: runs listed in its folders when it read artifacts, else the runs of its stored raw table.
RUN_COUNT_KEYS = ("runs_discovered", "runs_in")


def days_done_message(days: list[DayResult]) -> str:
    """One log line for a finished chunk of days: how many, and how many runs they held (for progress); a
    re-classification (no artifact read) counts the runs it classified."""
    runs = 0
    for day in days:
        counts = {**(day.ingest_counts or {}), **(day.table_counts or {})}
        runs += next((int(counts[k]) for k in RUN_COUNT_KEYS if k in counts), day.classified_rows or 0)
    return f"{DAYS_DONE_LOG} {orjson.dumps({'days': len(days), 'runs': runs}).decode()}"


def parse_days_done(message: str) -> tuple[int, int] | None:
    """(days, runs) of a :func:`days_done_message` line, None for any other line."""
    if not message.startswith(DAYS_DONE_LOG):
        return None
    done = orjson.loads(message[len(DAYS_DONE_LOG) :])
    return int(done["days"]), int(done["runs"])


#: Start of the step's log line with its stage times (bench/run_bench.py reads it from the event log).
STAGES_LOG = "daily_tables stages:"


def stages_message(processes: int, workers: StageClock, step: StageClock) -> str:
    """One log line: seconds per stage summed over the worker processes, and the step's own process."""
    doc = {"processes": processes, "workers": workers.as_dict(), "step": step.as_dict()}
    return f"{STAGES_LOG} {orjson.dumps(doc).decode()}"


def _json(value: dict) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def resolve_workers(configured: int) -> int:
    """`ingest.workers` 0 means one per CPU this process may use."""
    if configured > 0:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def chunk_days(days: list[str], workers: int, days_per_chunk: int = 0) -> list[list[str]]:
    """Consecutive runs of days: at least two chunks per worker to balance the load, and at most
    ``days_per_chunk`` days each (0: no cap), so that a worker holds a bounded slice of history and progress
    moves chunk by chunk; each chunk costs one pandera call."""
    parts = max(1, min(len(days), workers * 2 if workers > 1 else 1))
    if days_per_chunk > 0:
        parts = max(parts, -(-len(days) // days_per_chunk))
    size, extra = divmod(len(days), parts)
    chunks, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        chunks.append(days[start:end])
        start = end
    return [c for c in chunks if c]


def die_with_parent() -> None:
    """Worker initializer: the kernel kills this worker when its parent (the forkserver, which itself exits
    when the run's process is gone) dies, so a kill -9 of the CLI leaves no worker running (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the line above took effect
        os._exit(1)


def process_days(
    job: DailyJob, days: list[str], workers: int, days_per_chunk: int = 0
) -> Iterator[ChunkResult]:
    """Chunk results in day order (each with the artifact files it read). Worker processes (forkserver: no
    inherited threads or locks) when `workers` > 1."""
    chunks = chunk_days(days, workers, days_per_chunk)
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield process_chunk(job, chunk)
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(chunks)), mp_context=context, initializer=die_with_parent
    )
    with pool:
        try:
            yield from pool.map(process_chunk, repeat(job), chunks)
        except BaseException:
            # Interrupted (Ctrl-C, a failed or cancelled run, the caller stopped iterating): stop the workers
            # now instead of letting `with pool` wait for the chunks they are still reading.
            _terminate_workers(pool)
            raise


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public API before 3.14
    pool.shutdown(wait=False, cancel_futures=True)  # (forgets its processes)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(timeout=10)


def stop_worker_support() -> None:
    """Stop multiprocessing's forkserver and resource tracker (started with the first worker pool and kept
    for later pools), and wait for them. They exit by themselves once this process is gone, but a moment
    later; a command line calls this before it exits so that nothing it started outlives it."""
    from multiprocessing import forkserver, resource_tracker, util

    # No public API for any of this. multiprocessing's own exit step first (what atexit would run: the
    # finalizers of a pool left by an interrupted run unlink its semaphores), so that the tracker, stopped
    # next, has nothing left to clean up and the finalizers do not run again at exit.
    with contextlib.suppress(Exception):
        util._exit_function()
    for helper in (forkserver._forkserver, resource_tracker._resource_tracker):
        with contextlib.suppress(Exception):
            helper._stop()
