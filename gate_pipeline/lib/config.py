"""The one way config files are read: parse (JSON or YAML), validate (pydantic), report problems.

Every config file (pipeline.yaml, unknown_whitelist.json, analysis.yaml, policy_constants.yaml) goes
through :func:`load_model`. Problems are raised as one :class:`ConfigError` whose message has one line per
problem in one format, naming the file, the entry and key, and the problem::

    config/unknown_whitelist.json: entries[2] (reason 'x').owner: Field required
    config/pipeline.yaml: ingest.max_file_bytes: Input should be greater than 0

Usage from a loader::

    def load_thing(raw: bytes, source: str) -> Thing:
        return load_model(raw, source, Thing, checks=cross_checks)

``checks`` receives the validated model and returns more ``(path, message)`` problems (cross-field rules
that pydantic field validators cannot express). A validator that knows a more precise path than pydantic's
location raises :class:`ConfigProblem` (a ValueError) with that path. Pure logic: no Dagster imports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import Any, TypeVar

import orjson
import yaml
from pydantic import BaseModel, ValidationError

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "key_path",
    "load_model",
    "parse_document",
    "validation_problems",
]

M = TypeVar("M", bound=BaseModel)
Problem = tuple[str, str]  # (entry/key path, message); "" is the document itself
PathNamer = Callable[[Any, Sequence[str | int]], str]


class ConfigError(ValueError):
    """A config file that cannot be used. ``problems`` are (entry/key path, message) pairs; the message
    has one ``<source>: <path>: <problem>`` line per problem (``<root>`` for the document itself)."""

    def __init__(self, source: str, problems: Sequence[Problem]):
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(f"{source}: {path or '<root>'}: {msg}" for path, msg in self.problems))


class ConfigProblem(ValueError):
    """Raised inside a pydantic validator to report a problem at ``path`` (relative to the document root)
    instead of the validator's own location."""

    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path
        self.message = message


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_document(raw: bytes, source: str) -> Any:
    """JSON when ``source`` ends in .json (or has no .yaml/.yml suffix and its content starts with ``{``),
    else YAML with duplicate keys rejected. An empty YAML document is ``None``. Raises ConfigError naming
    ``source``."""
    suffix = PurePosixPath(source).suffix.lower()
    if suffix == ".json" or (suffix not in (".yaml", ".yml") and raw.lstrip().startswith(b"{")):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(source, [("", f"not valid JSON: {exc}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [("", f"not UTF-8: {exc}")]) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(source, [("", f"not valid YAML: {exc}")]) from None


def key_path(data: Any, loc: Sequence[str | int]) -> str:
    """A pydantic location as a key path: ``("phases", "warn", "rules", 2)`` -> ``phases.warn.rules[2]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validation_problems(exc: ValidationError, data: Any, name_path: PathNamer = key_path) -> list[Problem]:
    """(path, message) per pydantic error; ``name_path(data, loc)`` spells the path (e.g. adds an entry's
    name). A validator's :class:`ConfigProblem` keeps its own path."""
    problems = []
    for err in exc.errors():
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigProblem):
            problems.append((cause.path, cause.message))
            continue
        problems.append((name_path(data, err["loc"]), err["msg"].removeprefix("Value error, ")))
    return problems


def load_model(
    raw: bytes,
    source: str,
    model: type[M],
    *,
    checks: Callable[[M], list[Problem]] | None = None,
    name_path: PathNamer = key_path,
    empty_is_default: bool = False,
) -> M:
    """Parse ``raw`` (see :func:`parse_document`), validate it as ``model``, then run ``checks``.

    The document must be a mapping; with ``empty_is_default`` an empty document is ``{}`` (all defaults).
    Raises :class:`ConfigError` listing every problem found at that stage."""
    data = parse_document(raw, source)
    if data is None and empty_is_default:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [("", f"top level must be a mapping, got {type(data).__name__}")])
    try:
        value = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, validation_problems(exc, data, name_path)) from None
    problems = checks(value) if checks is not None else []
    if problems:
        raise ConfigError(source, problems)
    return value
