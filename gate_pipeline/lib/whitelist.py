"""The unknown-reason whitelist (seed 000): model, loading, matching and health report.

File format (``config/unknown_whitelist.json``, schema ``gate_pipeline/schemas/unknown_whitelist.schema.json``)::

    {"schema_version": "1",
     "entries": [{"reason": "flaky_test", "match": "exact", "class": "flaky", "owner": "team-ci",
                  "expires": "2026-06-30", "note": "tracked in CI-123"}]}

``reason`` is an exact string or, with ``"match": "glob"``, an ``fnmatch`` pattern matched case-sensitively
(``fnmatchcase``, so the result does not depend on the operating system). ``class`` is the bare class name;
classification reports it as ``whitelisted:<class>``. ``expires`` is inclusive: the entry covers runs dated on
or before that day.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable
from datetime import date
from typing import Any, Literal

import orjson
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from gate_pipeline.lib.config import ConfigProblem, key_path, load_model

__all__ = [
    "WHITELISTED_PREFIX",
    "Whitelist",
    "WhitelistEntry",
    "load_whitelist",
    "whitelist_health",
]

WHITELISTED_PREFIX = "whitelisted:"
_CLASS_RE = re.compile(r"^[A-Za-z0-9_.:\-]+$")


class WhitelistEntry(BaseModel):
    """One known unknown reason: what it matches, the class it maps to, who owns it and until when."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    reason: str = Field(
        min_length=1, description="Exact reason string, or an fnmatch pattern if match='glob'."
    )
    match: Literal["exact", "glob"] = Field(
        "exact", description="How `reason` is compared with a run's reason."
    )
    class_: str = Field(
        alias="class", min_length=1, description="Class name; reported as whitelisted:<class>."
    )
    owner: str = Field(min_length=1, description="Person or team responsible for this entry.")
    expires: date | None = Field(None, description="Last day (inclusive) on which the entry covers runs.")
    note: str = Field("", description="Why the reason is considered known noise.")

    @field_validator("reason", "owner")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v

    @field_validator("class_")
    @classmethod
    def _class_name(cls, v: str) -> str:
        # Classes end up inside "whitelisted:<class>" labels and table cells: keep them token-like.
        if not _CLASS_RE.match(v):
            raise ValueError("must match [A-Za-z0-9_.:-]+ (no spaces)")
        if v.startswith(WHITELISTED_PREFIX):
            raise ValueError(f"give the bare class name; '{WHITELISTED_PREFIX}' is added by classification")
        return v

    @property
    def label(self) -> str:
        """The class label used in classified_runs, e.g. ``whitelisted:flaky``."""
        return WHITELISTED_PREFIX + self.class_

    def matches(self, reason: str) -> bool:
        """True if this entry's pattern covers ``reason`` (expiry is not considered here)."""
        if self.match == "exact":
            return reason == self.reason
        return fnmatch.fnmatchcase(reason, self.reason)

    def active_on(self, day: date | None) -> bool:
        """True if the entry covers runs of ``day`` (None = no date known: treated as active)."""
        return self.expires is None or day is None or day <= self.expires


class Whitelist(BaseModel):
    """The validated whitelist. ``sha256`` is the hash of the raw file bytes it was loaded from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal["1"] = "1"
    entries: list[WhitelistEntry] = Field(default_factory=list)

    _sha256: str | None = PrivateAttr(default=None)
    _source: str = PrivateAttr(default="<memory>")

    @model_validator(mode="after")
    def _unique_reasons(self) -> Whitelist:
        seen: dict[tuple[str, str], int] = {}
        for i, e in enumerate(self.entries):
            key = (e.match, e.reason)
            if key in seen:
                raise ConfigProblem(
                    f"entries[{i}] (reason {e.reason!r})",
                    f"duplicate of entries[{seen[key]}] (same reason and match)",
                )
            seen[key] = i
        return self

    @property
    def sha256(self) -> str:
        """sha256 of the raw file bytes; for an in-memory whitelist, of its canonical JSON."""
        if self._sha256 is not None:
            return self._sha256
        return hashlib.sha256(self.canonical_json()).hexdigest()

    @property
    def source(self) -> str:
        """Where the whitelist was loaded from (file path), for messages."""
        return self._source

    def canonical_json(self) -> bytes:
        """Canonical JSON (sorted keys, by-alias names) of the model."""
        return orjson.dumps(self.model_dump(mode="json", by_alias=True), option=orjson.OPT_SORT_KEYS)

    def candidates(self, reason: str) -> list[tuple[int, WhitelistEntry]]:
        """All entries covering ``reason`` in priority order: exact entries first, then globs in file order."""
        exact = [(i, e) for i, e in enumerate(self.entries) if e.match == "exact" and e.reason == reason]
        globs = [(i, e) for i, e in enumerate(self.entries) if e.match == "glob" and e.matches(reason)]
        return exact + globs

    def match(self, reason: str, on: date | None = None) -> WhitelistEntry | None:
        """The entry that covers ``reason`` (exact first, then the first matching glob in file order).

        With ``on`` given, entries that expired before that day are skipped, so a later entry may match.
        """
        idx = self.match_index(reason, on)
        return None if idx is None else self.entries[idx]

    def match_index(self, reason: str, on: date | None = None) -> int | None:
        """Index of the entry :meth:`match` would return, or None."""
        for i, e in self.candidates(reason):
            if e.active_on(on):
                return i
        return None

    @property
    def has_expiring_entries(self) -> bool:
        """True if any entry has an expiry date (then classification depends on the run date)."""
        return any(e.expires is not None for e in self.entries)


def _entry_path(data: Any, loc: Any) -> str:
    """Key path naming the entry by index and reason: ``entries[3] (reason 'x').owner``."""
    path = key_path(data, loc)
    if len(loc) >= 2 and loc[0] == "entries" and isinstance(loc[1], int):
        entries = data.get("entries") if isinstance(data, dict) else None
        item = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
        reason = item.get("reason") if isinstance(item, dict) else None
        if reason is not None:
            head = f"entries[{loc[1]}]"
            path = f"{head} (reason {reason!r})" + path[len(head) :]
    return path


def load_whitelist(raw: bytes, source: str) -> Whitelist:
    """Parse and validate whitelist bytes (JSON, see :func:`gate_pipeline.lib.config.load_model`).

    Raises :class:`~gate_pipeline.lib.config.ConfigError` naming ``source``, the entry (index and reason),
    the key and the problem, e.g. ``config/unknown_whitelist.json: entries[2] (reason 'x').owner: Field
    required``.
    """
    wl = load_model(raw, source, Whitelist, name_path=_entry_path)
    wl._sha256 = hashlib.sha256(raw).hexdigest()
    wl._source = source
    return wl


def _parse_reasons(values: Iterable[Any]) -> set[str]:
    out: set[str] = set()
    for v in values:
        if not isinstance(v, str):
            continue
        try:
            items = orjson.loads(v)
        except orjson.JSONDecodeError:
            continue
        if isinstance(items, list):
            out.update(x for x in items if isinstance(x, str))
    return out


HEALTH_COLUMNS = [
    "entry_index",
    "reason",
    "match",
    "class",
    "owner",
    "expires",
    "problem",
    "matched_runs",
    "detail",
]


def whitelist_health(whitelist: Whitelist, runs_df: pd.DataFrame, today: date) -> pd.DataFrame:
    """Entries needing attention: one row per (entry, problem), sorted by entry index then problem.

    Problems:
    - ``expired``: ``expires`` is before ``today``.
    - ``never_matched``: no reason in ``runs_df.top_reasons`` selects this entry (pattern coverage, ignoring
      expiry). An entry shadowed by an earlier one (e.g. a glob after an exact entry for the same reason)
      counts as never matched, and ``detail`` says so.

    ``matched_runs`` is the number of runs with at least one reason this entry is selected for. Columns:
    entry_index, reason, match, class, owner, expires (ISO string or None), problem, matched_runs, detail.
    """
    reasons_col = runs_df["top_reasons"] if "top_reasons" in runs_df.columns else pd.Series([], dtype=object)
    codes, uniques = pd.factorize(reasons_col, use_na_sentinel=True)
    counts = pd.Series(codes[codes >= 0]).value_counts()
    # Per distinct top_reasons string: which entries it selects; then weight by how many runs carry it.
    matched_runs = [0] * len(whitelist.entries)
    shadow_hits: dict[int, set[int]] = {}
    for code, raw in enumerate(uniques):
        chosen: set[int] = set()
        for reason in sorted(_parse_reasons([raw])):
            cands = whitelist.candidates(reason)
            if not cands:
                continue
            chosen.add(cands[0][0])
            for i, _ in cands[1:]:
                shadow_hits.setdefault(i, set()).add(cands[0][0])
        for i in chosen:
            matched_runs[i] += int(counts.get(code, 0))

    rows = []
    for i, e in enumerate(whitelist.entries):
        base = {
            "entry_index": i,
            "reason": e.reason,
            "match": e.match,
            "class": e.class_,
            "owner": e.owner,
            "expires": e.expires.isoformat() if e.expires else None,
            "matched_runs": matched_runs[i],
        }
        if e.expires is not None and e.expires < today:
            rows.append({**base, "problem": "expired", "detail": f"expired on {e.expires.isoformat()}"})
        if matched_runs[i] == 0:
            if i in shadow_hits:
                by = ", ".join(f"entries[{j}]" for j in sorted(shadow_hits[i]))
                detail = f"matches reasons in the runs but is shadowed by {by}"
            else:
                detail = "no run reason matches this entry"
            rows.append({**base, "problem": "never_matched", "detail": detail})
    df = pd.DataFrame(rows, columns=HEALTH_COLUMNS)
    df["entry_index"] = df["entry_index"].astype("int64")
    df["matched_runs"] = df["matched_runs"].astype("int64")
    return df.sort_values(["entry_index", "problem"], kind="mergesort").reset_index(drop=True)


ENTRY_COLUMNS = ["reason", "match", "class", "owner", "expires", "days_to_expiry", "note"]


def entry_rows(whitelist: Whitelist, today: date) -> list[dict[str, Any]]:
    """One row per entry as operators read it: expiry as a date and as days left (negative once expired)."""
    return [
        {
            "reason": e.reason,
            "match": e.match,
            "class": e.class_,
            "owner": e.owner,
            "expires": e.expires.isoformat() if e.expires else None,
            "days_to_expiry": (e.expires - today).days if e.expires else None,
            "note": e.note,
        }
        for e in whitelist.entries
    ]
