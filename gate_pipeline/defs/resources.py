"""The storage resource: the one way assets reach artifacts, intermediate data, outputs and config files."""

from typing import Any

import dagster as dg

from gate_pipeline.lib import published
from gate_pipeline.lib.rules import DecisionConfig, load_decision_config
from gate_pipeline.lib.stats import AnalysisConfig, load_analysis_config
from gate_pipeline.lib.storage import Store
from gate_pipeline.lib.whitelist import Whitelist, load_whitelist
from gate_pipeline.settings import Settings

# The config files under the config root (each is also an observable source asset, defs/config.py).
WHITELIST_FILE = "unknown_whitelist.json"
ANALYSIS_FILE = "analysis.yaml"
DECISION_FILE = "policy_constants.yaml"


class GateStorage(dg.ConfigurableResource):
    """Roots for artifacts, intermediate tables, outputs and config: local paths or s3:// URLs alike.

    Config files are read through it too (``whitelist()``, ``analysis_config()``, ``decision_config()``), so
    every asset sees the same files with the same loader (gate_pipeline/lib/config.py)."""

    artifacts_url: str
    data_url: str
    outputs_url: str
    config_url: str
    storage_options: dict[str, Any] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> "GateStorage":
        return cls(**settings.model_dump(include=set(cls.model_fields)))

    def artifacts(self) -> Store:
        return Store.at(self.artifacts_url, self.storage_options)

    def data(self) -> Store:
        return Store.at(self.data_url, self.storage_options)

    def outputs(self) -> Store:
        return Store.at(self.outputs_url, self.storage_options)

    def config(self) -> Store:
        return Store.at(self.config_url, self.storage_options)

    def settings(self) -> Settings:
        """The same roots as Settings (the pipeline config, read from the config root, needs it)."""
        return Settings(**{name: getattr(self, name) for name in type(self).model_fields})

    def config_file(self, name: str) -> bytes | None:
        """Raw bytes of a config file, None when it does not exist."""
        config = self.config()
        return config.read_bytes(name) if config.exists(name) else None

    def whitelist(self) -> Whitelist:
        config = self.config()
        return load_whitelist(config.read_bytes(WHITELIST_FILE), config.url(WHITELIST_FILE))

    def analysis_config(self) -> AnalysisConfig:
        """config/analysis.yaml; all defaults when the file does not exist."""
        config = self.config()
        if not config.exists(ANALYSIS_FILE):
            return AnalysisConfig()
        return load_analysis_config(config.read_bytes(ANALYSIS_FILE), config.url(ANALYSIS_FILE))

    def decision_config(self) -> tuple[DecisionConfig, bytes]:
        """config/policy_constants.yaml, validated, and its raw bytes (hashed into the provenance)."""
        config = self.config()
        raw = config.read_bytes(DECISION_FILE)
        decision = load_decision_config(raw, config.url(DECISION_FILE))
        published.check_candidate_settings(
            self.analysis_config(), decision, config.url(DECISION_FILE), config.url(ANALYSIS_FILE)
        )
        return decision, raw


def build(settings: Settings) -> dg.Definitions:
    return dg.Definitions(resources={"storage": GateStorage.from_settings(settings)})


@dg.definitions
def defs() -> dg.Definitions:
    return build(Settings.from_env())
