"""The classified history as :class:`Runs` and the per-run arrays every statistic derives from it (outcome
flags, group labels, strata, parsed JSON arrays), each computed once per ``Runs``; plus row-order helpers."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from gate_pipeline.lib.classify import parse_json_array
from gate_pipeline.lib.policies import candidate_policy, introduction_order
from gate_pipeline.lib.stats.config import METRICS_PREFIX, AnalysisConfig


class Runs:
    """A classified history with the per-run arrays the statistics derive from it (outcome flags, group
    labels, strata, parsed JSON arrays), each computed once and shared by every function given this object.

    Every statistics function takes a DataFrame or a ``Runs``; a DataFrame gets its own ``Runs``, so results
    are the same either way. Do not modify ``df`` while the ``Runs`` is in use."""

    def __init__(self, df: pd.DataFrame, known: Runs | None = None):
        """``known``: a ``Runs`` of other columns of the same runs whose derived values this one takes over
        (e.g. the candidate, derived once from the columns that decide it)."""
        self.df = df
        self._memo: dict[tuple[Any, ...], Any] = dict(known._memo) if known is not None else {}

    def derived(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


#: The hash table pd.factorize starts with: a column's distinct values are few (policies, strata, outcomes,
#: JSON lists), and one sized for every run cost ~30 MB at 1M runs. It grows when they are not; the codes are
#: the same.
FEW = 1024


def factorize(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(values)`` (codes by first appearance, -1 for null; the distinct values as an array) for
    values with few distinct ones."""
    if isinstance(values, pd.Series | pd.Index):
        values = values.to_numpy()  # a Series' own factorize takes no size_hint
    return pd.factorize(values, use_na_sentinel=True, size_hint=FEW)


def as_runs(classified: pd.DataFrame | Runs) -> Runs:
    return classified if isinstance(classified, Runs) else Runs(classified)


def is_null(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def no_nan(df: pd.DataFrame) -> pd.DataFrame:
    """Replace NaN/NA in any column by None (column becomes object) so outputs never carry NaN."""
    out = df.copy()
    has_null = out.isna().any(axis=0).to_numpy()  # one pass per block, not one Series per column
    for i in np.flatnonzero(has_null).tolist():
        s = out.iloc[:, i]
        out.isetitem(i, s.astype(object).where(s.notna(), None))
    return out.reset_index(drop=True)


def json_sets(runs: Runs, column: str) -> tuple[np.ndarray, list[list[str]]]:
    """A column of JSON array strings as per-row codes of its distinct strings (-1 = null) and, per code, the
    array's items de-duplicated and sorted. Each distinct string is parsed once, and counting over the few
    distinct (code, ...) combinations replaces exploding every row."""

    def compute() -> tuple[np.ndarray, list[list[str]]]:
        codes, uniques = factorize(runs.df[column].astype(object, copy=False))
        return codes, [sorted(set(parse_json_array(u)[0])) for u in uniques]

    return runs.derived(("json_sets", column), compute)


def has_items(runs: Runs, column: str) -> np.ndarray:
    """Per row: does its JSON array hold at least one string?"""
    codes, items = json_sets(runs, column)
    return np.array([bool(i) for i in items] + [False], dtype=bool)[codes]  # code -1 reads the sentinel


def combos(*columns: np.ndarray) -> list[tuple[tuple[int, ...], int]]:
    """The distinct rows of some integer columns (codes >= -1, flags) with how many rows each occurs in."""
    n = len(columns[0])
    if n == 0:
        return []
    shifted = [np.asarray(c, dtype=np.int64) + 1 for c in columns]
    dims = tuple(int(c.max()) + 1 for c in shifted)
    cells = math.prod(dims)
    if cells > max(4 * n, 1 << 16):
        # Too many possible combinations for a dense count: the rare, slower path.
        counts = pd.DataFrame(dict(enumerate(shifted))).groupby(list(range(len(shifted))), sort=False).size()
        keys = [k if isinstance(k, tuple) else (k,) for k in counts.index]
        return [(tuple(int(v) - 1 for v in k), int(c)) for k, c in zip(keys, counts.to_numpy(), strict=True)]
    counts = np.bincount(np.ravel_multi_index(tuple(shifted), dims), minlength=cells)
    present = np.flatnonzero(counts)
    parts = [p - 1 for p in np.unravel_index(present, dims)]
    return list(zip(zip(*(p.tolist() for p in parts), strict=True), counts[present].tolist(), strict=True))


def item_outcome_counts(
    codes: np.ndarray,
    items: list[list[str]],
    known: np.ndarray,
    is_fail: np.ndarray,
    empty_label: str | None = None,
) -> list[tuple[str, int, int, int]]:
    """Per item (sorted): (item, runs listing it, of those with a known outcome, FAIL runs).

    A run listing no item counts under ``empty_label`` when given, else nowhere."""
    totals: dict[str, list[int]] = {}
    for (code, k, f), n in combos(codes, known.astype(np.int8), (known & is_fail).astype(np.int8)):
        listed = items[code] if code >= 0 else []
        if not listed and empty_label is not None:
            listed = [empty_label]
        for item in listed:
            t = totals.setdefault(item, [0, 0, 0])
            t[0] += n
            t[1] += n * k
            t[2] += n * f
    return [(item, *totals[item]) for item in sorted(totals)]


def group_labels(series: pd.Series, null_label: str) -> pd.Series:
    values = series.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        # Text (or null) cells: str() of a str is itself, so only the nulls change; no str() per cell.
        labels = np.where(pd.isna(values), null_label, values).astype(object, copy=False)
        return pd.Series(labels, index=series.index, name=series.name, dtype=object)
    return series.astype(object).where(series.notna(), null_label).astype(str)


def column_labels(runs: Runs, column: str, null_label: str) -> np.ndarray:
    """:func:`group_labels` of a run column as an array (computed once per ``runs``)."""
    return runs.derived(
        ("labels", column, null_label), lambda: group_labels(runs.df[column], null_label).to_numpy()
    )


def strata_of(runs: Runs, cfg: AnalysisConfig) -> np.ndarray:
    """:func:`stratum_series` as an array (computed once per ``runs``)."""
    key = ("strata", cfg.strata_column, cfg.strata_missing_label)
    return runs.derived(key, lambda: stratum_series(runs.df, cfg).to_numpy())


Coded = tuple[np.ndarray, np.ndarray]  # (per-row code, label per code), as pd.factorize returns them


def labels_coded(runs: Runs, column: str, null_label: str) -> Coded:
    """:func:`column_labels` factorized (computed once per ``runs``; the labels themselves are not kept)."""
    key = ("labels_coded", column, null_label)
    return runs.derived(key, lambda: factorize(group_labels(runs.df[column], null_label).to_numpy()))


def policy_coded(runs: Runs, cfg: AnalysisConfig) -> Coded:
    return labels_coded(runs, "policy_hash", cfg.null_group_label)


def strata_coded(runs: Runs, cfg: AnalysisConfig) -> Coded:
    """:func:`strata_of` factorized (computed once per ``runs``; the strata themselves are not kept)."""
    key = ("strata_coded", cfg.strata_column, cfg.strata_missing_label)
    return runs.derived(key, lambda: factorize(stratum_series(runs.df, cfg).to_numpy()))


def code_counts(coded: Coded) -> dict[str, int]:
    """How many rows carry each label."""
    codes, names = coded
    return dict(zip(names.tolist(), np.bincount(codes, minlength=len(names)).tolist(), strict=True))


def stratum_series(df: pd.DataFrame, cfg: AnalysisConfig) -> pd.Series:
    """The stratum of each run per ``cfg.strata_column`` (a run column or ``metrics.<key>`` string value).

    Null, missing or (for metrics) non-string values become ``cfg.strata_missing_label``.
    """
    col = cfg.strata_column
    if col.startswith(METRICS_PREFIX):
        key = col[len(METRICS_PREFIX) :]
        if "metrics" not in df.columns:
            raise KeyError(f"strata_column {col!r}: the run table has no 'metrics' column")
        codes, uniques = factorize(df["metrics"].astype(object, copy=False))
        vals = []
        for u in uniques:
            try:
                obj = orjson.loads(u)
            except (orjson.JSONDecodeError, TypeError):
                obj = None
            v = obj.get(key) if isinstance(obj, dict) else None
            vals.append(v if isinstance(v, str) and v != "" else cfg.strata_missing_label)
        arr = np.array(vals + [cfg.strata_missing_label], dtype=object)
        return pd.Series(arr[codes], index=df.index, name="stratum", dtype=object)
    if col not in df.columns:
        raise KeyError(f"strata_column {col!r} is not a run table column (columns: {sorted(df.columns)})")
    values = df[col].to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        # Text (or null) cells: str() of a str is itself, so only null and "" change; no str() per cell.
        keep = ~pd.isna(values) & (values != "")
        return pd.Series(
            np.where(keep, values, cfg.strata_missing_label), index=df.index, name="stratum", dtype=object
        )
    s = df[col].astype(object)
    s = s.where(s.notna() & (s.astype(str) != ""), cfg.strata_missing_label).astype(str)
    return s.rename("stratum").astype(object)


def outcome_flags(runs: Runs, cfg: AnalysisConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(known, is_warn, is_fail) boolean arrays from the outcome column (upper-cased)."""

    def compute() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # upper-case each distinct value once, not every row
        codes, uniques = factorize(runs.df["outcome"].astype(object, copy=False))
        up = [str(u).upper() for u in uniques]
        warn = np.array([u in cfg.warn_outcomes for u in up] + [False], dtype=bool)
        fail = np.array([u in cfg.fail_outcomes for u in up] + [False], dtype=bool)
        return codes >= 0, warn[codes], fail[codes]

    return runs.derived(("outcome", tuple(cfg.warn_outcomes), tuple(cfg.fail_outcomes)), compute)


def rates_of(runs: Runs) -> pd.Series:
    return runs.derived(
        ("rates",), lambda: pd.to_numeric(runs.df["unknown_rate"], errors="coerce").astype(float, copy=False)
    )


def in_order(df: pd.DataFrame, cols: list[str]) -> bool:
    """True when the rows are already in (cols) order and no key is null, so a stable sort keeps every row
    where it is (spike runs come from the history, which is stored in (timestamp, run_id) order)."""
    if len(df) < 2:
        return True
    tie = np.ones(len(df) - 1, dtype=bool)  # rows i, i+1 equal on every key so far
    for c in cols:
        s = df[c]
        if s.isna().any():
            return False
        if s.dtype == object:
            v = s.to_numpy()
            if pd.api.types.infer_dtype(v, skipna=False) != "string":
                return False
        elif isinstance(s.dtype, pd.DatetimeTZDtype):
            v = s.to_numpy(dtype="datetime64[ns]")  # the UTC instants, which is what sorting compares
        elif isinstance(s.dtype, pd.ArrowDtype) and pa.types.is_string(s.dtype.pyarrow_dtype):
            v = s.array  # compared in Arrow (UTF-8 byte order is str order): no str per cell
        else:
            v = s.to_numpy()
        prev, nxt = v[:-1][tie], v[1:][tie]
        if np.asarray(nxt < prev, dtype=bool).any():
            return False
        tie[tie] = np.asarray(nxt == prev, dtype=bool)
        if not tie.any():
            break
    return True


def sort_cols(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    if in_order(df, cols):
        return df.reset_index(drop=True)
    # None sorts first via a string key; mergesort keeps it stable and deterministic
    keys = {c: df[c].map(lambda v: "" if is_null(v) else v) if df[c].dtype == object else df[c] for c in cols}
    order = pd.DataFrame(keys).sort_values(cols, kind="mergesort").index
    return df.loc[order].reset_index(drop=True)


def groups(*keys: Coded) -> list[tuple[tuple[Any, ...], np.ndarray]]:
    """(key values, row positions ascending) per distinct combination of the factorized key columns."""
    codes = np.asarray(keys[0][0], dtype=np.int64)  # the first key's codes as they are (no copy)
    names = [keys[0][1]]
    for c, uniq in keys[1:]:
        codes = codes * len(uniq) + c
        names.append(uniq)
    order = np.argsort(codes, kind="stable")
    in_order = codes[order]
    bounds = np.flatnonzero(in_order[1:] != in_order[:-1]) + 1
    del in_order
    out = []
    for idx in np.split(order, bounds) if len(order) else []:
        code = int(codes[idx[0]])
        parts = []
        for uniq in reversed(names):
            code, c = divmod(code, len(uniq))
            parts.append(uniq[c])
        out.append((tuple(reversed(parts)), idx))
    return out


def policy_order(runs: Runs) -> list[str]:
    """The policy hashes in introduction order (:func:`~gate_pipeline.lib.policies.introduction_order`); []
    without runs or without the policy_hash / timestamp columns."""
    df = runs.df
    if not ({"policy_hash", "timestamp"} <= set(df.columns) and len(df)):
        return []
    return runs.derived(("introduction_order",), lambda: introduction_order(df))


def candidate_label(runs: Runs, cfg: AnalysisConfig) -> str | None:
    """The candidate policy_hash (:func:`~gate_pipeline.lib.policies.candidate_policy` with
    ``cfg.candidate_min_share`` and ``cfg.candidate_recent_runs``): the policy whose per-policy statistics the decision uses. None when no run
    has a policy_hash or the history lacks timestamp / run_id."""

    def compute() -> str | None:
        if not {"policy_hash", "timestamp", "run_id"} <= set(runs.df.columns):
            return None
        return candidate_policy(runs.df, cfg.candidate_min_share, recent_runs=cfg.candidate_recent_runs)[0]

    return runs.derived(("candidate", cfg.candidate_min_share, cfg.candidate_recent_runs), compute)
