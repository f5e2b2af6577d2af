"""The code location: every module in gate_pipeline/defs/, loaded the `dg` way.

`dagster dev`, `dg list defs` and `dg check defs` load the folder with `dg.load_from_defs_folder`; each module
there builds its part from `Settings.from_env()` (environment + config/). The CLI and the tests pass their
own `Settings` to `build_definitions`, which merges the same modules' `build(settings)` (no environment
channel). A test holds both paths to the same definitions.
"""

from pathlib import Path

import dagster as dg

from gate_pipeline.defs import (
    automation,
    config,
    decision,
    ingest,
    lifecycle,
    resources,
    series,
    statistics,
    timeline,
    whatif,
)
from gate_pipeline.defs.automation import ALL_ASSETS_JOB, RECLASSIFY_JOB
from gate_pipeline.defs.whatif import WHATIF_JOB
from gate_pipeline.settings import Settings

__all__ = ["ALL_ASSETS_JOB", "RECLASSIFY_JOB", "WHATIF_JOB", "build_definitions", "defs"]

#: The modules of gate_pipeline/defs/ that contribute definitions, in the order of the flow.
#: (validated.py and classified.py hold the specs of layers the per-day step in ingest.py materializes.)
DEFS_MODULES = (
    resources,
    config,
    ingest,
    series,
    statistics,
    decision,
    lifecycle,
    timeline,
    automation,
    whatif,
)


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions.merge(*(module.build(settings) for module in DEFS_MODULES))


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
