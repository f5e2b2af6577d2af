"""pytest plugin: a real S3 API server (moto server mode) on loopback, used through s3fs.

Register with ``pytest_plugins = ["gate_pipeline_tests.s3_server"]``. Fixtures:

* ``s3_server`` (session): a ``moto.server.ThreadedMotoServer`` on 127.0.0.1 and a free port;
  yields the endpoint URL.
* ``s3_bucket`` (function): a fresh, uniquely named bucket; yields an :class:`S3Bucket`
  ``(name, endpoint_url, storage_options)``. It also sets the AWS env vars (credentials, region,
  ``AWS_ENDPOINT_URL``) so code that only reads the environment reaches the same server, and clears
  s3fs's instance cache before and after the test.

Nothing here talks to anything but loopback: the endpoint is always ``http://127.0.0.1:<port>``,
credentials are static fakes (so botocore never asks an instance-metadata service), and the shared
AWS config/credential files are pointed at non-existent paths.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

FAKE_KEY = "testing"
FAKE_SECRET = "testing"
REGION = "us-east-1"


class S3Bucket(NamedTuple):
    """A fresh bucket on the loopback S3 server."""

    name: str
    endpoint_url: str
    storage_options: dict[str, Any]

    def url(self, prefix: str = "") -> str:
        """``s3://<bucket>/<prefix>`` (no trailing slash)."""
        return f"s3://{self.name}/{prefix.strip('/')}".rstrip("/")

    def upath(self, prefix: str = ""):
        """A ``UPath`` for ``s3://<bucket>/<prefix>`` bound to this server."""
        from upath import UPath

        return UPath(self.url(prefix), **self.storage_options)


def storage_options_for(endpoint_url: str) -> dict[str, Any]:
    """s3fs / UPath storage options for the loopback server."""
    return {
        "endpoint_url": endpoint_url,
        "key": FAKE_KEY,
        "secret": FAKE_SECRET,
        # No region here: s3fs would send it as LocationConstraint when creating a bucket, which
        # S3 rejects for us-east-1; the region comes from AWS_DEFAULT_REGION (set by s3_bucket).
    }


def _aws_env(endpoint_url: str, config_dir: Path) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": FAKE_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint_url,
        # Never fall back to the metadata service or a developer's real profile.
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(config_dir / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "no-credentials"),
    }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Start moto's threaded server on 127.0.0.1 with a free port; yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request to stderr; 10k-key tests would drown the output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(
    s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[S3Bucket]:
    """A fresh bucket; env vars point botocore/s3fs at the loopback server for this test."""
    import s3fs

    config_dir = tmp_path_factory.mktemp("aws-config")
    for key, value in _aws_env(s3_server, config_dir).items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    options = storage_options_for(s3_server)
    name = f"test-{uuid.uuid4().hex[:20]}"
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
    fs.mkdir(name)
    try:
        yield S3Bucket(name=name, endpoint_url=s3_server, storage_options=options)
    finally:
        # Buckets are unique per test and the server dies with the session: no deletion needed.
        s3fs.S3FileSystem.clear_instance_cache()


def upload_tree(local_dir: str | os.PathLike[str], s3_url: str, storage_options: dict[str, Any]) -> int:
    """Upload every file under ``local_dir`` to ``s3_url`` keeping relative paths; return the count.

    Goes through the real S3 API (s3fs's concurrent ``put``), like CI would. On the moto server this
    costs ~15 ms per file; for thousands of keys use :func:`seed_objects`.
    """
    import s3fs

    local = Path(local_dir)
    files = sorted(p for p in local.rglob("*") if p.is_file())
    if not files:
        return 0
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **storage_options)
    target = fs._strip_protocol(s3_url).rstrip("/")
    fs.put(
        [str(p) for p in files],
        [f"{target}/{p.relative_to(local).as_posix()}" for p in files],
    )
    return len(files)


def tree_objects(local_dir: str | os.PathLike[str], prefix: str = "") -> dict[str, bytes]:
    """``{<prefix>/<relative posix path>: bytes}`` for every file under ``local_dir``."""
    local = Path(local_dir)
    head = prefix.strip("/")
    return {
        (f"{head}/" if head else "") + p.relative_to(local).as_posix(): p.read_bytes()
        for p in sorted(local.rglob("*"))
        if p.is_file()
    }


def seed_objects(bucket: S3Bucket, objects: dict[str, bytes]) -> int:
    """Create many objects fast (10k in ~1.5 s instead of ~150 s over HTTP); return the count.

    The threaded moto server keeps its state in this process, so the objects are written straight
    into moto's S3 backend; everything the code under test does still goes over HTTP. Falls back to
    s3fs ``pipe`` (real API) if moto's backend layout ever changes.
    """
    try:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        backend.get_bucket(bucket.name)
    except Exception:  # any change in moto internals: take the slow, public path
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True, **bucket.storage_options)
        fs.pipe({f"{bucket.name}/{key}": data for key, data in objects.items()})
        return len(objects)
    for key, data in sorted(objects.items()):
        backend.put_object(bucket.name, key, data)
    return len(objects)


@contextlib.contextmanager
def count_s3_requests(fs: Any) -> Iterator[Counter[str]]:
    """Count the S3 API calls an s3fs filesystem makes inside the block, by operation name.

    Hooks botocore's public event system on the filesystem's client (``before-call.s3``).
    """
    counter: Counter[str] = Counter()

    def _count(model: Any = None, **_: Any) -> None:
        counter[model.name] += 1

    fs.connect()
    events = fs.s3.meta.events
    events.register("before-call.s3", _count, unique_id="gate-pipeline-request-counter")
    try:
        yield counter
    finally:
        events.unregister("before-call.s3", unique_id="gate-pipeline-request-counter")
