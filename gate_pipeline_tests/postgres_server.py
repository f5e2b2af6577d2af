"""A real PostgreSQL server on loopback for the scale-out tests (Debian's `postgresql` package; `.ci/run`
installs it). One throwaway cluster per session in a temporary directory, trust auth, 127.0.0.1 only.

When run as root (CI containers), the cluster is created and started as the `postgres` system user the
package adds, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gate_pipeline_tests.e2e.services import free_port


def _bin_dir() -> Path | None:
    """Debian keeps initdb/pg_ctl under /usr/lib/postgresql/<major>/bin, off PATH; newest major wins."""
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], log: Path) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        server_log = log.read_text() if log.exists() else ""
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}{server_log}"
        )


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """Start a fresh PostgreSQL cluster on a free loopback port; yield its SQLAlchemy URL; stop and delete it."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        raise RuntimeError(
            "PostgreSQL server binaries not found: install Debian's postgresql package (see .ci/run)"
        )
    root = Path(tempfile.mkdtemp(prefix="gate-pg-"))
    data, log = root / "data", root / "server.log"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    try:
        _run(
            _as_server_user(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            ),
            log,
        )
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
        _run(
            _as_server_user(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]
            ),
            log,
        )
        # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; dagster-postgres ships psycopg2.
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def postgres_instance_yaml(url: str) -> str:
    """A dagster.yaml whose run, event log and schedule storage all live in the Postgres at `url`."""
    return f"storage:\n  postgres:\n    postgres_url: {url}\ntelemetry:\n  enabled: false\n"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    try:
        with postgres_cluster() as url:
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))
