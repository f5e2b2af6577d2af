"""Making artifact-derived text safe to paste and open: Markdown (reports, CI comment) and CSV cells.

Pure functions, used by every renderer; the raw values stay untouched in the parquet tables.

* ``visible``: control characters (C0, DEL, C1) and bidirectional formatting characters (LRM/RLM, ALM,
  LRE..RLO, LRI..PDI) become visible ``\\u{202e}``-style text, so a right-to-left override cannot reorder
  what a reviewer reads and a NUL cannot truncate a cell.
* ``md_text``: Markdown inline text: ``visible``, line breaks as spaces, backtick, ``*`` and ``~`` (and a
  backslash that would cancel an escape) backslash-escaped, ``<`` and ``@`` as HTML entities, ``](`` broken (no raw HTML, no @mention, no link, no
  code span); a leading ``#``/``>``/``-``/``+``/``=``/``1.`` escaped (no heading, quote or list item).
* ``md_code``: an inline code span that cannot be broken out of (a backtick fence longer than any backtick
  run in the value); code spans render HTML and mentions literally.
* ``csv_cell``: ``visible`` (tab and line breaks stay: quoted CSV content), and a cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return is
  prefixed with ``'`` (spreadsheet formula injection, OWASP "CSV injection").
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

UNSAFE_CHARS = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[{UNSAFE_CHARS}]")
# In CSV, tab and line breaks are ordinary (quoted) cell content; other control and bidi characters are not.
_CSV_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# A backslash is doubled only where it could cancel an escape this module adds (before \ ` * ~ < @ [ ] ( );
# elsewhere, e.g. JSON's \", it stays as it is.
_MD_ESCAPE = re.compile(r"\\(?=[\\`*~<@\[\]()])|[`*~]")
_ENTITIES = {"<": "&lt;", "@": "&#64;"}
_ENTITY = re.compile("<(?=[A-Za-z/!?])|@")  # a tag or comment start; every @ (mentions)
_LINE_START = re.compile(r"^(#|>|-|\+|=|\d+[.)])")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FORMULA = re.compile(r"^[=+\-@\t\r]")


def has_unsafe(text: str) -> bool:
    """Whether text holds a control or bidirectional formatting character."""
    return _UNSAFE.search(text) is not None


def visible(text: str, pattern: re.Pattern = _UNSAFE) -> str:
    return pattern.sub(lambda m: f"\\u{{{ord(m.group()):04x}}}", text)


def md_text(value: Any, *, line_start: bool = False) -> str:
    """Inline Markdown text that renders as the plain text it is, whatever it holds: no raw HTML, no
    @mention, no link, no code span, no emphasis by * or ~, and (when it starts a line) no heading, quote
    or list item (`line_start`: the text begins a line). Ordinary prose (words, numbers, underscores,
    parentheses, comparisons such as `<= 0.1`) is left as it is."""
    text = visible(str(value).replace("\r\n", " ").replace("\n", " ").replace("\r", " "))
    text = _MD_ESCAPE.sub(r"\\\g<0>", text)
    text = _ENTITY.sub(lambda m: _ENTITIES[m.group()[0]], text).replace("](", "]\\(")
    return "\\" + text if line_start and _LINE_START.match(text) else text


def md_code(value: Any) -> str:
    text = visible(str(value).replace("\r\n", " ").replace("\n", " ").replace("\r", " "))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def csv_cell(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = visible(value, _CSV_UNSAFE)
    return "'" + text if value.startswith(FORMULA_START) else text


def csv_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The frame with every text cell passed through ``csv_cell``; the same frame when none needs it (the
    usual case: one vectorized scan per text column). Columns are taken by position (names may repeat)."""
    risky = []
    for i in range(df.shape[1]):
        column = df.iloc[:, i]
        if column.dtype != object or column.empty:
            continue
        try:
            needs = (
                column.str.contains(_CSV_UNSAFE, na=False).any() or column.str.match(_FORMULA, na=False).any()
            )
        except AttributeError:  # no string in the column at all (e.g. only None)
            needs = False
        if needs:
            risky.append(i)
    if not risky:
        return df
    out = df.copy()
    for i in risky:
        out.isetitem(i, out.iloc[:, i].map(csv_cell))
    return out
