"""Content hashes that make a decision reproducible: what artifacts, whitelist and config it came from."""

from __future__ import annotations

import hashlib
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gate_pipeline import __version__
from gate_pipeline.lib.storage import sha256_bytes

MANIFEST_COLUMNS: tuple[str, ...] = ("run_path", "gate_sha256", "drift_sha256", "metrics_sha256")


def _manifest_cells(col: pd.Series) -> np.ndarray | None:
    """The column as manifest text ("" for None), or None when a cell is neither str nor None."""
    obj = col.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(obj, skipna=True) not in ("string", "empty"):
        return None
    nulls = pd.isna(obj)
    if nulls.any():
        # Only None becomes ""; any other null (NaN, pd.NA) keeps str(v) as before: use the exact path.
        if any(v is not None for v in obj[nulls]):
            return None
        obj = obj.copy()
        obj[nulls] = ""
    return obj


def _is_text(col: pa.ChunkedArray) -> bool:
    return _is_text_type(col.type)


def _is_text_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)


def _arrow_text(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A text (or all-null) column as large_string with nulls as ""."""
    return pc.fill_null(col.cast(pa.large_string()), "")


#: Runs per slice of the manifest text hashed at a time (the text of all runs is ~220 bytes a run).
_MANIFEST_CHUNK = 65_536


def _arrow_manifest_sha256(table: pa.Table) -> str | None:
    """The manifest hash computed in Arrow (None when a column is not text): no Python object per cell (the
    hash columns are most of the history's bytes). Same lines and order as the pandas path: nulls read back
    from parquet as None and become "", and UTF-8 byte order is code point order, which is how Python sorts
    str. The lines are made and hashed a slice at a time, so neither they nor text copies of the columns are
    ever whole in memory (when the run_paths alone give the order)."""
    cols = [table.column(c) for c in MANIFEST_COLUMNS]
    if not all(map(_is_text, cols)):
        return None
    order = _order_by_first(cols[0])
    if order is None:
        lines = pc.binary_join_element_wise(*map(_arrow_text, cols), pa.scalar("\t", pa.large_string()))
        order = pc.sort_indices(lines)
        cols = [lines]
    # The sorted lines joined by "\n", hashed a slice at a time.
    digest = hashlib.sha256()
    for start in range(0, len(order), _MANIFEST_CHUNK):
        at = order[start : start + _MANIFEST_CHUNK]
        _hash_lines(digest, [c.take(at) for c in cols], last=start + len(at) == len(order))
    return digest.hexdigest()


def _hash_lines(digest, cols: list, *, last: bool) -> None:
    """Feed ``digest`` the manifest lines of these rows of the (text) columns, each followed by "\n" except
    the text's last line (``last``): contiguous in one buffer, no Python str per line."""
    tab = pa.scalar("\t", pa.large_string())
    part = [_arrow_text(c) for c in cols]
    lines = part[0] if len(part) == 1 else pc.binary_join_element_wise(*part, tab)
    ended = pc.binary_join_element_wise(
        lines, pa.scalar("", pa.large_string()), pa.scalar("\n", pa.large_string())
    ).combine_chunks()
    offsets = np.frombuffer(ended.buffers()[1], dtype=np.int64)
    first, end = int(offsets[ended.offset]), int(offsets[ended.offset + len(ended)])
    digest.update(memoryview(ended.buffers()[2])[first : end - 1 if last else end])


def file_manifest_sha256(source: BinaryIO) -> str | None:
    """:func:`artifact_manifest_sha256` of a stored history (parquet, a file open for reading), read a row
    group at a time: the manifest columns (~220 bytes a run) are never whole in memory. The history is in
    time order and a run_path starts with its day, so the manifest's order (by run_path) differs only
    locally: the lines of the row groups read so far wait in a buffer until no later row group can hold a
    smaller run_path, then are hashed in order. None when the run_paths alone do not give the order (null,
    repeated, or a character at or below the tab) or a column is missing or not text: then hash the table."""
    file = pq.ParquetFile(source, pre_buffer=False)
    schema = file.schema_arrow
    names = list(MANIFEST_COLUMNS)
    if not set(names) <= set(schema.names):
        return None
    if not all(_is_text_type(schema.field(n).type) for n in names):
        return None
    if pa.types.is_null(schema.field(names[0]).type):
        return None
    groups = [i for i in range(file.num_row_groups) if file.metadata.row_group(i).num_rows]
    # The smallest run_path of each row group and of all that follow it.
    lows = [
        pc.min(file.read_row_group(i, columns=names[:1], use_threads=False).column(0)).as_py() for i in groups
    ]
    if any(low is None for low in lows):
        return None
    for k in range(len(lows) - 2, -1, -1):
        lows[k] = min(lows[k], lows[k + 1])  # code point order is UTF-8 byte order (Arrow's)
    digest = hashlib.sha256()
    waiting: pa.Table | None = None
    hashed = 0
    for k, i in enumerate(groups):
        part = file.read_row_group(i, columns=names, use_threads=False)
        run_path = part.column(0)
        if run_path.null_count or pc.any(pc.match_substring_regex(run_path, "[\\x00-\\x09]")).as_py():
            return None
        lines = pc.binary_join_element_wise(
            *map(_arrow_text, part.columns), pa.scalar("\t", pa.large_string())
        )
        new = pa.table({"run_path": run_path, "line": lines})
        waiting = new if waiting is None else pa.concat_tables([waiting, new])
        if k + 1 < len(groups):
            ready = pc.less(waiting.column(0), pa.scalar(lows[k + 1], waiting.schema.field(0).type))
            batch, waiting = waiting.filter(ready), waiting.filter(pc.invert(ready))
        else:
            batch, waiting = waiting, None
        if not batch.num_rows:
            continue
        batch = batch.take(pc.sort_indices(batch.column(0)))
        keys = batch.column(0)
        if len(keys) > 1 and not pc.all(pc.greater(keys[1:], keys[:-1])).as_py():
            return None  # a repeated run_path: the whole lines decide the order
        if hashed:
            digest.update(b"\n")
        _hash_lines(digest, [batch.column(1)], last=True)
        hashed += batch.num_rows
    return digest.hexdigest()


def stored_manifest_sha256(source: BinaryIO) -> str:
    """:func:`artifact_manifest_sha256` of a stored history file (open for reading): a row group at a time
    (:func:`file_manifest_sha256`) when its run_paths give the order, else from its manifest columns read whole."""
    digest = file_manifest_sha256(source)
    if digest is not None:
        return digest
    names = pq.read_schema(source).names
    return artifact_manifest_sha256(
        pq.read_table(source, columns=[c for c in MANIFEST_COLUMNS if c in names])
    )


def _order_by_first(run_path: pa.ChunkedArray) -> pa.Array | None:
    """The order of the manifest lines from their first field alone, when that gives the order of the whole
    lines: every run_path distinct and none holding a character at or below the tab that follows it (so a
    path that is a prefix of another still sorts first). None otherwise (then the lines themselves sort)."""
    if len(run_path) == 0:
        return pa.array([], pa.uint64())
    if pa.types.is_null(run_path.type) or run_path.null_count:
        return None
    if pc.any(pc.match_substring_regex(run_path, "[\\x00-\\x09]")).as_py():
        return None
    if pc.count_distinct(run_path).as_py() != len(run_path):
        return None
    return pc.sort_indices(run_path)


def artifact_manifest_sha256(history: pd.DataFrame | pa.Table) -> str:
    """sha256 over the sorted (run_path, file hashes) of every accepted run: same artifacts → same hash.

    ``history`` is a frame or an Arrow table (as read from the stored history), with at least those columns."""
    if isinstance(history, pa.Table):
        digest = _arrow_manifest_sha256(history)
        if digest is not None:
            return digest
        history = history.select(list(MANIFEST_COLUMNS)).to_pandas()
    cols = list(MANIFEST_COLUMNS)
    cells = [_manifest_cells(history[c]) for c in cols]
    if all(c is not None for c in cells):
        # Whole columns instead of itertuples: the same tab-joined text per run, far fewer Python steps.
        lines = sorted(map("\t".join, zip(*(c.tolist() for c in cells), strict=True)))
    else:
        lines = sorted(
            "\t".join("" if v is None else str(v) for v in row)
            for row in history[cols].itertuples(index=False)
        )
    return sha256_bytes("\n".join(lines).encode())


def config_sha256(parts: dict[str, bytes]) -> str:
    """One hash over every config file the decision depends on (name + content hash, sorted by name)."""
    return sha256_bytes(
        "\n".join(f"{name}\t{sha256_bytes(data)}" for name, data in sorted(parts.items())).encode()
    )


def provenance(
    history: pd.DataFrame | pa.Table | None,
    whitelist_sha256: str,
    config_files: dict[str, bytes],
    *,
    manifest_sha256: str | None = None,
) -> dict[str, str]:
    """``manifest_sha256``: :func:`artifact_manifest_sha256` of ``history`` when the caller has it already
    (``history`` is then not read and may be None)."""
    return {
        "artifact_manifest_sha256": artifact_manifest_sha256(history)
        if manifest_sha256 is None
        else manifest_sha256,
        "whitelist_sha256": whitelist_sha256,
        "config_sha256": config_sha256(config_files),
        "code_version": __version__,
    }


#: Provenance keys and what an operator calls them.
PROVENANCE_LABELS = {
    "artifact_manifest_sha256": "artifacts",
    "whitelist_sha256": "whitelist",
    "config_sha256": "config",
    "code_version": "code",
}


def changed_inputs(previous: dict[str, str] | None, current: dict[str, str]) -> list[str]:
    """What differs from the previous decision's provenance ("artifacts", "whitelist", "config", "code");
    ``["first decision"]`` when there is none."""
    if not previous:
        return ["first decision"]
    return [label for key, label in PROVENANCE_LABELS.items() if previous.get(key) != current.get(key)]
