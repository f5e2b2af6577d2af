"""What the stored statistics were computed from, so a reader can take them over instead of computing them
again (what-if replay: ~1 s a side at 100k runs). Pure logic: no Dagster imports.

The statistics asset writes, after ``statistics/*.json`` (data store) and ``tables/*.csv`` (outputs), the key
file :data:`KEY_FILE`: the sha256 of the stored history's bytes, of the analysis config in effect and of the
statistics code, plus the sha256 of every table's CSV. :func:`load` returns the stored statistics only when
all of them match what a reader would compute from; anything else (another history, config or code, a table
rewritten or missing, no key) means computing them again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from gate_pipeline import __version__
from gate_pipeline.lib.storage import Store, sha256_bytes

KEY_FILE = "statistics_source.json"  # data store root: not under statistics/, whose *.json the decision reads
STATISTICS_FOLDER = "statistics"  # data store: statistics/<name>.json
TABLES_FOLDER = "tables"  # outputs: tables/<name>.csv
STATS_CODE = Path(__file__).resolve().parent / "stats"
#: The modules of lib/ that lib/stats imports (a test keeps this list complete): their code computes figures too.
STATS_SHARED = ("classify", "config", "distributions", "escape", "intervals", "policies")


@cache
def code_sha256() -> str:
    """The statistics code (lib/stats/*.py, the lib/ modules it uses) and the package version: other code may
    compute other figures."""
    digest = hashlib.sha256(__version__.encode())
    shared = [STATS_CODE.parent / f"{name}.py" for name in STATS_SHARED]
    for path in [*sorted(STATS_CODE.glob("*.py")), *shared]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def file_sha256(store: Store, *parts: str, chunk: int = 1 << 20) -> str:
    """sha256 of a stored file, read a chunk at a time (the history is not held whole for it)."""
    digest = hashlib.sha256()
    with store.open_read(*parts) as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def source_key(history_sha256: str, analysis: Any) -> dict[str, str]:
    """What statistics are computed from: the stored history file (its sha256), the analysis config (a
    pydantic model, hashed as its canonical JSON: formatting and comments of analysis.yaml do not matter) and
    the code."""
    return {
        "history_sha256": history_sha256,
        "analysis_sha256": sha256_bytes(analysis.model_dump_json().encode()),
        "code_sha256": code_sha256(),
    }


def key_document(key: dict[str, str], documents: dict[str, bytes], tables: dict[str, str]) -> bytes:
    """The key file: ``key``, the sha256 of every document as written and ``tables`` (name → sha256 of its
    CSV as written), in publishing order."""
    doc = {
        "source": key,
        "documents": [[name, sha256_bytes(payload)] for name, payload in documents.items()],
        "tables": [[name, digest] for name, digest in tables.items()],
    }
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True)
class StoredStatistics:
    """Statistics as the statistics asset stored them: the documents (``statistics/<name>.json``) and the
    tables as published (``tables/<name>.csv``, name → bytes, in publishing order)."""

    documents: dict[str, bytes]
    tables: dict[str, bytes]

    def loaded(self) -> dict[str, Any]:
        """The documents as the decision reads them back from the data store (JSON decoded)."""
        return {name: orjson.loads(payload) for name, payload in self.documents.items()}


def load(
    data: Store, outputs: Store, key: dict[str, str], stored: dict[str, bytes]
) -> StoredStatistics | None:
    """The stored statistics when they were computed from ``key`` and every document and table is as written,
    else None. ``stored``: ``statistics/*.json`` already read (name without .json → bytes)."""
    if not data.exists(KEY_FILE):
        return None
    try:
        doc = orjson.loads(data.read_bytes(KEY_FILE))
        if doc.get("source") != key:
            return None
        documents = {}
        for name, digest in doc["documents"]:
            payload = stored.get(name)
            if payload is None or sha256_bytes(payload) != digest:
                return None
            documents[name] = payload
        tables = {}
        for name, digest in doc["tables"]:
            payload = outputs.read_bytes(TABLES_FOLDER, f"{name}.csv")
            if sha256_bytes(payload) != digest:
                return None
            tables[name] = payload
    except (OSError, ValueError, KeyError, TypeError):  # unreadable or of another shape: compute again
        return None
    return StoredStatistics(documents, tables)
