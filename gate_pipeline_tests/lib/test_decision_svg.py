"""The inline SVG chart of the decision timeline (lib/reports/decision_svg.py): short enough for the UI,
the rule's threshold drawn and labelled, the newest days kept when not all fit, byte-stable."""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET

import pandas as pd

from gate_pipeline.lib.reports import decision_svg
from gate_pipeline.lib.reports.decision_svg import INLINE_MARKDOWN_LIMIT, timeline_chart_markdown

SVG = "{http://www.w3.org/2000/svg}"


def timeline(days: int, verdicts=("HOLD",), thresholds=(0.1,)) -> pd.DataFrame:
    dates = pd.date_range("2026-03-01", periods=days).strftime("%Y-%m-%d")
    return pd.DataFrame(
        {
            "date": dates,
            "verdict": [verdicts[i % len(verdicts)] for i in range(days)],
            "chart_rule": "fail_rate",
            "observed": [0.05 + 0.01 * (i % 7) for i in range(days)],
            "ci_low": [0.01] * days,
            "ci_high": [0.3 + 0.01 * (i % 5) for i in range(days)],
            "threshold": [thresholds[0] if i < days // 2 else thresholds[-1] for i in range(days)],
        }
    )


def parse(markdown: str) -> ET.Element:
    """The SVG as a browser gets it: the angle-bracket destination, percent-decoded."""
    prefix = "![fail_rate per day](<data:image/svg+xml;utf8,"
    assert markdown.startswith(prefix) and markdown.endswith(">)")
    return ET.fromstring(urllib.parse.unquote(markdown[len(prefix) : -2]))


def test_the_sample_size_timeline_fits_inline_with_every_day_and_the_threshold():
    md = timeline_chart_markdown(timeline(12), "<=")
    assert len(md) < INLINE_MARKDOWN_LIMIT
    svg = parse(md)  # well-formed XML: "<=" is escaped inside the SVG
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "<= 0.1" in texts  # the rule's threshold, labelled at the end of its line
    assert "fail_rate, last 12 day(s)" in texts and "2026-03-01" in texts and "2026-03-12" in texts
    paths = {p.get("stroke"): p.get("d") for p in svg.iter(f"{SVG}path")}
    assert paths["orange"].count("M") == 12  # one interval bar per HOLD day
    assert paths["navy"].count("L") == 11  # the observed line through 12 days
    assert paths["red"].startswith("M34 ") and paths["red"].endswith("H360")  # the threshold, edge to edge


def test_verdicts_colour_the_bars_and_a_threshold_change_is_a_step():
    svg = parse(timeline_chart_markdown(timeline(6, ("GO", "NO_GO", "ROLLBACK"), (0.1, 0.05)), ">="))
    bars = {p.get("stroke"): p.get("d").count("M") for p in svg.iter(f"{SVG}path") if p.get("stroke-width")}
    assert bars == {"green": 2, "red": 2, "darkred": 2}  # one colour per verdict, two days each
    [threshold] = [p for p in svg.iter(f"{SVG}path") if p.get("stroke-dasharray")]
    assert threshold.get("d").count("V") == 1  # one step, where the phase's threshold changed
    assert ">= 0.05" in [t.text for t in svg.iter(f"{SVG}text")]  # labelled with the latest threshold


def test_a_long_timeline_keeps_the_newest_days_that_fit():
    frame = timeline(30)
    md = timeline_chart_markdown(frame, "<=")
    assert len(md) < INLINE_MARKDOWN_LIMIT
    texts = [t.text for t in parse(md).iter(f"{SVG}text")]
    shown = int(next(t for t in texts if t.startswith("fail_rate, last")).split()[2])
    assert 10 <= shown < 30 and frame["date"].iloc[-1] in texts and frame["date"].iloc[-shown] in texts
    # One day more would not fit: the chart shows as many days as the limit allows.
    one_more = decision_svg._markdown(
        decision_svg._svg(frame.iloc[-(shown + 1) :], "fail_rate", "<="), "fail_rate"
    )
    assert len(one_more) >= INLINE_MARKDOWN_LIMIT
    assert timeline_chart_markdown(frame, "<=", limit=len(md) + 1) == md
    assert timeline_chart_markdown(frame.iloc[0:0], "<=") == ""


def test_same_timeline_same_bytes():
    frame = timeline(12, ("HOLD", "GO"))
    assert timeline_chart_markdown(frame, "<=") == timeline_chart_markdown(frame.copy(), "<=")
    assert timeline_chart_markdown(frame, "<=") != timeline_chart_markdown(frame.assign(threshold=0.2), "<=")


def test_legend_names_the_rule_and_its_threshold():
    assert decision_svg.legend("fail_rate", "<=", 0.1).endswith(
        "Dashed red: the rule's threshold (<= 0.1 now)."
    )
    assert decision_svg.legend("fail_rate", "", None).endswith("threshold.")
