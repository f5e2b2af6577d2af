"""The decision step's helpers: the chart is rendered once per distinct input and reused byte for byte."""

import pandas as pd

from gate_pipeline.defs import decision
from gate_pipeline.lib import reports
from gate_pipeline.lib.storage import Store

T0 = pd.Timestamp("2026-03-01T00:00:00Z")


def _series(n: int = 12) -> pd.DataFrame:
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
    series = _series()
    png, reused = decision.chart_png(data, series, 0.03, 0.1)
    assert not reused and png == reports.render_chart(series, 0.03, 0.1)

    renders = []
    real_render = reports.render_chart

    def counting_render(*args, **kwargs):
        renders.append(args[1:])
        return real_render(*args, **kwargs)

    monkeypatch.setattr(reports, "render_chart", counting_render)
    again, reused = decision.chart_png(data, series.copy(), 0.03, 0.1)
    assert reused and again == png and renders == []

    # Another threshold line is another chart: rendered, and it replaces the stored one.
    other, reused = decision.chart_png(data, series, 0.03, 0.2)
    assert not reused and other != png and renders == [(0.03, 0.2)]
    assert decision.chart_png(data, series, 0.03, 0.2) == (other, True)

    # A damaged cache entry is ignored and rewritten.
    blob = data.read_bytes(decision.CHART_CACHE)
    data.write_bytes(blob[:-10], decision.CHART_CACHE)
    assert decision.chart_png(data, series, 0.03, 0.2) == (other, False)
    assert decision.chart_png(data, series, 0.03, 0.2) == (other, True)


def test_chart_without_a_key_is_always_rendered(tmp_path):
    data = Store.at(tmp_path)
    series = _series().assign(run_id=range(12))  # not text: no cache key
    first = decision.chart_png(data, series, 0.03, 0.1)
    assert first == (reports.render_chart(series, 0.03, 0.1), False)
    assert decision.chart_png(data, series, 0.03, 0.1) == first
    assert not data.exists(decision.CHART_CACHE)
