"""Canonical JSON: the one way the project writes JSON that is compared, hashed or published.

Floats rounded to 10 significant digits, NaN/inf -> null, numpy/pandas scalars unwrapped, timestamps as
ISO-8601 UTC (``...Z``), lists of named objects sorted by name, sorted keys. Same data, same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
from pydantic import BaseModel

SIGNIFICANT_DIGITS = 10


def _round_sig(x: float) -> float | None:
    if not math.isfinite(x):
        # JSON has no NaN/inf; null means "not computable" (documented in the schema).
        return None
    r = float(f"{x:.{SIGNIFICANT_DIGITS}g}")
    return 0.0 if r == 0 else r  # no "-0.0"


class _Unjsonable(Exception):
    """Raised deep inside normalization; collects the path on the way out (paths are only built on error)."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem
        self.parts: list[str] = []


def normalize_json(obj: Any, path: str = "$") -> Any:
    """Make ``obj`` canonical JSON data: floats rounded to 10 significant digits, NaN/inf -> null,
    numpy/pandas scalars unwrapped, timestamps as ISO-8601 UTC, lists of objects with a ``name`` sorted by
    name, sets sorted. Raises TypeError naming the path of anything else."""
    try:
        return _norm(obj)
    except _Unjsonable as e:
        raise TypeError(f"{path}{''.join(reversed(e.parts))}: {e.problem}") from None


def _norm_items(items: Any, part: Callable[[int], str]) -> list[Any]:
    try:
        return [_norm(v) for v in items]
    except _Unjsonable:
        # Rare error path: find the first failing element again to name its position.
        for i, v in enumerate(items):
            try:
                _norm(v)
            except _Unjsonable as e:
                e.parts.append(part(i))
                raise e from None
        raise


def _norm(obj: Any) -> Any:
    t = type(obj)
    # Fast paths for the plain JSON types (exact types; subclasses take the general path below).
    if t is str or t is int or t is bool or obj is None:
        return obj
    if t is float:
        return _round_sig(obj)
    if t is dict:
        return _norm_mapping(obj)
    if t is list:
        return _norm_sequence(obj)
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, BaseModel):
        return _norm(obj.model_dump(mode="json"))
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _round_sig(float(obj))
    if isinstance(obj, str):
        return obj
    if isinstance(obj, bytes | bytearray):
        raise _Unjsonable("bytes cannot go into JSON; decode or hash them first")
    if isinstance(obj, pd.Timestamp | datetime):
        ts = pd.Timestamp(obj)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return (
            ts.strftime("%Y-%m-%dT%H:%M:%SZ")
            if ts.microsecond == 0
            else ts.isoformat().replace("+00:00", "Z")
        )
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, Mapping):
        return _norm_mapping(obj)
    if isinstance(obj, set | frozenset):
        items = _norm_items(list(obj), lambda i: "[]")
        return sorted(items, key=lambda v: orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
    if isinstance(obj, Sequence | np.ndarray):
        return _norm_sequence(obj)
    raise _Unjsonable(f"cannot put {type(obj).__name__} into JSON")


def _norm_mapping(obj: Mapping) -> dict[str, Any]:
    out = {}
    for k, v in obj.items():
        if not isinstance(k, str):
            raise _Unjsonable(f"object keys must be strings, got {type(k).__name__}")
        try:
            out[k] = _norm(v)
        except _Unjsonable as e:
            e.parts.append(f".{k}")
            raise
    return out


def _norm_sequence(obj: Any) -> list[Any]:
    items = _norm_items(obj, lambda i: f"[{i}]")
    if items and all(type(v) is dict and "name" in v for v in items):
        # Arrays of named things are sorted by name so CI diffs are stable (seed 001).
        items.sort(key=lambda v: (str(v["name"]), orjson.dumps(v, option=orjson.OPT_SORT_KEYS)))
    return items


def dumps_canonical(doc: Any) -> bytes:
    """Canonical bytes: normalized, sorted keys, 2-space indent, trailing newline."""
    return orjson.dumps(normalize_json(doc), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
