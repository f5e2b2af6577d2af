"""Ingestion: discover one day's run folders, read and parse their JSON files, quarantine bad files.

Pure logic (no Dagster). One day = one date folder `<root>/<YYYY-MM-DD>/` = one daily partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import pandas as pd

from gate_pipeline.lib.storage import Store, sha256_bytes
from gate_pipeline.lib.tables import QuarantinedFiles

ARTIFACT_KINDS = {
    "gate_result.json": "gate_result",
    "drift_report.json": "drift_report",
    "metrics.json": "metrics",
}
UTF8_BOM = b"\xef\xbb\xbf"
# Artifact files read by this process; tests prove a whitelist backfill reads none.
_files_read = 0


def files_read() -> int:
    return _files_read


def count_files_read(n: int) -> None:
    """Add reads done on this process's behalf by a worker process."""
    global _files_read
    _files_read += n


RAW_RUN_COLUMNS = [
    "date",
    "run_path",
    "run_folder",
    "gate_result",
    "drift_report",
    "metrics",
    "gate_sha256",
    "drift_sha256",
    "metrics_sha256",
    "other_files",
]
# The quarantined_files columns, in order: the pandera model's.
QUARANTINE_COLUMNS = list(QuarantinedFiles.to_schema().columns)


@dataclass(frozen=True)
class IngestLimits:
    """Files larger than this are quarantined unread (a CI artifact of this kind is a few KiB)."""

    max_file_bytes: int = 1_048_576


@dataclass
class ParsedFile:
    payload: dict[str, Any] | None
    sha256: str | None
    reason: str | None = None
    detail: str = ""


@dataclass
class DayScan:
    """Result of scanning one date folder: raw run rows, quarantine rows and the counts behind them."""

    date: str
    raw_runs: pd.DataFrame
    quarantine: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    manifest: list[tuple[str, int, str | None]] = field(default_factory=list)


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace: equal content always gives equal text (and equal hashes)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def parse_artifact(data: bytes) -> ParsedFile:
    """Parse one artifact file; bad input becomes a reason, never an exception."""
    digest = sha256_bytes(data)
    body = data[len(UTF8_BOM) :] if data.startswith(UTF8_BOM) else data
    if not body.strip():
        return ParsedFile(None, digest, "empty", "file is empty or whitespace only")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as uexc:
            return ParsedFile(None, digest, "not_utf8", f"invalid UTF-8 at byte {uexc.start}")
        return ParsedFile(None, digest, "not_json", str(exc))
    if not isinstance(payload, dict):
        return ParsedFile(None, digest, "not_object", f"top-level JSON value is {type(payload).__name__}")
    return ParsedFile(payload, digest)


def scan_day(store: Store, date: str, limits: IngestLimits | None = None) -> DayScan:
    """Discover, read and parse one day's artifacts.

    Counts (all visible as metadata): files discovered = accepted + quarantined + ignored (files
    that are not one of the three artifact names); runs discovered = runs with a parseable
    gate_result.json + runs quarantined (gate_result.json missing or bad).
    """
    limits = limits or IngestLimits()
    files = store.list_files(date)  # one listing of the day, sizes included
    runs: dict[str, dict[str, Any]] = {}
    quarantine: list[tuple] = []
    ignored = 0
    to_read: list[tuple[str, str, str]] = []  # (relative path, run_path, kind)
    for rel in sorted(files):
        parts = rel.split("/")
        if len(parts) == 3 and parts[2] in ARTIFACT_KINDS:
            run_path = f"{parts[0]}/{parts[1]}"
            runs.setdefault(run_path, {"other_files": 0})
            size = files[rel]
            kind = ARTIFACT_KINDS[parts[2]]
            if size > limits.max_file_bytes:
                detail = f"{size} bytes > cap {limits.max_file_bytes}; not read"
                quarantine.append((date, rel, run_path, kind, None, size, "too_large", detail))
            else:
                to_read.append((rel, run_path, kind))
        else:
            ignored += 1
            if len(parts) >= 3:
                run_path = f"{parts[0]}/{parts[1]}"
                runs.setdefault(run_path, {"other_files": 0})["other_files"] += 1

    contents = _read_many(store, [rel for rel, _, _ in to_read])
    manifest: list[tuple[str, int, str | None]] = []
    accepted_files = 0
    for rel, run_path, kind in to_read:
        data = contents[rel]
        if isinstance(data, Exception):
            quarantine.append((date, rel, run_path, kind, None, files[rel], "unreadable", repr(data)))
            manifest.append((rel, files[rel], None))
            continue
        parsed = parse_artifact(data)
        manifest.append((rel, files[rel], parsed.sha256))
        if parsed.reason:
            quarantine.append(
                (date, rel, run_path, kind, parsed.sha256, len(data), parsed.reason, parsed.detail)
            )
            continue
        accepted_files += 1
        runs[run_path][kind] = (canonical_json(parsed.payload), parsed.sha256)

    raw_rows = []
    quarantined_runs = 0
    for run_path in sorted(runs):
        entry = runs[run_path]
        if "gate_result" not in entry:
            quarantined_runs += 1
            bad = any(q[2] == run_path and q[3] == "gate_result" for q in quarantine)
            reason = "gate_result_quarantined" if bad else "missing_gate_result"
            detail = "gate_result.json is not usable" if bad else "run folder has no gate_result.json"
            quarantine.append((date, run_path, run_path, "run", None, 0, reason, detail))
            continue
        gate, drift, metrics = entry["gate_result"], entry.get("drift_report"), entry.get("metrics")
        raw_rows.append(
            (
                date,
                run_path,
                run_path.split("/", 1)[1],
                gate[0],
                drift[0] if drift else None,
                metrics[0] if metrics else None,
                gate[1],
                drift[1] if drift else None,
                metrics[1] if metrics else None,
                entry["other_files"],
            )
        )

    raw = pd.DataFrame(raw_rows, columns=RAW_RUN_COLUMNS)
    raw["other_files"] = raw["other_files"].astype("int64")
    qdf = quarantine_frame(quarantine)
    artifact_files = sum(1 for rel in files if rel.split("/")[-1] in ARTIFACT_KINDS and rel.count("/") == 2)
    counts = {
        "files_discovered": len(files),
        "files_accepted": accepted_files,
        "files_quarantined": artifact_files - accepted_files,
        "files_ignored": ignored,
        "runs_discovered": len(runs),
        "runs_with_gate_result": len(raw_rows),
        "runs_quarantined": quarantined_runs,
    }
    return DayScan(date, raw, qdf, counts, sorted(manifest))


def quarantine_frame(rows: list[tuple]) -> pd.DataFrame:
    qdf = pd.DataFrame(rows, columns=QUARANTINE_COLUMNS)
    qdf["size_bytes"] = qdf["size_bytes"].astype("int64")
    qdf["sha256"] = qdf["sha256"].astype(object)
    return qdf.sort_values(["path", "reason"], kind="stable").reset_index(drop=True)


def _read_many(store: Store, rels: list[str]) -> dict[str, bytes | Exception]:
    global _files_read
    _files_read += len(rels)
    return store.read_files(rels)
