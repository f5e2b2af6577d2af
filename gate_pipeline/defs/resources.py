"""The storage resource: the one way assets reach artifacts, intermediate data, outputs and config."""

from typing import Any

import dagster as dg

from gate_pipeline.lib.storage import Store
from gate_pipeline.settings import Settings


class GateStorage(dg.ConfigurableResource):
    """Roots for artifacts, intermediate tables, outputs and config: local paths or s3:// URLs alike."""

    artifacts_url: str
    data_url: str
    outputs_url: str
    config_url: str
    storage_options: dict[str, Any] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> "GateStorage":
        return cls(**settings.model_dump())

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
        return Settings(**{name: getattr(self, name) for name in Settings.model_fields})
