"""Tests for gate_pipeline.lib.reports: rollout_metrics.json (schema, canonical bytes), chart, Markdown.

The large chart's render time is measured in bench/ (bench/unit_timings.py), not asserted here."""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gate_pipeline.lib import provenance as provenance_lib
from gate_pipeline.lib import reports
from gate_pipeline.lib.provenance import (
    MANIFEST_COLUMNS,
    artifact_manifest_sha256,
    file_manifest_sha256,
    stored_manifest_sha256,
)
from gate_pipeline.lib.reports import (
    CHART_MAX_POINTS,
    chart_key,
    daily_unknown_rate,
    dumps_canonical,
    normalize_json,
    render_chart,
    render_ci_comment,
    render_report_md,
    rollout_metrics_document,
)
from gate_pipeline.lib.rules import Decision, RuleResult, StratumResult, evaluate, load_decision_config
from gate_pipeline.lib.storage import Store

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "gate_pipeline/schemas/rollout_metrics.schema.json").read_text())
T0 = pd.Timestamp("2026-03-01T00:00:00Z")
PROVENANCE = {
    "artifact_manifest_sha256": "a" * 64,
    "whitelist_sha256": "b" * 64,
    "config_sha256": "c" * 64,
    "code_version": "0.1.0+test",
}


def seed001_decision(runs: pd.DataFrame | None = None) -> Decision:
    path = REPO / "config/examples/seed001_min_evidence.yaml"
    cfg = load_decision_config(path.read_bytes(), str(path))
    return evaluate(runs if runs is not None else seed001_runs(), cfg)


def seed001_runs() -> pd.DataFrame:
    rows = [
        {
            "run_id": f"r{i:03d}",
            "timestamp": T0 + pd.Timedelta(hours=i),
            "policy_hash": "a6f53e",
            "outcome": "FAIL" if i % 2 and i <= 59 else "PASS",
            "unknown_rate": 0.01 * (i % 10),
            "stratum": "pinned" if i % 2 else "unpinned",
            "overrides_count": i % 3,
            "metrics": "{}",
        }
        for i in range(80)
    ]
    df = pd.DataFrame(rows)
    df["overrides_count"] = df["overrides_count"].astype("Int64")
    return df


STATS = {
    "unknown_rate_by_group": [
        {"name": "policy_hash=a6f53e", "n": 40, "min": 0.0, "median": 0.045, "max": 0.09},
        {"name": "outcome=FAIL", "n": 7, "min": 0.01, "median": 0.05, "max": 0.09},
    ],
    "class_frequencies": [{"name": "flaky_test", "count": 12}, {"name": "contract", "count": 3}],
    "risk": {"risk_difference": 0.1 + 0.2, "risk_ratio": float("nan")},
}


def test_document_validates_and_is_canonical():
    d = seed001_decision()
    assert d.verdict == "NO_GO"
    doc = rollout_metrics_document(d, STATS, PROVENANCE, "1")
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert doc["policy_hash"] == "a6f53e" and doc["schema_version"] == "1"
    # arrays of named things sorted by name
    assert [g["name"] for g in doc["statistics"]["unknown_rate_by_group"]] == [
        "outcome=FAIL",
        "policy_hash=a6f53e",
    ]
    assert [c["name"] for c in doc["statistics"]["class_frequencies"]] == ["contract", "flaky_test"]
    # floats rounded to 10 significant digits, NaN -> null
    assert doc["statistics"]["risk"] == {"risk_difference": 0.3, "risk_ratio": None}
    # 30/80 FAIL rate, 30/40 in stratum pinned
    assert [r["name"] for r in doc["decision"]["rules"]] == [
        "fail_rate",
        "mean_overrides",
        "min_evidence",
        "warn_fail_rate_per_stratum",
    ]
    ps = doc["decision"]["rules"][3]
    assert (ps["verdict"], ps["stratum"], ps["observed"]) == ("FAIL", "pinned", 0.75)
    raw = dumps_canonical(doc)
    assert raw.endswith(b"}\n") and b"NaN" not in raw
    assert raw == orjson.dumps(json.loads(raw), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
    assert list(json.loads(raw)) == ["decision", "policy_hash", "provenance", "schema_version", "statistics"]


def test_bytes_identical_across_row_orders():
    runs = seed001_runs()
    shuffled = runs.sample(frac=1.0, random_state=7).reset_index(drop=True)
    stats_reordered = {
        k: (list(reversed(v)) if isinstance(v, list) else v) for k, v in reversed(list(STATS.items()))
    }
    a = dumps_canonical(rollout_metrics_document(seed001_decision(runs), STATS, PROVENANCE, "1"))
    b = dumps_canonical(
        rollout_metrics_document(seed001_decision(shuffled), stats_reordered, PROVENANCE, "1")
    )
    assert a == b


def test_schema_is_strict_on_decision_and_provenance_open_on_statistics():
    doc = rollout_metrics_document(seed001_decision(), STATS, PROVENANCE, "1")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    extra_stats = json.loads(dumps_canonical(doc))
    extra_stats["statistics"]["brand_new_section"] = {"x": 1}
    validator.validate(extra_stats)
    for mutate in (
        lambda d: d["decision"].update(surprise=1),
        lambda d: d["provenance"].update(surprise="x"),
        lambda d: d["provenance"].update(config_sha256="not-a-hash"),
        lambda d: d["decision"]["rules"][0].update(verdict="MAYBE"),
        lambda d: d.pop("schema_version"),
    ):
        bad = json.loads(dumps_canonical(doc))
        mutate(bad)
        assert not validator.is_valid(bad)


def test_schema_matches_the_models():
    # guards against the published schema drifting from the pydantic result models
    defs = SCHEMA["$defs"]
    assert set(defs["decision"]["properties"]) == set(Decision.model_fields)
    assert set(defs["rule"]["properties"]) == set(RuleResult.model_fields)
    assert set(defs["stratum"]["properties"]) == set(StratumResult.model_fields)
    assert set(defs["decision"]["required"]) == set(Decision.model_fields)


def test_provenance_must_be_complete():
    with pytest.raises(ValueError, match=r"missing keys \['whitelist_sha256'\], unknown keys \['extra'\]"):
        rollout_metrics_document(
            seed001_decision(),
            {},
            {**{k: v for k, v in PROVENANCE.items() if k != "whitelist_sha256"}, "extra": 1},
            "1",
        )


def test_normalize_json_rules():
    assert normalize_json({"a": [1.23456789012345, -0.0, float("inf")], "t": T0}) == {
        "a": [1.23456789, 0.0, None],
        "t": "2026-03-01T00:00:00Z",
    }
    assert normalize_json({"s": {"b", "a"}}) == {"s": ["a", "b"]}
    with pytest.raises(TypeError, match=r"\$\.x: cannot put object"):
        normalize_json({"x": object()})


def _series(n=12, order=None):
    rows = [
        {
            "timestamp": T0 + pd.Timedelta(hours=i),
            "run_id": f"r{i:02d}",
            "unknown_rate": 0.5 if i in (3, 8) else 0.02 * (i % 4),
            "is_spike": i in (3, 8),
        }
        for i in range(n)
    ]
    df = pd.DataFrame(rows)
    df.loc[5, "unknown_rate"] = float("nan")
    return df if order is None else df.iloc[order].reset_index(drop=True)


def test_chart_is_png_and_byte_stable():
    a = render_chart(_series(), median=0.03, threshold=0.1)
    b = render_chart(_series(order=list(reversed(range(12)))), median=0.03, threshold=0.1)
    assert a[:8] == b"\x89PNG\r\n\x1a\n"
    assert a == b
    assert b"Software" not in a and b"matplotlib" not in a
    assert render_chart(_series(), median=0.03, threshold=0.2) != a
    empty = render_chart(_series().iloc[0:0], median=None, threshold=None)
    assert empty[:8] == b"\x89PNG\r\n\x1a\n" and empty == render_chart(_series().iloc[0:0], None, None)


def test_chart_draws_the_rule_threshold_next_to_the_recommendation():
    """The rollout chart's WARN-threshold line is a recommendation; the rule's own threshold is a line of its
    own, from the decision (the unknown_rate_median rule of the decided phase), and a key of the cache."""
    path = REPO / "config/policy_constants.yaml"
    cfg = load_decision_config(path.read_bytes(), str(path))
    decision = evaluate(seed001_runs(), cfg)
    assert reports.chart_rule_line(decision, cfg) == ("rule unknown_rate_median <= 0.15", 0.15)
    without = render_chart(_series(), median=0.03, threshold=0.1)
    with_rule = render_chart(
        _series(), median=0.03, threshold=0.1, rule=("rule unknown_rate_median <= 0.15", 0.15)
    )
    assert with_rule != without and with_rule[:8] == b"\x89PNG\r\n\x1a\n"
    assert chart_key(_series(), 0.03, 0.1, rule=("r", 0.15)) != chart_key(_series(), 0.03, 0.1)
    no_median_rule = cfg.model_copy(update={"phases": {}, "shared_rules": []})
    assert reports.chart_rule_line(decision, no_median_rule) is None


def test_report_md_contains_decision_rules_and_degrades():
    d = seed001_decision()
    md = render_report_md(d, STATS, "rollout_chart.png")
    assert (
        "**NO_GO** — NO_GO: 2 counted rule(s) failed, their intervals wholly past the threshold "
        "(fail_rate, warn_fail_rate_per_stratum)" in md
    )
    for r in d.rules:
        assert f"| {r.name} | {r.kind} |" in md
    assert "![unknown_rate over runs](rollout_chart.png)" in md
    assert "| name | n | min | median | max |" in md
    assert "| policy_hash=a6f53e | 40 | 0 | 0.045 | 0.09 |" in md
    assert "| flaky_test | 12 |" in md
    assert "## Strata\n\nNot computed." in md  # missing section degrades, says so
    assert "### risk" in md and "| risk_ratio | – |" in md
    assert "### warn_fail_rate_per_stratum per stratum" in md
    assert "| pinned | FAIL | 0.75 | 40 | 0.5078 – 0.922 |" in md
    assert "| unpinned | PASS | 0 | 40 | 0 – 0.09305 | – |" in md  # 0/40: the lower bound is exactly 0
    # every rule row names its interval method; the decision names how alpha is split
    assert "Method: anytime-valid confidence sequences (beta-binomial mixture, Howard et al. 2021)" in md
    assert "NO_GO: holm over 3 counted tests at family-wise alpha=0.04" in md
    fr = next(r for r in d.rules if r.name == "fail_rate")
    assert f"| {fr.method} |" in md and "Howard et al. 2021" in fr.method
    bare = render_report_md(d, None, None)
    # unknown_rate, classes, strata and the candidate-vs-baseline comparison each say so
    assert bare.count("Not computed.") == 4 and "Chart: not computed." in bare
    assert md == render_report_md(d, dict(reversed(list(STATS.items()))), "rollout_chart.png")


def test_ci_comment_is_compact_and_leads_with_the_deciders():
    d = seed001_decision()
    text = render_ci_comment(d)
    lines = text.rstrip("\n").split("\n")
    assert len(lines) <= 15
    assert lines[0] == "### Gate decision: NO_GO"
    assert "policy_hash `a6f53e` · phase observe → warn · 80 runs" in lines[1]
    assert lines[3] == (
        "_Intervals: anytime-valid confidence sequences; GO at alpha 0.05 per rule, NO_GO at family-wise 0.04 "
        "(holm, 3 tests), ROLLBACK at 0.01 (0 triggers)._"
    )
    # failing counted rules first (by name), then passing ones, then observe-only findings
    rule_lines = [ln for ln in lines if ln.startswith("- ")]
    assert rule_lines[0].startswith("- **FAIL** `fail_rate`: FAIL rate 30/80 = 37.5%")
    assert rule_lines[1].startswith("- **FAIL** `warn_fail_rate_per_stratum`")
    assert rule_lines[2].startswith("- **PASS** `min_evidence`")
    assert rule_lines[3].startswith("- FAIL `mean_overrides` (observe-only)")
    assert math.isclose(d.rules[0].observed, 30 / 80)


def test_normalize_json_error_paths():
    with pytest.raises(TypeError, match=r"^\$\.a\[2\]\.b: cannot put object into JSON$"):
        normalize_json({"a": [1, 2, {"b": object()}]})
    with pytest.raises(TypeError, match=r"^\$\.s\[\]: cannot put object into JSON$"):
        normalize_json({"s": {object()}})
    with pytest.raises(TypeError, match=r"^doc\.k: bytes cannot go into JSON"):
        normalize_json({"k": b"x"}, "doc")
    with pytest.raises(TypeError, match=r"^\$\.m: object keys must be strings, got int$"):
        normalize_json({"m": {1: 2}})
    # Subclasses and numpy scalars still take the general path.
    assert normalize_json((True, pd.NA, np.float64(0.1 + 0.2), np.int64(3))) == [True, None, 0.3, 3]


def _big_series(days=10, per_day=500, spikes=((2, 7), (5, 11))):
    """per_day runs a day; on every day run k has unknown_rate k / 1000 (k = 0..per_day-1); (day, k) spikes
    get 0.9 instead."""
    rows = []
    for d in range(days):
        for k in range(per_day):
            spike = (d, k) in spikes
            rows.append(
                {
                    "timestamp": T0 + pd.Timedelta(days=d, seconds=60 * k),
                    "run_id": f"d{d:02d}-r{k:04d}",
                    "unknown_rate": 0.9 if spike else k / 1000,
                    "is_spike": spike,
                }
            )
    return pd.DataFrame(rows)


def test_daily_aggregates_by_hand():
    daily = daily_unknown_rate(_big_series(days=3, per_day=5, spikes=()).sample(frac=1.0, random_state=1))
    # Each day holds 0, .001, .002, .003, .004: median .002; p5 = .001 * 0.05 * 4 = .0002; p95 = .0038.
    assert list(daily.index.strftime("%Y-%m-%d")) == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert daily["n"].tolist() == [5, 5, 5]
    assert daily["median"].tolist() == pytest.approx([0.002] * 3)
    assert daily["p5"].tolist() == pytest.approx([0.0002] * 3)
    assert daily["p95"].tolist() == pytest.approx([0.0038] * 3)


def test_large_chart_is_daily_and_byte_stable():
    series = _big_series()
    assert len(series) == 5000 > CHART_MAX_POINTS
    a = render_chart(series, median=0.25, threshold=0.6)
    b = render_chart(
        series.sample(frac=1.0, random_state=5).reset_index(drop=True), median=0.25, threshold=0.6
    )
    assert a[:8] == b"\x89PNG\r\n\x1a\n" and a == b
    assert b"Software" not in a
    # The aggregated chart differs from a per-run chart of the same data and reacts to the threshold line.
    assert a != render_chart(series, median=0.25, threshold=0.6, max_points=len(series))
    assert a != render_chart(series, median=0.25, threshold=0.5)


def test_chart_switches_to_daily_above_max_points():
    s = _series()
    per_run = render_chart(s, median=0.03, threshold=0.1)
    assert render_chart(s, median=0.03, threshold=0.1, max_points=len(s)) == per_run
    daily = render_chart(s, median=0.03, threshold=0.1, max_points=len(s) - 1)
    assert daily != per_run and daily == render_chart(s.iloc[::-1], median=0.03, threshold=0.1, max_points=11)


def _manifest_by_hand(rows: list[tuple]) -> str:
    lines = sorted("\t".join("" if v is None else str(v) for v in row) for row in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def test_artifact_manifest_hash_by_hand_and_row_order():
    rows = [
        ("2026-03-02/r2", "g2", None, "m2"),
        ("2026-03-01/r1", "g1", "d1", None),
        ("2026-03-01/r0", "g0", "d0", "m0"),
    ]
    df = pd.DataFrame(rows, columns=["run_path", "gate_sha256", "drift_sha256", "metrics_sha256"])
    text = "2026-03-01/r0\tg0\td0\tm0\n2026-03-01/r1\tg1\td1\t\n2026-03-02/r2\tg2\t\tm2"
    expected = hashlib.sha256(text.encode()).hexdigest()
    assert artifact_manifest_sha256(df) == expected == _manifest_by_hand(rows)
    assert artifact_manifest_sha256(df.iloc[::-1].assign(extra=1)) == expected
    # A NaN cell is not None: it hashes as "nan", exactly like the per-row formula.
    nan_rows = [*rows[:2], ("2026-03-01/r0", "g0", "d0", float("nan"))]
    nan_df = pd.DataFrame(nan_rows, columns=df.columns)
    assert artifact_manifest_sha256(nan_df) == _manifest_by_hand(nan_rows) != expected


@pytest.mark.parametrize(
    "paths",
    [
        ["a/r1", "a/r10", "a/r1x", "a/r", "b/r1", "é/r", "e/r"],  # distinct: ordered by run_path alone
        ["a/r1", "a/r1\x01", "a/r1\t", "a/r10", "a/r"],  # a character at or below the tab: whole lines sort
        ["a/r1", "a/r1", "a/r0", "a/r2"],  # a repeated run_path: whole lines sort
    ],
    ids=["distinct", "control-characters", "repeated"],
)
def test_artifact_manifest_hash_in_slices_equals_the_whole_text(monkeypatch, paths):
    rows = [(p, f"g{i % 3}", None if i % 2 else f"d{i}", "m") for i, p in enumerate(paths)]
    table = pa.Table.from_pandas(pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)))
    expected = _manifest_by_hand(rows)
    for size in (1, 2, 3, 1000):  # slices of the sorted lines, the last one shorter or whole
        monkeypatch.setattr(provenance_lib, "_MANIFEST_CHUNK", size)
        assert artifact_manifest_sha256(table) == expected, size


def test_artifact_manifest_hash_from_arrow_equals_the_frame():
    # Tabs, newlines and control characters inside values, non-ASCII, nulls: the same lines in the same order.
    rows = [
        ("2026-03-02/r2", "g2", None, "m2"),
        ("2026-03-01/r1", "g1", "d1", None),
        ("2026-03-01/r1", "g1\t", "d1", None),
        ("2026-03-01/r1", "g1\x01", "d\n", ""),
        ("é/r9", "ü", "", None),
        ("e/r9", "z", None, None),
    ]
    df = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    table = pa.Table.from_pandas(df)
    assert artifact_manifest_sha256(table) == artifact_manifest_sha256(df) == _manifest_by_hand(rows)
    # Several chunks, and extra columns, change nothing.
    chunked = pa.concat_tables([table.slice(0, 2), table.slice(2)]).append_column("extra", pa.array([1] * 6))
    assert artifact_manifest_sha256(chunked) == _manifest_by_hand(rows)
    # An all-null column is Arrow type null; no rows hash the empty text.
    nulls = df.assign(metrics_sha256=None)
    assert pa.Table.from_pandas(nulls).schema.field("metrics_sha256").type == pa.null()
    assert artifact_manifest_sha256(pa.Table.from_pandas(nulls)) == artifact_manifest_sha256(nulls)
    assert artifact_manifest_sha256(table.slice(0, 0)) == hashlib.sha256(b"").hexdigest()
    # A column that is not text takes the frame's path (str() of each value).
    numbers = df.assign(metrics_sha256=range(6))
    assert artifact_manifest_sha256(pa.Table.from_pandas(numbers)) == artifact_manifest_sha256(numbers)


def _parquet(rows: list[tuple], row_group_size: int) -> io.BytesIO:
    buf = io.BytesIO()
    table = pa.Table.from_pandas(pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)), preserve_index=False)
    pq.write_table(table, buf, row_group_size=row_group_size)
    buf.seek(0)
    return buf


@pytest.mark.parametrize("size", [1, 2, 3, 1000])
def test_manifest_hash_of_the_stored_file_a_row_group_at_a_time(size):
    # Time order is not run_path order: a run_path smaller than ones already read comes in a later row group.
    paths = [
        "2026-03-01/r5",
        "2026-03-01/r2",
        "2026-03-02/r1",
        "2026-03-01/r9",
        "é/r",
        "2026-03-03/r0",
        "e/r",
    ]
    rows = [(p, f"g{i}", None if i % 2 else f"d{i}", "m") for i, p in enumerate(paths)]
    assert file_manifest_sha256(_parquet(rows, size)) == _manifest_by_hand(rows)
    assert stored_manifest_sha256(_parquet(rows, size)) == _manifest_by_hand(rows)
    assert stored_manifest_sha256(_parquet(rows[:0], size)) == hashlib.sha256(b"").hexdigest()
    # Where run_paths alone do not give the order, the file is hashed whole, to the same hash.
    for odd in (
        [*rows, ("2026-03-01/r2", "g0", None, "m")],  # repeated (in another row group)
        [*rows, ("2026-03-01/r2\x01", "g", None, "m")],  # a character at or below the tab
        [*rows, (None, "g", None, "m")],  # null
    ):
        assert file_manifest_sha256(_parquet(odd, size)) is None
        assert stored_manifest_sha256(_parquet(odd, size)) == _manifest_by_hand(odd)


def test_chart_key_follows_everything_the_chart_draws():
    s = _series()
    key = chart_key(s, 0.03, 0.1)
    assert len(key) == 64 and key == chart_key(s.copy(), 0.03, 0.1)
    bumped = s.copy()
    bumped.loc[2, "unknown_rate"] += 1e-12
    flipped = s.assign(is_spike=~s["is_spike"])
    later = s.assign(timestamp=s["timestamp"] + pd.Timedelta(seconds=1))
    renamed = s.assign(run_id=[f"x{i}" for i in range(len(s))])
    others = [
        chart_key(s, 0.03, 0.2),
        chart_key(s, 0.04, 0.1),
        chart_key(s, None, 0.1),
        chart_key(s, 0.03, 0.1, max_points=5),
        chart_key(bumped, 0.03, 0.1),
        chart_key(flipped, 0.03, 0.1),
        chart_key(later, 0.03, 0.1),
        chart_key(renamed, 0.03, 0.1),
        chart_key(s.iloc[:-1], 0.03, 0.1),
    ]
    assert len({key, *others}) == len(others) + 1
    # Timestamps are keyed as the chart reads them: the same instants in another zone are the same chart.
    assert chart_key(s.assign(timestamp=s["timestamp"].dt.tz_convert("Europe/Berlin")), 0.03, 0.1) == key
    assert chart_key(s.assign(run_id=range(len(s))), 0.03, 0.1) is None  # not text: no key, always render
    assert chart_key(s.iloc[0:0], None, None) is not None


def test_chart_key_hashes_the_chart_code_only(tmp_path, monkeypatch):
    s = _series()
    key = chart_key(s, 0.03, 0.1)
    # Editing the Markdown (or JSON) code keeps stored charts...
    other_markdown = tmp_path / "markdown.py"
    other_markdown.write_text("# edited\n")
    monkeypatch.setattr(reports.markdown, "__file__", str(other_markdown))
    assert chart_key(s, 0.03, 0.1) == key
    # ...editing the chart code does not.
    other_chart = tmp_path / "chart.py"
    other_chart.write_bytes(Path(reports.chart.__file__).read_bytes() + b"# edited\n")
    monkeypatch.setattr(reports.chart, "__file__", str(other_chart))
    assert chart_key(s, 0.03, 0.1) != key


def _plain_series(n: int = 12) -> pd.DataFrame:
    """A small run series without gaps (the chart cache key needs text run ids)."""
    return pd.DataFrame(
        {
            "timestamp": [T0 + pd.Timedelta(hours=i) for i in range(n)],
            "run_id": [f"r{i:02d}" for i in range(n)],
            "unknown_rate": [0.5 if i in (3, 8) else 0.02 * (i % 4) for i in range(n)],
            "is_spike": [i in (3, 8) for i in range(n)],
        }
    )


def test_chart_is_reused_while_its_inputs_are_unchanged(tmp_path, monkeypatch):
    data = Store.at(tmp_path)
    series = _plain_series()
    png, reused = reports.chart_png(data, series, 0.03, 0.1)
    assert not reused and png == reports.render_chart(series, 0.03, 0.1)

    renders = []
    real_render = reports.chart.render_chart

    def counting_render(*args, **kwargs):
        renders.append(args[1:])
        return real_render(*args, **kwargs)

    monkeypatch.setattr(reports.chart, "render_chart", counting_render)
    again, reused = reports.chart_png(data, series.copy(), 0.03, 0.1)
    assert reused and again == png and renders == []

    # Another threshold line is another chart: rendered, and it replaces the stored one.
    other, reused = reports.chart_png(data, series, 0.03, 0.2)
    assert not reused and other != png and renders == [(0.03, 0.2)]
    assert reports.chart_png(data, series, 0.03, 0.2) == (other, True)

    # A damaged cache entry is ignored and rewritten.
    blob = data.read_bytes(reports.CHART_CACHE)
    data.write_bytes(blob[:-10], reports.CHART_CACHE)
    assert reports.chart_png(data, series, 0.03, 0.2) == (other, False)
    assert reports.chart_png(data, series, 0.03, 0.2) == (other, True)


def test_chart_without_a_key_is_always_rendered(tmp_path):
    data = Store.at(tmp_path)
    series = _plain_series().assign(run_id=range(12))  # not text: no cache key
    first = reports.chart_png(data, series, 0.03, 0.1)
    assert first == (reports.render_chart(series, 0.03, 0.1), False)
    assert reports.chart_png(data, series, 0.03, 0.1) == first
    assert not data.exists(reports.CHART_CACHE)
