"""A corpus of hostile artifacts and layouts: one kind per run folder (or top-level entry), each with what must
happen to it. docs/RELIABILITY.md lists the same kinds.

`build(root)` writes every kind under one artifact root (day DAY, plus the top-level entries), next to a few
good runs, so one CLI run covers them all; `build(root, [kind])` writes one kind alone (lib-level tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

DAY = "2026-03-02"
OTHER_DAY = "2026-03-03"
TS = f"{DAY}T10:00:00Z"


@dataclass(frozen=True)
class Expect:
    """What happens to a kind.

    where: "quarantine" (a quarantine row with `value` as reason at `path`), "field" (the run is accepted and
    its field_issues hold the class `value`), "accepted" (accepted, no field issue), "ignored" (counted as
    ignored, not an artifact), "entry" (a top-level entry reported with reason `value`).
    """

    where: str
    value: str = ""
    path: str = ""  # relative to the artifact root; default: the kind's run folder


@dataclass(frozen=True)
class Kind:
    name: str
    build: Callable[[Path, str], None]  # (artifact root, run folder relative to the root)
    expect: Expect
    note: str  # what the input is, for docs/RELIABILITY.md

    @property
    def run_path(self) -> str:
        return f"{DAY}/{self.name}"


def gate(run_id: str, **fields) -> dict:
    base = {
        "run_id": run_id,
        "timestamp": TS,
        "policy_hash": "b71c02",
        "outcome": "PASS",
        "unknown_rate": 0.02,
        "top_reasons": ["flaky_test"],
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def drift(run_id: str, **fields) -> dict:
    base = {
        "run_id": run_id,
        "policy_hash": "b71c02",
        "policy_state": "pinned",
        "schema_version": "1",
        "WARN_count": 0,
        "FAIL_count": 0,
        "Unknown_count": 1,
        "Overrides_count": 0,
    }
    base.update(fields)
    return base


def _put(root: Path, rel: str, data: bytes | str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def gate_bytes(data: bytes | str) -> Callable[[Path, str], None]:
    """The run's gate_result.json is exactly these bytes."""
    return lambda root, run: _put(root, f"{run}/gate_result.json", data)


def gate_fields(**fields) -> Callable[[Path, str], None]:
    """A good gate_result.json with some fields replaced (run_id = the folder name unless given)."""

    def build(root: Path, run: str) -> None:
        payload = {**gate(run.split("/")[1]), **fields}
        _put(
            root,
            f"{run}/gate_result.json",
            orjson.dumps({k: v for k, v in payload.items() if v is not _DROP}),
        )

    return build


def good_gate_and(name: str, data: bytes | str) -> Callable[[Path, str], None]:
    """A good gate_result.json plus another artifact file with these bytes."""

    def build(root: Path, run: str) -> None:
        gate_fields()(root, run)
        _put(root, f"{run}/{name}", data)

    return build


def deep(levels: int) -> bytes:
    return b'{"a": ' * levels + b"1" + b"}" * levels


def _gate_text(run: str, rate_text: str) -> str:
    run_id = run.split("/")[1]
    return (
        f'{{"run_id": "{run_id}", "timestamp": "{TS}", "policy_hash": "b71c02", "outcome": "FAIL", '
        f'"unknown_rate": {rate_text}, "top_reasons": []}}'
    )


def raw_rate(text: str) -> Callable[[Path, str], None]:
    """gate_result.json with unknown_rate written literally (NaN, Infinity, 1e400: what json.dump writes)."""
    return lambda root, run: _put(root, f"{run}/gate_result.json", _gate_text(run, text))


def raw_drift_count(text: str) -> Callable[[Path, str], None]:
    def build(root: Path, run: str) -> None:
        gate_fields()(root, run)
        body = (
            orjson.dumps(drift(run.split("/")[1], WARN_count=0))
            .decode()
            .replace('"WARN_count":0', f'"WARN_count":{text}')
        )
        _put(root, f"{run}/drift_report.json", body)

    return build


def symlink_gate_to(target: Callable[[Path], str]) -> Callable[[Path, str], None]:
    def build(root: Path, run: str) -> None:
        (root / run).mkdir(parents=True, exist_ok=True)
        os.symlink(target(root), root / run / "gate_result.json")

    return build


def outside_file(root: Path) -> str:
    """A valid gate_result outside the artifact root (its content must never reach an output)."""
    secret = root.parent / "outside_secret.json"
    secret.write_bytes(orjson.dumps(gate("SECRET-OUTSIDE-ROOT")))
    return str(secret)


def symlink_loop(root: Path, run: str) -> None:
    (root / run).mkdir(parents=True, exist_ok=True)
    _put(root, f"{run}/gate_result.json", orjson.dumps(gate(run.split("/")[1])))
    os.symlink(root / run / "loop", root / run / "loop")


def fifo_gate(root: Path, run: str) -> None:
    (root / run).mkdir(parents=True, exist_ok=True)
    os.mkfifo(root / run / "gate_result.json")


def symlinked_run(root: Path, run: str) -> None:
    outside = root.parent / "outside_run"
    _put(outside, "gate_result.json", orjson.dumps(gate("SECRET-OUTSIDE-RUN")))
    (root / run).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, root / run)


def gate_is_a_folder(root: Path, run: str) -> None:
    _put(root, f"{run}/gate_result.json/inner.json", orjson.dumps(gate("inner")))


def only_drift(root: Path, run: str) -> None:
    _put(root, f"{run}/drift_report.json", orjson.dumps(drift(run.split("/")[1])))


def dup_in_day(root: Path, run: str) -> None:
    # Two folders claim the same run_id; the later timestamp wins, this folder (earlier) loses.
    _put(root, f"{run}/gate_result.json", orjson.dumps(gate("dup-in-day", timestamp=f"{DAY}T09:00:00Z")))
    _put(root, f"{DAY}/dup_in_day_winner/gate_result.json", orjson.dumps(gate("dup-in-day")))


def dup_across_days(root: Path, run: str) -> None:
    _put(root, f"{run}/gate_result.json", orjson.dumps(gate("dup-across-days")))
    later = orjson.dumps(gate("dup-across-days", timestamp=f"{OTHER_DAY}T10:00:00Z"))
    _put(root, f"{OTHER_DAY}/dup_across_days_winner/gate_result.json", later)


def stray_file(root: Path, run: str) -> None:
    gate_fields()(root, run)
    _put(root, f"{run}/notes.txt", "a CI log line")


def top_dir(name: str, with_run: bool = True) -> Callable[[Path, str], None]:
    def build(root: Path, run: str) -> None:
        (root / name).mkdir(parents=True, exist_ok=True)
        if with_run:
            _put(root, f"{name}/r1/gate_result.json", orjson.dumps(gate(f"in-{name}")))

    return build


def top_file(root: Path, run: str) -> None:
    _put(root, "README.txt", "not a date folder")


def symlinked_day(root: Path, run: str) -> None:
    outside = root.parent / "outside_day"
    _put(outside, "r1/gate_result.json", orjson.dumps(gate("SECRET-OUTSIDE-DAY")))
    os.symlink(outside, root / "2026-03-04")


def entry(reason: str, path: str) -> Expect:
    return Expect("entry", reason, path)


def q(reason: str, file: str = "") -> Expect:
    return Expect("quarantine", reason, file)


def f(cls: str) -> Expect:
    return Expect("field", cls)


KINDS: list[Kind] = [
    # --- bytes of gate_result.json
    Kind("empty_file", gate_bytes(b""), q("empty", "gate_result.json"), "zero bytes"),
    Kind("whitespace_only", gate_bytes(b"  \n\t "), q("empty", "gate_result.json"), "only whitespace"),
    Kind(
        "not_utf8", gate_bytes(b'{"run_id": "r\xff\xfe"}'), q("not_utf8", "gate_result.json"), "invalid UTF-8"
    ),
    Kind(
        "truncated_json",
        gate_bytes('{"run_id": "x", "outcome": "PA'),
        q("not_json", "gate_result.json"),
        "JSON cut off mid-string",
    ),
    Kind("top_level_array", gate_bytes("[1, 2]"), q("not_object", "gate_result.json"), "a JSON array"),
    Kind("top_level_string", gate_bytes('"PASS"'), q("not_object", "gate_result.json"), "a JSON string"),
    Kind("bare_nan", gate_bytes("NaN"), q("not_object", "gate_result.json"), "the constant NaN alone"),
    Kind(
        "lone_surrogate",
        gate_bytes('{"run_id": "\\ud800"}'),
        q("not_json", "gate_result.json"),
        "a lone UTF-16 surrogate escape (cannot be stored as UTF-8)",
    ),
    Kind(
        "deep_300",
        gate_bytes(deep(300)),
        q("too_deep", "gate_result.json"),
        "objects nested 300 levels (parses, cannot be re-serialized canonically)",
    ),
    Kind(
        "deep_1100", gate_bytes(deep(1100)), q("too_deep", "gate_result.json"), "objects nested 1100 levels"
    ),
    Kind(
        "too_large",
        gate_bytes(b'{"pad": "' + b"x" * 1_100_000 + b'"}'),
        q("too_large", "gate_result.json"),
        "1.1 MB (> ingest.max_file_bytes), not read",
    ),
    # --- non-standard numbers: the run is kept, the field flagged
    Kind(
        "rate_nan", raw_rate("NaN"), f("unknown_field_invalid:unknown_rate"), "unknown_rate: NaN (json.dump)"
    ),
    Kind(
        "rate_infinity",
        raw_rate("Infinity"),
        f("unknown_field_invalid:unknown_rate"),
        "unknown_rate: Infinity",
    ),
    Kind(
        "rate_neg_infinity",
        raw_rate("-Infinity"),
        f("unknown_field_invalid:unknown_rate"),
        "unknown_rate: -Infinity",
    ),
    Kind(
        "rate_1e400",
        raw_rate("1e400"),
        f("unknown_field_invalid:unknown_rate"),
        "unknown_rate: 1e400 (overflows)",
    ),
    Kind(
        "rate_bigint",
        raw_rate("1" + "0" * 30),
        f("unknown_field_invalid:unknown_rate"),
        "unknown_rate: a 31-digit integer",
    ),
    Kind(
        "count_bigint",
        raw_drift_count("1" + "0" * 25),
        f("unknown_field_invalid:drift_report.WARN_count"),
        "WARN_count beyond 64 bits (flagged, not rounded)",
    ),
    Kind(
        "count_u64",
        raw_drift_count(str(2**64 - 1)),
        f("unknown_field_invalid:drift_report.WARN_count"),
        "WARN_count 2^64-1 (beyond Int64)",
    ),
    Kind(
        "count_float_2_53",
        raw_drift_count("9007199254740993.0"),
        f("unknown_field_invalid:drift_report.WARN_count"),
        "WARN_count 9007199254740993.0 (a float beyond 2^53 may already be rounded)",
    ),
    Kind(
        "count_nan",
        raw_drift_count("NaN"),
        f("unknown_field_invalid:drift_report.WARN_count"),
        "WARN_count: NaN",
    ),
    # --- timestamps
    Kind(
        "ts_2300",
        gate_fields(timestamp="2300-01-01T00:00:00Z"),
        f("unknown_field_invalid:timestamp"),
        "timestamp beyond pandas' range",
    ),
    Kind(
        "ts_1600",
        gate_fields(timestamp="1600-01-01T00:00:00Z"),
        f("unknown_field_invalid:timestamp"),
        "timestamp before pandas' range",
    ),
    Kind(
        "ts_far_from_day",
        gate_fields(timestamp="2026-03-20T10:00:00Z"),
        f("unknown_field_invalid:timestamp"),
        "timestamp 18 days after its date folder (outside ingest.timestamp_window_days)",
    ),
    Kind(
        "ts_garbage", gate_fields(timestamp="yesterday"), f("unknown_field_invalid:timestamp"), "not ISO 8601"
    ),
    Kind(
        "ts_number", gate_fields(timestamp=1772445600), f("unknown_field_invalid:timestamp"), "epoch number"
    ),
    # --- field types
    Kind(
        "rate_bool",
        gate_fields(unknown_rate=True),
        f("unknown_field_invalid:unknown_rate"),
        "unknown_rate: true",
    ),
    Kind(
        "rate_string",
        gate_fields(unknown_rate="0.1"),
        f("unknown_field_invalid:unknown_rate"),
        'unknown_rate: "0.1"',
    ),
    Kind(
        "rate_above_one",
        gate_fields(unknown_rate=1.5),
        f("unknown_field_invalid:unknown_rate"),
        "unknown_rate 1.5",
    ),
    Kind("outcome_missing", gate_fields(outcome=_DROP), f("unknown_field_missing:outcome"), "no outcome"),
    Kind("outcome_bogus", gate_fields(outcome="MAYBE"), f("unknown_field_invalid:outcome"), "outcome MAYBE"),
    Kind(
        "run_id_number", gate_fields(run_id=42), f("unknown_field_invalid:run_id"), "run_id 42 (folder used)"
    ),
    Kind(
        "reasons_not_list",
        gate_fields(top_reasons="flaky"),
        f("unknown_field_invalid:top_reasons"),
        "top_reasons a string",
    ),
    Kind(
        "reasons_nested",
        gate_fields(top_reasons=[["a"], {"b": 1}]),
        f("unknown_field_invalid:top_reasons"),
        "top_reasons holding a list and an object",
    ),
    # --- text that must not reach a report or a spreadsheet as markup, formula or reordered text
    Kind(
        "run_id_nul",
        gate_fields(run_id="r\x00nul"),
        f("unknown_field_invalid:run_id"),
        "run_id with a NUL byte",
    ),
    Kind(
        "run_id_rtl_override",
        gate_fields(run_id="invoice\u202egpj.exe"),
        f("unknown_field_invalid:run_id"),
        "run_id with a right-to-left override (U+202E)",
    ),
    Kind(
        "policy_hash_bidi",
        gate_fields(policy_hash="b71c02\u2066"),
        f("unknown_field_invalid:policy_hash"),
        "policy_hash with a bidi isolate (U+2066)",
    ),
    Kind(
        "run_id_formula",
        gate_fields(run_id='=HYPERLINK("http://evil.example")'),
        Expect("accepted"),
        "run_id starting with = (kept; its CSV cell gets a leading ')",
    ),
    Kind(
        "reasons_formula",
        gate_fields(top_reasons=["=1+2", "@SUM(A1)", "-cmd", "+x"]),
        Expect("accepted"),
        "top_reasons starting with = @ - + (kept; CSV cells neutralized)",
    ),
    Kind(
        "bom",
        gate_bytes(b"\xef\xbb\xbf" + orjson.dumps(gate("bom"))),
        Expect("accepted"),
        "UTF-8 byte order mark (tolerated)",
    ),
    # --- the other artifact files
    Kind(
        "metrics_deep",
        good_gate_and("metrics.json", deep(300)),
        q("too_deep", "metrics.json"),
        "metrics.json nested 300 levels (the run is kept without metrics)",
    ),
    Kind(
        "metrics_nan",
        good_gate_and("metrics.json", '{"duration_s": NaN}'),
        Expect("accepted"),
        "metrics.json with NaN (kept as a marker object in metrics)",
    ),
    Kind(
        "drift_not_object",
        good_gate_and("drift_report.json", "[]"),
        q("not_object", "drift_report.json"),
        "drift_report.json an array",
    ),
    Kind(
        "drift_other_run",
        good_gate_and("drift_report.json", orjson.dumps(drift("someone-else"))),
        f("unknown_field_invalid:drift_report.run_id"),
        "drift_report.json of another run",
    ),
    # --- layout inside a day
    Kind(
        "missing_gate_result", only_drift, q("missing_gate_result"), "a run folder without gate_result.json"
    ),
    Kind(
        "gate_result_is_folder",
        gate_is_a_folder,
        q("missing_gate_result"),
        "gate_result.json is a folder (its content counts as ignored files)",
    ),
    Kind(
        "symlink_outside_root",
        symlink_gate_to(outside_file),
        q("symlink_refused", "gate_result.json"),
        "gate_result.json a symlink to a file outside the root (never read)",
    ),
    Kind(
        "broken_symlink",
        symlink_gate_to(lambda root: str(root / "nowhere.json")),
        q("symlink_refused", "gate_result.json"),
        "gate_result.json a dangling symlink",
    ),
    Kind(
        "symlink_loop",
        symlink_loop,
        q("symlink_refused", "loop"),
        "a symlink pointing at itself in a run folder",
    ),
    Kind(
        "fifo",
        fifo_gate,
        q("not_a_regular_file", "gate_result.json"),
        "gate_result.json a FIFO (never opened)",
    ),
    Kind("symlinked_run_folder", symlinked_run, q("symlink_refused"), "a run folder that is a symlink"),
    Kind("stray_file", stray_file, Expect("ignored", "", "notes.txt"), "a non-artifact file in a run folder"),
    Kind("duplicate_in_day", dup_in_day, q("duplicate_run_id"), "the same run_id twice in one day (loser)"),
    Kind(
        "duplicate_across_days",
        dup_across_days,
        q("duplicate_run_id"),
        "the same run_id on two days (the earlier copy loses)",
    ),
    # --- top-level entries
    Kind("not_a_date_latest", top_dir("latest"), entry("not_a_date_folder", "latest"), "a folder `latest/`"),
    Kind("invalid_month", top_dir("2026-13-45"), entry("not_a_date_folder", "2026-13-45"), "2026-13-45"),
    Kind("invalid_day", top_dir("2026-02-30"), entry("not_a_date_folder", "2026-02-30"), "2026-02-30"),
    Kind("top_level_file", top_file, entry("not_a_date_folder", "README.txt"), "a file at the top level"),
    Kind(
        "symlinked_date_folder",
        symlinked_day,
        entry("symlink_refused", "2026-03-04"),
        "a date folder that is a symlink to a folder outside the root",
    ),
    Kind(
        "future_2099",
        top_dir("2099-01-01"),
        entry("date_outside_window", "2099-01-01"),
        "a date folder far in the future (not built)",
    ),
    Kind(
        "past_1970",
        top_dir("1970-01-01"),
        entry("date_outside_window", "1970-01-01"),
        "a date folder before partitions.start_date (not built)",
    ),
    Kind(
        "empty_date_folder",
        top_dir("2026-03-05", with_run=False),
        entry("date_folder_not_built", "2026-03-05"),
        "an empty date folder",
    ),
]
KINDS_BY_NAME = {k.name: k for k in KINDS}
GOOD_RUNS = 4


def build(root: Path, kinds: list[Kind] | None = None) -> None:
    """Good runs on DAY (so the day has evidence) plus every given kind (default: all)."""
    for i in range(GOOD_RUNS):
        run_id = f"good-{i}"
        _put(root, f"{DAY}/{run_id}/gate_result.json", orjson.dumps(gate(run_id, unknown_rate=0.01 * i)))
        _put(root, f"{DAY}/{run_id}/drift_report.json", orjson.dumps(drift(run_id)))
    for kind in KINDS if kinds is None else kinds:
        kind.build(root, kind.run_path)
