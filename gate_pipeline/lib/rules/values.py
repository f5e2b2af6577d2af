"""The value engine: a column's values classified once (missing / numeric / text), matched and aggregated."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pandas as pd

from gate_pipeline.lib.policies import Leading, LeadingHashes
from gate_pipeline.lib.rules.config import _COMPARE, QUANTILES, DecisionConfig, Match
from gate_pipeline.lib.rules.inference import Spec
from gate_pipeline.lib.stats import METRICS_PREFIX


def _is_missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and math.isnan(v)


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool | np.bool_):
        return float(v)
    if isinstance(v, int | float | np.integer | np.floating):
        f = float(v)
        return f if math.isfinite(f) else None
    return None


def _scalar_eq(v: Any, target: Any) -> bool:
    a, b = _as_number(v), _as_number(target)
    if a is not None and b is not None:
        return a == b
    return isinstance(v, str) and isinstance(target, str) and v == target


class _Agg:
    """One aggregate with its evidence."""

    def __init__(
        self,
        value: float | None,
        n: int,
        missing: int,
        *,
        k: int | None = None,
        invalid: int = 0,
        arr: np.ndarray | None = None,
    ):
        # arr: the sorted numeric values (numeric aggregates), what intervals and tests are computed from.
        self.value, self.n, self.missing, self.k = value, n, missing, k
        self.invalid, self.arr = invalid, arr


class _Vals:
    """A column's values at some row positions, classified once so rules aggregate with numpy.

    The classification mirrors the scalar helpers exactly: ``missing`` = ``_is_missing``; ``is_num`` =
    ``_as_number`` is not None (finite numbers and bools), with the value in ``num``; ``sval`` holds the
    value where it is a ``str`` (else None). A value that is neither missing nor numeric is "invalid" for
    numeric aggregates."""

    __slots__ = ("is_num", "missing", "num", "sval")

    def __init__(self, missing: np.ndarray, is_num: np.ndarray, num: np.ndarray, sval: np.ndarray | None):
        self.missing, self.is_num, self.num, self.sval = missing, is_num, num, sval

    def __len__(self) -> int:
        return len(self.missing)

    def take(self, idx: np.ndarray) -> _Vals:
        return _Vals(
            self.missing[idx], self.is_num[idx], self.num[idx], None if self.sval is None else self.sval[idx]
        )

    @staticmethod
    def empty(n: int) -> _Vals:
        return _Vals(np.ones(n, dtype=bool), np.zeros(n, dtype=bool), np.full(n, np.nan), None)

    @staticmethod
    def from_objects(obj: np.ndarray) -> _Vals:
        """Classify an object array element by element (exact); text columns take a C fast path."""
        n = len(obj)
        if n and pd.api.types.infer_dtype(obj, skipna=True) == "string":
            # Every non-null cell is a str; only the null cells go through the scalar helpers below.
            is_str = ~pd.isna(obj)
        else:
            is_str = np.fromiter((isinstance(v, str) for v in obj), dtype=bool, count=n)
        missing = np.zeros(n, dtype=bool)
        is_num = np.zeros(n, dtype=bool)
        num = np.full(n, np.nan)
        # Only non-strings need the scalar helpers; in text columns that is just the missing cells.
        for i in np.flatnonzero(~is_str):
            v = obj[i]
            v = v.item() if isinstance(v, np.generic) else v
            if _is_missing(v):
                missing[i] = True
                continue
            x = _as_number(v)
            if x is not None:
                is_num[i], num[i] = True, x
        sval = None
        if is_str.any():
            sval = np.empty(n, dtype=object)
            sval[is_str] = obj[is_str]
        return _Vals(missing, is_num, num, sval)

    @staticmethod
    def from_series(s: pd.Series) -> _Vals:
        """Classify a whole column, using its dtype where that decides the answer without a Python loop."""
        dtype = s.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "fiub":
            num = s.to_numpy(dtype=float)
            missing = np.isnan(num) if dtype.kind == "f" else np.zeros(len(num), dtype=bool)
            return _Vals(missing, np.isfinite(num), num, None)
        if isinstance(s.array, pd.arrays.IntegerArray | pd.arrays.FloatingArray | pd.arrays.BooleanArray):
            num = s.to_numpy(dtype=float, na_value=np.nan)
            missing = s.isna().to_numpy(dtype=bool) | np.isnan(num)
            return _Vals(missing, ~missing & np.isfinite(num), num, None)
        return _Vals.from_objects(s.to_numpy(dtype=object))


def _match_hits(vals: _Vals, match: Match) -> np.ndarray:
    """Vectorized ``Match.hits`` over the present values (missing cells never hit)."""

    def eq(target: Any) -> np.ndarray:
        t = _as_number(target)
        if t is not None:
            return vals.is_num & (vals.num == t)
        if isinstance(target, str) and vals.sval is not None:
            return vals.sval == target
        return np.zeros(len(vals), dtype=bool)

    if match.equals is not None:
        hits = eq(match.equals)
    elif match.in_ is not None:
        hits = np.zeros(len(vals), dtype=bool)
        for x in match.in_:
            hits |= eq(x)
    else:
        hits = vals.is_num & _COMPARE[match.comparator](vals.num, match.value)  # type: ignore[index,arg-type]
    return np.asarray(hits, dtype=bool) & ~vals.missing


def _aggregate(vals: _Vals, aggregate: str, match: Match | None) -> _Agg:
    missing = int(vals.missing.sum())
    if aggregate in ("count", "rate"):
        n = len(vals) - missing
        k = int(_match_hits(vals, match).sum()) if match is not None else n
        if aggregate == "count":
            return _Agg(float(k), n, missing, k=k)
        if n == 0:
            return _Agg(None, 0, missing, k=0)
        return _Agg(k / n, n, missing, k=k)
    invalid = len(vals) - missing - int(vals.is_num.sum())
    # Stable sort: equal values (0.0 / -0.0) keep input order, exactly like sorted() on a list.
    arr = np.sort(vals.num[vals.is_num], kind="stable")
    n = len(arr)
    if n == 0:
        return _Agg(None, 0, missing + invalid, invalid=invalid)
    if aggregate == "mean":
        value = float(arr.mean())
    elif aggregate in QUANTILES:
        value = float(np.percentile(arr, QUANTILES[aggregate] * 100, method="linear"))
    elif aggregate == "min":
        value = float(arr[0])
    elif aggregate == "max":
        value = float(arr[-1])
    else:  # sum
        value = float(math.fsum(arr.tolist()))
    return _Agg(value, n, missing + invalid, invalid=invalid, arr=arr)


class PrefixCache:
    """Per-run work shared by the evaluations of leading parts of one history (the decision timeline
    evaluates the runs up to the end of each day): column classifications, raw column values and parsed
    metrics, each computed once over the whole ``history`` and read at the row positions an evaluation asks
    for. Every one of them is per row, so row i of a leading part reads exactly what it would compute itself."""

    def __init__(self, history: pd.DataFrame):
        self.history = history
        self.metrics: dict[int, dict[str, Any]] = {}
        self.columns: dict[str, _Vals] = {}
        self.objects: dict[str, np.ndarray] = {}
        self._hashes: LeadingHashes | None = None
        self._frames: dict[frozenset[str], pd.DataFrame] = {}

    def leading(self, columns: set[str], n: int) -> pd.DataFrame:
        """The first ``n`` runs, only ``columns`` (those the history has): a slice of one frame per column set."""
        key = frozenset(columns)
        frame = self._frames.get(key)
        if frame is None:
            names = [c for c in self.history.columns if c in columns]
            if self.history.columns.is_unique:  # the history's own columns, not copies
                keep = {c: self.history[c] for c in names}
                frame = pd.DataFrame(keep, index=self.history.index, copy=False)
            else:
                frame = self.history[names]
            self._frames[key] = frame
        return frame.iloc[:n]

    def hashes(self, n: int) -> Leading:
        """The policy hashes of the first ``n`` runs (:class:`policies.LeadingHashes`, indexed once)."""
        if self._hashes is None:
            self._hashes = LeadingHashes(self.history)
        return self._hashes.upto(n)


class _Ctx:
    """Evaluation context: each column classified once (``_Vals``), metrics JSON parsed once per needed row.
    With a ``cache`` (a :class:`PrefixCache` whose history starts with these very rows), that work is the
    cache's, shared with other evaluations."""

    def __init__(
        self,
        runs: pd.DataFrame,
        cfg: DecisionConfig,
        now: pd.Timestamp | None,
        cache: PrefixCache | None = None,
    ):
        self.runs = runs
        self.cfg = cfg
        self.spec = Spec.of(cfg.decision)
        cache = cache or PrefixCache(runs)
        self._base = cache.history
        self._metrics = cache.metrics
        self._columns = cache.columns
        self._objects = cache.objects
        self.now = now

    def _source(self, column: str) -> pd.Series:
        """The column to read per row: the shared history's (same rows first) when it has it."""
        return self._base[column] if column in self._base.columns else self.runs[column]

    def _parsed(self, pos: int) -> dict[str, Any]:
        got = self._metrics.get(pos)
        if got is None:
            raw = self._source("metrics").iat[pos] if "metrics" in self.runs.columns else None
            got = {}
            if isinstance(raw, str | bytes) and raw:
                try:
                    obj = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    obj = None
                got = obj if isinstance(obj, dict) else {}
            self._metrics[pos] = got
        return got

    def has_column(self, column: str) -> bool:
        if column.startswith(METRICS_PREFIX):
            return "metrics" in self.runs.columns
        return column in self.runs.columns

    def objects(self, positions: np.ndarray, column: str) -> np.ndarray:
        """Raw values of a table column at ``positions`` (object array; the column must exist)."""
        arr = self._objects.get(column)
        if arr is None:
            arr = self._source(column).to_numpy(dtype=object)
            self._objects[column] = arr
        return arr[positions]

    def vals(self, positions: np.ndarray, column: str) -> _Vals:
        """Classified values of ``column`` (or ``metrics.<key>``) at the given row positions."""
        if column.startswith(METRICS_PREFIX):
            key = column[len(METRICS_PREFIX) :]
            # Only the rows asked for are parsed (and each at most once per evaluation).
            obj = np.empty(len(positions), dtype=object)
            for i, p in enumerate(positions.tolist()):
                obj[i] = self._parsed(p).get(key)
            return _Vals.from_objects(obj)
        if column not in self.runs.columns:
            return _Vals.empty(len(positions))
        full = self._columns.get(column)
        if full is None:
            full = _Vals.from_series(self._source(column))
            self._columns[column] = full
        return full.take(positions)


def _stratum_labels(cur: np.ndarray, column: str, ctx: _Ctx) -> np.ndarray:
    """``str(value)`` per run, ``(missing)`` for missing values (object array aligned with ``cur``)."""
    vals = ctx.vals(cur, column)
    if vals.missing.all():
        return np.full(len(cur), "(missing)", dtype=object)
    if vals.sval is not None and (vals.missing | (vals.sval != None)).all():  # noqa: E711 - elementwise
        return np.where(vals.missing, "(missing)", vals.sval).astype(object)
    # Numeric or mixed strata: the exact per-value path.
    return np.array([_label(v) for v in _values_of(cur, column, ctx)], dtype=object)


def _label(v: Any) -> str:
    return "(missing)" if v is None else str(v)


def _values_of(positions: np.ndarray, column: str, ctx: _Ctx) -> list[Any]:
    """Python values at ``positions`` (missing -> None, numpy scalars unwrapped); the slow exact path."""
    if column.startswith(METRICS_PREFIX):
        key = column[len(METRICS_PREFIX) :]
        raw = [ctx._parsed(p).get(key) for p in positions.tolist()]
    elif column in ctx.runs.columns:
        raw = ctx.objects(positions, column).tolist()
    else:
        return [None] * len(positions)
    out = []
    for v in raw:
        v = v.item() if isinstance(v, np.generic) else v
        out.append(None if _is_missing(v) else v)
    return out
