"""Settings, built when Definitions load (never at import): environment + config/pipeline.yaml.

| env var | meaning | default |
|---|---|---|
| CI_ARTIFACT_PATH | artifact root, local path or s3://bucket/prefix | the bundled sample artifacts |
| GATE_PIPELINE_DATA | intermediate tables (parquet per partition) | <project>/var/data/<12 hex of the artifact root's sha256> (the CLI: <out>/_data) |
| GATE_PIPELINE_OUT | published outputs | <project>/var/outputs |
| GATE_PIPELINE_CONFIG | config folder (local or s3://) | <project>/config |
| GATE_PIPELINE_START_DATE | first daily partition, when earlier than pipeline.yaml's | pipeline.yaml |
S3 endpoint and credentials come from the standard AWS variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, …).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gate_pipeline.lib.config import load_model
from gate_pipeline.lib.storage import Store, sha256_bytes

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_ARTIFACTS = PACKAGE_DIR / "sample_artifacts"


def project_root() -> Path:
    """The repo root for an editable install (where config/ lives), else the working directory."""
    candidate = PACKAGE_DIR.parent
    return candidate if (candidate / "pyproject.toml").exists() else Path.cwd()


class IngestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_file_bytes: int = Field(
        1_048_576, gt=0, description="Artifact files above this size are quarantined."
    )
    workers: int = Field(
        0,
        ge=0,
        description="Worker processes that read and parse artifacts when a run covers many days (0 = one per "
        "CPU).",
    )
    timestamp_window_days: int = Field(
        2,
        ge=0,
        description="A run timestamp more than this many days before or after its date folder's day is flagged "
        "unknown_field_invalid:timestamp and replaced by the date folder's midnight (UTC).",
    )
    parallel_min_days: int = Field(
        16,
        ge=2,
        description="A run that ingests at least this many days uses the worker processes; smaller runs and "
        "re-classification stay in one process.",
    )
    days_per_chunk: int = Field(
        8,
        ge=0,
        description="Days a worker processes at a time: bounds a worker's memory and sets how often progress "
        "moves (0 = two chunks per worker, whatever the history).",
    )
    max_days_per_run: int = Field(
        0,
        ge=0,
        description="A backfill of the per-day tables launches one run per this many days, so Dagster's run "
        "queue can spread them over workers (0 = one run for the whole range).",
    )


class PartitionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start_date: str = Field(
        "2026-03-01", pattern=r"^\d{4}-\d{2}-\d{2}$", description="First daily partition."
    )
    max_future_days: int = Field(
        1,
        ge=0,
        description="Date folders more than this many days after today (UTC) are reported "
        "(date_outside_window), not built; so are date folders before start_date.",
    )


class SensorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lookback_days: int = Field(3, ge=0, description="Days back a sensor tick re-lists to see late arrivals.")
    settle_seconds: int = Field(
        10, ge=0, description="A file younger than this is treated as still being written."
    )
    interval_seconds: int = Field(30, ge=5, description="Minimum seconds between sensor ticks.")


class AutomationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config_sensor_interval_seconds: int = Field(
        30,
        ge=5,
        description="How often config_sensor looks at the config files; it records an observation (no run) only "
        "when a file's bytes changed, so after an edit the UI shows downstream assets as unsynced within this "
        "interval.",
    )


class PipelineConfig(BaseModel):
    """config/pipeline.yaml."""

    model_config = ConfigDict(extra="forbid")
    ingest: IngestSettings = IngestSettings()
    partitions: PartitionSettings = PartitionSettings()
    sensor: SensorSettings = SensorSettings()
    automation: AutomationSettings = AutomationSettings()


def load_pipeline_config(raw: bytes, source: str) -> PipelineConfig:
    """config/pipeline.yaml (empty = all defaults); raises lib.config.ConfigError naming file and key."""
    return load_model(raw, source, PipelineConfig, empty_is_default=True)


class Settings(BaseModel):
    """Where everything lives; one instance is built per Definitions load or CLI call."""

    model_config = ConfigDict(frozen=True)
    artifacts_url: str
    data_url: str
    outputs_url: str
    config_url: str
    storage_options: dict[str, Any] = {}
    #: First daily partition when it must be earlier than pipeline.yaml's (the CLI sets it when the
    #: artifacts start before the configured first day).
    start_date: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: str | None) -> Settings:
        env = os.environ if env is None else env
        root = project_root()
        values = {
            "artifacts_url": env.get("CI_ARTIFACT_PATH") or str(SAMPLE_ARTIFACTS),
            "data_url": env.get("GATE_PIPELINE_DATA"),
            "outputs_url": env.get("GATE_PIPELINE_OUT") or str(root / "var" / "outputs"),
            "config_url": env.get("GATE_PIPELINE_CONFIG") or str(root / "config"),
            "start_date": env.get("GATE_PIPELINE_START_DATE"),
        }
        values.update({k: v for k, v in overrides.items() if v})
        if not values["data_url"]:
            # One data folder per artifact root, so switching roots never mixes their stored days.
            slug = sha256_bytes(values["artifacts_url"].encode())[:12]
            values["data_url"] = str(root / "var" / "data" / slug)
        return cls(**values)

    def store(self, url: str) -> Store:
        return Store.at(url, self.storage_options)

    def config_store(self) -> Store:
        return self.store(self.config_url)

    def read_config_file(self, name: str) -> tuple[bytes, str]:
        """Raw bytes of a config file and its URL (for error messages and content hashes)."""
        store = self.config_store()
        return store.read_bytes(name), store.url(name)

    def pipeline_config(self) -> PipelineConfig:
        store = self.config_store()
        config = PipelineConfig()
        if store.exists("pipeline.yaml"):
            config = load_pipeline_config(*self.read_config_file("pipeline.yaml"))
        if self.start_date:
            partitions = PartitionSettings(start_date=self.start_date)
            config = config.model_copy(update={"partitions": partitions})
        return config
