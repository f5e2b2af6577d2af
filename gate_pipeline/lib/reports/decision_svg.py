"""A small SVG chart of the decision timeline, as Markdown short enough for the Dagster UI to show inline.

dagster-webserver (1.13) shows a Markdown metadata value on the asset page only while it is shorter than
1000 characters; a longer one (a PNG data URI is tens of kB) becomes a "[Show Markdown]" popup. Its Markdown
sanitizer allows ``data:`` image sources, so a hand-written SVG with integer coordinates, named colours and
no ``#``/``&`` fits: one bar per day (the chart rule's interval, coloured by that day's verdict), a dot for the
observed value and the rule's threshold as a dashed step line (it changes with the phase). The oldest days are
left out until the Markdown fits. Pure text formatting: the same timeline gives the same bytes.
"""

from __future__ import annotations

import math

import pandas as pd

#: The UI shows Markdown metadata inline below this many characters (MetadataEntry.tsx, dagster-webserver).
INLINE_MARKDOWN_LIMIT = 1000
VERDICT_COLOURS = {"GO": "green", "HOLD": "orange", "NO_GO": "red", "ROLLBACK": "darkred"}
_W, _H = (
    400,
    130,
)  # viewBox; drawn 450 px wide, what the asset page's value column holds next to its side panel
_SHOWN_WIDTH = 450
_LEFT, _RIGHT, _TOP, _BOTTOM = 34, 360, 16, 108


def _nice_top(value: float) -> float:
    """The smallest of 1, 2, 2.5, 4, 5, 6, 8 x 10^k at or above value (axis top)."""
    if not value > 0:
        return 1.0
    exp = math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 4.0, 5.0, 6.0, 8.0, 10.0):
        top = step * 10.0**exp
        if top >= value * (1 - 1e-12):
            return float(f"{top:.12g}")
    return 10.0 ** (exp + 1)  # pragma: no cover - the loop ends at 10 x 10^exp


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _text(value: str) -> str:
    """SVG (XML) text content."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _svg(days: pd.DataFrame, rule: str, comparator: str) -> str:
    values = days[["observed", "ci_low", "ci_high", "threshold"]].astype(float).to_numpy()
    finite = values[pd.notna(values)]
    top = _nice_top(float(finite.max()) * 1.1 if finite.size else 1.0)
    step = (_RIGHT - _LEFT) / max(len(days), 1)

    def y(v: float) -> int:
        return round(_BOTTOM - (_BOTTOM - _TOP) * min(max(v, 0.0), top) / top)

    def x(i: int) -> int:
        return round(_LEFT + step * (i + 0.5))

    bars: dict[str, list[str]] = {}
    dots = []
    for i, row in enumerate(days.itertuples(index=False)):
        low, high, observed = float(row.ci_low), float(row.ci_high), float(row.observed)
        if math.isfinite(low) and math.isfinite(high):
            colour = VERDICT_COLOURS.get(row.verdict, "gray")
            bars.setdefault(colour, []).append(f"M{x(i)} {y(high)}V{y(low) + 1}")
        if math.isfinite(observed):
            dots.append(f"{'L' if dots else 'M'}{x(i)} {y(observed)}")
    width = max(2, min(8, round(step * 0.6)))
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_SHOWN_WIDTH}' height='{_H * _SHOWN_WIDTH // _W}' "
        f"viewBox='0 0 {_W} {_H}' font-family='sans-serif' font-size='9'>",
        f"<path stroke='silver' fill='none' d='M{_LEFT} {_TOP}V{_BOTTOM}H{_RIGHT}'/>",
        f"<text x='0' y='{_TOP + 3}'>{_fmt(top)}</text><text x='{_LEFT - 10}' y='{_BOTTOM}'>0</text>",
    ]
    parts += [
        f"<path stroke='{c}' stroke-width='{width}' d='{''.join(d)}'/>" for c, d in sorted(bars.items())
    ]
    if dots:
        parts.append(f"<path stroke='navy' fill='none' d='{''.join(dots)}'/>")
    line, last = "", None
    for i, threshold in enumerate(days["threshold"].astype(float)):
        if not math.isfinite(threshold) or threshold == last:
            continue
        left = round(_LEFT + step * i)
        line += f"M{left} {y(threshold)}" if last is None else f"H{left}V{y(threshold)}"
        last = threshold
    if last is not None:
        parts.append(f"<path stroke='red' stroke-dasharray='5 3' fill='none' d='{line}H{_RIGHT}'/>")
        parts.append(
            f"<text x='{_RIGHT + 2}' y='{y(last) + 3}' fill='red'>{_text(comparator)} {_fmt(last)}</text>"
        )
    first, end = days["date"].iloc[0], days["date"].iloc[-1]
    title = f"{rule}, last {len(days)} day(s)"
    parts.append(f"<text x='{_LEFT}' y='{_TOP - 5}'>{_text(title)}</text>")
    parts.append(f"<text x='{_LEFT}' y='{_H - 8}'>{first}</text>")
    parts.append(f"<text x='{_RIGHT - 48}' y='{_H - 8}'>{end}</text></svg>")
    return "".join(parts)


def _markdown(svg: str, rule: str) -> str:
    # An angle-bracket destination may hold spaces; % # < > & are percent-encoded, so neither the URL nor
    # Markdown (which decodes entities in link destinations) reads them.
    encoded = svg.replace("%", "%25")
    for char, code in (("#", "%23"), ("<", "%3C"), (">", "%3E"), ("&", "%26")):
        encoded = encoded.replace(char, code)
    return f"![{rule} per day](<data:image/svg+xml;utf8,{encoded}>)"


def legend(rule: str, comparator: str, threshold: float | None) -> str:
    """How to read the chart (it has no room for a legend of its own)."""
    shown = "" if threshold is None else f" ({comparator} {_fmt(threshold)} now)"
    return (
        f"{rule} per day, as decided at the end of that day. Bar: its interval, coloured by the day's verdict "
        f"(green GO, orange HOLD, red NO_GO, dark red ROLLBACK). Line: observed. Dashed red: the rule's "
        f"threshold{shown}."
    )


def timeline_chart_markdown(
    timeline: pd.DataFrame, comparator: str, limit: int = INLINE_MARKDOWN_LIMIT
) -> str:
    """Markdown with the SVG chart of the latest days of ``timeline`` (decision_timeline rows) that fit in
    ``limit`` characters; "" when there is no day to draw."""
    rule = str(timeline["chart_rule"].iloc[-1]) if len(timeline) else ""
    for start in range(len(timeline)):
        text = _markdown(_svg(timeline.iloc[start:], rule, comparator), rule)
        if len(text) < limit:
            return text
    return ""
