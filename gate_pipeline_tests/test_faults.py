"""Faults around a run: kill -9 leaves no process, concurrent runs are serialized, writes are atomic, a corrupt
stored table names the way out, a full disk leaves no truncated output."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from gate_pipeline import synthetic
from gate_pipeline.lib import runlock
from gate_pipeline.lib.storage import Store
from gate_pipeline_tests.pipeline_helpers import SAMPLE, run_cli, tmpfs


def _marked_pids(marker: str) -> list[int]:
    """Processes whose environment carries `marker` (the CLI and everything it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_kill_9_of_the_cli_leaves_no_worker(workspace):
    tmp_path, config = workspace
    artifacts = tmp_path / "artifacts"
    synthetic.main(["--out", str(artifacts), "--runs", "6000", "--days", "24"])
    # Worker processes from the second day on, two of them.
    (config / "pipeline.yaml").write_text("ingest:\n  workers: 2\n  parallel_min_days: 2\n")
    marker = f"GATE_FAULT_{uuid.uuid4().hex}"
    env = {**os.environ, marker: "1"}
    cmd = [sys.executable, "-m", "gate_pipeline.cli", "run", "--artifacts", str(artifacts)]
    cmd += ["--out", str(tmp_path / "out"), "--config", str(config)]
    cli = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(_marked_pids(marker)) < 4 and time.monotonic() < deadline and cli.poll() is None:
            time.sleep(0.1)  # the CLI, the forkserver and two workers
        assert len(_marked_pids(marker)) >= 4, "the workers never started"
        cli.send_signal(signal.SIGKILL)
        cli.wait()
        deadline = time.monotonic() + 20
        while _marked_pids(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _marked_pids(marker) == []
    finally:
        for pid in _marked_pids(marker):
            os.kill(pid, signal.SIGKILL)


def test_a_second_run_waits_for_the_one_holding_the_lock(workspace, capfd):
    tmp_path, config = workspace
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from gate_pipeline.lib import runlock\n"
            "with runlock.hold([Path(sys.argv[1])]):\n    print('held', flush=True); time.sleep(3)",
            str(out / "_data"),
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout.readline() == b"held\n"
    started = time.monotonic()
    code = run_cli("run", "--artifacts", str(SAMPLE), "--out", str(out), "--config", str(config))
    holder.wait()
    err = capfd.readouterr().err
    assert code == 0
    assert f"another run holds {(out / '_data').resolve() / runlock.LOCK_NAME} (pid {holder.pid}" in err
    assert time.monotonic() - started >= 2.5  # it waited, then ran


def test_writes_are_atomic_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    store = Store.at(str(tmp_path))
    store.write_bytes(b"old complete content", "rollout_metrics.json")

    def full_disk(fd):  # where a full disk surfaces for buffered data
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        store.write_bytes(b"new content " * 10_000, "rollout_metrics.json")
    monkeypatch.undo()
    assert (tmp_path / "rollout_metrics.json").read_bytes() == b"old complete content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rollout_metrics.json"]  # no temp file left


def test_a_corrupt_stored_table_names_the_file_and_full_recovers(workspace, capsys):
    tmp_path, config = workspace
    artifacts, out = tmp_path / "artifacts", tmp_path / "out"
    shutil.copytree(SAMPLE, artifacts)
    args = ["run", "--artifacts", str(artifacts), "--out", str(out), "--config", str(config)]
    assert run_cli(*args) == 0
    before = (out / "rollout_metrics.json").read_bytes()
    corrupt = out / "_data" / "run_table" / "2026-03-01.parquet"
    corrupt.write_bytes(corrupt.read_bytes()[:100])  # a write cut short by hand or by an older version
    capsys.readouterr()
    backfill = ["backfill", "--artifacts", str(artifacts), "--out", str(out), "--config", str(config)]
    assert run_cli(*backfill) == 1
    err = capsys.readouterr().err
    assert f"{corrupt}: stored file is corrupt" in err and "`gate-pipeline run --full` rebuilds" in err
    assert run_cli(*args, "--full") == 0
    assert run_cli(*backfill) == 0
    assert (out / "rollout_metrics.json").read_bytes() == before


@pytest.mark.slow
def test_full_disk_leaves_no_truncated_output(workspace, capsys):
    tmp_path, config = workspace
    with tmpfs(tmp_path / "small", "size=600k") as mount:
        out = mount / "out"
        code = run_cli("run", "--artifacts", str(SAMPLE), "--out", str(out), "--config", str(config))
        assert code == 1  # the chart or the tables do not fit
        for path in out.rglob("*"):
            if path.is_file() and path.suffix == ".json":
                orjson.loads(path.read_bytes())  # every JSON written is complete
            if path.is_file() and path.suffix == ".parquet":
                assert path.stat().st_size > 0 and path.read_bytes()[-4:] == b"PAR1"
            assert ".tmp" not in path.name
