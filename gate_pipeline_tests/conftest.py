import shutil

import pytest

from gate_pipeline_tests.pipeline_helpers import CONFIG

pytest_plugins = ["gate_pipeline_tests.s3_server", "gate_pipeline_tests.postgres_server"]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A tmp folder with its own DAGSTER_HOME and a copy of config/ (the CLI tests edit it)."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    return tmp_path, config
