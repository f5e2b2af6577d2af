"""One storage abstraction for local folders and S3 prefixes (fsspec via universal_pathlib).

Everything that reads or writes data goes through `Store`, so the same code runs against a local
folder, an S3 prefix or any other fsspec protocol, and no step depends on another step's local disk.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath


def to_upath(url: str | UPath, storage_options: Mapping[str, Any] | None = None) -> UPath:
    """A UPath for a local path or URL; storage options only matter for remote protocols."""
    if isinstance(url, UPath):
        return url
    return UPath(url, **dict(storage_options or {}))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Store:
    """A root (local or remote) plus the helpers every asset needs to read and write tables and files."""

    root: UPath
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def at(cls, url: str | UPath, storage_options: Mapping[str, Any] | None = None) -> Store:
        return cls(to_upath(url, storage_options), dict(storage_options or {}))

    @property
    def fs(self):
        return self.root.fs

    def path(self, *parts: str) -> UPath:
        return self.root.joinpath(*parts)

    def url(self, *parts: str) -> str:
        return str(self.path(*parts))

    def exists(self, *parts: str) -> bool:
        return self.path(*parts).exists()

    def read_bytes(self, *parts: str) -> bytes:
        return self.path(*parts).read_bytes()

    def write_bytes(self, data: bytes, *parts: str) -> str:
        target = self.path(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return str(target)

    def write_parquet(self, df: pd.DataFrame, *parts: str) -> str:
        """Parquet with a fixed writer config so identical frames give identical bytes."""
        # The pandas metadata is kept: it restores nullable Int64 / tz-aware dtypes on read.
        table = pa.Table.from_pandas(df, preserve_index=False)
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd", write_statistics=False)
        return self.write_bytes(buf.getvalue(), *parts)

    def read_parquet(self, *parts: str) -> pd.DataFrame:
        return pq.read_table(io.BytesIO(self.read_bytes(*parts))).to_pandas()

    def read_folder(self, *parts: str, suffix: str = "") -> dict[str, bytes]:
        """All files of one folder (name → bytes) in one batched read; remote stores fetch concurrently."""
        names = [n for n in self.list_names(*parts) if n.endswith(suffix)]
        if not names:
            return {}
        folder = self.path(*parts).path.rstrip("/")
        contents = self.fs.cat([f"{folder}/{n}" for n in names])
        return {key.rstrip("/").rsplit("/", 1)[-1]: value for key, value in contents.items()}

    def list_names(self, *parts: str) -> list[str]:
        """Sorted names directly under a folder; empty when the folder does not exist."""
        folder = self.path(*parts)
        try:
            entries = self.fs.ls(folder.path, detail=False)
        except FileNotFoundError:
            return []
        return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def delete(self, *parts: str) -> None:
        target = self.path(*parts)
        if target.exists():
            self.fs.rm(target.path)
