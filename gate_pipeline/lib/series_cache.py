"""The incremental rollout series build (`update_series`), byte-identical to the reference in series.py.

Each day's classified rows are formatted, validated against RolloutSeries and rendered as CSV lines once,
then kept in a cache in the data store keyed by the digest of the day's classified_runs file. A run formats
and validates only new or changed days; the cross-day duplicate rule and the global (timestamp, run_id)
order are computed on the key columns only, and the outputs are gathered from the cached Arrow columns and
CSV lines in that order. Tests hold both paths to byte equality.

Cache layout under `<data>/<folder>/` (all through `Store`, so local and S3 alike):
  manifest.json                     which file holds which day at which digest (written last: the commit)
  base-<token>.arrow                many days, rows in series order (cross-day duplicate losers at the end)
  day-<day>-<digest16>.arrow        one day added or changed since the base was written
(Arrow IPC, lz4: the base is read on every update, and IPC reads ~10x faster than zstd parquet.)
New days become small day files; once they are many (or hold a large share of the rows) they are compacted
into a new base, so a new day costs one small write, not a rewrite of the history.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from gate_pipeline.lib.classify import CLASSIFIED_COLUMNS
from gate_pipeline.lib.escape import csv_frame
from gate_pipeline.lib.memory import release_memory
from gate_pipeline.lib.normalize import run_table_frame
from gate_pipeline.lib.series import SERIES_COLUMNS, SERIES_DTYPES, format_series, in_series_order
from gate_pipeline.lib.storage import Store
from gate_pipeline.lib.tables import RolloutSeries, validate

CACHE_FORMAT = 1
MANIFEST = "manifest.json"
# Day files are compacted into a new base beyond this many, or when they (plus base rows of replaced or
# vanished days) exceed this share of the rows.
MAX_DAY_FILES = 16
MAX_DAY_SHARE = 0.25
# New days are formatted and validated (one pandera call) in batches of this many rows: the pandas frames of a
# batch are the step's largest transient (~3 KB a row), so the batch bounds it whatever the history's length.
BATCH_ROWS = 50_000

# Cache-only columns next to the classified columns: the day file the row came from, the formatted series
# text and the row's CSV line (with its "\n").
_DAY = "__day"
_LINE = "__csv_line"
_FORMATTED = {
    "timestamp": "__timestamp",
    "top_reasons": "__top_reasons",
    "field_issues": "__field_issues",
    "unknown_classes": "__unknown_classes",
}

Dtypes = tuple[tuple[str, str], ...]  # (column, pandas dtype) in column order


class _CacheMiss(Exception):
    """A file the manifest names is missing or unreadable: the cache is rebuilt from the classified days."""


class SeriesSchemaError(Exception):
    """Rows of new or changed days violate RolloutSeries; nothing was cached or written."""

    def __init__(self, failures: list[dict]):
        super().__init__(f"rollout_series violates its schema ({len(failures)} failure cases)")
        self.failures = failures


@dataclass(frozen=True)
class SeriesBuild:
    """The published bytes (identical to a from-scratch build) and what the update did."""

    csv: bytes
    series_parquet: bytes
    history_parquet: bytes  # the classified, deduplicated history (rollout_runs.parquet)
    rows: int
    cross_day_duplicates: int
    policy_hashes: list[str]
    duplicate_losers: list[tuple]  # quarantine rows (QUARANTINE_COLUMNS) of the cross-day duplicate losers
    days_built: list[str]  # days formatted and validated in this run (new or changed classified_runs)
    cache: str  # "unchanged", "day_files" (new day files written) or "compacted" (a new base written)


@functools.cache
def _row_schema():
    # Every row is validated when its day is built; run_id uniqueness is a property of the whole series
    # (the same run_id may sit on two days until the cross-day rule picks one), so it is checked there.
    return RolloutSeries.to_schema().update_column("run_id", unique=False)


@functools.cache
def _pandas_schema(dtypes: Dtypes, null_columns: frozenset[str]) -> pa.Schema:
    """The Arrow schema (pandas metadata included) `pa.Table.from_pandas` gives a frame with these dtypes.

    An object column is null-typed when it holds no value (`null_columns`), text otherwise, as from_pandas
    infers it; a one-row sample reproduces that inference.
    """

    def sample(name: str, dtype: str) -> pd.Series:
        if dtype == "object":
            return pd.Series([None if name in null_columns else "x"], dtype=object)
        return pd.Series([0]).astype(dtype)

    frame = pd.DataFrame({name: sample(name, dtype) for name, dtype in dtypes})
    return pa.Table.from_pandas(frame, preserve_index=False).schema


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = []
    for field in schema:
        column = table.column(field.name)
        if field.type == pa.null():
            column = pa.chunked_array([pa.nulls(table.num_rows)], pa.null())
        elif column.type != field.type:
            column = column.cast(field.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _like_pandas(table: pa.Table, dtypes: Dtypes) -> pa.Table:
    """`table` with exactly the schema from_pandas would give the same data as a frame with `dtypes`."""
    empty = frozenset(
        name
        for name, dtype in dtypes
        if dtype == "object" and table.column(name).null_count == table.num_rows
    )
    return _conform(table, _pandas_schema(dtypes, empty))


def _parquet(table: pa.Table) -> bytes:
    # The writer config of storage.parquet_bytes (tests assert the bytes agree).
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", write_statistics=False)
    return buf.getvalue()


def _write_ipc(table: pa.Table, sink) -> None:
    """A cache file: Arrow IPC with lz4, read back ~10x faster than zstd parquet (the base is read every run).
    One record batch per chunk of `table` (no combined copy first), streamed into `sink` (a file opened for
    writing): the base holds the whole history, and each in-memory copy of it raised the step's peak."""
    with pyarrow.ipc.new_file(
        sink, table.schema, options=pyarrow.ipc.IpcWriteOptions(compression="lz4")
    ) as writer:
        writer.write_table(table)


def _read_ipc(data: bytes) -> pa.Table:
    return pyarrow.ipc.open_file(pa.BufferReader(data)).read_all()


@functools.cache
def _csv_header() -> bytes:
    return pd.DataFrame(columns=SERIES_COLUMNS).to_csv(index=False, lineterminator="\n").encode()


def _csv_lines(series: pd.DataFrame) -> pa.Array:
    """One CSV line per row (with its "\\n"), exactly as `series_csv_bytes` writes the rows."""
    series = csv_frame(series)  # formula / control characters neutralized, as in series_csv_bytes
    body = series.to_csv(index=False, header=False, lineterminator="\n").encode()
    ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == ord("\n")) + 1
    if len(ends) != len(series):
        # Some field holds a line break (written quoted): render row by row instead.
        rows = [
            series.iloc[[i]].to_csv(index=False, header=False, lineterminator="\n")
            for i in range(len(series))
        ]
        return pa.array(rows, pa.large_string())
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    return pa.LargeStringArray.from_buffers(len(series), pa.py_buffer(offsets), pa.py_buffer(body))


def _text(column: pa.ChunkedArray) -> memoryview:
    """The values of a large_string column back to back (one copy, no Python loop)."""
    array = column.combine_chunks()
    if len(array) == 0:
        return memoryview(b"")
    if array.null_count:
        raise ValueError("a cached CSV line is null")
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    return memoryview(array.buffers()[2])[offsets[0] : offsets[-1]]


def _dtypes(frame: pd.DataFrame) -> Dtypes:
    return tuple((str(name), str(dtype)) for name, dtype in frame.dtypes.items())


def _build_days(
    days: list[str], read_day: Callable[[str], pd.DataFrame], batch_rows: int
) -> tuple[dict[str, pa.Table | None], Dtypes | None, list[dict]]:
    """Format, validate and render new days: day → cache table (None: no rows), their dtypes, failures."""
    built: dict[str, pa.Table | None] = {}
    failures: list[dict] = []
    dtypes: Dtypes | None = None
    batch: list[tuple[str, pd.DataFrame]] = []

    def flush() -> None:
        nonlocal dtypes
        frames = [(day, df) for day, df in batch if not df.empty]
        built.update({day: None for day, df in batch if df.empty})
        batch.clear()
        if not frames:  # days without rows add nothing (their columns do not count, as in combine_days)
            return
        runs = pd.concat([df.assign(**{_DAY: day}) for day, df in frames], ignore_index=True)
        batch_dtypes = _dtypes(runs.drop(columns=[_DAY]))
        if dtypes is not None and batch_dtypes != dtypes:
            raise ValueError(f"classified_runs days disagree on column types: {dtypes} vs {batch_dtypes}")
        dtypes = batch_dtypes
        runs = runs.sort_values([_DAY, "timestamp", "run_id"], kind="stable").reset_index(drop=True)
        series = format_series(runs)
        labels = runs[_DAY].to_numpy()
        for case in validate(_row_schema(), series):
            index = case.get("index")
            day = labels[int(index)] if str(index).isdigit() else None
            failures.append({"day": day, **case})
        table = pa.Table.from_pandas(runs.drop(columns=[_DAY]), preserve_index=False)
        table = _conform(table, _pandas_schema(dtypes, frozenset()).remove_metadata())
        extra = {_DAY: pa.array(labels, pa.string()), _LINE: _csv_lines(series)}
        extra.update({cached: pa.array(series[name], pa.string()) for name, cached in _FORMATTED.items()})
        for name, column in extra.items():
            table = table.append_column(name, column)
        names, starts, counts = np.unique(labels, return_index=True, return_counts=True)
        for day, start, count in zip(names.tolist(), starts.tolist(), counts.tolist(), strict=True):
            built[day] = table.slice(start, count)
        del runs, series, table
        release_memory()  # the batch's pandas frames: otherwise resident until the process ends

    rows = 0
    for day in days:
        df = read_day(day)
        batch.append((day, df))
        rows += len(df)
        if rows >= batch_rows:
            flush()
            rows = 0
    if batch:
        flush()
    return built, dtypes, failures


@dataclass
class _Assembled:
    out: pa.Table  # the series rows, in series order, all cache columns
    counts: np.ndarray  # duplicate_count per row of `out`
    dropped: np.ndarray  # positions (in the union) of cross-day duplicate losers
    order: np.ndarray | None  # positions (in the union) of `out`'s rows; None = the union as it is
    losers: list[tuple] = dataclasses.field(default_factory=list)  # quarantine rows of the dropped copies


def _assemble(union: pa.Table) -> _Assembled:
    """The cross-day duplicate rule and the (timestamp, run_id) order, computed on the key columns only."""
    n = union.num_rows
    run_id = union.column("run_id")
    ts = union.column("timestamp").cast(pa.int64()).to_numpy()
    # Copies each row stands for (its day's duplicates); the cross-day rule adds up a group's copies.
    names = union.column_names
    counts = (
        union.column("duplicate_count").to_numpy().astype(np.int64)
        if "duplicate_count" in names
        else np.ones(n, dtype=np.int64)
    )
    keep = None
    losers: list[tuple] = []
    if n and pc.count_distinct(run_id).as_py() < n:
        # Same rule as resolve_duplicates (latest timestamp, then run_path wins), over the few rows concerned.
        value_counts = pc.value_counts(run_id)
        repeated = value_counts.field("values").filter(pc.greater(value_counts.field("counts"), 1))
        rows = np.flatnonzero(pc.is_in(run_id, value_set=repeated).to_numpy(zero_copy_only=False))
        keys = pd.DataFrame(
            {
                "run_id": run_id.take(rows).to_pylist(),
                "ts": ts[rows],
                "run_path": union.column("run_path").take(rows).to_pylist(),
                "pos": rows,
                "copies": counts[rows],
            }
        ).sort_values(["run_id", "ts", "run_path"], kind="stable")
        winner = ~keys.duplicated("run_id", keep="last").to_numpy()
        losers = _loser_rows(union, keys, winner)
        size = keys.groupby("run_id", sort=False)["copies"].transform("sum").to_numpy()
        keep = np.ones(n, dtype=bool)
        keep[keys["pos"].to_numpy()[~winner]] = False
        counts[keys["pos"].to_numpy()[winner]] = size[winner]
    kept = np.flatnonzero(keep) if keep is not None else None
    kept_ts = ts if kept is None else ts[kept]
    kept_ids = run_id if kept is None else run_id.take(kept)
    if in_series_order(kept_ts, kept_ids):
        order = kept
    else:
        by = pa.table({"ts": kept_ts, "run_id": kept_ids})
        positions = pc.sort_indices(by, sort_keys=[("ts", "ascending"), ("run_id", "ascending")]).to_numpy()
        order = positions if kept is None else kept[positions]
    out = union if order is None else _gather(union, order)
    dropped = np.flatnonzero(~keep) if keep is not None else np.empty(0, dtype=np.int64)
    return _Assembled(
        out.combine_chunks(), counts if order is None else counts[order], dropped, order, sorted(losers)
    )


def _loser_rows(union: pa.Table, keys: pd.DataFrame, winner: np.ndarray) -> list[tuple]:
    """Quarantine rows (as in quarantined_files) for the copies the cross-day duplicate rule drops."""
    winners = dict(zip(keys["run_id"][winner], keys["run_path"][winner], strict=True))
    lost = keys[~winner]
    positions = pa.array(lost["pos"].to_numpy())
    dates = union.column("date").take(positions).to_pylist()
    shas = union.column("gate_sha256").take(positions).to_pylist()
    return [
        (
            date,
            run_path,
            run_path,
            "run",
            sha,
            0,
            "duplicate_run_id",
            f"run_id {run_id} also at {winners[run_id]}, which wins (latest timestamp, then path)",
        )
        for date, run_path, sha, run_id in zip(
            dates, lost["run_path"].tolist(), shas, lost["run_id"].tolist(), strict=True
        )
    ]


def _gather(table: pa.Table, positions: np.ndarray) -> pa.Table:
    """`table.take(positions)`; zero-copy slices when the positions are a few contiguous runs (the usual case:
    the base's rows, then each newer day's)."""
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    if not len(positions) or len(breaks) > 64:
        return table.take(positions)
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(positions)]])
    return pa.concat_tables(
        [table.slice(int(positions[a]), int(b - a)) for a, b in zip(starts, ends, strict=True)]
    )


def _outputs(assembled: _Assembled, dtypes: Dtypes) -> tuple[bytes, bytes, bytes, list[str]]:
    out = assembled.out
    names = [name for name, _ in dtypes]
    history = out.select(names)
    counts = pa.array(assembled.counts, pa.int64())
    history_dtypes = dict(dtypes)
    # The cross-day rule's count (the group's copies added up) replaces the stored one, as in resolve_duplicates.
    if "duplicate_count" in names:
        history = history.set_column(names.index("duplicate_count"), "duplicate_count", counts)
    else:
        history = history.append_column("duplicate_count", counts)
    history_dtypes["duplicate_count"] = "int64"
    history = _like_pandas(history, tuple(history_dtypes.items()))
    series = pa.Table.from_arrays(
        [out.column(_FORMATTED.get(name, name)) for name in SERIES_COLUMNS], names=SERIES_COLUMNS
    )
    series = _like_pandas(series, SERIES_DTYPES)
    if pc.count_distinct(series.column("run_id")).as_py() != series.num_rows:
        raise ValueError("rollout_series run_id is not unique")  # cannot happen after the cross-day rule
    csv = b"".join([_csv_header(), _text(out.column(_LINE))])
    hashes = sorted(pc.unique(series.column("policy_hash")).drop_null().to_pylist())
    return csv, _parquet(series), _parquet(history), hashes


def _empty_outputs() -> tuple[bytes, bytes, bytes, list[str]]:
    """No accepted run at all: a header-only CSV and empty tables, the history with its columns (so the
    statistics read an empty history like any other, instead of failing on a missing column)."""
    series = pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in SERIES_DTYPES})
    history = run_table_frame([]).assign(**{name: pd.Series(dtype=object) for name in CLASSIFIED_COLUMNS})
    empty = pa.Table.from_pandas(history, preserve_index=False)
    return _csv_header(), _parquet(pa.Table.from_pandas(series, preserve_index=False)), _parquet(empty), []


def _token(payload: object) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class _Cache:
    """The stored fragments: a manifest naming a base file (many days) and day files (recent days)."""

    def __init__(self, store: Store, folder: str):
        self.store, self.folder = store, folder
        self.manifest: dict = {}
        if store.exists(folder, MANIFEST):
            try:
                manifest = orjson.loads(store.read_bytes(folder, MANIFEST))
            except orjson.JSONDecodeError:
                manifest = {}
            if manifest.get("format") == CACHE_FORMAT:
                self.manifest = manifest

    @property
    def dtypes(self) -> Dtypes | None:
        columns = self.manifest.get("columns")
        return tuple((name, dtype) for name, dtype in columns) if columns is not None else None

    @property
    def base(self) -> dict:
        return self.manifest.get("base") or {"file": None, "days": {}, "rows": 0}

    @property
    def day_files(self) -> dict[str, dict]:
        return self.manifest.get("days", {})

    def read(self, names: list[str]) -> dict[str, pa.Table]:
        rels = {name: f"{self.folder}/{name}" for name in names}
        found = self.store.read_files(list(rels.values()))
        tables = {}
        for name, rel in rels.items():
            payload = found.get(rel)
            if not isinstance(payload, bytes):
                raise _CacheMiss(rel)
            try:
                tables[name] = _read_ipc(payload)
            except (pa.ArrowException, OSError) as exc:  # e.g. a write cut short
                raise _CacheMiss(rel) from exc
        return tables

    def commit(self, manifest: dict, files: dict[str, pa.Table]) -> None:
        """Write new files, then the manifest (the commit), then remove files it no longer names. A file is
        streamed to the store (never whole in memory); until the manifest names it, no reader looks at it."""
        fs = self.store.fs
        if files and isinstance(fs, LocalFileSystem):
            fs.makedirs(self.store.path(self.folder).path, exist_ok=True)
        for name, table in files.items():
            with fs.open(self.store.path(self.folder, name).path, "wb") as handle:
                _write_ipc(table, handle)
        self.store.write_bytes(orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS), self.folder, MANIFEST)
        named = {manifest["base"]["file"], *(entry["file"] for entry in manifest["days"].values()), MANIFEST}
        for name in self.store.list_names(self.folder):
            if name not in named:
                remove(self.store, self.folder, name)


def remove(store: Store, *parts: str) -> None:
    """Delete one file of a store if it exists."""
    with contextlib.suppress(FileNotFoundError):
        store.fs.rm(store.path(*parts).path)


def update_series(
    store: Store,
    folder: str,
    versions: dict[str, str],
    read_day: Callable[[str], pd.DataFrame],
    *,
    batch_rows: int = BATCH_ROWS,
    max_day_files: int = MAX_DAY_FILES,
    max_day_share: float = MAX_DAY_SHARE,
) -> SeriesBuild:
    """The series and history of all stored days, building only days whose digest is not cached yet.

    `versions` maps each stored day to the digest of its classified_runs file; `read_day` reads that file.
    The outputs are byte-identical to `combine_days` + `rollout_series` + `series_csv_bytes` (and
    `parquet_bytes`) over all days, whatever the order and history of earlier updates.
    Raises SeriesSchemaError (and caches nothing) if rows of a new or changed day violate RolloutSeries.
    """
    cache = _Cache(store, folder)
    try:
        return _update(cache, versions, read_day, batch_rows, max_day_files, max_day_share)
    except _CacheMiss:
        cache.manifest = {}
        return _update(cache, versions, read_day, batch_rows, max_day_files, max_day_share)


def _update(
    cache: _Cache,
    versions: dict[str, str],
    read_day: Callable[[str], pd.DataFrame],
    batch_rows: int,
    max_day_files: int,
    max_day_share: float,
) -> SeriesBuild:
    base, day_files = cache.base, cache.day_files
    from_day_file = {d for d, v in versions.items() if day_files.get(d, {}).get("digest") == v}
    from_base = {d for d, v in versions.items() if d not in from_day_file and base["days"].get(d) == v}
    to_build = sorted(set(versions) - from_day_file - from_base)
    built, dtypes, failures = _build_days(to_build, read_day, batch_rows)
    if failures:
        raise SeriesSchemaError(failures)
    if dtypes is not None and cache.dtypes is not None and dtypes != cache.dtypes:
        # The classified columns changed (a new code version): nothing cached can be reused.
        rest, dtypes_rest, failures = _build_days(sorted(from_day_file | from_base), read_day, batch_rows)
        if failures:
            raise SeriesSchemaError(failures)
        if dtypes_rest is not None and dtypes_rest != dtypes:
            raise ValueError("classified_runs days disagree on column types")
        built.update(rest)
        to_build, from_day_file, from_base, base, day_files = sorted(versions), set(), set(), None, {}
    dtypes = dtypes or cache.dtypes

    # The union of all days' rows: the base (without days replaced or gone), then day files and new days.
    tables: list[pa.Table] = []
    stale_rows = 0
    if base and base["file"] and from_base:
        base_table = cache.read([base["file"]])[base["file"]]
        if from_base != set(base["days"]):
            mask = pc.is_in(base_table.column(_DAY), value_set=pa.array(sorted(from_base), pa.string()))
            base_table = base_table.filter(mask)
        stale_rows = base["rows"] - base_table.num_rows
        tables.append(base_table)
    elif base and base["file"]:
        stale_rows = base["rows"]
    cached = cache.read(sorted({day_files[d]["file"] for d in from_day_file if day_files[d]["file"]}))
    recent = {d: cached[day_files[d]["file"]] if day_files[d]["file"] else None for d in from_day_file}
    recent.update(built)
    tables += [recent[d] for d in sorted(recent) if recent[d] is not None]

    if not tables:
        csv, series_parquet, history_parquet, hashes = _empty_outputs()
        rows, duplicates = 0, 0
        assembled = None
        if dtypes is not None:  # days without rows: still tables with their columns
            empty = _empty_union(dtypes)
            assembled = _assemble(empty)
            csv, series_parquet, history_parquet, hashes = _outputs(assembled, dtypes)
    else:
        union = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        assembled = _assemble(union)
        csv, series_parquet, history_parquet, hashes = _outputs(assembled, dtypes)
        rows, duplicates = assembled.out.num_rows, len(assembled.dropped)

    # Cache: new days become day files, or everything is compacted into a new base.
    recent_rows = sum(t.num_rows for t in recent.values() if t is not None)
    recent_files = sum(1 for t in recent.values() if t is not None)
    total = rows + duplicates
    has_base = bool(base and base["file"])
    compact = (
        not has_base
        or recent_files > max_day_files
        or (recent_rows + stale_rows) > max_day_share * max(total, 1)
    )
    files: dict[str, pa.Table] = {}
    if compact:
        base_file = None
        if total:
            # The rows in series order (assembled.out, already one contiguous copy), then the dropped copies.
            base_table = assembled.out
            if len(assembled.dropped):
                base_table = pa.concat_tables([base_table, union.take(assembled.dropped)])
            base_file = f"base-{_token(versions)}.arrow"
            files[base_file] = base_table
        manifest = {
            "format": CACHE_FORMAT,
            "columns": [list(c) for c in dtypes] if dtypes is not None else None,
            "base": {"file": base_file, "days": dict(versions), "rows": total},
            "days": {},
        }
        mode = "compacted"
    else:
        entries = {d: day_files[d] for d in from_day_file}
        for day, table in built.items():
            name = f"day-{day}-{versions[day][:16]}.arrow" if table is not None else None
            if name:
                files[name] = table
            entries[day] = {"digest": versions[day], "file": name}
        manifest = {
            "format": CACHE_FORMAT,
            "columns": [list(c) for c in dtypes] if dtypes is not None else None,
            "base": base,
            "days": entries,
        }
        mode = "day_files"
    if manifest == cache.manifest:
        mode = "unchanged"
    else:
        cache.commit(manifest, files)
    return SeriesBuild(
        csv=csv,
        series_parquet=series_parquet,
        history_parquet=history_parquet,
        rows=rows,
        cross_day_duplicates=duplicates,
        policy_hashes=hashes,
        duplicate_losers=assembled.losers if assembled is not None else [],
        days_built=to_build,
        cache=mode,
    )


def _empty_union(dtypes: Dtypes) -> pa.Table:
    schema = _pandas_schema(dtypes, frozenset()).remove_metadata()
    table = schema.empty_table()
    for name in [_DAY, *_FORMATTED.values()]:
        table = table.append_column(name, pa.array([], pa.string()))
    return table.append_column(_LINE, pa.array([], pa.large_string()))
