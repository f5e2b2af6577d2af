"""Fixtures for the end-to-end tests: real Dagster services on a tmp copy of the sample, and headless Chromium.

* ``sample_services`` (session, read-only): sample artifacts + config copied to a tmp folder, `dagster dev` on loopback,
  the whole graph materialized once through GraphQL (job ``gate_pipeline_all`` over the sample's days).
* ``start_sample_services(base)``: the same as a context manager, for modules that need their own copy.
* ``browser`` (module): a Playwright ``BrowserContext`` driving the SYSTEM Chromium (never a download).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gate_pipeline_tests.e2e.services import IN_PROCESS, REPO_ROOT, DagsterServices, ServicesError

SAMPLE_ARTIFACTS = REPO_ROOT / "gate_pipeline" / "sample_artifacts"
DATE_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ALL_ASSETS_JOB = "gate_pipeline_all"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@dataclass
class SampleServices:
    """Running services on a private copy of the sample, materialized once."""

    services: DagsterServices
    base: Path  # the module's tmp folder
    artifacts: Path
    data: Path
    outputs: Path
    config: Path
    output_dir: Path  # screenshots and other evidence of the tests
    days: list[str]
    env: dict[str, str]
    run_id: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.services.url

    def settings(self):
        """Settings equal to what the code location sees (same env)."""
        from gate_pipeline.settings import Settings

        return Settings.from_env(self.env)

    def definitions(self):
        """The Definitions the code location loaded (built from the same env, start date included)."""
        from gate_pipeline.definitions import build_definitions

        return build_definitions(self.settings())


def sample_days(root: Path) -> list[str]:
    """The date folders of an artifact root, sorted."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and DATE_FOLDER.match(p.name))


def asset_keys_of(defs) -> list[str]:
    """Every asset key of Definitions as ``a/b`` strings, sorted (materializable and source assets alike)."""
    graph = defs.resolve_asset_graph()
    return sorted(key.to_user_string() for key in graph.get_all_asset_keys())


def check_names_of(defs, asset_key: str) -> list[str]:
    """Names of the asset checks Definitions declare for one asset, sorted."""
    import dagster as dg

    graph = defs.resolve_asset_graph()
    target = dg.AssetKey.from_user_string(asset_key)
    return sorted(k.name for k in graph.asset_check_keys if k.asset_key == target)


@contextlib.contextmanager
def start_sample_services(base: Path, artifacts_source: Path = SAMPLE_ARTIFACTS) -> Iterator[SampleServices]:
    """Copy the sample + config under ``base``, start `dagster dev` on them and materialize everything once.

    For tests that change artifacts/config (issue 5 workflows): use this in your own module-scoped fixture
    so your changes never leak into the shared ``sample_services``.
    """
    artifacts, data, outputs, config = base / "artifacts", base / "data", base / "outputs", base / "config"
    shutil.copytree(artifacts_source, artifacts)
    shutil.copytree(REPO_ROOT / "config", config)
    output_dir = base / "output"
    output_dir.mkdir(exist_ok=True)
    days = sample_days(artifacts)
    assert days, f"no date folders in {artifacts}"
    env = {
        "CI_ARTIFACT_PATH": str(artifacts),
        "GATE_PIPELINE_DATA": str(data),
        "GATE_PIPELINE_OUT": str(outputs),
        "GATE_PIPELINE_CONFIG": str(config),
    }
    from gate_pipeline.settings import Settings

    if days[0] < Settings.from_env(env).pipeline_config().partitions.start_date:
        # Same widening as `gate-pipeline run`: the first sample day must be a partition.
        env["GATE_PIPELINE_START_DATE"] = days[0]
    services = DagsterServices(log_path=base / "dagster_dev.log", env=env, dagster_home=base / "dagster_home")
    timings: dict[str, float] = {}
    started = time.monotonic()
    try:
        services.start()
    except ServicesError as exc:
        pytest.fail(f"Dagster services did not start: {exc}", pytrace=False)
    timings["start_s"] = time.monotonic() - started
    try:
        started = time.monotonic()
        services.add_day_partitions(days)
        run_id = services.launch_job_run(
            ALL_ASSETS_JOB, partition_range=(days[0], days[-1]), run_config=IN_PROCESS
        )
        status = services.wait_for_run(run_id, timeout=240)
        timings["materialize_s"] = time.monotonic() - started
        if status != "SUCCESS":
            failures = "\n".join(services.run_failure_messages(run_id))
            pytest.fail(
                f"{ALL_ASSETS_JOB} run {run_id} ended {status}:\n{failures}\n{services.log_tail()}",
                pytrace=False,
            )
        print(f"\ne2e services at {services.url}: {timings}; files under {base}")
        yield SampleServices(
            services=services,
            base=base,
            artifacts=artifacts,
            data=data,
            outputs=outputs,
            config=config,
            output_dir=output_dir,
            days=days,
            env=env,
            run_id=run_id,
            timings=timings,
        )
    except ServicesError as exc:
        pytest.fail(f"{exc}", pytrace=False)
    finally:
        services.stop()


@pytest.fixture(scope="session")
def sample_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleServices]:
    """READ-ONLY shared services on the materialized sample (one start for all e2e modules: ~1 min each).

    Tests must not change its artifacts, config or instance state; use ``start_sample_services`` in a
    module-scoped fixture of your own for workflows that do.
    """
    with start_sample_services(tmp_path_factory.mktemp("e2e")) as running:
        yield running


def chromium_path() -> str | None:
    """The system Chromium (Debian's `chromium` package), if installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A Playwright ``BrowserContext`` on the system Chromium with a fresh profile (no browser downloads)."""
    executable = chromium_path()
    if executable is None:
        reason = "system chromium not found (install Debian's `chromium` package: `make browser-deps`)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - playwright is a test dependency
        pytest.fail(f"playwright not importable: {exc}", pytrace=False)
    profile = tempfile.mkdtemp(prefix="chromium_profile_")
    try:
        with sync_playwright() as pw:
            # Playwright refuses --user-data-dir in args; a persistent context on a fresh dir is the same.
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1600, "height": 1000},
                timeout=60_000,
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
