"""Normalization: raw run records (parsed JSON payloads) → typed run_table rows.

A missing or invalid field never drops the run: the field becomes null (run_id: the folder name) and the
run carries an unknown class naming the field (`unknown_field_missing:unknown_rate`,
`unknown_field_invalid:outcome`; drift-report fields are prefixed `drift_report.`). A run_id or policy_hash
holding a control or bidirectional formatting character (NUL, right-to-left override, ...) is invalid.

Duplicate run_id rule (documented in README): within the rows given, the copy with the latest
timestamp wins; ties go to the lexicographically greatest (run_path). The others are returned as
quarantine rows with reason `duplicate_run_id`, so nothing is lost and the choice is deterministic
whatever order the files arrived in.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd

from gate_pipeline.lib.escape import has_unsafe
from gate_pipeline.lib.ingest import QUARANTINE_COLUMNS, canonical_json, quarantine_frame
from gate_pipeline.lib.tables import RunTable

OUTCOMES = frozenset({"PASS", "COMMENT", "WARN", "FAIL"})
POLICY_STATES = frozenset({"pinned", "unpinned"})
DRIFT_COUNTS = {
    "WARN_count": "warn_count",
    "FAIL_count": "fail_count",
    "Unknown_count": "unknown_count",
    "Overrides_count": "overrides_count",
}
# The run_table columns, in order: the pandera model's.
RUN_TABLE_COLUMNS = list(RunTable.to_schema().columns)
_COUNT_COLS = frozenset(DRIFT_COUNTS.values())
_EMPTY_LIST = "[]"
_EMPTY_OBJ = "{}"


def _missing(issues: list[str], name: str) -> None:
    issues.append(f"unknown_field_missing:{name}")


def _invalid(issues: list[str], name: str) -> None:
    issues.append(f"unknown_field_invalid:{name}")


def _parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    # A timestamp without offset is taken as UTC, as CI runners write UTC.
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


_INT64_MAX = 2**63 - 1
_FLOAT_EXACT = 2**53  # above this a float count may already have been rounded by the JSON parser


def _count(value: Any) -> int | None:
    """A non-negative count that the Int64 columns hold exactly; anything else is invalid (flagged)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 <= value <= _INT64_MAX:
        return value
    if isinstance(value, float) and value.is_integer() and 0 <= value < _FLOAT_EXACT:
        return int(value)
    return None


DEFAULT_TIMESTAMP_WINDOW_DAYS = 2


def timestamp_bounds(date: str, window_days: int) -> tuple[datetime, datetime]:
    """The plausible range of a run timestamp in date folder `date`: the day ± window_days."""
    midnight = datetime.fromisoformat(date).replace(tzinfo=UTC)
    return midnight - timedelta(days=window_days), midnight + timedelta(days=window_days + 1)


def normalize_run(
    gate: dict[str, Any],
    drift: dict[str, Any] | None,
    metrics: dict[str, Any] | None,
    folder: str,
    date: str,
    window_days: int = DEFAULT_TIMESTAMP_WINDOW_DAYS,
) -> dict[str, Any]:
    """One run's typed fields and its field issues (pure; no I/O)."""
    issues: list[str] = []
    row: dict[str, Any] = {}
    _gate_fields(gate, folder, row, issues)

    raw_ts = gate.get("timestamp")
    ts = _parse_timestamp(raw_ts)
    lo, hi = timestamp_bounds(date, window_days)
    if ts is not None and not lo <= ts < hi:
        ts = None  # outside the window around the date folder: flagged, the date folder's midnight is used
    if ts is None:
        if raw_ts is not None:
            _invalid(issues, "timestamp")
        # The date folder is the UTC day the run finished; midnight keeps the row sortable and deterministic.
        ts = datetime.fromisoformat(date).replace(tzinfo=UTC)
        row["timestamp_source"] = "date_folder"
    else:
        row["timestamp_source"] = "file"
    row["timestamp"] = ts

    row.update(_normalize_drift(drift, row, issues))
    row["metrics"] = canonical_json(metrics) if metrics else _EMPTY_OBJ
    row["has_metrics"] = metrics is not None
    row["field_issues"] = canonical_json(sorted(set(issues)))
    return row


def _gate_fields(gate: dict[str, Any], folder: str, row: dict[str, Any], issues: list[str]) -> None:
    """The gate_result fields except timestamp (run_id, policy_hash, outcome, unknown_rate, top_reasons)."""
    run_id = gate.get("run_id")
    if isinstance(run_id, str) and run_id.strip() and not has_unsafe(run_id):
        row["run_id"], row["run_id_source"] = run_id.strip(), "file"
    else:
        if run_id is not None:
            _invalid(issues, "run_id")
        row["run_id"], row["run_id_source"] = folder, "folder"

    policy_hash = gate.get("policy_hash")
    if isinstance(policy_hash, str) and policy_hash.strip() and not has_unsafe(policy_hash):
        row["policy_hash"] = policy_hash.strip()
    else:
        (_missing if policy_hash is None else _invalid)(issues, "policy_hash")
        row["policy_hash"] = None

    outcome = gate.get("outcome")
    if isinstance(outcome, str) and outcome.strip().upper() in OUTCOMES:
        row["outcome"] = outcome.strip().upper()
    else:
        (_missing if outcome is None else _invalid)(issues, "outcome")
        row["outcome"] = None

    rate = gate.get("unknown_rate")
    if (
        isinstance(rate, int | float)
        and not isinstance(rate, bool)
        and math.isfinite(rate)
        and 0 <= rate <= 1
    ):
        row["unknown_rate"] = float(rate)
    else:
        (_missing if rate is None else _invalid)(issues, "unknown_rate")
        row["unknown_rate"] = None

    reasons = gate.get("top_reasons")
    if reasons is None:
        _missing(issues, "top_reasons")
        row["top_reasons"] = _EMPTY_LIST
    elif isinstance(reasons, list):
        kept = [r.strip() for r in reasons if isinstance(r, str) and r.strip()]
        if len(kept) != len(reasons):
            _invalid(issues, "top_reasons")
        row["top_reasons"] = canonical_json(kept)
    else:
        _invalid(issues, "top_reasons")
        row["top_reasons"] = _EMPTY_LIST


def _normalize_drift(drift: dict[str, Any] | None, row: dict[str, Any], issues: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "policy_state": None,
        "stratum": "unknown",
        "drift_schema_version": None,
        "unknown_causes": _EMPTY_OBJ,
        "has_drift_report": drift is not None,
        **dict.fromkeys(DRIFT_COUNTS.values()),
    }
    if drift is None:
        return out
    state = drift.get("policy_state")
    if isinstance(state, str) and state.strip():
        out["policy_state"] = state.strip().lower()
        if out["policy_state"] in POLICY_STATES:
            out["stratum"] = out["policy_state"]
        else:
            _invalid(issues, "drift_report.policy_state")
    else:
        (_missing if state is None else _invalid)(issues, "drift_report.policy_state")

    version = drift.get("schema_version")
    if isinstance(version, str | int) and not isinstance(version, bool):
        out["drift_schema_version"] = str(version)
    else:
        (_missing if version is None else _invalid)(issues, "drift_report.schema_version")

    for source, target in DRIFT_COUNTS.items():
        value = drift.get(source)
        out[target] = _count(value)
        if out[target] is None:
            (_missing if value is None else _invalid)(issues, f"drift_report.{source}")

    causes = drift.get("unknown_causes")
    if isinstance(causes, dict) and all(_count(v) is not None for v in causes.values()):
        out["unknown_causes"] = canonical_json({str(k): _count(v) for k, v in causes.items()})
    elif causes is not None:
        _invalid(issues, "drift_report.unknown_causes")

    # Cross-file consistency: a drift report for another run or policy is flagged, not trusted silently.
    for key in ("run_id", "policy_hash"):
        value = drift.get(key)
        if value is not None and row.get(key) is not None and value != row[key]:
            _invalid(issues, f"drift_report.{key}")
    return out


def normalize_day(
    raw_runs: pd.DataFrame, window_days: int = DEFAULT_TIMESTAMP_WINDOW_DAYS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """raw_runs rows of one partition → (run_table, quarantine rows: duplicates and runs that failed).

    A run whose normalization raises (whatever the cause) becomes a `normalize_failed` quarantine row with
    the error as detail; the other runs go on. A timestamp outside `window_days` days around the date folder
    is flagged `unknown_field_invalid:timestamp` and replaced by the date folder's midnight (UTC).

    Same result as `normalize_run` per row + `run_table_frame` + `resolve_duplicates`, built column-wise:
    a row whose gate or drift fields are all plainly valid takes an inline fast path for that part; anything
    else (missing, invalid, needs trimming or case folding) goes through `_gate_fields` / `_normalize_drift`.
    The payload strings are ingest's canonical JSON (`canonical_json`), so `metrics` is passed through unparsed.
    """
    if len(raw_runs) == 0:
        return resolve_duplicates(run_table_frame([]))
    cols, failed = _day_columns(raw_runs, window_days)
    n = len(cols["run_id"])
    if n == 0:
        return run_table_frame([]), quarantine_frame(failed)
    arrays = _column_arrays(cols, n)
    run_ids = cols["run_id"]
    if failed:
        table, duplicates = resolve_duplicates(pd.DataFrame(arrays, columns=RUN_TABLE_COLUMNS))
        frames = [f for f in (duplicates, quarantine_frame(failed)) if not f.empty]
        return table, quarantine_frame([tuple(r) for f in frames for r in f.itertuples(index=False)])
    if len(set(run_ids)) == n:
        # No duplicate run_id (the usual day): the rule keeps every row and the final order is by
        # (timestamp, run_id), a total order here, so sort the arrays once instead of sorting the frame twice.
        order = np.lexsort((np.array(run_ids, dtype=object), arrays["timestamp"].asi8))
        table = pd.DataFrame(
            {name: arrays[name][order] for name in RUN_TABLE_COLUMNS}, columns=RUN_TABLE_COLUMNS
        )
        return table, _empty_quarantine()
    return resolve_duplicates(pd.DataFrame(arrays, columns=RUN_TABLE_COLUMNS))


_GATE_COLS = ("run_id", "run_id_source", "policy_hash", "outcome", "unknown_rate", "top_reasons")
_DRIFT_COLS = (
    "policy_state",
    "stratum",
    "drift_schema_version",
    "warn_count",
    "fail_count",
    "unknown_count",
    "overrides_count",
    "unknown_causes",
)
_NO_DRIFT = (None, "unknown", None, None, None, None, None, _EMPTY_OBJ)


# pandas' datetime64[ns] range: a timestamp outside it cannot be stored (only reachable through a date
# folder near it, as file timestamps are held to a window around their date folder).
_TS_MIN = datetime(1677, 9, 22, tzinfo=UTC)
_TS_MAX = datetime(2262, 4, 11, tzinfo=UTC)


def _day_columns(source: pd.DataFrame, window_days: int) -> tuple[dict[str, list[Any]], list[tuple]]:
    """Per-column value lists of one day's rows, in raw order (the hot loop, hence the local aliases),
    and quarantine rows for the runs whose normalization failed."""
    raw = source
    int64_max, unsafe = _INT64_MAX, has_unsafe
    loads, dumps, sort_keys = orjson.loads, orjson.dumps, orjson.OPT_SORT_KEYS
    outcomes, states, parse_ts, fromiso = OUTCOMES, POLICY_STATES, _parse_timestamp, datetime.fromisoformat
    gate_rows: list[tuple] = []
    drift_rows: list[tuple] = []
    timestamps: list[datetime] = []
    ts_sources: list[str] = []
    field_issues: list[str] = []
    midnight: dict[str, datetime] = {}
    bounds: dict[str, tuple[datetime, datetime]] = {}
    failed: list[tuple] = []
    failed_pos: list[int] = []
    lists = (gate_rows, drift_rows, timestamps, ts_sources, field_issues)
    for pos, (date, folder, gate_text, drift_text) in enumerate(
        zip(
            raw["date"].tolist(),
            raw["run_folder"].tolist(),
            raw["gate_result"].tolist(),
            raw["drift_report"].tolist(),
            strict=True,
        )
    ):
        try:
            gate = loads(gate_text)
            get = gate.get
            run_id, policy_hash, outcome = get("run_id"), get("policy_hash"), get("outcome")
            rate, reasons = get("unknown_rate"), get("top_reasons")
            issues: list[str] | None = None  # created only when a field is off
            # Exact type checks are enough: orjson never yields subclasses (and bool is not int by `type`).
            if (
                type(run_id) is str
                and type(policy_hash) is str
                and type(outcome) is str
                and outcome in outcomes
                and type(rate) is float
                and 0.0 <= rate <= 1.0
                and type(reasons) is list
                and (run_id := run_id.strip())
                and (policy_hash := policy_hash.strip())
                and not unsafe(run_id)
                and not unsafe(policy_hash)
            ):
                if reasons:
                    kept = [r.strip() for r in reasons if type(r) is str and r.strip()]
                    if len(kept) != len(reasons):
                        issues = ["unknown_field_invalid:top_reasons"]
                    # A list of strings has no keys to sort: plain dumps equals canonical_json.
                    top = dumps(kept).decode()
                else:
                    top = _EMPTY_LIST
                gate_rows.append((run_id, "file", policy_hash, outcome, rate, top))
            else:
                issues = []
                row: dict[str, Any] = {}
                _gate_fields(gate, folder, row, issues)
                gate_rows.append(tuple(row[c] for c in _GATE_COLS))
                run_id, policy_hash = row["run_id"], row["policy_hash"]

            raw_ts = get("timestamp")
            if type(raw_ts) is str and len(raw_ts) == 20 and raw_ts[19] == "Z":
                # The usual `YYYY-MM-DDTHH:MM:SSZ`: same text as _parse_timestamp builds, already UTC.
                try:
                    ts = fromiso(raw_ts[:19] + "+00:00")
                except ValueError:
                    ts = None
            else:
                ts = parse_ts(raw_ts)
            if ts is not None:
                lo_hi = bounds.get(date)
                if lo_hi is None:
                    lo_hi = bounds[date] = timestamp_bounds(date, window_days)
                if not lo_hi[0] <= ts < lo_hi[1]:
                    ts = None  # implausible for its date folder: flagged below, midnight used
            if ts is None:
                if raw_ts is not None:
                    if issues is None:
                        issues = []
                    issues.append("unknown_field_invalid:timestamp")
                ts = midnight.get(date)
                if ts is None:
                    ts = midnight[date] = datetime.fromisoformat(date).replace(tzinfo=UTC)
                ts_sources.append("date_folder")
            else:
                ts_sources.append("file")
            if not _TS_MIN <= ts <= _TS_MAX:
                raise ValueError(f"timestamp {ts.isoformat()} is outside the storable range")
            timestamps.append(ts)

            if drift_text is None:
                drift_rows.append(_NO_DRIFT)
            else:
                drift = loads(drift_text)
                dget = drift.get
                state, version, causes = dget("policy_state"), dget("schema_version"), dget("unknown_causes")
                warn, fail = dget("WARN_count"), dget("FAIL_count")
                unknown, overrides = dget("Unknown_count"), dget("Overrides_count")
                d_run_id, d_hash = dget("run_id"), dget("policy_hash")
                if (
                    type(state) is str
                    and state in states
                    and type(version) is str
                    and type(warn) is int
                    and 0 <= warn <= int64_max
                    and type(fail) is int
                    and 0 <= fail <= int64_max
                    and type(unknown) is int
                    and 0 <= unknown <= int64_max
                    and type(overrides) is int
                    and 0 <= overrides <= int64_max
                    and (d_run_id is None or d_run_id == run_id)
                    and (d_hash is None or policy_hash is None or d_hash == policy_hash)
                    and (causes is None or (type(causes) is dict and _plain_counts(causes.values())))
                ):
                    # JSON object keys are always str, so this equals canonical_json of the str(k)-keyed copy.
                    causes_text = _EMPTY_OBJ if causes is None else dumps(causes, option=sort_keys).decode()
                    drift_rows.append((state, state, version, warn, fail, unknown, overrides, causes_text))
                else:
                    if issues is None:
                        issues = []
                    out = _normalize_drift(drift, {"run_id": run_id, "policy_hash": policy_hash}, issues)
                    drift_rows.append(tuple(out[c] for c in _DRIFT_COLS))
            field_issues.append(_EMPTY_LIST if not issues else canonical_json(sorted(set(issues))))
        except Exception as exc:  # noqa: BLE001 - one bad run must not stop its day
            kept = pos - len(failed_pos)
            for values in lists:
                del values[kept:]
            failed_pos.append(pos)
            failed.append((pos, f"{type(exc).__name__}: {exc}"[:500]))

    cols: dict[str, list[Any]] = dict(zip(_GATE_COLS, map(list, zip(*gate_rows, strict=True)), strict=True))
    cols.update(zip(_DRIFT_COLS, map(list, zip(*drift_rows, strict=True)), strict=True))
    cols["timestamp"] = timestamps
    cols["timestamp_source"] = ts_sources
    cols["field_issues"] = field_issues
    if failed_pos:
        raw = raw.drop(index=raw.index[failed_pos])
    metrics = raw["metrics"].tolist()
    cols["metrics"] = [_EMPTY_OBJ if m is None else m for m in metrics]
    cols["has_metrics"] = [m is not None for m in metrics]
    cols["has_drift_report"] = [d is not None for d in raw["drift_report"].tolist()]
    for name in ("date", "run_path", "gate_sha256", "drift_sha256", "metrics_sha256"):
        cols[name] = raw[name].tolist()
    return cols, [_failed_row(source, pos, detail) for pos, detail in failed]


def _failed_row(raw: pd.DataFrame, pos: int, detail: str) -> tuple:
    run_path = raw["run_path"].iat[pos]
    return (
        raw["date"].iat[pos],
        run_path,
        run_path,
        "run",
        raw["gate_sha256"].iat[pos],
        0,
        "normalize_failed",
        detail,
    )


def _plain_counts(values: Iterable[Any]) -> bool:
    """All non-negative ints (a loop: half the cost of all() over a generator for these tiny dicts)."""
    for v in values:  # noqa: SIM110 - measured faster than all() over a generator
        if type(v) is not int or v < 0:
            return False
    return True


def _column_arrays(cols: dict[str, list[Any]], n: int) -> dict[str, Any]:
    """Typed arrays (the dtypes `run_table_frame` gives) from non-empty column lists."""
    arrays: dict[str, Any] = {}
    for name in RUN_TABLE_COLUMNS:
        if name == "timestamp":
            arrays[name] = pd.DatetimeIndex(cols[name], dtype="datetime64[ns, UTC]").array
        elif name == "unknown_rate":
            arrays[name] = np.array(cols[name], dtype="float64")  # None → NaN, as astype does
        elif name in _COUNT_COLS:
            values = cols[name]
            mask = np.array([v is None for v in values], dtype=bool)
            data = np.array([0 if v is None else v for v in values], dtype="int64")
            arrays[name] = pd.arrays.IntegerArray(data, mask)
        elif name in ("has_drift_report", "has_metrics"):
            arrays[name] = np.array(cols[name], dtype=bool)
        elif name == "duplicate_count":
            arrays[name] = np.ones(n, dtype="int64")
        else:
            arr = np.empty(n, dtype=object)
            arr[:] = cols[name]
            arrays[name] = arr
    return arrays


@functools.cache
def _empty_quarantine_template() -> pd.DataFrame:
    return quarantine_frame([])


def _empty_quarantine() -> pd.DataFrame:
    # Building an empty frame costs ms (its sort included); a copy of a cached one costs µs.
    return _empty_quarantine_template().copy()


def run_table_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=RUN_TABLE_COLUMNS)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    df["unknown_rate"] = df["unknown_rate"].astype("float64")
    for col in DRIFT_COUNTS.values():
        df[col] = df[col].astype("Int64")
    for col in ("has_drift_report", "has_metrics"):
        df[col] = df[col].astype(bool)
    df["duplicate_count"] = 1
    return df


def resolve_duplicates(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply the duplicate run_id rule; returns (unique rows sorted by timestamp, run_id; quarantine rows)."""
    if table.empty:
        return table.reset_index(drop=True), _empty_quarantine()
    # The sorts run on a narrow key frame carrying row positions; the wide table is gathered once at the end
    # (sorting/masking all columns twice dominated the cost). Same sorts, same stability → same order.
    keys = pd.DataFrame(
        {
            "run_id": table["run_id"].to_numpy(),
            "timestamp": table["timestamp"].array,
            "run_path": table["run_path"].to_numpy(),
            "pos": np.arange(len(table)),
            # Copies each row already stands for (a day's winner counts its own day's losers), so the
            # cross-day rule adds them up instead of starting again from 1.
            "copies": table["duplicate_count"].to_numpy(dtype="int64")
            if "duplicate_count" in table
            else np.ones(len(table), dtype="int64"),
        }
    )
    ordered = keys.sort_values(["run_id", "timestamp", "run_path"], kind="stable")
    counts = ordered.groupby("run_id", sort=False)["copies"].transform("sum").astype("int64")
    keep_mask = ~ordered.duplicated("run_id", keep="last").to_numpy()
    kept_keys = ordered[keep_mask].assign(duplicate_count=counts[keep_mask])
    dropped_pos = ordered["pos"].to_numpy()[~keep_mask]
    qrows: list[tuple] = []
    if len(dropped_pos):
        winners = dict(zip(kept_keys["run_id"].tolist(), kept_keys["run_path"].tolist(), strict=True))
        dropped = table.take(dropped_pos)
        qrows = [
            (
                date,
                run_path,
                run_path,
                "run",
                gate_sha,
                0,
                "duplicate_run_id",
                f"run_id {run_id} also at {winners[run_id]}, which wins (latest timestamp, then path)",
            )
            for date, run_path, gate_sha, run_id in zip(
                dropped["date"].tolist(),
                dropped["run_path"].tolist(),
                dropped["gate_sha256"].tolist(),
                dropped["run_id"].tolist(),
                strict=True,
            )
        ]
    kept_keys = kept_keys.sort_values(["timestamp", "run_id"], kind="stable")
    kept = table.take(kept_keys["pos"].to_numpy()).reset_index(drop=True)  # a new frame: set in place
    kept["duplicate_count"] = kept_keys["duplicate_count"].to_numpy()
    return kept, quarantine_frame(qrows) if qrows else _empty_quarantine()


__all__ = ["QUARANTINE_COLUMNS", "RUN_TABLE_COLUMNS", "normalize_day", "normalize_run", "resolve_duplicates"]
