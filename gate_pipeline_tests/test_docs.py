"""docs/ARCHITECTURE.md names exactly the columns of the pandera models (the docs cannot drift from them)."""

import re

from gate_pipeline.lib.tables import ClassifiedRuns, QuarantinedFiles, RunTable
from gate_pipeline_tests.pipeline_helpers import REPO

ARCHITECTURE = (REPO / "docs" / "ARCHITECTURE.md").read_text()


def _section(title: str) -> str:
    start = ARCHITECTURE.index(f"### {title}")
    end = ARCHITECTURE.index("\n#", start + 1)
    return ARCHITECTURE[start:end]


def _names(text: str) -> list[str]:
    """Column names in a comma-separated list, without remarks in parentheses."""
    plain = re.sub(r"\s*\(.*?\)", "", text.replace("\n", " "))
    return [part.strip() for part in plain.split(",")]


def test_run_table_section_lists_the_model_columns():
    rows = [line for line in _section("run_table").splitlines() if line.startswith("| ")][1:]
    documented = [name for row in rows for name in _names(row.split("|")[1])]
    assert documented == list(RunTable.to_schema().columns)


def test_quarantined_files_section_lists_the_model_columns():
    listed = _section("quarantined_files").split("\n", 1)[1].split(". The allowed")[0]
    assert _names(listed) == list(QuarantinedFiles.to_schema().columns)


def test_classified_runs_section_lists_the_columns_it_adds():
    listed = _section("classified_runs").split("\n", 1)[1].strip().rstrip(".")
    added = [c for c in ClassifiedRuns.to_schema().columns if c not in RunTable.to_schema().columns]
    assert _names(listed) == added
