"""The one config loader: parsing by extension/content, duplicate keys, one error format, checks."""

import pytest
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gate_pipeline.lib.config import ConfigError, ConfigProblem, load_model, parse_document


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    size: int = Field(gt=0)


class Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Item] = []
    mode: str = "a"

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        if v == "legacy":
            raise ConfigProblem("mode", "'legacy' was removed; use 'a'")
        return v


def _error(raw: bytes, source: str = "c.yaml", **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        load_model(raw, source, Doc, **kwargs)
    return exc.value


def test_json_and_yaml_by_extension_and_content():
    assert parse_document(b'{"a": 1}', "x.json") == {"a": 1}
    assert parse_document(b"a: 1\n", "x.yaml") == {"a": 1}
    assert parse_document(b'{"a": 1}', "memory") == {"a": 1}  # no known suffix: JSON by content
    assert parse_document(b"", "x.yaml") is None
    assert load_model(b"", "x.yaml", Doc, empty_is_default=True) == Doc()


def test_every_problem_is_one_line_naming_file_key_and_problem():
    err = _error(b"items:\n  - {name: a, size: 0}\n  - {size: 2}\nextra: 1\n")
    assert str(err).splitlines() == [
        "c.yaml: items[0].size: Input should be greater than 0",
        "c.yaml: items[1].name: Field required",
        "c.yaml: extra: Extra inputs are not permitted",
    ]
    assert err.source == "c.yaml" and len(err.problems) == 3


def test_parse_errors_and_top_level():
    assert str(_error(b"a: 1\na: 2\n")).startswith("c.yaml: <root>: not valid YAML: ")
    assert "duplicate key 'a'" in str(_error(b"a: 1\na: 2\n"))
    assert str(_error(b"{nope", "c.json")).startswith("c.json: <root>: not valid JSON: ")
    assert str(_error(b"- 1\n")) == "c.yaml: <root>: top level must be a mapping, got list"
    assert str(_error(b"\xff: 1", "c.yaml")).startswith("c.yaml: <root>: not UTF-8")


def test_validator_paths_and_cross_checks():
    assert str(_error(b"mode: legacy\n")) == "c.yaml: mode: 'legacy' was removed; use 'a'"

    def unique_names(doc: Doc) -> list[tuple[str, str]]:
        seen, problems = set(), []
        for i, item in enumerate(doc.items):
            if item.name in seen:
                problems.append((f"items[{i}].name", f"duplicate name {item.name!r}"))
            seen.add(item.name)
        return problems

    raw = b"items: [{name: a, size: 1}, {name: a, size: 2}]\n"
    assert str(_error(raw, checks=unique_names)) == "c.yaml: items[1].name: duplicate name 'a'"
    assert len(load_model(b"items: [{name: a, size: 1}]\n", "c.yaml", Doc, checks=unique_names).items) == 1
