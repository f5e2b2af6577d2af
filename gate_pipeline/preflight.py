"""Checks the CLI runs before a Dagster run starts: config, storage and environment problems become one
clear message (file, entry and key; or URL and cause) and exit code 2, instead of a traceback mid-run.

- every config file loads (pipeline.yaml, unknown_whitelist.json, analysis.yaml, policy_constants.yaml);
- the config folder and the artifact root exist and can be listed (S3: the bucket exists, the credentials
  are accepted, the endpoint answers);
- the outputs and data locations are folders we can write to (local: not a file, not read-only; S3: the
  bucket exists; a missing bucket is an error, never created).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

from fsspec.implementations.local import LocalFileSystem

from gate_pipeline.lib.config import ConfigError
from gate_pipeline.lib.rules import DecisionConfigError
from gate_pipeline.lib.stats import AnalysisConfigError
from gate_pipeline.lib.storage import Store
from gate_pipeline.settings import Settings

CONFIG_ERRORS = (ConfigError, DecisionConfigError, AnalysisConfigError)


class PreflightError(Exception):
    """One line (or one line per config problem) saying what is wrong and where."""


def check(settings: Settings, *, outputs: bool = True, dagster_run: bool = True) -> None:
    """Raise PreflightError for the first problem found. A command that starts no Dagster run (what-if)
    reads no artifact and loads the config files it uses itself: the artifact root and pipeline.yaml are
    not checked (nor Dagster imported)."""
    config = settings.store(settings.config_url)
    _reachable(config, "config folder", must_exist=True)
    if dagster_run:
        _configs(settings)
        _reachable(settings.store(settings.artifacts_url), "artifact root", must_exist=True)
    if outputs:
        _writable(settings.store(settings.outputs_url), "--out")
        _writable(settings.store(settings.data_url), "data folder")


def _configs(settings: Settings) -> None:
    from gate_pipeline.defs.resources import GateStorage

    storage = GateStorage.from_settings(settings)
    loaders: list[tuple[str, Callable[[], object]]] = [
        ("pipeline.yaml", settings.pipeline_config),
        ("unknown_whitelist.json", storage.whitelist),
        ("analysis.yaml", storage.analysis_config),
        ("policy_constants.yaml", storage.decision_config),
    ]
    for name, load in loaders:
        try:
            load()
        except CONFIG_ERRORS as exc:
            raise PreflightError(str(exc)) from exc
        except FileNotFoundError as exc:
            raise PreflightError(f"{settings.store(settings.config_url).url(name)}: file not found") from exc


def _cause(exc: BaseException) -> str:
    """The most specific message of an exception chain (botocore's, not s3fs's wrapper)."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _reachable(store: Store, what: str, *, must_exist: bool) -> None:
    url = str(store.root)
    try:
        if isinstance(store.fs, LocalFileSystem):
            path = store.root.path
            if not os.path.exists(path):
                if must_exist:
                    raise PreflightError(f"{what} {url} does not exist")
                return
            if not os.path.isdir(path):
                raise PreflightError(f"{what} {url} is a file, not a folder")
            os.listdir(path)
            return
        bucket = store.root.path.split("/", 1)[0]
        store.fs.invalidate_cache()
        try:
            store.fs.ls(bucket)  # not exists(): s3fs answers False for a refused connection too
        except FileNotFoundError:
            raise PreflightError(f"{what} {url}: bucket {bucket!r} does not exist") from None
        store.fs.ls(store.root.path)
    except PreflightError:
        raise
    except FileNotFoundError:
        if must_exist:
            raise PreflightError(f"{what} {url} does not exist") from None
    except Exception as exc:  # noqa: BLE001 - any storage failure becomes one line with URL and cause
        raise PreflightError(f"{what} {url}: cannot be read ({_cause(exc)})") from exc


def _writable(store: Store, what: str) -> None:
    url = str(store.root)
    if not isinstance(store.fs, LocalFileSystem):
        _reachable(store, what, must_exist=False)  # the bucket must exist; it is never created
        return
    path = store.root.path
    if os.path.exists(path) and not os.path.isdir(path):
        raise PreflightError(f"{what} {url} is a file, not a folder")
    probe = f".gate-pipeline-write-test-{uuid.uuid4().hex}"
    try:
        store.write_bytes(b"", probe)
        os.unlink(os.path.join(path, probe))
    except OSError as exc:
        raise PreflightError(f"{what} {url} is not writable ({_cause(exc)})") from exc
