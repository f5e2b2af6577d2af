"""One Markdown table writer for reports and UI metadata: tabulate with a compact pipe format.

Cells are written as given (no padding, no number parsing, no whitespace stripping), so the output is
``| a | b |`` / ``|---|---|`` / ``| 1 | x |``: the layout rollout_series_v1.md has always had.
"""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import DataRow, TableFormat, tabulate


def _header_rule(widths: Sequence[int], aligns: Sequence[str]) -> str:
    return "|" + "---|" * len(widths)


_ROW = DataRow("| ", " | ", " |")
COMPACT_PIPE = TableFormat(
    lineabove=None,
    linebelowheader=_header_rule,
    linebetweenrows=None,
    linebelow=None,
    headerrow=_ROW,
    datarow=_ROW,
    padding=0,
    with_header_hide=None,
)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A pipe table of text cells (format and escape them first); no trailing newline. A "|" in a cell is
    escaped here, as GitHub's tables require even inside a code span, so a cell never splits its row."""
    return tabulate(
        [[_cell(c) for c in r] for r in rows],
        headers=[_cell(c) for c in header],
        tablefmt=COMPACT_PIPE,
        disable_numparse=True,
        stralign=None,
        numalign=None,
    )
