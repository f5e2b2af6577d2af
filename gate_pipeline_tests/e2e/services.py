"""Real Dagster services for end-to-end tests: `dagster dev` on loopback plus small GraphQL helpers.

Used by the e2e and browser tests (issues 5 and 6). Everything talks to ``http://127.0.0.1:<port>`` only.

    with DagsterServices(repo_root, env={...}, log_path=tmp / "dagster.log") as services:
        run_id = services.launch_job_run("gate_pipeline_all", partition_range=("2026-03-01", "2026-03-12"))
        services.wait_for_run(run_id, timeout=120)

GraphQL field names were checked against the installed dagster_graphql 1.13 schema
(``str(dagster_graphql.schema.create_schema())``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
TERMINAL_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}
# BulkActionStatus values after which a backfill launches nothing more.
# Run config of the default executor that keeps all steps in the run worker: on a small machine each step
# subprocess costs seconds of imports.
IN_PROCESS: dict[str, Any] = {"execution": {"config": {"in_process": {}}}}
TERMINAL_BACKFILL_STATUSES = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


class ServicesError(RuntimeError):
    """The services did not start, a GraphQL call failed, or a run/backfill did not finish in time."""


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def graphql(url: str, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 60) -> dict:
    """POST a query to ``<url>/graphql``; return ``data`` or raise ServicesError on transport/GraphQL errors."""
    response = requests.post(
        f"{url.rstrip('/')}/graphql",
        json={"query": query, "variables": dict(variables or {})},
        timeout=timeout,
    )
    if response.status_code != 200:
        raise ServicesError(f"GraphQL HTTP {response.status_code}: {response.text[:2000]}")
    body = response.json()
    if body.get("errors"):
        raise ServicesError(f"GraphQL errors: {body['errors']}")
    return body["data"]


def _raise_if_error(result: Mapping[str, Any], expected: str, what: str) -> Mapping[str, Any]:
    """Union results carry __typename; anything but the expected type is an error with a message."""
    if result.get("__typename") != expected:
        raise ServicesError(f"{what}: {result.get('__typename')}: {result}")
    return result


def key_input(asset_key: str | Sequence[str]) -> dict[str, list[str]]:
    """``AssetKeyInput`` from ``"a/b"``, ``"a"`` or ``["a", "b"]``."""
    path = asset_key.split("/") if isinstance(asset_key, str) else list(asset_key)
    return {"path": path}


def metadata_values(entries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """GraphQL ``MetadataEntry`` list → ``{label: python value}`` (int, float, text, json string, md, bool, path)."""
    values: dict[str, Any] = {}
    for entry in entries:
        for field in ("intValue", "floatValue", "boolValue", "text", "jsonString", "mdStr", "path", "url"):
            if field in entry:
                values[entry["label"]] = entry[field]
                break
        else:
            values[entry["label"]] = entry.get("__typename")
    return values


METADATA_FRAGMENT = """
fragment Meta on MetadataEntry {
  __typename
  label
  ... on IntMetadataEntry { intValue }
  ... on FloatMetadataEntry { floatValue }
  ... on BoolMetadataEntry { boolValue }
  ... on TextMetadataEntry { text }
  ... on JsonMetadataEntry { jsonString }
  ... on MarkdownMetadataEntry { mdStr }
  ... on PathMetadataEntry { path }
  ... on UrlMetadataEntry { url }
}
"""


class DagsterServices:
    """`dagster dev` (webserver + daemon + code server) on 127.0.0.1 in its own process group.

    A temporary DAGSTER_HOME holds a copy of the repo's dagster.yaml. Entering waits (bounded) until
    ``/server_info`` answers and the code location lists its repository; exiting sends SIGINT to the
    process group (what `dagster dev` handles), waits up to ``stop_timeout`` seconds, then SIGKILLs it.
    """

    def __init__(
        self,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        workspace: Path | None = None,
        port: int | None = None,
        start_timeout: float = 120,
        stop_timeout: float = 30,
        dagster_home: Path | None = None,
    ) -> None:
        self.log_path = Path(log_path)
        self.extra_env = dict(env or {})
        self.workspace = Path(workspace or REPO_ROOT / "workspace.yaml")
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._home_arg = dagster_home
        self._tmp_home: tempfile.TemporaryDirectory | None = None
        self.dagster_home: Path | None = None
        self.proc: subprocess.Popen | None = None
        self._log_file = None
        self.location_name: str | None = None
        self.repository_name: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> DagsterServices:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def command(self) -> list[str]:
        """The `dagster dev` command line (the venv's dagster next to this interpreter)."""
        dagster = Path(sys.executable).with_name("dagster")
        exe = str(dagster) if dagster.exists() else shutil.which("dagster") or "dagster"
        return [exe, "dev", "-w", str(self.workspace), "-h", HOST, "-p", str(self.port)]

    def start(self) -> None:
        """Start the process group and wait until the code location is loaded; on failure stop and raise."""
        if self._home_arg is None:
            self._tmp_home = tempfile.TemporaryDirectory(prefix="dagster_home_")
            self.dagster_home = Path(self._tmp_home.name)
        else:
            self.dagster_home = Path(self._home_arg)
            self.dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / "dagster.yaml", self.dagster_home / "dagster.yaml")
        env = {**os.environ, **self.extra_env, "DAGSTER_HOME": str(self.dagster_home)}
        # A closed network: no telemetry, no update checks.
        env.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.command(),
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: SIGINT reaches webserver, daemon and code server
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last_problem = "not started"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServicesError(f"dagster dev exited with {self.proc.returncode}\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/server_info", timeout=5).status_code == 200:
                    found = self._loaded_repository()
                    if found:
                        self.location_name, self.repository_name = found
                        return
                    last_problem = "code location not loaded yet"
                else:
                    last_problem = "server_info not 200"
            except _Fatal as fatal:
                raise ServicesError(f"{fatal.error}\n{self.log_tail()}") from None
            except (requests.RequestException, ServicesError) as exc:
                last_problem = f"{type(exc).__name__}: {exc}"[:500]
            time.sleep(1)
        raise ServicesError(
            f"dagster dev not ready within {self.start_timeout:.0f}s ({last_problem})\n{self.log_tail()}"
        )

    def _loaded_repository(self) -> tuple[str, str] | None:
        data = graphql(
            self.url,
            """
            query {
              workspaceOrError {
                __typename
                ... on Workspace {
                  locationEntries {
                    name
                    loadStatus
                    locationOrLoadError {
                      __typename
                      ... on RepositoryLocation { name repositories { name } }
                      ... on PythonError { message stack }
                    }
                  }
                }
                ... on PythonError { message }
              }
            }
            """,
            timeout=10,
        )
        workspace = data["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            return None
        for entry in workspace["locationEntries"]:
            location = entry["locationOrLoadError"]
            if entry["loadStatus"] != "LOADED" or location is None:
                continue
            if location["__typename"] == "PythonError":
                # A broken code location never becomes ready: fail now with the reason.
                raise _Fatal(
                    ServicesError(
                        f"code location {entry['name']} failed to load: {location['message']}"
                        f"{''.join(location.get('stack') or [])}"
                    )
                )
            if location["repositories"]:
                return entry["name"], location["repositories"][0]["name"]
        return None

    def stop(self) -> None:
        """SIGINT the process group, wait ≤ stop_timeout, then SIGKILL; never hangs."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        if proc is not None:
            # Children (run workers) may outlive the leader; the group must be gone either way.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._tmp_home is not None:
            self._tmp_home.cleanup()
            self._tmp_home = None

    def log_tail(self, lines: int = 80) -> str:
        """The last lines of the services' combined stdout/stderr log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- last {lines} lines of {self.log_path} ---\n{tail}"

    # -- GraphQL helpers -----------------------------------------------------------------------------
    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict:
        """GraphQL against these services."""
        return graphql(self.url, query, variables)

    def _selector(self) -> dict[str, str]:
        return {"repositoryLocationName": self.location_name, "repositoryName": self.repository_name}

    def add_day_partitions(self, days: Sequence[str]) -> None:
        """Register date folders as day partitions, as the artifact sensor and `gate-pipeline run` do."""
        for day in days:
            data = self.graphql(
                """
                mutation Add($repo: RepositorySelector!, $name: String!, $key: String!) {
                  addDynamicPartition(repositorySelector: $repo, partitionsDefName: $name, partitionKey: $key) {
                    __typename
                    ... on PythonError { message }
                  }
                }
                """,
                {"repo": self._selector(), "name": "days", "key": day},
            )
            kind = data["addDynamicPartition"]["__typename"]
            if kind not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
                raise ServicesError(f"adding day partition {day}: {data['addDynamicPartition']}")

    def launch_job_run(
        self,
        job_name: str = "gate_pipeline_all",
        partition_range: tuple[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        asset_keys: Sequence[str] | None = None,
        run_config: Mapping[str, Any] | None = None,
    ) -> str:
        """Launch a job run (optionally one run over a partition range, or an asset subset); return its run id.

        ``run_config`` e.g. ``IN_PROCESS`` runs every step in the run worker (no subprocess per step).
        """
        all_tags = dict(tags or {})
        if partition_range is not None:
            all_tags["dagster/asset_partition_range_start"] = partition_range[0]
            all_tags["dagster/asset_partition_range_end"] = partition_range[1]
        selector: dict[str, Any] = {**self._selector(), "jobName": job_name}
        if asset_keys is not None:
            selector["assetSelection"] = [key_input(k) for k in asset_keys]
        params: dict[str, Any] = {
            "selector": selector,
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in sorted(all_tags.items())]},
        }
        if run_config is not None:
            params["runConfigData"] = dict(run_config)
        data = self.graphql(
            """
            mutation Launch($executionParams: ExecutionParams!) {
              launchRun(executionParams: $executionParams) {
                __typename
                ... on LaunchRunSuccess { run { runId } }
                ... on Error { message }
                ... on PythonError { stack }
                ... on RunConfigValidationInvalid { errors { message } }
              }
            }
            """,
            {"executionParams": params},
        )
        result = _raise_if_error(data["launchRun"], "LaunchRunSuccess", f"launchRun {job_name}")
        return result["run"]["runId"]

    def launch_asset_materialization(
        self,
        asset_keys: Sequence[str],
        partition_range: tuple[str, str] | None = None,
        job_name: str = "__ASSET_JOB",
        run_config: Mapping[str, Any] | None = None,
    ) -> str:
        """Materialize an asset subset through an asset job (default: the implicit one the UI uses)."""
        return self.launch_job_run(
            job_name, partition_range=partition_range, asset_keys=asset_keys, run_config=run_config
        )

    def run_status(self, run_id: str) -> str:
        """The run's RunStatus (QUEUED, STARTED, SUCCESS, FAILURE, ...)."""
        data = self.graphql(
            """
            query Run($runId: ID!) {
              runOrError(runId: $runId) { __typename ... on Run { status } ... on Error { message } }
            }
            """,
            {"runId": run_id},
        )
        return _raise_if_error(data["runOrError"], "Run", f"run {run_id}")["status"]

    def run_failure_messages(self, run_id: str, limit: int = 2000) -> list[str]:
        """Messages of the run's failure events (for assertion messages)."""
        data = self.graphql(
            """
            query Events($runId: ID!, $limit: Int) {
              runOrError(runId: $runId) {
                __typename
                ... on Run {
                  eventConnection(limit: $limit) {
                    events {
                      __typename
                      ... on MessageEvent { message }
                      ... on ExecutionStepFailureEvent { stepKey error { message } }
                      ... on RunFailureEvent { pipelineName }
                    }
                  }
                }
              }
            }
            """,
            {"runId": run_id, "limit": limit},
        )
        events = data["runOrError"].get("eventConnection", {}).get("events", [])
        out = []
        for event in events:
            if (
                "Failure" in event["__typename"]
                or event["__typename"] == "EngineEvent"
                and "rror" in event["message"]
            ):
                detail = (event.get("error") or {}).get("message", "")
                out.append(
                    f"{event['__typename']} {event.get('stepKey') or ''}: {event['message']} {detail}".strip()
                )
        return out

    def wait_for_run(self, run_id: str, timeout: float = 180, poll: float = 1.0) -> str:
        """Poll until the run is SUCCESS/FAILURE/CANCELED; return the status (ServicesError on timeout)."""
        deadline = time.monotonic() + timeout
        status = "UNKNOWN"
        while time.monotonic() < deadline:
            status = self.run_status(run_id)
            if status in TERMINAL_RUN_STATUSES:
                return status
            time.sleep(poll)
        raise ServicesError(f"run {run_id} still {status} after {timeout:.0f}s\n{self.log_tail()}")

    def latest_materialization_metadata(
        self, asset_key: str | Sequence[str], partition: str | None = None
    ) -> dict[str, Any]:
        """``{label: value}`` of the asset's latest materialization, or of its latest one for ``partition``
        (ServicesError if none). A ranged run stores its days' events in an order Dagster does not promise, so
        a test that wants one day's event names the day."""
        data = self.graphql(
            """
            query Latest($assetKey: AssetKeyInput!, $partitions: [String!]) {
              assetOrError(assetKey: $assetKey) {
                __typename
                ... on Asset {
                  assetMaterializations(limit: 1, partitions: $partitions) {
                    runId partition metadataEntries { ...Meta }
                  }
                }
                ... on AssetNotFoundError { message }
              }
            }
            """
            + METADATA_FRAGMENT,
            {"assetKey": key_input(asset_key), "partitions": [partition] if partition else None},
        )
        asset = _raise_if_error(data["assetOrError"], "Asset", f"asset {asset_key}")
        if not asset["assetMaterializations"]:
            raise ServicesError(f"asset {asset_key} has no materialization")
        latest = asset["assetMaterializations"][0]
        if partition is not None and latest["partition"] != partition:
            raise ServicesError(
                f"asset {asset_key}: asked for partition {partition}, got {latest['partition']}"
            )
        return metadata_values(latest["metadataEntries"])

    def asset_check_executions(
        self, asset_key: str | Sequence[str], check_name: str | None = None, limit: int = 20
    ) -> dict[str, list[dict[str, Any]]]:
        """``{check_name: [execution, ...newest first]}``; each execution has runId, status, success,
        severity and metadata (``{label: value}``). Without ``check_name``: every check of the asset."""
        if check_name is None:
            names = sorted(c["name"] for c in self.asset_checks(asset_key))
        else:
            names = [check_name]
        out: dict[str, list[dict[str, Any]]] = {}
        for name in names:
            data = self.graphql(
                """
                query Checks($assetKey: AssetKeyInput!, $checkName: String!, $limit: Int!) {
                  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: $limit) {
                    runId status partition timestamp
                    evaluation { success severity description metadataEntries { ...Meta } }
                  }
                }
                """
                + METADATA_FRAGMENT,
                {"assetKey": key_input(asset_key), "checkName": name, "limit": limit},
            )
            rows = []
            for execution in data["assetCheckExecutions"]:
                evaluation = execution.get("evaluation") or {}
                rows.append(
                    {
                        "runId": execution["runId"],
                        "status": execution["status"],
                        "partition": execution["partition"],
                        "success": evaluation.get("success"),
                        "severity": evaluation.get("severity"),
                        "description": evaluation.get("description"),
                        "metadata": metadata_values(evaluation.get("metadataEntries") or []),
                    }
                )
            out[name] = rows
        return out

    def asset_checks(self, asset_key: str | Sequence[str]) -> list[dict[str, Any]]:
        """The asset's check definitions as the services see them: name, description, blocking."""
        data = self.graphql(
            """
            query Node($assetKey: AssetKeyInput!) {
              assetNodeOrError(assetKey: $assetKey) {
                __typename
                ... on AssetNode {
                  assetChecksOrError {
                    __typename
                    ... on AssetChecks { checks { name description blocking } }
                  }
                }
                ... on AssetNotFoundError { message }
              }
            }
            """,
            {"assetKey": key_input(asset_key)},
        )
        node = _raise_if_error(data["assetNodeOrError"], "AssetNode", f"asset node {asset_key}")
        checks = node["assetChecksOrError"]
        return list(checks.get("checks") or [])

    def materialized_partitions(self, asset_key: str | Sequence[str]) -> list[str]:
        """Partition keys with a materialization (``latestMaterializationByPartition`` over all keys)."""
        data = self.graphql(
            """
            query Parts($assetKey: AssetKeyInput!) {
              assetNodeOrError(assetKey: $assetKey) {
                __typename
                ... on AssetNode { partitionKeys }
              }
            }
            """,
            {"assetKey": key_input(asset_key)},
        )
        keys = _raise_if_error(data["assetNodeOrError"], "AssetNode", f"asset node {asset_key}")[
            "partitionKeys"
        ]
        data = self.graphql(
            """
            query Latest($assetKey: AssetKeyInput!, $partitions: [String!]) {
              assetNodeOrError(assetKey: $assetKey) {
                ... on AssetNode { latestMaterializationByPartition(partitions: $partitions) { partition } }
              }
            }
            """,
            {"assetKey": key_input(asset_key), "partitions": keys},
        )
        events = data["assetNodeOrError"]["latestMaterializationByPartition"]
        return sorted(e["partition"] for e in events if e is not None)

    def sensor_selector(self, name: str) -> dict[str, str]:
        """``SensorSelector`` for a sensor of this code location."""
        return {**self._selector(), "sensorName": name}

    def sensor_state(self, name: str) -> dict[str, Any]:
        """``{"status": RUNNING|STOPPED, "ticks": [{status, runIds, skipReason, error}]}`` of a sensor."""
        data = self.graphql(
            """
            query Sensor($selector: SensorSelector!) {
              sensorOrError(sensorSelector: $selector) {
                __typename
                ... on Sensor {
                  sensorState {
                    status
                    ticks(limit: 20) { status timestamp runIds runKeys skipReason cursor error { message } }
                  }
                }
                ... on Error { message }
              }
            }
            """,
            {"selector": self.sensor_selector(name)},
        )
        sensor = _raise_if_error(data["sensorOrError"], "Sensor", f"sensor {name}")
        return sensor["sensorState"]

    def set_sensor_running(self, name: str, running: bool = True) -> str:
        """Start (or stop) a sensor; return its resulting InstigationStatus."""
        if running:
            data = self.graphql(
                """
                mutation Start($selector: SensorSelector!) {
                  startSensor(sensorSelector: $selector) {
                    __typename
                    ... on Sensor { sensorState { status } }
                    ... on Error { message }
                  }
                }
                """,
                {"selector": self.sensor_selector(name)},
            )
            return _raise_if_error(data["startSensor"], "Sensor", f"startSensor {name}")["sensorState"][
                "status"
            ]
        state = self.graphql(
            """
            query Sensor($selector: SensorSelector!) {
              sensorOrError(sensorSelector: $selector) {
                __typename ... on Sensor { jobOriginId sensorState { selectorId } }
              }
            }
            """,
            {"selector": self.sensor_selector(name)},
        )["sensorOrError"]
        _raise_if_error(state, "Sensor", f"sensor {name}")
        data = self.graphql(
            """
            mutation Stop($jobOriginId: String, $jobSelectorId: String) {
              stopSensor(jobOriginId: $jobOriginId, jobSelectorId: $jobSelectorId) {
                __typename
                ... on StopSensorMutationResult { instigationState { status } }
                ... on Error { message }
              }
            }
            """,
            {"jobOriginId": state["jobOriginId"], "jobSelectorId": state["sensorState"]["selectorId"]},
        )
        result = _raise_if_error(data["stopSensor"], "StopSensorMutationResult", f"stopSensor {name}")
        return result["instigationState"]["status"]

    def launch_partition_backfill(
        self,
        asset_keys: Sequence[str],
        partition_names: Sequence[str] | None = None,
        all_partitions: bool = False,
        title: str | None = None,
    ) -> str:
        """Launch an asset backfill over named partitions (or all); return the backfill id."""
        if (partition_names is None) == (not all_partitions):
            raise ValueError("give exactly one of partition_names or all_partitions=True")
        params: dict[str, Any] = {"assetSelection": [key_input(k) for k in asset_keys]}
        if all_partitions:
            params["allPartitions"] = True
        else:
            params["partitionNames"] = list(partition_names or [])
        if title:
            params["title"] = title
        data = self.graphql(
            """
            mutation Backfill($params: LaunchBackfillParams!) {
              launchPartitionBackfill(backfillParams: $params) {
                __typename
                ... on LaunchBackfillSuccess { backfillId }
                ... on Error { message }
                ... on PythonError { stack }
              }
            }
            """,
            {"params": params},
        )
        return _raise_if_error(
            data["launchPartitionBackfill"], "LaunchBackfillSuccess", "launchPartitionBackfill"
        )["backfillId"]

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        """``{id, status, runs: [{runId, status}], error}`` of a backfill."""
        data = self.graphql(
            """
            query Backfill($id: String!) {
              partitionBackfillOrError(backfillId: $id) {
                __typename
                ... on PartitionBackfill { id status runs { runId status } error { message } }
                ... on Error { message }
              }
            }
            """,
            {"id": backfill_id},
        )
        return dict(
            _raise_if_error(data["partitionBackfillOrError"], "PartitionBackfill", f"backfill {backfill_id}")
        )

    def wait_for_backfill(self, backfill_id: str, timeout: float = 240, poll: float = 2.0) -> dict[str, Any]:
        """Poll until the backfill is done and its runs are finished; return the final ``backfill()`` dict."""
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {"status": "UNKNOWN"}
        while time.monotonic() < deadline:
            state = self.backfill(backfill_id)
            runs_done = all(r["status"] in TERMINAL_RUN_STATUSES for r in state["runs"])
            if state["status"] in TERMINAL_BACKFILL_STATUSES and runs_done:
                return state
            time.sleep(poll)
        raise ServicesError(
            f"backfill {backfill_id} still {state['status']} after {timeout:.0f}s\n{self.log_tail()}"
        )


class _Fatal(Exception):
    """Wraps a ServicesError that must stop the readiness loop immediately."""

    def __init__(self, error: ServicesError) -> None:
        super().__init__(str(error))
        self.error = error
