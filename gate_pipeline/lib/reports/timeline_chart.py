"""decision_timeline.png: the verdict band over the days, with the chart rule's interval and threshold."""

from __future__ import annotations

import io

import pandas as pd

from gate_pipeline.lib.reports.chart import CHART_DPI, CHART_SIZE_INCHES

VERDICT_COLORS = {"GO": "#2ca02c", "HOLD": "#ffbf00", "NO_GO": "#d62728", "ROLLBACK": "#7f0000"}


def render_timeline_chart(timeline: pd.DataFrame) -> bytes:
    """PNG: one band per day coloured by its verdict (bottom strip), the chart rule's observed value with its
    interval, and its threshold as a step line (it changes with the phase). Byte-stable like chart.py."""
    import matplotlib.dates as mdates
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    days = pd.to_datetime(timeline["date"]).to_numpy()
    width = pd.Timedelta(days=1).to_numpy()
    with matplotlib.style.context("default"):
        fig = Figure(figsize=CHART_SIZE_INCHES, dpi=CHART_DPI)
        FigureCanvasAgg(fig)
        band, ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 5]})
        for day, verdict in zip(days, timeline["verdict"], strict=True):
            band.axvspan(day, day + width, color=VERDICT_COLORS.get(verdict, "#7f7f7f"), linewidth=0)
        band.set_yticks([])
        band.set_ylabel("verdict", rotation=0, ha="right", va="center")
        band.legend(
            handles=[Patch(color=c, label=v) for v, c in VERDICT_COLORS.items()],
            loc="upper center", bbox_to_anchor=(0.5, 1.9), ncol=4, fontsize="small", frameon=False,
        )  # fmt: skip
        mid = days + width / 2
        observed = timeline["observed"].astype(float).to_numpy()
        low, high = timeline["ci_low"].astype(float).to_numpy(), timeline["ci_high"].astype(float).to_numpy()
        rule = str(timeline["chart_rule"].iloc[0]) if len(timeline) else ""
        ax.fill_between(mid, low, high, color="#1f77b4", alpha=0.2, linewidth=0, label="interval")
        ax.plot(mid, observed, color="#1f77b4", marker="o", markersize=3, linewidth=1.2, label=rule)
        ax.step(mid, timeline["threshold"].astype(float).to_numpy(), where="mid", color="#ff7f0e",
                linestyle=":", linewidth=1.5, label="threshold")  # fmt: skip
        ax.set_ylabel(rule)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize="small")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
        fig.autofmt_xdate()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=CHART_DPI, metadata={"Software": None})
    return buf.getvalue()
