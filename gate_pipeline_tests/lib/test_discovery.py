"""Tests for gate_pipeline.lib.discovery, on a local folder and on the loopback S3 server."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from upath import UPath

from gate_pipeline.lib.discovery import (
    dump_cursor,
    list_date_partitions,
    list_top_level,
    load_cursor,
    partition_fingerprint,
    run_key,
    scan_for_changes,
)
from gate_pipeline_tests.s3_server import count_s3_requests, seed_objects, tree_objects, upload_tree

TODAY = date(2026, 3, 10)
LOOKBACK = 3  # window 2026-03-07 .. 2026-03-10


def settled() -> float:
    """A "now" one hour ahead: every file written so far counts as settled."""
    return time.time() + 3600


@dataclass
class Backend:
    name: str
    root: UPath
    write: Callable[[str, bytes], None]
    version: Callable[[str, bytes], str]  # expected FileEntry.version, computed independently


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The same artifact root API on a local folder or on s3://<fresh bucket>/ci/artifacts."""
    if request.param == "local":
        base = tmp_path / "artifacts"
        base.mkdir()

        def write_local(rel: str, data: bytes) -> None:
            target = base / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

        def version_local(rel: str, data: bytes) -> str:
            return f"m:{os.stat(base / rel).st_mtime:.6f}"

        return Backend("local", UPath(base), write_local, version_local)

    import s3fs

    bucket = request.getfixturevalue("s3_bucket")
    # The writer is a separate client, like CI uploading while the sensor lists.
    writer = s3fs.S3FileSystem(skip_instance_cache=True, **bucket.storage_options)
    prefix = f"{bucket.name}/ci/artifacts"

    def write_s3(rel: str, data: bytes) -> None:
        writer.pipe(f"{prefix}/{rel}", data)

    def version_s3(rel: str, data: bytes) -> str:
        return "e:" + hashlib.md5(data).hexdigest()  # single-part upload ETag = md5 of the bytes

    return Backend("s3", bucket.upath("ci/artifacts"), write_s3, version_s3)


def write_run(backend: Backend, day: str, run: str, files: tuple[str, ...] = ("gate_result",)) -> None:
    for kind in files:
        backend.write(f"{day}/{run}/{kind}.json", json.dumps({"run_id": run, "kind": kind}).encode())


def days(start: int, stop: int) -> list[str]:
    return [f"2026-03-{d:02d}" for d in range(start, stop + 1)]


def make_history(backend: Backend, day_list: list[str]) -> None:
    for day in day_list:
        write_run(backend, day, "r1", ("gate_result", "drift_report"))


# --------------------------------------------------------------------------- listings


def test_list_date_partitions_ignores_non_date_entries(backend: Backend) -> None:
    make_history(backend, ["2026-03-02", "2026-03-01"])
    backend.write("junk/a.json", b"{}")
    backend.write("2026-02-30/r1/gate_result.json", b"{}")  # not a calendar date
    backend.write("top.txt", b"x")

    assert list_date_partitions(backend.root) == ["2026-03-01", "2026-03-02"]
    top = list_top_level(backend.root)
    assert top.ignored == ("2026-02-30", "junk", "top.txt")
    assert top.root_missing is False


def test_partition_fingerprint_counts_runs_and_hashes_sorted_tuples(backend: Backend) -> None:
    contents = {
        "r2/gate_result.json": b'{"run_id": "r2"}',
        "r1/gate_result.json": b'{"run_id": "r1"}',
        "r1/drift_report.json": b'{"policy_state": "pinned"}',
        "r1/metrics.json": b"{}",
        "r2/notes.txt": b"hello",
        "stray.json": b"[]",
    }
    for rel, data in contents.items():
        backend.write(f"2026-03-01/{rel}", data)
    backend.write("2026-03-02/r9/gate_result.json", b"{}")  # other day: must not leak in

    listing = partition_fingerprint(backend.root, "2026-03-01")

    expected_paths = sorted(contents)
    assert [f.path for f in listing.files] == expected_paths
    assert [f.size for f in listing.files] == [len(contents[p]) for p in expected_paths]
    assert listing.counts_by_kind == {"gate_result": 2, "drift_report": 1, "metrics": 1, "other": 2}
    assert listing.run_folders == ("r1", "r2")
    assert listing.file_count == 6
    digest = hashlib.sha256()
    for rel in expected_paths:
        version = backend.version(f"2026-03-01/{rel}", contents[rel])
        digest.update(json.dumps([rel, len(contents[rel]), version]).encode() + b"\n")
    assert listing.fingerprint == digest.hexdigest()
    # Listing again without a change gives the same fingerprint.
    assert partition_fingerprint(backend.root, "2026-03-01").fingerprint == listing.fingerprint


def test_partition_fingerprint_of_missing_day_is_empty(backend: Backend) -> None:
    make_history(backend, ["2026-03-01"])
    listing = partition_fingerprint(backend.root, "2026-03-05")
    assert listing.files == ()
    assert listing.fingerprint == hashlib.sha256().hexdigest()
    assert listing.counts_by_kind == {"gate_result": 0, "drift_report": 0, "metrics": 0, "other": 0}


def test_run_key_is_partition_plus_fingerprint_prefix() -> None:
    assert run_key("2026-03-01", "0123456789abcdef" + "f" * 48) == "2026-03-01:0123456789abcdef"
    assert run_key("2026-03-01", None) == "2026-03-01:unlisted"


# --------------------------------------------------------------------------- scan


def test_first_tick_reports_history_from_top_level_and_lists_only_window(backend: Backend) -> None:
    make_history(backend, days(1, 10))

    result = scan_for_changes(backend.root, None, today=TODAY, lookback_days=LOOKBACK, now=settled())

    assert result.window == ("2026-03-07", "2026-03-10")
    assert result.days_listed == ("2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10")
    assert result.partition_keys == days(1, 10)
    old = [c for c in result.changed if c.date < "2026-03-07"]
    assert [c.run_key for c in old] == [f"{d}:unlisted" for d in days(1, 6)]
    assert all(c.fingerprint is None and c.reason == "new" for c in old)
    recent = [c for c in result.changed if c.date >= "2026-03-07"]
    assert all(c.fingerprint is not None and c.run_key == f"{c.date}:{c.fingerprint[:16]}" for c in recent)
    assert result.counts["files_seen"] == 4 * 2  # only the window's 4 days x 2 files were listed
    assert result.counts["days_new"] == 10
    assert result.counts["days_new_unlisted"] == 6
    assert result.cursor["max_day_seen"] == "2026-03-10"
    assert sorted(result.cursor["fingerprints"]) == days(7, 10)
    assert result.cursor["pending"] == []
    json.dumps(result.cursor)  # JSON-serializable
    assert json.loads(json.dumps(result.summary()))["counts"]["days_listed"] == 4


def test_unchanged_tick_returns_nothing_and_same_cursor(backend: Backend) -> None:
    make_history(backend, days(1, 10))
    first = scan_for_changes(backend.root, None, today=TODAY, lookback_days=LOOKBACK, now=settled())

    second = scan_for_changes(backend.root, first.cursor, today=TODAY, lookback_days=LOOKBACK, now=settled())

    assert second.changed == ()
    assert second.cursor == first.cursor
    assert dump_cursor(second.cursor) == dump_cursor(first.cursor)
    assert second.counts["days_unchanged"] == 4
    assert second.counts["days_listed"] == 4


def test_new_day_detected_and_window_moves(backend: Backend) -> None:
    make_history(backend, days(1, 10))
    first = scan_for_changes(backend.root, None, today=TODAY, lookback_days=LOOKBACK, now=settled())
    write_run(backend, "2026-03-11", "r7", ("gate_result", "metrics"))

    result = scan_for_changes(
        backend.root, first.cursor, today=date(2026, 3, 11), lookback_days=LOOKBACK, now=settled()
    )

    assert [(c.date, c.reason) for c in result.changed] == [("2026-03-11", "new")]
    assert result.changed[0].listing is not None
    assert result.changed[0].listing.counts_by_kind["metrics"] == 1
    assert result.days_listed == tuple(days(8, 11))
    assert result.counts["days_unchanged"] == 3
    assert sorted(result.cursor["fingerprints"]) == days(8, 11)  # 03-07 dropped out of the window
    assert result.cursor["max_day_seen"] == "2026-03-11"


def test_late_arrival_inside_window_detected(backend: Backend) -> None:
    make_history(backend, days(1, 10))
    first = scan_for_changes(backend.root, None, today=TODAY, lookback_days=LOOKBACK, now=settled())
    old_key = next(c.run_key for c in first.changed if c.date == "2026-03-08")
    write_run(backend, "2026-03-08", "r_late")

    result = scan_for_changes(backend.root, first.cursor, today=TODAY, lookback_days=LOOKBACK, now=settled())

    assert [(c.date, c.reason) for c in result.changed] == [("2026-03-08", "changed")]
    assert result.changed[0].run_key != old_key
    assert result.changed[0].listing.run_folders == ("r1", "r_late")
    assert result.counts["days_changed"] == 1
    assert result.cursor["fingerprints"]["2026-03-08"] == result.changed[0].fingerprint


def test_late_arrival_outside_window_not_seen_by_design(backend: Backend) -> None:
    # Documented limit: only the lookback window (lookback_days) is re-listed; older days need a backfill.
    make_history(backend, days(1, 10))
    first = scan_for_changes(backend.root, None, today=TODAY, lookback_days=LOOKBACK, now=settled())
    write_run(backend, "2026-03-02", "r_too_late")
    write_run(backend, "2026-02-20", "r_new_old_day")  # a new folder older than anything seen

    result = scan_for_changes(backend.root, first.cursor, today=TODAY, lookback_days=LOOKBACK, now=settled())

    assert result.changed == ()
    assert result.days_listed == tuple(days(7, 10))
    # A wider window sees the late file in 2026-03-02 (as a day not recorded yet).
    wide = scan_for_changes(backend.root, first.cursor, today=TODAY, lookback_days=8, now=settled())
    assert "2026-03-02" in wide.partition_keys


def test_days_newer_than_cursor_listed_even_outside_window(backend: Backend) -> None:
    # The sensor was off for weeks: days newer than max_day_seen are still found.
    make_history(backend, days(1, 10))
    first = scan_for_changes(backend.root, None, today=TODAY, lookback_days=LOOKBACK, now=settled())
    make_history(backend, ["2026-03-15", "2026-03-29"])

    result = scan_for_changes(
        backend.root, first.cursor, today=date(2026, 3, 30), lookback_days=LOOKBACK, now=settled()
    )

    assert [(c.date, c.reason) for c in result.changed] == [("2026-03-15", "new"), ("2026-03-29", "new")]
    assert all(c.fingerprint for c in result.changed)
    assert result.days_listed == ("2026-03-15", "2026-03-29")
    # Only the window (03-27..03-30) keeps fingerprints.
    assert result.cursor["fingerprints"] == {"2026-03-29": result.changed[1].fingerprint}
    assert result.cursor["max_day_seen"] == "2026-03-29"


def test_cursor_reset_gives_same_run_keys(backend: Backend) -> None:
    make_history(backend, days(1, 10))
    first = scan_for_changes(backend.root, None, today=TODAY, lookback_days=LOOKBACK, now=settled())
    second = scan_for_changes(backend.root, first.cursor, today=TODAY, lookback_days=LOOKBACK, now=settled())
    assert second.changed == ()

    reset = scan_for_changes(backend.root, None, today=TODAY, lookback_days=LOOKBACK, now=settled())

    # Dagster drops runs whose run_key it has seen: nothing is counted twice.
    assert [c.run_key for c in reset.changed] == [c.run_key for c in first.changed]
    assert len({c.run_key for c in first.changed}) == 10


def test_partial_file_not_settled_then_picked_up(backend: Backend) -> None:
    make_history(backend, days(7, 9))
    first = scan_for_changes(backend.root, None, today=TODAY, lookback_days=LOOKBACK, now=settled())
    backend.write("2026-03-10/r5/gate_result.json", b'{"run_id": "r5", "outc')  # still being written
    just_now = time.time()

    busy = scan_for_changes(
        backend.root, first.cursor, today=TODAY, lookback_days=LOOKBACK, settle_seconds=10, now=just_now
    )

    assert busy.changed == ()
    assert [(s.target, s.reason) for s in busy.skipped] == [("2026-03-10", "not_settled")]
    assert "1 file(s)" in busy.skipped[0].detail
    assert busy.counts["days_not_settled"] == 1
    assert "2026-03-10" not in busy.cursor["fingerprints"]
    assert busy.cursor["pending"] == ["2026-03-10"]

    backend.write("2026-03-10/r5/gate_result.json", b'{"run_id": "r5", "outcome": "PASS"}')
    later = time.time() + 11  # injected clock instead of sleeping
    done = scan_for_changes(
        backend.root, busy.cursor, today=TODAY, lookback_days=LOOKBACK, settle_seconds=10, now=later
    )

    assert [(c.date, c.reason) for c in done.changed] == [("2026-03-10", "new")]
    assert done.changed[0].listing.files[0].size == len(b'{"run_id": "r5", "outcome": "PASS"}')
    assert done.cursor["pending"] == []
    assert done.cursor["fingerprints"]["2026-03-10"] == done.changed[0].fingerprint


def test_unsettled_new_day_outside_window_stays_pending(backend: Backend) -> None:
    make_history(backend, days(1, 3))
    first = scan_for_changes(backend.root, None, today=date(2026, 3, 3), lookback_days=0, now=settled())
    backend.write("2026-03-05/r1/gate_result.json", b"{}")
    make_history(backend, ["2026-03-20"])

    busy = scan_for_changes(
        backend.root, first.cursor, today=date(2026, 3, 20), lookback_days=1, now=time.time() - 0.0
    )
    assert busy.cursor["pending"] == ["2026-03-05", "2026-03-20"]
    assert busy.cursor["max_day_seen"] == "2026-03-20"

    done = scan_for_changes(
        backend.root, busy.cursor, today=date(2026, 3, 21), lookback_days=1, now=settled()
    )
    # 2026-03-05 is older than both the window and max_day_seen, yet listed because it is pending.
    assert [(c.date, c.reason) for c in done.changed] == [("2026-03-05", "new"), ("2026-03-20", "new")]
    assert done.cursor["pending"] == []
    assert sorted(done.cursor["fingerprints"]) == ["2026-03-20"]


def test_non_date_folders_ignored_and_counted(backend: Backend) -> None:
    make_history(backend, days(9, 10))
    backend.write("junk/r1/gate_result.json", b"{}")
    backend.write("2026-3-9/r1/gate_result.json", b"{}")
    backend.write("README.md", b"# hi")

    result = scan_for_changes(backend.root, None, today=TODAY, lookback_days=LOOKBACK, now=settled())

    assert result.partition_keys == ["2026-03-09", "2026-03-10"]
    assert result.counts["ignored_entries"] == 3
    assert result.counts["date_partitions"] == 2
    assert [(s.target, s.reason) for s in result.skipped] == [
        ("2026-3-9", "not_a_date_folder"),
        ("README.md", "not_a_date_folder"),
        ("junk", "not_a_date_folder"),
    ]


def test_removed_day_reported_and_dropped_from_cursor(backend: Backend) -> None:
    make_history(backend, days(8, 10))
    first = scan_for_changes(backend.root, None, today=TODAY, lookback_days=LOOKBACK, now=settled())
    backend.root.fs.rm(f"{backend.root.path.rstrip('/')}/2026-03-09", recursive=True)

    result = scan_for_changes(backend.root, first.cursor, today=TODAY, lookback_days=LOOKBACK, now=settled())

    assert result.changed == ()
    assert [(s.target, s.reason) for s in result.skipped] == [("2026-03-09", "removed")]
    assert sorted(result.cursor["fingerprints"]) == ["2026-03-08", "2026-03-10"]


def test_missing_root_is_a_skip_reason(backend: Backend) -> None:
    missing = backend.root / "nothing-here"
    result = scan_for_changes(missing, None, today=TODAY, lookback_days=LOOKBACK, now=settled())
    assert result.changed == ()
    assert [s.reason for s in result.skipped] == ["root_missing"]
    assert result.cursor == {"version": 1, "max_day_seen": None, "fingerprints": {}, "pending": []}


def test_invalid_cursor_starts_fresh(tmp_path: Path) -> None:
    (tmp_path / "2026-03-10" / "r1").mkdir(parents=True)
    (tmp_path / "2026-03-10" / "r1" / "gate_result.json").write_text("{}")

    for bad in (load_cursor("not json"), {"version": 1, "max_day_seen": "yesterday", "fingerprints": {}}):
        result = scan_for_changes(UPath(tmp_path), bad, today=TODAY, lookback_days=LOOKBACK, now=settled())
        assert result.partition_keys == ["2026-03-10"]
        assert [s.reason for s in result.skipped] == ["cursor_invalid"]
    assert load_cursor(None) is None
    assert load_cursor(dump_cursor({"version": 1})) == {"version": 1}


def test_empty_local_day_folder_is_pending(tmp_path: Path) -> None:
    (tmp_path / "2026-03-10").mkdir()
    result = scan_for_changes(UPath(tmp_path), None, today=TODAY, lookback_days=LOOKBACK, now=settled())
    assert result.changed == ()
    assert [(s.target, s.reason) for s in result.skipped] == [("2026-03-10", "empty_day")]
    assert result.cursor["pending"] == ["2026-03-10"]


# --------------------------------------------------------------------------- scale


def _write_tree(base: Path, n_days: int, runs_per_day: int, files: tuple[str, ...]) -> list[str]:
    day_names = [date.fromordinal(date(2026, 1, 1).toordinal() + i).isoformat() for i in range(n_days)]
    for day in day_names:
        for r in range(runs_per_day):
            run_dir = base / day / f"r{r:04d}"
            run_dir.mkdir(parents=True)
            for kind in files:
                (run_dir / f"{kind}.json").write_bytes(b'{"x": 1}')
    return day_names


@pytest.mark.s3
@pytest.mark.slow
def test_s3_tick_with_10k_keys_lists_only_window(tmp_path: Path, s3_bucket) -> None:
    # 1250 days * 4 runs * 2 files = 10_000 keys; > 1000 date folders, so the root listing pages too.
    n_days, runs, files = 1250, 4, ("gate_result", "drift_report")
    day_names = _write_tree(tmp_path / "tree", n_days, runs, files)
    uploaded = seed_objects(s3_bucket, tree_objects(tmp_path / "tree", "big"))
    assert uploaded == 10_000
    root = s3_bucket.upath("big")
    today = date.fromisoformat(day_names[-1])

    with count_s3_requests(root.fs) as requests:
        first = scan_for_changes(root, None, today=today, lookback_days=2, now=settled())
    assert first.counts["date_partitions"] == 1250
    assert first.days_listed == tuple(day_names[-3:])
    assert first.counts["files_seen"] == 3 * runs * len(files)
    assert len(first.changed) == 1250
    # Top level: 1250 prefixes = 2 pages of 1000; then 1 page per listed day (8 keys each), never per file.
    assert requests == {"ListObjectsV2": 2 + 3}

    with count_s3_requests(root.fs) as requests:
        second = scan_for_changes(root, first.cursor, today=today, lookback_days=2, now=settled())
    assert second.changed == ()
    assert requests == {"ListObjectsV2": 2 + 3}


@pytest.mark.s3
def test_upload_tree_goes_through_s3_api(tmp_path: Path, s3_bucket) -> None:
    _write_tree(tmp_path / "tree", 2, 3, ("gate_result",))
    assert upload_tree(tmp_path / "tree", s3_bucket.url("up"), s3_bucket.storage_options) == 6
    root = s3_bucket.upath("up")
    assert list_date_partitions(root) == ["2026-01-01", "2026-01-02"]
    assert partition_fingerprint(root, "2026-01-02").run_folders == ("r0000", "r0001", "r0002")
    # The env set by s3_bucket alone reaches the server (AWS_ENDPOINT_URL read by botocore).
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    assert list_date_partitions(UPath(s3_bucket.url("up"))) == ["2026-01-01", "2026-01-02"]


@pytest.mark.slow
def test_local_tick_with_many_files_lists_only_window(tmp_path: Path) -> None:
    n_days, runs, files = 100, 50, ("gate_result", "drift_report")  # 10_000 files (100k: see report)
    day_names = _write_tree(tmp_path, n_days, runs, files)
    root = UPath(tmp_path)
    today = date.fromisoformat(day_names[-1])

    first = scan_for_changes(root, None, today=today, lookback_days=6, now=settled())
    second = scan_for_changes(root, first.cursor, today=today, lookback_days=6, now=settled())

    assert first.counts["files_seen"] == 7 * runs * len(files)
    assert len(first.changed) == n_days
    assert second.changed == ()
    assert second.counts["days_listed"] == 7
