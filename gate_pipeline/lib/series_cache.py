"""The incremental rollout series build (`write_series`), byte-identical to the reference in series.py.

Each day's classified rows are formatted, validated against RolloutSeries and rendered as CSV lines once,
then kept in a cache in the data store keyed by the digest of the day's classified_runs file. A run formats
and validates only new or changed days; the cross-day duplicate rule and the global (timestamp, run_id)
order are computed on the key columns only, and the outputs are gathered from the cached Arrow columns and
CSV lines in that order. Tests hold both paths to byte equality.

Memory does not grow with the history beyond the key columns (run_id, timestamp, copies: ~40 bytes a row):
new days are spooled to local Arrow files as they are built, every cached or spooled file is read one record
batch at a time, and the outputs (CSV, series parquet, history parquet, a new base) are streamed to their
sinks in chunks of `CHUNK_ROWS` rows in series order. Each chunk is one row group of the published parquet
files, so a history of more than `CHUNK_ROWS` runs has several row groups (same content).

Cache layout under `<data>/<folder>/` (all through `Store`, so local and S3 alike):
  manifest.json                     which file holds which day at which digest (written last: the commit)
  base-<token>.arrow                many days, rows in series order (cross-day duplicate losers at the end),
                                    record batches of at most CHUNK_ROWS rows
  day-<day>-<digest16>.arrow        one day added or changed since the base was written
(Arrow IPC, lz4: the base is read on every update, and IPC reads ~10x faster than zstd parquet.)
New days become small day files; once they are many (or hold a large share of the rows) they are compacted
into a new base, so a new day costs one small write, not a rewrite of the history.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

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

# 2: bases are written in record batches of at most CHUNK_ROWS rows (format 1 held one batch of the whole
# history, which a batch-at-a-time reader would still decode whole): a format-1 cache is rebuilt once.
CACHE_FORMAT = 2
MANIFEST = "manifest.json"
# Day files are compacted into a new base beyond this many, or when they (plus base rows of replaced or
# vanished days) exceed this share of the rows.
MAX_DAY_FILES = 16
MAX_DAY_SHARE = 0.25
# New days are formatted and validated (one pandera call) in batches of this many rows: the pandas frames of a
# batch are the step's largest transient (~3 KB a row), so the batch bounds it whatever the history's length.
BATCH_ROWS = 50_000
# Rows per output chunk (one row group of each published parquet file, one record batch of the base): a chunk
# of every cache column is ~0.7 KB a row, so ~45 MB at most in memory at a time.
CHUNK_ROWS = 65_536
# Decoded record batches kept for the gather (rows in series order mostly come from one or two batches).
DECODED_BATCHES = 2

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
_IPC_OPTIONS = pyarrow.ipc.IpcWriteOptions(compression="lz4")

Dtypes = tuple[tuple[str, str], ...]  # (column, pandas dtype) in column order


class _CacheMiss(Exception):
    """A file the manifest names is missing or unreadable: the cache is rebuilt from the classified days."""


class SeriesSchemaError(Exception):
    """Rows of new or changed days violate RolloutSeries; nothing was cached or written."""

    def __init__(self, failures: list[dict]):
        super().__init__(f"rollout_series violates its schema ({len(failures)} failure cases)")
        self.failures = failures


@dataclass(frozen=True)
class SeriesSinks:
    """Where `write_series` streams the published bytes (binary file handles)."""

    csv: BinaryIO  # rollout_series.csv
    series: BinaryIO  # rollout_series.parquet
    history: BinaryIO  # the classified, deduplicated history (rollout_runs.parquet)


@dataclass(frozen=True)
class SeriesBuild:
    """What the update did (and, from `update_series`, the published bytes, identical to a from-scratch
    build; `write_series` streams them to its sinks and leaves these None)."""

    rows: int
    cross_day_duplicates: int
    policy_hashes: list[str]
    duplicate_losers: list[tuple]  # quarantine rows (QUARANTINE_COLUMNS) of the cross-day duplicate losers
    days_built: list[str]  # days formatted and validated in this run (new or changed classified_runs)
    cache: str  # "unchanged", "day_files" (new day files written) or "compacted" (a new base written)
    csv_sha256: str
    csv: bytes | None = None
    series_parquet: bytes | None = None
    history_parquet: bytes | None = None


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
    for field_ in schema:
        column = table.column(field_.name)
        if field_.type == pa.null():
            column = pa.chunked_array([pa.nulls(table.num_rows)], pa.null())
        elif column.type != field_.type:
            column = column.cast(field_.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _parquet(table: pa.Table) -> bytes:
    # The writer config of storage.parquet_bytes (tests assert the bytes agree).
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", write_statistics=False)
    return buf.getvalue()


def _parquet_writer(sink: BinaryIO, schema: pa.Schema) -> pq.ParquetWriter:
    # The writer config of storage.parquet_bytes: one chunk written = one row group, so a history of at most
    # CHUNK_ROWS rows gives the bytes of `_parquet` (tested).
    return pq.ParquetWriter(sink, schema, compression="zstd", write_statistics=False)


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


class _Spool:
    """A local temporary folder for Arrow files: new days as they are built, cache files of a remote store."""

    def __init__(self, folder: str):
        self.folder = folder
        self.count = 0

    def path(self, name: str | None = None) -> str:
        self.count += 1
        return os.path.join(self.folder, name or f"spool-{self.count}.arrow")


def _build_days(
    days: list[str], read_day: Callable[[str], pd.DataFrame], batch_rows: int, spool: _Spool
) -> tuple[dict[str, tuple[str, list[int]] | None], Dtypes | None, list[dict]]:
    """Format, validate and render new days, spooled to local Arrow files batch by batch (not held): day →
    (spool file, its record batches holding the day) or None (no rows); their dtypes; failures."""
    built: dict[str, tuple[str, list[int]] | None] = {}
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
        del runs, series
        path = spool.path()
        names, starts, counts = np.unique(labels, return_index=True, return_counts=True)
        with pyarrow.ipc.new_file(path, table.schema, options=_IPC_OPTIONS) as writer:
            for i, (day, start, count) in enumerate(
                zip(names.tolist(), starts.tolist(), counts.tolist(), strict=True)
            ):
                writer.write_batch(table.slice(start, count).combine_chunks().to_batches()[0])
                built[day] = (path, [i])
        del table
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


class _Rows:
    """The union of every day's rows where they lie: record batches of local Arrow IPC files, decoded one at a
    time (the last few kept), so no step holds the history's columns whole. Union row i is row `row[i]` of
    batch `batch[i]` (both set by `scan`)."""

    def __init__(self) -> None:
        self.readers: list[pyarrow.ipc.RecordBatchFileReader] = []
        self.batches: list[tuple[int, int]] = []  # batch id -> (reader, batch index in its file)
        self.schema: pa.Schema | None = None
        self._decoded: collections.OrderedDict[int, pa.RecordBatch] = collections.OrderedDict()
        self._files: dict[str, int] = {}
        self.batch = np.empty(0, dtype=np.int32)
        self.row = np.empty(0, dtype=np.int32)

    def add(self, path: str, indices: list[int] | None = None) -> list[int]:
        """Batch ids of record batches `indices` (all when None) of one local Arrow file."""
        if path not in self._files:
            try:
                reader = pyarrow.ipc.open_file(pa.OSFile(path))
            except (pa.ArrowException, OSError) as exc:  # e.g. a write cut short
                raise _CacheMiss(path) from exc
            if self.schema is None:
                self.schema = reader.schema
            elif reader.schema != self.schema:
                raise _CacheMiss(path)
            self._files[path] = len(self.readers)
            self.readers.append(reader)
        reader_id = self._files[path]
        reader = self.readers[reader_id]
        ids = []
        for index in range(reader.num_record_batches) if indices is None else indices:
            ids.append(len(self.batches))
            self.batches.append((reader_id, index))
        return ids

    def decode(self, batch_id: int) -> pa.RecordBatch:
        if batch_id in self._decoded:
            self._decoded.move_to_end(batch_id)
            return self._decoded[batch_id]
        reader, index = self.batches[batch_id]
        try:
            decoded = self.readers[reader].get_batch(index)
        except (pa.ArrowException, OSError) as exc:
            raise _CacheMiss(str(batch_id)) from exc
        self._decoded[batch_id] = decoded
        while len(self._decoded) > DECODED_BATCHES:
            self._decoded.popitem(last=False)
        return decoded

    def gather(self, positions: np.ndarray, columns: list[str] | None = None) -> pa.Table:
        """The union rows at `positions`, in that order, as one contiguous table (one chunk per column)."""
        batches, rows = self.batch[positions], self.row[positions]
        order = np.argsort(batches, kind="stable")
        pieces = []
        if len(order):
            for group in np.split(order, np.flatnonzero(np.diff(batches[order])) + 1):
                decoded = self.decode(int(batches[group[0]]))
                if columns is not None:
                    decoded = decoded.select(columns)
                wanted = rows[group]
                if wanted[-1] - wanted[0] + 1 == len(wanted) and (
                    len(wanted) < 2 or (np.diff(wanted) == 1).all()
                ):
                    pieces.append(decoded.slice(int(wanted[0]), len(wanted)))
                else:
                    pieces.append(decoded.take(pa.array(wanted)))
        schema = self.schema if columns is None else pa.schema([self.schema.field(c) for c in columns])
        table = pa.Table.from_batches(pieces, schema=schema)
        if len(order) and (np.diff(order) < 0).any():
            inverse = np.empty_like(order)
            inverse[order] = np.arange(len(order))
            table = table.take(pa.array(inverse))
        return table.combine_chunks()

    def close(self) -> None:
        self._decoded.clear()
        self.readers.clear()


@dataclass
class _Keys:
    """The key columns of the union (all that is held whole) and per record batch and tracked text column
    how many rows hold a value (whether a column is null-typed in the outputs, as from_pandas decides)."""

    run_id: pa.ChunkedArray
    ts: np.ndarray
    counts: np.ndarray
    has_counts: bool
    valid: dict[str, np.ndarray]  # column -> per batch id: rows with a value


def _scan(rows: _Rows, segments: list[tuple[list[int], set[str] | None]], tracked: list[str]) -> _Keys:
    """One pass over the union's batches, segment by segment (batch ids, and the only days of them that belong
    to the union, None = all): sets where each union row lies, returns the key columns and value counts."""
    run_ids, stamps, counts, where_batch, where_row = [], [], [], [], []
    valid = {name: np.zeros(len(rows.batches), dtype=np.int64) for name in tracked}
    has_counts = "duplicate_count" in rows.schema.names
    for batch_ids, keep_days in segments:
        value_set = pa.array(sorted(keep_days), pa.string()) if keep_days is not None else None
        for batch_id in batch_ids:
            decoded = rows.decode(batch_id)
            if value_set is not None:
                mask = pc.is_in(decoded.column(_DAY), value_set=value_set)
                index = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
                decoded = decoded.take(pa.array(index))
            else:
                index = np.arange(decoded.num_rows)
            run_ids.append(decoded.column("run_id"))
            stamps.append(decoded.column("timestamp"))
            if has_counts:
                counts.append(decoded.column("duplicate_count"))
            where_batch.append(np.full(len(index), batch_id, dtype=np.int32))
            where_row.append(index.astype(np.int32))
            for name in tracked:
                valid[name][batch_id] += decoded.num_rows - decoded.column(name).null_count
    rows.batch = np.concatenate(where_batch) if where_batch else np.empty(0, dtype=np.int32)
    rows.row = np.concatenate(where_row) if where_row else np.empty(0, dtype=np.int32)
    field_ = rows.schema.field
    n = len(rows.batch)
    return _Keys(
        run_id=pa.chunked_array(run_ids, field_("run_id").type),
        ts=pa.chunked_array(stamps, field_("timestamp").type).cast(pa.int64()).to_numpy(),
        counts=(
            pa.chunked_array(counts, field_("duplicate_count").type).to_numpy().astype(np.int64)
            if has_counts
            else np.ones(n, dtype=np.int64)
        ),
        has_counts=has_counts,
        valid=valid,
    )


@dataclass
class _Assembled:
    order: np.ndarray  # positions (in the union) of the series rows, in series order
    counts: np.ndarray  # duplicate_count per series row
    dropped: np.ndarray  # positions (in the union) of cross-day duplicate losers
    losers: list[tuple] = field(default_factory=list)  # quarantine rows of the dropped copies


def _assemble(keys: _Keys, rows: _Rows) -> _Assembled:
    """The cross-day duplicate rule and the (timestamp, run_id) order, computed on the key columns only."""
    run_id, ts, counts = keys.run_id, keys.ts, keys.counts.copy()
    n = len(ts)
    keep = None
    losers: list[tuple] = []
    if n and pc.count_distinct(run_id).as_py() < n:
        # Same rule as resolve_duplicates (latest timestamp, then run_path wins), over the few rows concerned.
        value_counts = pc.value_counts(run_id)
        repeated = value_counts.field("values").filter(pc.greater(value_counts.field("counts"), 1))
        concerned = np.flatnonzero(pc.is_in(run_id, value_set=repeated).to_numpy(zero_copy_only=False))
        extra = rows.gather(concerned, ["run_path", "date", "gate_sha256"])
        keys_frame = pd.DataFrame(
            {
                "run_id": run_id.take(concerned).to_pylist(),
                "ts": ts[concerned],
                "run_path": extra.column("run_path").to_pylist(),
                "pos": concerned,
                "copies": counts[concerned],
                "row": np.arange(len(concerned)),
            }
        ).sort_values(["run_id", "ts", "run_path"], kind="stable")
        winner = ~keys_frame.duplicated("run_id", keep="last").to_numpy()
        losers = _loser_rows(extra, keys_frame, winner)
        size = keys_frame.groupby("run_id", sort=False)["copies"].transform("sum").to_numpy()
        keep = np.ones(n, dtype=bool)
        keep[keys_frame["pos"].to_numpy()[~winner]] = False
        counts[keys_frame["pos"].to_numpy()[winner]] = size[winner]
    kept = np.flatnonzero(keep) if keep is not None else np.arange(n)
    kept_ts, kept_ids = ts[kept], (run_id if keep is None else run_id.take(kept))
    if in_series_order(kept_ts, kept_ids):
        order = kept
    else:
        by = pa.table({"ts": kept_ts, "run_id": kept_ids})
        order = kept[pc.sort_indices(by, sort_keys=[("ts", "ascending"), ("run_id", "ascending")]).to_numpy()]
    if pc.count_distinct(kept_ids).as_py() != len(kept):
        raise ValueError("rollout_series run_id is not unique")  # cannot happen after the cross-day rule
    dropped = np.flatnonzero(~keep) if keep is not None else np.empty(0, dtype=np.int64)
    return _Assembled(order, counts[order], dropped, sorted(losers))


def _loser_rows(extra: pa.Table, keys: pd.DataFrame, winner: np.ndarray) -> list[tuple]:
    """Quarantine rows (as in quarantined_files) for the copies the cross-day duplicate rule drops."""
    winners = dict(zip(keys["run_id"][winner], keys["run_path"][winner], strict=True))
    lost = keys[~winner]
    at = pa.array(lost["row"].to_numpy())
    dates = extra.column("date").take(at).to_pylist()
    shas = extra.column("gate_sha256").take(at).to_pylist()
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


def _tracked(dtypes: Dtypes) -> list[str]:
    """Cache columns whose output type depends on whether any published row holds a value (object columns)."""
    history = [name for name, dtype in dtypes if dtype == "object"]
    series = [_FORMATTED.get(name, name) for name, dtype in SERIES_DTYPES if dtype == "object"]
    return sorted(set(history) | set(series))


def _empty_columns(keys: _Keys, rows: _Rows, assembled: _Assembled) -> set[str]:
    """Tracked columns without a value in any published row (the dropped copies do not count)."""
    dropped = np.bincount(rows.batch[assembled.dropped], minlength=len(rows.batches))
    empty = set()
    for name, valid in keys.valid.items():
        if (valid > dropped).any():
            continue  # some batch has more values than dropped rows: one is published
        if valid.any():
            # Rare: every value might sit on a dropped copy; look at the kept rows of those batches.
            kept = np.ones(len(rows.batch), dtype=bool)
            kept[assembled.dropped] = False
            at = np.flatnonzero(kept & np.isin(rows.batch, np.flatnonzero(valid)))
            if rows.gather(at, [name]).column(name).null_count < len(at):
                continue
        empty.add(name)
    return empty


def _write_outputs(
    rows: _Rows,
    keys: _Keys,
    assembled: _Assembled,
    dtypes: Dtypes,
    sinks: SeriesSinks,
    base: BinaryIO | None,
    chunk_rows: int,
) -> tuple[str, list[str]]:
    """Stream the CSV, both parquet files and (`base`) a new base file, chunk by chunk in series order;
    the CSV's sha256 and the policy hashes."""
    empty = _empty_columns(keys, rows, assembled)
    names = [name for name, _ in dtypes]
    history_dtypes = dict(dtypes)
    # The cross-day rule's count (the group's copies added up) replaces the stored one, as in resolve_duplicates.
    history_dtypes["duplicate_count"] = "int64"
    history_dtypes = tuple(history_dtypes.items())
    history_schema = _pandas_schema(history_dtypes, frozenset(n for n, _ in history_dtypes if n in empty))
    series_schema = _pandas_schema(
        SERIES_DTYPES, frozenset(n for n, _ in SERIES_DTYPES if _FORMATTED.get(n, n) in empty)
    )
    digest = hashlib.sha256(_csv_header())
    sinks.csv.write(_csv_header())
    hashes: set[str] = set()
    base_writer = pyarrow.ipc.new_file(base, rows.schema, options=_IPC_OPTIONS) if base is not None else None
    with (
        _parquet_writer(sinks.series, series_schema) as series_out,
        _parquet_writer(sinks.history, history_schema) as history_out,
    ):
        starts = range(0, len(assembled.order), chunk_rows) if len(assembled.order) else [0]
        for start in starts:
            chunk = rows.gather(assembled.order[start : start + chunk_rows])
            lines = _text(chunk.column(_LINE))
            digest.update(lines)
            sinks.csv.write(lines)
            history = chunk.select(names)
            counts = pa.array(assembled.counts[start : start + chunk_rows], pa.int64())
            if keys.has_counts:
                history = history.set_column(names.index("duplicate_count"), "duplicate_count", counts)
            else:
                history = history.append_column("duplicate_count", counts)
            history_out.write_table(_conform(history, history_schema))
            series = pa.Table.from_arrays(
                [chunk.column(_FORMATTED.get(name, name)) for name in SERIES_COLUMNS], names=SERIES_COLUMNS
            )
            series = _conform(series, series_schema)
            series_out.write_table(series)
            hashes.update(pc.unique(series.column("policy_hash")).drop_null().to_pylist())
            if base_writer is not None and chunk.num_rows:
                base_writer.write_table(chunk)
            del chunk, history, series, lines
    if base_writer is not None:
        # The dropped copies after the series rows (the next update applies the cross-day rule again).
        for start in range(0, len(assembled.dropped), chunk_rows):
            base_writer.write_table(rows.gather(assembled.dropped[start : start + chunk_rows]))
        base_writer.close()
    return digest.hexdigest(), sorted(hashes)


def _empty_outputs(sinks: SeriesSinks) -> str:
    """No accepted run at all: a header-only CSV and empty tables, the history with its columns (so the
    statistics read an empty history like any other, instead of failing on a missing column)."""
    series = pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in SERIES_DTYPES})
    history = run_table_frame([]).assign(**{name: pd.Series(dtype=object) for name in CLASSIFIED_COLUMNS})
    empty = pa.Table.from_pandas(history, preserve_index=False)
    sinks.csv.write(_csv_header())
    sinks.series.write(_parquet(pa.Table.from_pandas(series, preserve_index=False)))
    sinks.history.write(_parquet(empty))
    return hashlib.sha256(_csv_header()).hexdigest()


def _empty_cache_file(dtypes: Dtypes, path: str) -> None:
    """A spool file of no rows with the cache columns of `dtypes` (days without rows still have columns)."""
    schema = _pandas_schema(dtypes, frozenset()).remove_metadata()
    table = schema.empty_table()
    for name in [_DAY, *_FORMATTED.values()]:
        table = table.append_column(name, pa.array([], pa.string()))
    table = table.append_column(_LINE, pa.array([], pa.large_string()))
    with pyarrow.ipc.new_file(path, table.schema, options=_IPC_OPTIONS) as writer:
        writer.write_table(table)


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

    def local(self, name: str, spool: _Spool) -> str:
        """A local path of a cache file: the file itself on a local store, else a copy in the spool."""
        target = self.store.path(self.folder, name)
        try:
            if isinstance(self.store.fs, LocalFileSystem):
                if not os.path.isfile(target.path):
                    raise FileNotFoundError(target.path)
                return target.path
            path = spool.path()
            self.store.fs.get_file(target.path, path)
            return path
        except OSError as exc:
            raise _CacheMiss(name) from exc

    def commit(self, manifest: dict, files: dict[str, Callable[[BinaryIO], None]]) -> None:
        """Write new files, then the manifest (the commit), then remove files it no longer names. A file is
        streamed to the store (never whole in memory); until the manifest names it, no reader looks at it."""
        fs = self.store.fs
        if files and isinstance(fs, LocalFileSystem):
            fs.makedirs(self.store.path(self.folder).path, exist_ok=True)
        for name, write in files.items():
            with fs.open(self.store.path(self.folder, name).path, "wb") as handle:
                write(handle)
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
    **options: Any,
) -> SeriesBuild:
    """`write_series` into memory: the build with the published bytes in `csv`, `series_parquet` and
    `history_parquet` (for tests and small histories)."""
    sinks = SeriesSinks(io.BytesIO(), io.BytesIO(), io.BytesIO())
    built = write_series(store, folder, versions, read_day, sinks, **options)
    return dataclasses.replace(
        built,
        csv=sinks.csv.getvalue(),
        series_parquet=sinks.series.getvalue(),
        history_parquet=sinks.history.getvalue(),
    )


def write_series(
    store: Store,
    folder: str,
    versions: dict[str, str],
    read_day: Callable[[str], pd.DataFrame],
    sinks: SeriesSinks,
    *,
    batch_rows: int = BATCH_ROWS,
    max_day_files: int = MAX_DAY_FILES,
    max_day_share: float = MAX_DAY_SHARE,
    chunk_rows: int = CHUNK_ROWS,
) -> SeriesBuild:
    """The series and history of all stored days, streamed to `sinks`, building only days whose digest is
    not cached yet.

    `versions` maps each stored day to the digest of its classified_runs file; `read_day` reads that file.
    The bytes are identical to `combine_days` + `rollout_series` + `series_csv_bytes` (and `parquet_bytes`)
    over all days, whatever the order and history of earlier updates, up to the parquet files' row groups
    (one per `chunk_rows` rows). Raises SeriesSchemaError (caching and writing nothing) if rows of a new or
    changed day violate RolloutSeries.
    """
    cache = _Cache(store, folder)
    settings = (batch_rows, max_day_files, max_day_share, chunk_rows)
    with tempfile.TemporaryDirectory(prefix="gate-series-") as folder_:
        try:
            return _update(cache, versions, read_day, sinks, _Spool(folder_), *settings)
        except _CacheMiss:
            cache.manifest = {}
    with tempfile.TemporaryDirectory(prefix="gate-series-") as folder_:
        for sink in (sinks.csv, sinks.series, sinks.history):
            sink.seek(0)
            sink.truncate()
        return _update(cache, versions, read_day, sinks, _Spool(folder_), *settings)


def _update(
    cache: _Cache,
    versions: dict[str, str],
    read_day: Callable[[str], pd.DataFrame],
    sinks: SeriesSinks,
    spool: _Spool,
    batch_rows: int,
    max_day_files: int,
    max_day_share: float,
    chunk_rows: int,
) -> SeriesBuild:
    base, day_files = cache.base, cache.day_files
    from_day_file = {d for d, v in versions.items() if day_files.get(d, {}).get("digest") == v}
    from_base = {d for d, v in versions.items() if d not in from_day_file and base["days"].get(d) == v}
    to_build = sorted(set(versions) - from_day_file - from_base)
    built, dtypes, failures = _build_days(to_build, read_day, batch_rows, spool)
    if failures:
        raise SeriesSchemaError(failures)
    if dtypes is not None and cache.dtypes is not None and dtypes != cache.dtypes:
        # The classified columns changed (a new code version): nothing cached can be reused.
        rest, dtypes_rest, failures = _build_days(
            sorted(from_day_file | from_base), read_day, batch_rows, spool
        )
        if failures:
            raise SeriesSchemaError(failures)
        if dtypes_rest is not None and dtypes_rest != dtypes:
            raise ValueError("classified_runs days disagree on column types")
        built.update(rest)
        to_build, from_day_file, from_base, base, day_files = sorted(versions), set(), set(), None, {}
    dtypes = dtypes or cache.dtypes

    # The union of all days' rows: the base (without days replaced or gone), then day files and new days.
    rows = _Rows()
    stale_rows = 0
    base_ids: list[int] = []
    if base and base["file"] and from_base:
        base_ids = rows.add(cache.local(base["file"], spool))
    recent: dict[str, list[int] | None] = {}
    for day in sorted(from_day_file):
        name = day_files[day]["file"]
        recent[day] = rows.add(cache.local(name, spool)) if name else None
    for day, where in built.items():
        recent[day] = rows.add(*where) if where is not None else None
    recent_ids = [b for day in sorted(recent) for b in recent[day] or []]
    if dtypes is not None and not rows.batches:  # days without rows: still tables with their columns
        _empty_cache_file(dtypes, empty := spool.path())
        recent_ids = rows.add(empty)
    assembled, keys, total = None, None, 0
    try:
        if dtypes is not None:
            # Base rows of days replaced or gone are not in the union (only the base's own days can be).
            keep_days = from_base if base and from_base != set(base["days"]) else None
            keys = _scan(rows, [(base_ids, keep_days), (recent_ids, None)], _tracked(dtypes))
            assembled = _assemble(keys, rows)
            total = len(assembled.order) + len(assembled.dropped)
            if base and base["file"]:
                in_base = int(np.isin(rows.batch, base_ids).sum()) if base_ids else 0
                stale_rows = base["rows"] - in_base
    except BaseException:
        rows.close()
        raise

    # Cache: new days become day files, or everything is compacted into a new base.
    recent_rows = int(np.isin(rows.batch, recent_ids).sum()) if recent_ids else 0
    recent_files = sum(1 for ids in recent.values() if ids is not None)
    has_base = bool(base and base["file"])
    compact = (
        not has_base
        or recent_files > max_day_files
        or (recent_rows + stale_rows) > max_day_share * max(total, 1)
    )
    files: dict[str, Callable[[BinaryIO], None]] = {}
    try:
        if compact:
            base_file = f"base-{_token(versions)}.arrow" if total else None
            if assembled is None:
                csv_sha256, hashes = _empty_outputs(sinks), []
            elif base_file is None:
                csv_sha256, hashes = _write_outputs(rows, keys, assembled, dtypes, sinks, None, chunk_rows)
            else:
                base_path = spool.path(base_file)
                with open(base_path, "wb") as base_sink:
                    csv_sha256, hashes = _write_outputs(
                        rows, keys, assembled, dtypes, sinks, base_sink, chunk_rows
                    )
                files[base_file] = functools.partial(_copy_file, base_path)
            manifest = {
                "format": CACHE_FORMAT,
                "columns": [list(c) for c in dtypes] if dtypes is not None else None,
                "base": {"file": base_file, "days": dict(versions), "rows": total},
                "days": {},
            }
            mode = "compacted"
        else:
            csv_sha256, hashes = _write_outputs(rows, keys, assembled, dtypes, sinks, None, chunk_rows)
            entries = {d: day_files[d] for d in from_day_file}
            for day, where in built.items():
                name = f"day-{day}-{versions[day][:16]}.arrow" if where is not None else None
                if name:
                    files[name] = functools.partial(_write_day, rows, recent[day])
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
    finally:
        rows.close()
    return SeriesBuild(
        rows=len(assembled.order) if assembled is not None else 0,
        cross_day_duplicates=len(assembled.dropped) if assembled is not None else 0,
        policy_hashes=hashes,
        duplicate_losers=assembled.losers if assembled is not None else [],
        days_built=to_build,
        cache=mode,
        csv_sha256=csv_sha256,
    )


def _copy_file(path: str, handle: BinaryIO) -> None:
    with open(path, "rb") as source:
        shutil.copyfileobj(source, handle, 1 << 20)


def _write_day(rows: _Rows, batch_ids: list[int], handle: BinaryIO) -> None:
    with pyarrow.ipc.new_file(handle, rows.schema, options=_IPC_OPTIONS) as writer:
        for batch_id in batch_ids:
            writer.write_batch(rows.decode(batch_id))
