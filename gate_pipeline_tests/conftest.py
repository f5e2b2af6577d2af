import shutil

import pytest

from gate_pipeline_tests.pipeline_helpers import CONFIG

pytest_plugins = ["gate_pipeline_tests.s3_server", "gate_pipeline_tests.postgres_server"]

# A test that uses one of these fixtures starts that server: it carries the marker even if its module
# forgot it, so `-m "not s3"` / `-m "not postgres"` (make test-fast) never starts one.
FIXTURE_MARKERS = {"s3_server": "s3", "s3_bucket": "s3", "postgres_url": "postgres"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in set(getattr(item, "fixturenames", ())) & FIXTURE_MARKERS.keys():
            item.add_marker(FIXTURE_MARKERS[fixture])


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A tmp folder with its own DAGSTER_HOME and a copy of config/ (the CLI tests edit it)."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    return tmp_path, config
