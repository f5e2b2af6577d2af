"""Settings: environment defaults, config validation errors that name the file, the key and the problem."""

import pytest

from gate_pipeline.lib.config import ConfigError
from gate_pipeline.settings import PipelineConfig, Settings, load_pipeline_config
from gate_pipeline_tests.pipeline_helpers import CONFIG, SAMPLE


def test_defaults_use_bundled_sample_and_per_root_data_folders():
    a = Settings.from_env({})
    b = Settings.from_env({"CI_ARTIFACT_PATH": "s3://bucket/ci"})
    assert a.artifacts_url == str(SAMPLE)
    assert a.config_url == str(CONFIG)
    assert b.artifacts_url == "s3://bucket/ci"
    assert a.data_url != b.data_url  # switching artifact roots never mixes stored days


def test_env_and_overrides():
    env = {
        "CI_ARTIFACT_PATH": "/a",
        "GATE_PIPELINE_OUT": "/o",
        "GATE_PIPELINE_DATA": "/d",
        "GATE_PIPELINE_CONFIG": "/c",
    }
    s = Settings.from_env(env, outputs_url="/override")
    assert (s.artifacts_url, s.outputs_url, s.data_url, s.config_url) == ("/a", "/override", "/d", "/c")


def test_repo_pipeline_config_is_valid_and_equals_defaults():
    assert (
        load_pipeline_config((CONFIG / "pipeline.yaml").read_bytes(), "config/pipeline.yaml")
        == PipelineConfig()
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            b"ingest:\n  max_file_bytes: -1\n",
            "config/pipeline.yaml: ingest.max_file_bytes: Input should be greater than 0",
        ),
        (
            b"sensor:\n  lookback: 3\n",
            "config/pipeline.yaml: sensor.lookback: Extra inputs are not permitted",
        ),
        (
            b"partitions:\n  start_date: March\n",
            "config/pipeline.yaml: partitions.start_date: String should match",
        ),
        (b"- a list\n", "config/pipeline.yaml: <root>: top level must be a mapping, got list"),
        (b"ingest: [\n", "config/pipeline.yaml: <root>: not valid YAML"),
        (b"ingest: {}\ningest: {}\n", "config/pipeline.yaml: <root>: not valid YAML: duplicate key 'ingest'"),
    ],
)
def test_invalid_pipeline_config_names_file_key_and_problem(text, message):
    with pytest.raises(ConfigError) as err:
        load_pipeline_config(text, "config/pipeline.yaml")
    assert message in str(err.value)


def test_start_date_override_is_a_settings_value(tmp_path):
    settings = Settings(artifacts_url="/a", data_url="/d", outputs_url="/o", config_url=str(CONFIG))
    assert settings.pipeline_config().partitions.start_date == "2026-03-01"
    earlier = settings.model_copy(update={"start_date": "2025-06-01"})
    assert earlier.pipeline_config().partitions.start_date == "2025-06-01"
    # A code location started by `dagster dev` gets it from the environment, like the roots.
    env = {"GATE_PIPELINE_START_DATE": "2025-07-01"}
    assert Settings.from_env(env).pipeline_config().partitions.start_date == "2025-07-01"
