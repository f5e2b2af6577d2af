"""`gate-pipeline run` as a real process in its own session: when it exits (success, failure, Ctrl-C) no process
it started is left (worker processes, their forkserver, Dagster's log tailers), Ctrl-C exits 130, and no lock
is left held. Progress goes to stderr only, off with --quiet."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gate_pipeline import synthetic
from gate_pipeline.cli import EXIT_INTERRUPTED
from gate_pipeline.lib import runlock
from gate_pipeline.lib.lifecycle import LOCK_FILE
from gate_pipeline_tests.pipeline_helpers import SAMPLE

pytestmark = pytest.mark.slow
WORKERS_CONFIG = "ingest:\n  workers: 2\n  parallel_min_days: 2\n"  # worker processes from the second day on


def _session(sid: int) -> list[tuple[int, bytes]]:
    """(pid, command line) of every process in session `sid` (the CLI's: it was started in its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:
                found.append((int(entry.name), (entry / "cmdline").read_bytes()))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _workers(sid: int) -> int:
    """Worker processes running (forked by the forkserver, so they carry its command line), server excluded."""
    return max(0, sum(b"multiprocessing.forkserver" in cmd for _, cmd in _session(sid)) - 1)


def _start(tmp_path: Path, config: Path, artifacts: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gate_pipeline.cli", "run", "--artifacts", str(artifacts)]
    cmd += ["--out", str(tmp_path / "out"), "--config", str(config), "--progress-interval", "0", *extra]
    return subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(cli: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = cli.communicate(timeout=300)
    finally:
        for pid, _ in _session(cli.pid):  # never leave a failed test's processes behind
            os.kill(pid, signal.SIGKILL)
    return cli.returncode, out, err


def _assert_no_lock_held(tmp_path: Path) -> None:
    for lock in [
        tmp_path / "dagster_home" / runlock.LOCK_NAME,
        tmp_path / "out" / "_data" / runlock.LOCK_NAME,
    ]:
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError when still held
        finally:
            os.close(fd)
    assert not (tmp_path / "out" / LOCK_FILE).exists()


@pytest.mark.parametrize("to", ["group", "cli"])
def test_ctrl_c_mid_work_exits_130_and_leaves_no_process_and_no_lock(workspace, to):
    """`group`: Ctrl-C in a terminal (SIGINT to the whole foreground group, workers included); `cli`: a CI
    runner's `kill -INT <pid>` (the workers are not signalled: the CLI must stop them)."""
    tmp_path, config = workspace
    artifacts = tmp_path / "artifacts"
    synthetic.main(["--out", str(artifacts), "--runs", "6000", "--days", "24"])
    (config / "pipeline.yaml").write_text(WORKERS_CONFIG)
    cli = _start(tmp_path, config, artifacts)
    deadline = time.monotonic() + 180
    while _workers(cli.pid) < 2 and time.monotonic() < deadline and cli.poll() is None:
        time.sleep(0.05)
    assert _workers(cli.pid) == 2, "the workers never started"
    if to == "group":
        os.killpg(cli.pid, signal.SIGINT)
    else:
        cli.send_signal(signal.SIGINT)
    code, out, err = _finish(cli)
    left = _session(cli.pid)  # right after the exit: nothing may linger, not even for a moment
    assert (code, left) == (EXIT_INTERRUPTED, []), err[-3000:]
    assert "gate-pipeline: interrupted; the run cursor was not advanced" in err
    assert "Decision:" not in out  # it stopped: no summary of a half-done run
    assert not (tmp_path / "out" / "_data" / "run_cursor.json").exists()
    _assert_no_lock_held(tmp_path)


def test_success_leaves_no_process_and_progress_goes_to_stderr_only(workspace):
    tmp_path, config = workspace
    (config / "pipeline.yaml").write_text(WORKERS_CONFIG)
    cli = _start(tmp_path, config, SAMPLE)
    code, out, err = _finish(cli)
    assert (code, _session(cli.pid)) == (0, []), err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("gate-pipeline: [")]
    assert any(line.endswith("daily_tables started") for line in lines), err
    assert any("daily_tables done in" in line for line in lines), err
    assert "gate-pipeline: [" not in out  # the summary on stdout is unchanged
    assert "Decision: HOLD" in out


def test_a_crash_in_the_workers_exits_1_and_leaves_no_process(workspace):
    """A write the workers cannot do (the data store's run_table folder is a file) fails the run mid-work."""
    tmp_path, config = workspace
    (config / "pipeline.yaml").write_text(WORKERS_CONFIG)
    data = tmp_path / "out" / "_data"
    data.mkdir(parents=True)
    (data / "run_table").write_text("not a folder")
    cli = _start(tmp_path, config, SAMPLE, "--quiet")
    code, out, err = _finish(cli)
    assert (code, _session(cli.pid)) == (1, []), err[-3000:]
    assert "daily_tables" in err and "gate-pipeline: [" not in err  # the failure, and no progress (--quiet)
    _assert_no_lock_held(tmp_path)


def test_a_preflight_error_exits_2_and_leaves_no_process(workspace):
    tmp_path, config = workspace
    (config / "pipeline.yaml").write_text("ingest:\n  workers: -1\n")
    cli = _start(tmp_path, config, SAMPLE)
    code, out, err = _finish(cli)
    assert (code, _session(cli.pid)) == (2, []), err
    assert err.startswith("error: ")
