"""Published JSON Schemas: valid documents, and in agreement with what ingestion accepts."""

import json
from pathlib import Path

import jsonschema
import orjson
import pytest

from gate_pipeline.lib.ingest import parse_artifact
from gate_pipeline.lib.normalize import normalize_run
from gate_pipeline_tests.pipeline_helpers import SAMPLE

SCHEMAS = Path(__file__).resolve().parents[1] / "gate_pipeline" / "schemas"


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.json")), ids=lambda p: p.name)
def test_every_published_schema_is_a_valid_schema(path):
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema.get("description"), f"{path.name} needs a description"


def _validator(name):
    return jsonschema.Draft202012Validator(json.loads((SCHEMAS / name).read_text()))


def test_gate_result_schema_agrees_with_normalization_on_the_sample():
    validator = _validator("gate_result.schema.json")
    checked = 0
    for path in sorted(SAMPLE.glob("*/*/gate_result.json")):
        parsed = parse_artifact(path.read_bytes())
        if parsed.payload is None:
            continue
        row = normalize_run(parsed.payload, None, None, path.parent.name, path.parent.parent.name)
        gate_issues = [i for i in orjson.loads(row["field_issues"]) if ":drift_report." not in i]
        assert validator.is_valid(parsed.payload) == (not gate_issues), (path, gate_issues)
        checked += 1
    assert checked >= 70


def test_drift_report_schema_agrees_with_normalization_on_the_sample():
    validator = _validator("drift_report.schema.json")
    checked = 0
    for path in sorted(SAMPLE.glob("*/*/drift_report.json")):
        parsed = parse_artifact(path.read_bytes())
        gate = parse_artifact((path.parent / "gate_result.json").read_bytes()).payload
        if parsed.payload is None or gate is None:
            continue
        row = normalize_run(gate, parsed.payload, None, path.parent.name, path.parent.parent.name)
        drift_issues = [i for i in orjson.loads(row["field_issues"]) if ":drift_report." in i]
        mismatch = {i for i in drift_issues if i.endswith((".run_id", ".policy_hash"))}
        assert validator.is_valid(parsed.payload) == (not (set(drift_issues) - mismatch)), (
            path,
            drift_issues,
        )
        checked += 1
    assert checked >= 50


def test_metrics_schema_accepts_the_sample_metrics():
    validator = _validator("metrics.schema.json")
    files = sorted(SAMPLE.glob("*/*/metrics.json"))
    good = [p for p in files if parse_artifact(p.read_bytes()).payload is not None]
    assert len(good) >= 40
    assert all(validator.is_valid(orjson.loads(p.read_bytes())) for p in good)


@pytest.mark.parametrize(
    ("name", "model_path"),
    [
        ("policy_constants", "gate_pipeline.lib.rules:DecisionConfig"),
        ("pipeline", "gate_pipeline.settings:PipelineConfig"),
        ("analysis", "gate_pipeline.lib.stats:AnalysisConfig"),
        ("lifecycle", "gate_pipeline.lib.lifecycle:LifecycleConfig"),
    ],
)
def test_config_schemas_are_generated_from_the_models(name, model_path):
    """The config schemas are pydantic's; regenerate with the snippet in docs/ARCHITECTURE.md if this fails."""
    import importlib

    module, attr = model_path.split(":")
    model = getattr(importlib.import_module(module), attr)
    published = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    published.pop("$schema")
    assert published == json.loads(json.dumps(model.model_json_schema()))
