"""How far a `gate-pipeline run` / `backfill` is, on stderr, from the events of its in-process Dagster run.

The CLI registers :class:`RunProgress` as the instance's event listener for the run it starts
(`DagsterInstance.add_event_listener`), so nothing in lib/ or the assets knows about it. It follows:

- the steps (stages) of the run: started, done in how long, failed;
- the `daily_tables` step's log line per finished chunk of days (lib/daily.py `days_done_message`): days and
  runs done of the totals the CLI listed before the run.

On a terminal a rich progress display (days and runs done of the total, runs/s, time left, the current stage);
elsewhere (CI logs) plain lines: one per stage start and end, and every `interval` seconds a line with how far
the run is, so a long build never sits silent. Nothing goes to stdout or into any output file.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from gate_pipeline.lib.daily import parse_days_done

PREFIX = "gate-pipeline:"


@dataclass
class Totals:
    """What the run will work through, as listed before it starts (runs unknown for a backfill)."""

    days: int
    runs: int | None = None


class UnitsPerSecond(ProgressColumn):
    """The task's speed in its own unit, e.g. "3,100 runs/s" (rich's speed columns speak of bytes)."""

    def render(self, task) -> Text:
        # rich's speed needs two updates; a run whose days finish in one chunk still has an average rate.
        speed = task.finished_speed or task.speed
        if speed is None and task.completed and task.elapsed:
            speed = task.completed / task.elapsed
        text = "" if speed is None else f"{speed:,.1f} {task.fields['unit']}/s"
        return Text(text, style="progress.data.speed")


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class RunProgress:
    """Event listener and display of one run; use as a context manager around `execute_in_process`."""

    def __init__(
        self,
        totals: Totals,
        *,
        stream: IO[str] | None = None,
        interval: float = 30.0,
        live: bool | None = None,
    ):
        self.totals = totals
        self.stream = stream or sys.stderr
        self.interval = interval
        # live=None: a rich display on a terminal, plain lines elsewhere; True/False force one (tests).
        self.console = Console(file=self.stream, force_terminal=live)
        self.live = self.console.is_terminal
        self.days_done = 0
        self.runs_done = 0
        self.stage: str | None = None
        self.stages_done = 0
        self._stage_started = 0.0
        self._work_started = 0.0  # when the first stage started (Dagster's start-up is not reading)
        self._last_day: float | None = None  # when the last of the days was done
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last_line = self._started
        self._heartbeat: threading.Thread | None = None
        self._progress: Progress | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def __enter__(self) -> RunProgress:
        self._started = self._last_line = time.monotonic()
        if self.live:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"),
                UnitsPerSecond(),
                TimeRemainingColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            # The first row names the current stage; the runs row only when the total is known (not a backfill).
            self._days = self._progress.add_task("starting Dagster", total=self.totals.days, unit="days")
            self._runs = (
                self._progress.add_task("", total=self.totals.runs, unit="runs") if self.totals.runs else None
            )
        elif self.interval > 0:
            self._heartbeat = threading.Thread(target=self._beat, name="gate-pipeline-progress", daemon=True)
            self._heartbeat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        if self._progress is not None:
            self._progress.stop()

    # -- the listener ----------------------------------------------------------------------------------
    def __call__(self, entry: Any) -> None:
        """Called by the Dagster instance with every event of the run, in the run's thread."""
        event = getattr(entry, "dagster_event", None)
        if event is None:  # a log line of a step: the daily step's finished chunks of days
            done = parse_days_done(getattr(entry, "user_message", "") or "")
            if done is not None:
                self._days_done(*done)
            return
        kind = event.event_type_value
        if kind == "STEP_START":
            self._stage_start(event.step_key)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            self._stage_end(event.step_key, failed=kind == "STEP_FAILURE")

    def _stage_start(self, step: str) -> None:
        with self._lock:
            self.stage, self._stage_started = step, time.monotonic()
            self._work_started = self._work_started or self._stage_started
        if self._progress is not None:
            self._progress.update(self._days, description=f"stage {self.stages_done + 1}: {step}")
        else:
            self._line(f"{step} started")

    def _stage_end(self, step: str, failed: bool) -> None:
        with self._lock:
            self.stages_done += 1
            took = time.monotonic() - self._stage_started
            self.stage = None
        if self._progress is None:
            self._line(f"{step} {'FAILED' if failed else 'done'} in {took:.1f} s")

    def _days_done(self, days: int, runs: int) -> None:
        with self._lock:
            self.days_done += days
            self.runs_done += runs
            # The rate is that of reading: it stops at the last day (later stages do not read).
            self._last_day = time.monotonic() if self.days_done >= self.totals.days else None
        if self._progress is not None:
            self._progress.update(self._days, completed=self.days_done)
            if self._runs is not None:
                self._progress.update(self._runs, completed=self.runs_done)

    # -- plain lines (not a terminal) ------------------------------------------------------------------
    def status(self) -> str:
        """How far the run is, in one line: days and runs of the totals, runs/s and time left while reading."""
        with self._lock:
            now = time.monotonic()
            days, runs, stage = self.days_done, self.runs_done, self.stage
            reading = (self._last_day or now) - self._work_started if self._work_started else 0.0
        parts = [f"{days}/{self.totals.days} days"]
        parts.append(f"{runs:,}/{self.totals.runs:,} runs" if self.totals.runs else f"{runs:,} runs")
        if runs and reading > 0:
            parts.append(f"{runs / reading:,.0f} runs/s")
        if days and days < self.totals.days:
            parts.append(f"about {_clock(reading * (self.totals.days - days) / days)} left to read")
        parts.append(f"in {stage}" if stage is not None else "starting" if not self._work_started else "")
        return ", ".join(p for p in parts if p)

    def _line(self, text: str) -> None:
        with self._lock:
            self._last_line = time.monotonic()
            elapsed = self._last_line - self._started
        print(f"{PREFIX} [{_clock(elapsed)}] {text}", file=self.stream, flush=True)

    def _beat(self) -> None:
        while not self._stop.wait(min(self.interval, 1.0)):
            with self._lock:
                due = time.monotonic() - self._last_line >= self.interval
            if due:
                self._line(self.status())
