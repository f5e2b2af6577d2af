"""lib/escape.py: artifact text rendered as text in Markdown and CSV."""

import pandas as pd
import pytest

from gate_pipeline.lib.escape import csv_cell, csv_frame, md_code, md_text, visible


def test_visible_shows_control_and_bidi_characters():
    assert visible("a\x00b\u202ec\u2066d\x7f") == "a\\u{0000}b\\u{202e}c\\u{2066}d\\u{007f}"
    assert visible("plain ünïcode – ok") == "plain ünïcode – ok"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc123", "`abc123`"),
        ("a`b", "``a`b``"),
        ("``x``", "``` ``x`` ```"),
        ("", "`  `"),
        ("x\ny", "`x y`"),
    ],
)
def test_md_code_cannot_be_broken_out_of(value, expected):
    assert md_code(value) == expected


def test_md_text_neutralizes_html_mentions_links_and_line_starts():
    assert md_text("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)>"
    assert md_text("ping @org/admins") == "ping &#64;org/admins"
    assert md_text("[ok](http://evil)") == "[ok]\\(http://evil)"
    assert md_text("**bold** `code` ~~x~~") == "\\*\\*bold\\*\\* \\`code\\` \\~\\~x\\~\\~"
    assert md_text("# heading", line_start=True) == "\\# heading"
    assert md_text("1. item", line_start=True) == "\\1. item"
    assert md_text("line\n# injected") == "line # injected"
    # A backslash cannot cancel an added escape; elsewhere (JSON's \") it stays as it is.
    assert md_text("\\`code`") == "\\\\\\`code\\`"
    assert md_text('{"a":"b\\"c"}') == '{"a":"b\\"c"}'


def test_md_text_leaves_ordinary_prose_alone():
    text = "HOLD: 2 counted rule(s) need more evidence (fail_rate, min_evidence); n <= 30, p >= 0.1"
    assert md_text(text) == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+2", "'=1+2"),
        ("+x", "'+x"),
        ("-cmd", "'-cmd"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("a\nb\x00", "a\nb\\u{0000}"),
        ("ok=1", "ok=1"),
        ("r\u202e1", "r\\u{202e}1"),
        (3, 3),
        (None, None),
    ],
)
def test_csv_cell(value, expected):
    assert csv_cell(value) == expected


def test_csv_frame_returns_the_same_frame_when_nothing_needs_escaping():
    df = pd.DataFrame({"a": ["x", None, "y"], "n": [-1.0, 2.0, 3.0], "none": [None, None, None]})
    assert csv_frame(df) is df
    risky = pd.DataFrame({"a": ["x", "=1"], "n": [-1.0, 2.0]})
    out = csv_frame(risky)
    assert out["a"].tolist() == ["x", "'=1"] and out["n"].tolist() == [-1.0, 2.0]
    assert risky["a"].tolist() == ["x", "=1"]  # the input is untouched
