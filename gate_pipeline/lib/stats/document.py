"""What a statistics section hands on: :class:`Section` (JSON document, CSV tables, headline numbers), the
JSON conversion of results (:func:`to_jsonable`) and the CSV bytes of a table (:func:`table_csv_bytes`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from gate_pipeline.lib.escape import FORMULA_START, csv_cell, csv_frame


@dataclass
class Section:
    """One statistics section: JSON for rollout_metrics.json, tables for CSV, headline numbers for the UI."""

    name: str
    document: Any  # JSON-able: a list of rows or an object
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    numbers: dict[str, float | int | None] = field(default_factory=dict)


def _round(x: float) -> float | None:
    if math.isnan(x) or math.isinf(x):
        return None
    y = float(f"{x:.10g}")
    return 0.0 if y == 0 else y  # no "-0.0" in the bytes


def to_jsonable(obj: Any) -> Any:
    """Convert results (dataclasses, DataFrames, dicts, numpy/pandas scalars) to plain JSON values.

    Dicts get sorted keys; a DataFrame becomes a list of row objects in its (already deterministic) row order;
    floats are rounded to 10 significant digits; NaN/inf/NA/NaT become None; dates become ISO strings.
    """
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, pd.DataFrame):
        return [to_jsonable(rec) for rec in obj.to_dict(orient="records")]
    if isinstance(obj, pd.Series):
        return [to_jsonable(v) for v in obj.tolist()]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    if isinstance(obj, BaseModel):
        return to_jsonable(obj.model_dump(mode="json", by_alias=True))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(obj[k]) for k in sorted(obj, key=str)}
    if isinstance(obj, list | tuple | np.ndarray):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _round(float(obj))
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    if isinstance(obj, dt.date | dt.datetime):
        return obj.isoformat()
    raise TypeError(f"to_jsonable: unsupported type {type(obj).__name__}")


def _utc_seconds_text(col: pd.Series) -> pd.Series | None:
    """The exact text ``to_csv`` writes for a UTC timestamp column whose values are whole seconds
    (``2026-03-01 00:05:16+00:00``, NaT as empty), built with numpy; None for any other column. pandas
    formats tz-aware timestamps one by one, which was half the time of writing tables/spike_runs.csv."""
    dtype = col.dtype
    if not (isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC") or len(col) == 0:
        return None
    naive = col.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    nat = np.isnat(naive)
    if (naive[~nat].view("i8") % 1_000_000_000).any():
        return None
    text = np.char.add(np.char.replace(np.datetime_as_string(naive, unit="s"), "T", " "), "+00:00")
    return pd.Series(np.where(nat, "", text).astype(object), index=col.index, name=col.name)


def _needs_escape(col: pd.Series) -> bool:
    """Does any text cell of ``col`` change under ``csv_cell``? The distinct texts, joined by newlines (which
    ``csv_cell`` keeps), are scanned in one pass; only a hit is confirmed text by text."""
    texts = [u for u in pd.unique(col.to_numpy(dtype=object)) if isinstance(u, str)]
    joined = "\n".join(texts)
    if csv_cell(joined) == joined and not any(f"\n{c}" in joined for c in FORMULA_START):
        return False
    return any(csv_cell(t) != t for t in texts)


def _escaped(df: pd.DataFrame) -> pd.DataFrame:
    """``csv_frame(df)``, the same cells escaped, but judged per distinct value: scanning every cell of a
    100k-row table (tables/compared_runs.csv) with two regexes per text column took seconds."""
    if not df.columns.is_unique:
        return csv_frame(df)
    risky = [c for c in df.columns if df[c].dtype == object and not df[c].empty and _needs_escape(df[c])]
    return df.assign(**{c: df[c].map(csv_cell) for c in risky}) if risky else df


def _coded_or_arrow(dtype: Any) -> bool:
    return isinstance(dtype, pd.CategoricalDtype | pd.ArrowDtype)


def object_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (index reset) with its Categorical and Arrow-backed columns as object columns of their cells,
    None where missing: the cells every other table holds (tables/compared_runs.csv keeps its text columns
    coded, the spike runs' ids come from Arrow)."""
    out = df.reset_index(drop=True)
    cells = {}
    for c in out.columns:
        dtype = out[c].dtype
        if isinstance(dtype, pd.CategoricalDtype):
            cat = out[c].array
            cells[c] = np.append(cat.categories.to_numpy(dtype=object), None)[cat.codes]  # -1 reads None
        elif isinstance(dtype, pd.ArrowDtype):
            cells[c] = out[c].to_numpy(dtype=object, na_value=None)
    return out.assign(**cells) if cells else out


#: Rows per slice of a large table written as CSV (tables/compared_runs.csv lists nearly every run): the
#: whole text (and its copies in to_csv's buffer and in the bytes) is never in memory at once.
CSV_CHUNK_ROWS = 65_536


def _csv_text_bytes(df: pd.DataFrame, header: bool = True) -> bytes:
    if df.columns.is_unique and any(_coded_or_arrow(t) for t in df.dtypes):
        df = object_columns(df)  # the cells as text, escaped like any other
    df = _escaped(df)  # formula / control chars neutralized
    if df.columns.is_unique:  # timestamps as text after escaping: digits and separators, nothing to escape
        texts = {c: t for c in df.columns if (t := _utc_seconds_text(df[c])) is not None}
        df = df.assign(**texts) if texts else df
    text = _plain_text_csv(df, header)
    if text is None:
        buf = io.StringIO()
        df.to_csv(buf, index=False, header=header, lineterminator="\n")
        text = buf.getvalue()
    return text.encode()


_CSV_SPECIAL = re.compile('[,"\r\n]')


def _plain_text_csv(df: pd.DataFrame, header: bool = True) -> str | None:
    """``df.to_csv(index=False, lineterminator="\\n")``, the same text, for a table of text cells (or empty ones)
    none of which needs quoting: rows joined directly, ~3x faster than pandas' writer on the 100k-row
    tables/compared_runs.csv. None for any other table (pandas writes it)."""
    names = list(df.columns)
    if (
        len(names) < 2
        or not df.columns.is_unique
        or not all(isinstance(n, str) for n in names)
        or not len(df)
    ):
        return None  # (a lone empty cell is quoted by the csv module)
    if any(
        df[c].dtype != object or pd.api.types.infer_dtype(df[c], skipna=True) not in ("string", "empty")
        for c in names
    ):
        return None
    columns = []
    for c in names:
        values = df[c].to_numpy(dtype=object)
        columns.append(np.where(pd.isna(values), "", values).tolist())
    if any(_CSV_SPECIAL.search(text) for text in ("\0".join(names), *("\0".join(col) for col in columns))):
        return None
    head = ",".join(names) + "\n" if header else ""
    return head + "\n".join(map(",".join, zip(*columns, strict=True))) + "\n"


def _formats_by_cell(col: pd.Series) -> bool:
    """Does ``to_csv`` write each cell of ``col`` alone, so a slice of the column reads as the same text?
    Text (also coded or in Arrow), numbers and booleans are; a UTC timestamp column is when every value is a whole second (it then
    takes the same numpy path in every slice); other dtypes (pandas picks one format for a whole column of
    dates) are not claimed."""
    dtype = col.dtype
    if (isinstance(dtype, np.dtype) and dtype.kind in "Obiuf") or _coded_or_arrow(dtype):
        return True  # (coded and Arrow columns are written as object cells)
    if isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC":
        naive = col.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        return not (naive[~np.isnat(naive)].view("i8") % 1_000_000_000).any()
    return False


def table_csv_chunks(df: pd.DataFrame, rows: int = CSV_CHUNK_ROWS) -> Iterator[bytes]:
    """:func:`table_csv_bytes` in consecutive pieces (the header with the first): a slice of ``rows`` rows
    at a time when every cell's text is its own (:func:`_formats_by_cell`), else the whole table at once."""
    sliced = len(df) > rows and df.columns.is_unique and all(_formats_by_cell(df[c]) for c in df.columns)
    if not sliced:
        yield _csv_text_bytes(df)
        return
    for start in range(0, len(df), rows):
        yield _csv_text_bytes(df.iloc[start : start + rows], header=start == 0)


def table_csv_bytes(df: pd.DataFrame) -> bytes:
    return b"".join(table_csv_chunks(df))
