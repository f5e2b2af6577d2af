"""Ingestion: discover one day's run folders, read and parse their JSON files, quarantine bad files.

Pure logic (no Dagster). One day = one date folder `<root>/<YYYY-MM-DD>/` = one daily partition.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import orjson
import pandas as pd

from gate_pipeline.lib.stage_clock import StageClock
from gate_pipeline.lib.storage import Store, sha256_bytes
from gate_pipeline.lib.tables import QuarantinedFiles

ARTIFACT_KINDS = {
    "gate_result.json": "gate_result",
    "drift_report.json": "drift_report",
    "metrics.json": "metrics",
}
UTF8_BOM = b"\xef\xbb\xbf"


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
    """Files larger than this are quarantined unread (a CI artifact of this kind is a few KiB); a run
    timestamp more than `timestamp_window_days` days away from its date folder is flagged (normalize)."""

    max_file_bytes: int = 1_048_576
    timestamp_window_days: int = 2


@dataclass
class ParsedFile:
    payload: dict[str, Any] | None
    sha256: str | None
    reason: str | None = None
    detail: str = ""
    text: str | None = None  # the payload as canonical JSON (what raw_runs stores)


# Values plain JSON cannot carry exactly become marker objects, so the run is kept and the field that holds
# one is flagged `unknown_field_invalid:<field>` by normalization (an object is never a valid scalar field):
# NaN / Infinity / -Infinity (what Python's json.dump writes for non-finite floats) and numbers that overflow
# a float (1e400) become {"$nonfinite": "<text>"}; integers outside the 64-bit range become
# {"$bigint": "<digits>"} (kept exactly, never rounded to a float).
NONFINITE_MARKER = "$nonfinite"
BIGINT_MARKER = "$bigint"
_INT64 = (-(2**63), 2**64 - 1)  # what orjson reads and writes as an integer


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
            text = body.decode("utf-8")
        except UnicodeDecodeError as uexc:
            return ParsedFile(None, digest, "not_utf8", f"invalid UTF-8 at byte {uexc.start}")
        payload = _lenient_loads(text)
        if payload is None:
            reason = "too_deep" if "depth limit" in str(exc) else "not_json"
            return ParsedFile(None, digest, reason, str(exc))
        if not text.lstrip().startswith("{"):  # a bare NaN / 1e400 is a marker object, not an object
            return ParsedFile(None, digest, "not_object", "top-level JSON value is not an object")
    if not isinstance(payload, dict):
        return ParsedFile(None, digest, "not_object", f"top-level JSON value is {type(payload).__name__}")
    try:
        text = canonical_json(payload)
    except TypeError as exc:  # orjson.JSONEncodeError: nesting beyond 255 levels, lone surrogates
        reason = "too_deep" if "recursion" in str(exc).lower() else "not_json"
        return ParsedFile(None, digest, reason, f"cannot be stored as canonical JSON: {exc}")
    return ParsedFile(payload, digest, text=text)


def _nonfinite(text: str) -> dict[str, str]:
    return {NONFINITE_MARKER: text}


def _float_or_marker(text: str) -> float | dict[str, str]:
    value = float(text)
    return value if math.isfinite(value) else _nonfinite(text)


def _int_or_marker(text: str) -> int | dict[str, str]:
    value = int(text)
    return value if _INT64[0] <= value <= _INT64[1] else {BIGINT_MARKER: text}


def _lenient_loads(text: str) -> Any:
    """What orjson refuses but Python's json reads (NaN, Infinity, 1e400, huge integers), with markers for
    the values JSON cannot carry exactly; None if it is not JSON either."""
    try:
        return json.loads(
            text, parse_constant=_nonfinite, parse_float=_float_or_marker, parse_int=_int_or_marker
        )
    except (ValueError, RecursionError):
        return None


def scan_day(
    store: Store, date: str, limits: IngestLimits | None = None, clock: StageClock | None = None
) -> DayScan:
    """Discover, read and parse one day's artifacts.

    Counts (all visible as metadata): files discovered = accepted + quarantined + ignored (files
    that are not one of the three artifact names; refused entries — symlinks, FIFOs, unreadable
    folders — count as discovered and quarantined); runs discovered = runs with a parseable
    gate_result.json + runs quarantined (gate_result.json missing or bad, run folder refused).
    """
    limits = limits or IngestLimits()
    clock = clock or StageClock()
    with clock.stage("listing"):
        listing = store.scan(date)  # one listing of the day, sizes included
    with clock.stage("parsing"):
        return _scan_listed(store, date, limits, listing, clock)


def _scan_listed(store: Store, date: str, limits: IngestLimits, listing, clock: StageClock) -> DayScan:
    files = listing.files
    runs: dict[str, dict[str, Any]] = {}
    quarantine: list[tuple] = []
    ignored = 0
    quarantined_files = 0
    refused_runs: dict[str, str] = {}  # run_path → reason of its refused folder
    for rel, reason, detail in listing.refused:
        parts = rel.split("/")
        if len(parts) == 1:
            # The date folder itself (a symlink or unreadable): the whole day is one refused entry.
            quarantine.append((date, rel, rel, "entry", None, 0, reason, detail))
        elif len(parts) == 2:
            refused_runs[rel] = reason
            runs.setdefault(rel, {"other_files": 0})
            quarantine.append((date, rel, rel, "run", None, 0, reason, detail))
        else:
            run_path = f"{parts[0]}/{parts[1]}"
            runs.setdefault(run_path, {"other_files": 0})
            kind = ARTIFACT_KINDS.get(parts[2], "entry") if len(parts) == 3 else "entry"
            quarantine.append((date, rel, run_path, kind, None, 0, reason, detail))
        quarantined_files += 1
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
                quarantined_files += 1
            else:
                to_read.append((rel, run_path, kind))
        else:
            ignored += 1
            if len(parts) >= 3:
                run_path = f"{parts[0]}/{parts[1]}"
                runs.setdefault(run_path, {"other_files": 0})["other_files"] += 1

    with clock.stage("reading"):
        contents = store.read_files([rel for rel, _, _ in to_read])
    manifest: list[tuple[str, int, str | None]] = []
    accepted_files = 0
    for rel, run_path, kind in to_read:
        data = contents.get(rel)
        if data is None:
            data = FileNotFoundError(f"{rel} vanished between listing and read")
        if isinstance(data, Exception):
            quarantine.append((date, rel, run_path, kind, None, files[rel], "unreadable", repr(data)))
            manifest.append((rel, files[rel], None))
            quarantined_files += 1
            continue
        parsed = parse_artifact(data)
        manifest.append((rel, files[rel], parsed.sha256))
        if parsed.reason:
            quarantine.append(
                (date, rel, run_path, kind, parsed.sha256, len(data), parsed.reason, parsed.detail)
            )
            quarantined_files += 1
            continue
        accepted_files += 1
        runs[run_path][kind] = (parsed.text, parsed.sha256)

    raw_rows = []
    quarantined_runs = 0
    for run_path in sorted(runs):
        entry = runs[run_path]
        if run_path in refused_runs:
            quarantined_runs += 1  # its row is the refused folder's row above
            continue
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
    counts = {
        "files_discovered": len(files) + len(listing.refused),
        "files_accepted": accepted_files,
        "files_quarantined": quarantined_files,
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
