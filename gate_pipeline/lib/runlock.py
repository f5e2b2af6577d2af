"""Serialize runs that share state: one `gate-pipeline` run at a time per Dagster instance and data folder.

Two runs at once on the same DAGSTER_HOME (its SQLite run storage) or the same data folder (per-day tables,
series cache, cursor) would interleave writes. Each holder writes its pid and start time into the lock file,
so the one that waits can say who holds it. Advisory `flock` locks: released by the kernel when the holder
exits, even after kill -9, so a stale lock can never block the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

LOCK_NAME = ".gate-pipeline.lock"


@contextlib.contextmanager
def hold(folders: list[Path], *, out=None) -> Iterator[None]:
    """Hold the lock of every folder (in a fixed order, so two runs cannot deadlock); wait when another run
    holds one, after saying so."""
    with contextlib.ExitStack() as stack:
        for folder in sorted({f.resolve() for f in folders}):
            stack.enter_context(_hold_one(folder / LOCK_NAME, out or sys.stderr))
        yield


@contextlib.contextmanager
def _hold_one(path: Path, out) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown holder"
            print(f"gate-pipeline: another run holds {path} ({holder}); waiting for it to finish", file=out)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"pid {os.getpid()}, since {datetime.now(UTC).isoformat(timespec='seconds')}".encode(), 0
        )
        yield
    finally:
        os.close(fd)  # releases the lock
