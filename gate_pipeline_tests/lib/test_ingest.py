"""Ingestion: parsing, each bad-input kind, counts that add up."""

import hashlib

import orjson
import pytest

from gate_pipeline.lib.ingest import IngestLimits, parse_artifact, scan_day
from gate_pipeline.lib.storage import Store

GOOD = {
    "run_id": "r1",
    "timestamp": "2026-03-01T10:00:00Z",
    "policy_hash": "a6f53e",
    "outcome": "PASS",
    "unknown_rate": 0.1,
    "top_reasons": ["flaky_test"],
}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"  \n\t", "empty"),
        (b'{"run_id": "r1", "outcome": "PA', "not_json"),
        (b'{"run_id": "r\xff\xfe"}', "not_utf8"),
        (b"[1, 2]", "not_object"),
        (b'"just a string"', "not_object"),
        # A bare non-finite constant is read (Python's json writes it), but it is not an object.
        (b"NaN", "not_object"),
        (b"1e400", "not_object"),
        (b'{"a": ' * 300 + b"1" + b"}" * 300, "too_deep"),
        (b'{"a": ' * 1100 + b"1" + b"}" * 1100, "too_deep"),
        (b'{"a": "\\ud800"}', "not_json"),  # a lone surrogate cannot be stored as UTF-8
    ],
)
def test_bad_bytes_get_a_reason_and_a_hash(data, reason):
    parsed = parse_artifact(data)
    assert parsed.reason == reason
    assert parsed.payload is None
    assert parsed.sha256 == hashlib.sha256(data).hexdigest()
    assert parsed.detail


def test_good_object_parses_and_bom_is_tolerated():
    data = orjson.dumps(GOOD)
    assert parse_artifact(data).payload == GOOD
    assert parse_artifact(b"\xef\xbb\xbf" + data).payload == GOOD
    assert parse_artifact(data).reason is None


def _write(root, rel, data: bytes):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_scan_day_quarantines_every_bad_kind_and_counts_add_up(tmp_path):
    day = "2026-03-01"
    _write(tmp_path, f"{day}/r1/gate_result.json", orjson.dumps(GOOD))
    _write(tmp_path, f"{day}/r1/drift_report.json", b"")  # empty
    _write(tmp_path, f"{day}/r1/metrics.json", b"[1]")  # not an object
    _write(tmp_path, f"{day}/r2/gate_result.json", b"{bad")  # not JSON -> run quarantined
    _write(tmp_path, f"{day}/r3/metrics.json", b"{}")  # no gate_result -> run quarantined
    _write(tmp_path, f"{day}/r4/gate_result.json", orjson.dumps({**GOOD, "run_id": "r4"}))
    _write(tmp_path, f"{day}/r4/drift_report.json", b'{"x": "' + b"a" * 200 + b'"}')  # too large for cap 180
    _write(tmp_path, f"{day}/r4/build.log", b"log")  # ignored
    _write(tmp_path, f"{day}/README.txt", b"stray")  # ignored, not in a run folder
    _write(tmp_path, f"{day}/r5/gate_result.json", b'{"a": "\xff"}')  # not UTF-8

    scan = scan_day(Store.at(str(tmp_path)), day, IngestLimits(max_file_bytes=180))

    assert scan.counts == {
        "files_discovered": 10,
        "files_accepted": 3,  # r1 gate, r3 metrics, r4 gate
        "files_quarantined": 5,
        "files_ignored": 2,
        "runs_discovered": 5,
        "runs_with_gate_result": 2,
        "runs_quarantined": 3,
    }
    c = scan.counts
    assert c["files_discovered"] == c["files_accepted"] + c["files_quarantined"] + c["files_ignored"]
    assert c["runs_discovered"] == c["runs_with_gate_result"] + c["runs_quarantined"]
    reasons = dict(zip(scan.quarantine["path"], scan.quarantine["reason"], strict=True))
    assert reasons == {
        f"{day}/r1/drift_report.json": "empty",
        f"{day}/r1/metrics.json": "not_object",
        f"{day}/r2": "gate_result_quarantined",
        f"{day}/r2/gate_result.json": "not_json",
        f"{day}/r3": "missing_gate_result",
        f"{day}/r4/drift_report.json": "too_large",
        f"{day}/r5": "gate_result_quarantined",
        f"{day}/r5/gate_result.json": "not_utf8",
    }
    too_large = scan.quarantine.set_index("path").loc[f"{day}/r4/drift_report.json"]
    assert too_large["sha256"] is None and too_large["size_bytes"] == 209
    assert list(scan.raw_runs["run_path"]) == [f"{day}/r1", f"{day}/r4"]
    r1 = scan.raw_runs.iloc[0]
    assert orjson.loads(r1["gate_result"]) == GOOD
    assert r1["drift_report"] is None and r1["metrics"] is None
    assert scan.raw_runs.iloc[1]["other_files"] == 1
    assert len(scan.manifest) == 7  # every read file, with its hash (too_large is not read)


def test_scan_of_a_missing_day_is_empty(tmp_path):
    scan = scan_day(Store.at(str(tmp_path)), "2026-01-01")
    assert scan.raw_runs.empty and scan.quarantine.empty
    assert scan.counts["files_discovered"] == 0 and scan.counts["runs_discovered"] == 0
