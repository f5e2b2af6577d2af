"""A lock on a Store (local disk or S3): one file created only if absent, removed when done.

Creation is atomic on both (O_CREAT | O_EXCL on disk, a conditional put with If-None-Match on S3:
:meth:`Store.create_exclusive`), so two holders never both get it. The file names its holder, host and time.
Stale-lock rule: a lock older than ``stale_seconds`` (or unreadable) is never broken automatically, because its
holder may still be writing; the busy message says so, and :func:`break_stale_lock` removes it on request.
Pure logic: no Dagster imports.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson

from gate_pipeline.lib.storage import Store


class LockBusy(RuntimeError):
    """Someone else holds the lock; the message is what the operator reads."""


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@contextmanager
def locked(
    store: Store, name: str, holder: str, stale_seconds: int, now: datetime | None = None
) -> Iterator[None]:
    """Hold the lock file ``name`` for one change; LockBusy when someone else holds it."""
    now = now or datetime.now(UTC)
    body = orjson.dumps(
        {"holder": holder, "acquired_at": iso(now), "host": socket.gethostname(), "pid": os.getpid()},
        option=orjson.OPT_SORT_KEYS,
    )
    if not store.create_exclusive(body, name):
        raise LockBusy(_busy_message(store, name, stale_seconds, now))
    try:
        yield
    finally:
        store.delete(name)


def _lock_age(store: Store, name: str, now: datetime) -> tuple[dict[str, Any], float | None]:
    try:
        info = orjson.loads(store.read_bytes(name))
        return info, (now - parse_time(info["acquired_at"])).total_seconds()
    except (FileNotFoundError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return {}, None


def _busy_message(store: Store, name: str, stale_seconds: int, now: datetime) -> str:
    info, age = _lock_age(store, name, now)
    who = f"{info.get('holder', '?')} on {info.get('host', '?')} since {info.get('acquired_at', '?')}"
    text = f"another phase change is in progress ({store.url(name)} held by {who})"
    if age is None or age > stale_seconds:
        return (
            f"{text}; the lock is older than stale_lock_seconds ({stale_seconds} s) or unreadable: if no "
            "advance/rollback is still running, remove it with `gate-pipeline phase --break-stale-lock`"
        )
    return f"{text}; nothing was changed, retry when it has finished"


def break_stale_lock(store: Store, name: str, stale_seconds: int, now: datetime | None = None) -> str:
    """Remove the lock only when it is older than ``stale_seconds`` (or unreadable)."""
    now = now or datetime.now(UTC)
    if not store.exists(name):
        return "no lock held"
    _, age = _lock_age(store, name, now)
    if age is not None and age <= stale_seconds:
        raise LockBusy(_busy_message(store, name, stale_seconds, now))
    store.delete(name)
    return f"removed the stale lock {store.url(name)}"
