"""Unknown classes per run (classified_runs = run_table + four columns).

Class vocabulary (all strings, one JSON array per run, sorted and de-duplicated):

- ``whitelisted:<class>``        a top reason covered by a whitelist entry active on the run's date
- ``non_whitelisted:<reason>``   a top reason no active entry covers
- ``unknown_field_missing:<f>`` / ``unknown_field_invalid:<f>``   field classes from ingestion (``field_issues``)
- ``cause:<cause>``              a drift-report unknown cause with a positive (or non-numeric) count

Work is done once per distinct combination of (top_reasons, field_issues, unknown_causes, date) and mapped
back with integer codes, so a million rows with a few thousand distinct combinations classify in seconds.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd

from gate_pipeline.lib.tables import ClassifiedRuns, RunTable
from gate_pipeline.lib.whitelist import Whitelist

__all__ = [
    "CAUSE_PREFIX",
    "CLASSIFIED_COLUMNS",
    "NON_WHITELISTED_PREFIX",
    "canonical_json_array",
    "class_kind",
    "classify_runs",
    "parse_json_array",
]

NON_WHITELISTED_PREFIX = "non_whitelisted:"
CAUSE_PREFIX = "cause:"
# The columns classification adds to the run table: ClassifiedRuns' columns beyond RunTable's.
CLASSIFIED_COLUMNS = [c for c in ClassifiedRuns.to_schema().columns if c not in RunTable.to_schema().columns]


def canonical_json_array(items: list[str]) -> str:
    """Sorted, de-duplicated, compact JSON array (the canonical form used in all tables)."""
    return orjson.dumps(sorted(set(items))).decode()


def parse_json_array(raw: Any) -> tuple[list[str], bool]:
    """Parse a JSON array string of strings. Returns (strings, ok); null/NaN counts as an empty, valid array."""
    if raw is None or (isinstance(raw, float) and np.isnan(raw)) or raw is pd.NA:
        return [], True
    try:
        val = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return [], False
    if not isinstance(val, list):
        return [], False
    good = [x for x in val if isinstance(x, str)]
    return good, len(good) == len(val)


def _parse_causes(raw: Any) -> tuple[list[str], bool]:
    if raw is None or (isinstance(raw, float) and np.isnan(raw)) or raw is pd.NA:
        return [], True
    try:
        val = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return [], False
    if not isinstance(val, dict):
        return [], False
    out = []
    for cause, count in val.items():
        # A count of 0 means "cause known, did not occur"; a non-numeric count is kept (we cannot tell).
        if isinstance(count, bool) or not isinstance(count, int | float) or count > 0:
            out.append(CAUSE_PREFIX + str(cause))
    return out, True


def _to_date(raw: Any) -> date | None:
    if isinstance(raw, datetime):  # includes pd.Timestamp; compare calendar days only
        return raw.date()
    if isinstance(raw, date):
        return raw
    if isinstance(raw, str):
        try:
            return date.fromisoformat(raw[:10])
        except ValueError:
            return None
    return None


def class_kind(label: str) -> str:
    """Kind of a class label: whitelisted, non_whitelisted, field, cause or other."""
    if label.startswith("whitelisted:"):
        return "whitelisted"
    if label.startswith(NON_WHITELISTED_PREFIX):
        return "non_whitelisted"
    if label.startswith("unknown_field_"):
        return "field"
    if label.startswith(CAUSE_PREFIX):
        return "cause"
    return "other"


def _classify_one(
    whitelist: Whitelist, top_reasons: Any, field_issues: Any, causes: Any, day: date | None
) -> tuple[str, str, str]:
    reasons, reasons_ok = parse_json_array(top_reasons)
    fields, fields_ok = parse_json_array(field_issues)
    cause_classes, causes_ok = _parse_causes(causes)
    classes: list[str] = list(fields) + cause_classes
    # Malformed JSON should not reach here (run_table is validated), but bad input is data, not a crash.
    for ok, name in ((reasons_ok, "top_reasons"), (fields_ok, "field_issues"), (causes_ok, "unknown_causes")):
        if not ok:
            classes.append(f"unknown_field_invalid:{name}")
    whitelisted: list[str] = []
    non_wl: list[str] = []
    for reason in reasons:
        entry = whitelist.match(reason, day)
        if entry is None:
            non_wl.append(reason)
            classes.append(NON_WHITELISTED_PREFIX + reason)
        else:
            whitelisted.append(entry.label)
            classes.append(entry.label)
    return canonical_json_array(classes), canonical_json_array(whitelisted), canonical_json_array(non_wl)


def _expiry_epochs(dates: pd.Series, whitelist: Whitelist) -> pd.Series:
    """Per run, a code for the set of expiring whitelist entries active on its date: runs with the same code
    match every reason alike (a date that cannot be read counts as no date: every entry active)."""
    expiring = [e for e in whitelist.entries if e.expires is not None]
    codes, uniques = pd.factorize(dates.astype(object), use_na_sentinel=True)
    signatures = [tuple(e.active_on(_to_date(u)) for e in expiring) for u in uniques]
    signatures.append(tuple(e.active_on(None) for e in expiring))  # code -1: a missing date
    epoch = {sig: i for i, sig in enumerate(dict.fromkeys(signatures))}
    per_unique = np.array([epoch[sig] for sig in signatures], dtype=np.int64)
    return pd.Series(per_unique[codes], index=dates.index)


def classify_runs(run_table: pd.DataFrame, whitelist: Whitelist) -> pd.DataFrame:
    """Return a copy of ``run_table`` with ``unknown_classes``, ``whitelisted_classes``,
    ``non_whitelisted_reasons`` (canonical JSON arrays) and ``whitelist_sha256`` added.

    Expiry is judged against each run's ``date`` column (not today's date), so re-classifying history gives
    the same answer every time; a run after an entry's expiry day gets ``non_whitelisted:<reason>``.
    Requires columns top_reasons, field_issues, unknown_causes; ``date`` is used when present.
    Row order and index are preserved.
    """
    missing = [c for c in ("top_reasons", "field_issues", "unknown_causes") if c not in run_table.columns]
    if missing:
        raise KeyError(f"classify_runs: run_table lacks columns {missing}")
    out = run_table.copy()
    n = len(out)
    use_date = whitelist.has_expiring_entries and "date" in out.columns
    key_cols = ["top_reasons", "field_issues", "unknown_causes"] + (["date"] if use_date else [])

    keys = {col: out[col].astype(object) for col in key_cols}
    if use_date:
        # A run's date matters only through which expiring entries are active on it: key on that (a few
        # values, e.g. before / after one expiry) rather than the date (one per day of history).
        keys["date"] = _expiry_epochs(out["date"], whitelist)
    # Combine per-column factorize codes into one integer key: no per-row Python work.
    factorized = [pd.factorize(keys[col], use_na_sentinel=True) for col in key_cols]
    if np.prod([len(u) + 1 for _, u in factorized], dtype=float) < 2**62:
        combo = np.zeros(n, dtype=np.int64)
        for codes, uniques in factorized:
            combo = combo * (len(uniques) + 1) + (codes + 1)
    else:  # absurd cardinality: the integer key could overflow, factorize tuples instead
        combo, _ = pd.factorize(pd.MultiIndex.from_frame(pd.DataFrame(keys)))
    row_codes, combo_uniques = pd.factorize(combo)
    # first row of each distinct combination (np.unique returns first occurrences)
    _, first_row = np.unique(row_codes, return_index=True)

    cols = {c: out[c].to_numpy(dtype=object) for c in key_cols}
    results_cls, results_wl, results_nwl = [], [], []
    for r in first_row:
        day = _to_date(cols["date"][r]) if use_date else None
        c, w, nw = _classify_one(
            whitelist, cols["top_reasons"][r], cols["field_issues"][r], cols["unknown_causes"][r], day
        )
        results_cls.append(c)
        results_wl.append(w)
        results_nwl.append(nw)

    out["unknown_classes"] = np.asarray(results_cls, dtype=object)[row_codes] if n else []
    out["whitelisted_classes"] = np.asarray(results_wl, dtype=object)[row_codes] if n else []
    out["non_whitelisted_reasons"] = np.asarray(results_nwl, dtype=object)[row_codes] if n else []
    out["whitelist_sha256"] = whitelist.sha256
    for c in CLASSIFIED_COLUMNS:
        out[c] = out[c].astype(object)
    return out
