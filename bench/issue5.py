"""Issue 5 measurements: whitelist backfill vs cold build, and sensor tick times (local and S3 on moto)."""

from __future__ import annotations

import re
import shutil
import statistics
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import orjson

from gate_pipeline.lib.discovery import scan_for_changes

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class BackfillResult:
    wall_s: float
    compute_s: float
    files_read: int
    success: bool


def whitelist_backfill(
    run_child,
    step_stats,
    child_env,
    venv_bin: Path,
    artifacts: Path,
    out: Path,
    home: Path,
    log: Path,
    base_config: Path = ROOT / "config",
):
    """Edit a copy of the whitelist (one more entry), then `gate-pipeline backfill` over the same --out/instance."""
    config = edited_whitelist_config(base_config, out.parent / "config-backfill")
    cmd = [
        str(venv_bin / "gate-pipeline"),
        "backfill",
        "--artifacts",
        str(artifacts),
        "--out",
        str(out),
        "--config",
        str(config),
    ]
    child = run_child(cmd, child_env(home), log)
    run_id = re.search(r"dagster run (\S+) \((success|FAILED)\)", child.stdout)
    reads = re.search(r"artifact files read during the backfill: (\d+)", child.stdout)
    stats = step_stats(home, run_id.group(1)) if run_id else []
    compute = sum(end - start for _, start, end in stats)
    return BackfillResult(child.wall_s, compute, int(reads.group(1)) if reads else -1, child.returncode == 0)


def edited_whitelist_config(base_config: Path, config: Path) -> Path:
    """A copy of `base_config` at `config` whose whitelist has one more entry (what a backfill follows)."""
    shutil.rmtree(config, ignore_errors=True)
    shutil.copytree(base_config, config)
    whitelist = orjson.loads((config / "unknown_whitelist.json").read_bytes())
    whitelist["entries"].append(
        {
            "reason": "schema_drift",
            "match": "exact",
            "class": "schema",
            "owner": "bench",
            "note": "bench backfill",
        }
    )
    (config / "unknown_whitelist.json").write_bytes(orjson.dumps(whitelist, option=orjson.OPT_INDENT_2))
    return config


def _tick_times(root, today: date, lookback: int, repeat: int = 5) -> tuple[float, float, int]:
    """(first tick s, median steady tick s, files listed per steady tick) for one root."""
    t0 = time.perf_counter()
    first = scan_for_changes(root, None, today=today, lookback_days=lookback, settle_seconds=0)
    first_s = time.perf_counter() - t0
    times, listed = [], 0
    cursor = first.cursor
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = scan_for_changes(root, cursor, today=today, lookback_days=lookback, settle_seconds=0)
        times.append(time.perf_counter() - t0)
        cursor, listed = result.cursor, result.counts.get("files_seen", 0)
    return first_s, statistics.median(times), listed


def local_sensor_ticks(artifacts: Path, lookback: int = 3) -> tuple[float, float, int]:
    """Ticks as if 'today' were the corpus's last day, so the window holds real days."""
    last = max(d.name for d in artifacts.iterdir() if re.match(r"^\d{4}-\d{2}-\d{2}$", d.name))
    from upath import UPath

    return _tick_times(UPath(artifacts), date.fromisoformat(last), lookback)


def s3_sensor_ticks(keys: int = 10_000, days: int = 100, lookback: int = 3) -> tuple[float, float, int]:
    """A moto S3 server on loopback with `keys` objects over `days` date prefixes; ticks through s3fs."""
    import logging
    import os

    import s3fs
    from moto.server import ThreadedMotoServer
    from upath import UPath

    from gate_pipeline_tests.s3_server import S3Bucket, seed_objects, storage_options_for

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        options = storage_options_for(endpoint)
        s3fs.S3FileSystem(**options).mkdir("bench-sensor")
        start = date(2026, 3, 1)
        per_day = keys // days
        objects = {
            f"ci/{(start + timedelta(days=d)).isoformat()}/r{d:03d}{i:05d}/gate_result.json": b'{"run_id": "x"}'
            for d in range(days)
            for i in range(per_day)
        }
        seed_objects(S3Bucket("bench-sensor", endpoint, options), objects)
        root = UPath("s3://bench-sensor/ci", **options)
        return _tick_times(root, start + timedelta(days=days - 1), lookback)
    finally:
        server.stop()
