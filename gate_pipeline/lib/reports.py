"""The outputs people and CI read: rollout_metrics.json, the PNG chart, rollout_series_v1.md, ci_comment.md.

Pure logic: no Dagster imports. Everything here is deterministic: same inputs, same bytes.

``statistics`` is an opaque JSON-able dict produced by the statistics assets. The Markdown report renders
these sections by name when present and says "not computed" when absent:

* ``unknown_rate_by_group``: list of ``{name, n, min, median, max, ...}`` (or a dict ``{group_by: [...]}``),
* ``class_frequencies``: list of ``{name, count, ...}``,
* ``strata``: list of ``{name, n, ...}``.

Any other top-level statistics key is rendered generically under "Further statistics".
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from pydantic import BaseModel

from gate_pipeline.lib.rules import Decision, RuleResult
from gate_pipeline.lib.storage import Store, sha256_bytes

PROVENANCE_KEYS: tuple[str, ...] = (
    "artifact_manifest_sha256",
    "code_version",
    "config_sha256",
    "whitelist_sha256",
)
SIGNIFICANT_DIGITS = 10
KNOWN_SECTIONS: tuple[tuple[str, str], ...] = (
    ("unknown_rate_by_group", "unknown_rate min / median / max per group"),
    ("class_frequencies", "Unknown class frequencies"),
    ("strata", "Strata"),
)
CHART_SIZE_INCHES = (10.0, 4.0)
CHART_DPI = 100
#: Above this many runs the chart shows per-day aggregates instead of one point per run.
CHART_MAX_POINTS = 2000
#: The daily band (p5, p95) around the daily median.
CHART_BAND_QUANTILES: tuple[float, float, float] = (0.05, 0.5, 0.95)
CHART_MARGINS = {"left": 0.07, "right": 0.985, "bottom": 0.14, "top": 0.92}
MAX_TABLE_ROWS = 50
PREFERRED_COLUMNS: tuple[str, ...] = (
    "name",
    "group",
    "n",
    "count",
    "share",
    "min",
    "p50",
    "median",
    "p95",
    "max",
)
MAX_COMMENT_RULES = 8


# --------------------------------------------------------------------------------------------------
# rollout_metrics.json
# --------------------------------------------------------------------------------------------------


def _round_sig(x: float) -> float | None:
    if not math.isfinite(x):
        # JSON has no NaN/inf; null means "not computable" (documented in the schema).
        return None
    r = float(f"{x:.{SIGNIFICANT_DIGITS}g}")
    return 0.0 if r == 0 else r  # no "-0.0"


class _Unjsonable(Exception):
    """Raised deep inside normalization; collects the path on the way out (paths are only built on error)."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem
        self.parts: list[str] = []


def normalize_json(obj: Any, path: str = "$") -> Any:
    """Make ``obj`` canonical JSON data: floats rounded to 10 significant digits, NaN/inf -> null,
    numpy/pandas scalars unwrapped, timestamps as ISO-8601 UTC, lists of objects with a ``name`` sorted by
    name, sets sorted. Raises TypeError naming the path of anything else."""
    try:
        return _norm(obj)
    except _Unjsonable as e:
        raise TypeError(f"{path}{''.join(reversed(e.parts))}: {e.problem}") from None


def _norm_items(items: Any, part: Callable[[int], str]) -> list[Any]:
    try:
        return [_norm(v) for v in items]
    except _Unjsonable:
        # Rare error path: find the first failing element again to name its position.
        for i, v in enumerate(items):
            try:
                _norm(v)
            except _Unjsonable as e:
                e.parts.append(part(i))
                raise e from None
        raise


def _norm(obj: Any) -> Any:
    t = type(obj)
    # Fast paths for the plain JSON types (exact types; subclasses take the general path below).
    if t is str or t is int or t is bool or obj is None:
        return obj
    if t is float:
        return _round_sig(obj)
    if t is dict:
        return _norm_mapping(obj)
    if t is list:
        return _norm_sequence(obj)
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, BaseModel):
        return _norm(obj.model_dump(mode="json"))
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _round_sig(float(obj))
    if isinstance(obj, str):
        return obj
    if isinstance(obj, bytes | bytearray):
        raise _Unjsonable("bytes cannot go into JSON; decode or hash them first")
    if isinstance(obj, pd.Timestamp | datetime):
        ts = pd.Timestamp(obj)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return (
            ts.strftime("%Y-%m-%dT%H:%M:%SZ")
            if ts.microsecond == 0
            else ts.isoformat().replace("+00:00", "Z")
        )
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, Mapping):
        return _norm_mapping(obj)
    if isinstance(obj, set | frozenset):
        items = _norm_items(list(obj), lambda i: "[]")
        return sorted(items, key=lambda v: orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
    if isinstance(obj, Sequence | np.ndarray):
        return _norm_sequence(obj)
    raise _Unjsonable(f"cannot put {type(obj).__name__} into JSON")


def _norm_mapping(obj: Mapping) -> dict[str, Any]:
    out = {}
    for k, v in obj.items():
        if not isinstance(k, str):
            raise _Unjsonable(f"object keys must be strings, got {type(k).__name__}")
        try:
            out[k] = _norm(v)
        except _Unjsonable as e:
            e.parts.append(f".{k}")
            raise
    return out


def _norm_sequence(obj: Any) -> list[Any]:
    items = _norm_items(obj, lambda i: f"[{i}]")
    if items and all(type(v) is dict and "name" in v for v in items):
        # Arrays of named things are sorted by name so CI diffs are stable (seed 001).
        items.sort(key=lambda v: (str(v["name"]), orjson.dumps(v, option=orjson.OPT_SORT_KEYS)))
    return items


def rollout_metrics_document(
    decision: Decision, statistics: Mapping[str, Any], provenance: Mapping[str, Any], schema_version: str
) -> dict[str, Any]:
    """Build the rollout_metrics.json document (validates against schemas/rollout_metrics.schema.json).

    ``provenance`` must hold exactly: artifact_manifest_sha256, whitelist_sha256, config_sha256 (sha256 hex)
    and code_version."""
    missing = sorted(set(PROVENANCE_KEYS) - set(provenance))
    extra = sorted(set(provenance) - set(PROVENANCE_KEYS))
    if missing or extra:
        raise ValueError(f"provenance: missing keys {missing}, unknown keys {extra}")
    return normalize_json(
        {
            "schema_version": schema_version,
            "policy_hash": decision.policy_hash,
            "decision": decision,
            "statistics": dict(statistics),
            "provenance": dict(provenance),
        }
    )


def dumps_canonical(doc: Any) -> bytes:
    """Canonical bytes: normalized, sorted keys, 2-space indent, trailing newline."""
    return orjson.dumps(normalize_json(doc), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


# --------------------------------------------------------------------------------------------------
# Chart
# --------------------------------------------------------------------------------------------------


_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def _utc(ts: pd.Series) -> pd.Series:
    """Timestamps as UTC; a column that already is (the stored history) is returned as is, since
    ``to_datetime`` would build a Timestamp per value only to find that out."""
    return ts if ts.dtype == _UTC_NS else pd.to_datetime(ts, utc=True)


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def chart_key(
    series: pd.DataFrame,
    median: float | None,
    threshold: float | None,
    *,
    max_points: int = CHART_MAX_POINTS,
) -> str | None:
    """sha256 of everything :func:`render_chart` draws from: the plotted columns as it reads them, the lines,
    ``max_points``, this module's source and the matplotlib/Pillow versions. Same key, same PNG bytes, so a
    stored chart can be reused without importing matplotlib. None when a run_id is not text (then render)."""
    h = hashlib.sha256()
    for part in (
        Path(__file__).read_bytes(),
        _package_version("matplotlib").encode(),
        _package_version("pillow").encode(),
        repr((median, threshold, max_points, len(series))).encode(),
    ):
        h.update(_digest(part))
    ts = _utc(series["timestamp"])
    h.update(_digest(ts.to_numpy(dtype="datetime64[ns]").view("i8").tobytes()))
    rate = pd.to_numeric(series["unknown_rate"], errors="coerce").to_numpy(dtype=float)
    h.update(_digest(np.ascontiguousarray(rate).tobytes()))
    spikes = series["is_spike"].fillna(False).astype(bool).to_numpy()
    h.update(_digest(np.ascontiguousarray(spikes).tobytes()))
    run_ids = series["run_id"].to_numpy(dtype=object)
    if len(run_ids) and pd.api.types.infer_dtype(run_ids, skipna=False) != "string":
        return None
    h.update(_digest(orjson.dumps(run_ids.tolist())))
    return h.hexdigest()


def render_chart(
    series: pd.DataFrame,
    median: float | None,
    threshold: float | None,
    *,
    max_points: int = CHART_MAX_POINTS,
) -> bytes:
    """PNG of unknown_rate with the median line, the threshold line and spikes (``is_spike``) marked.

    Up to ``max_points`` runs: one point per run (ordered by timestamp, run_id). Above: per-day aggregates
    by the timestamp's UTC date (median line and p5–p95 band) plus every spike run as a marker at its
    timestamp, because 100k individual points are slow to draw and unreadable. Byte-stable for any input
    row order: fixed size/dpi, default style, no PNG metadata."""
    # Imported here: matplotlib costs ~0.8 s at import and only the report step draws.
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    aggregated = len(series) > max_points
    with matplotlib.style.context("default"):
        # style.context("default") shields the output from rcParams changed elsewhere in the process.
        fig = Figure(figsize=CHART_SIZE_INCHES, dpi=CHART_DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        if aggregated:
            _plot_daily(ax, series)
        else:
            _plot_runs(ax, series)
        if median is not None and math.isfinite(median):
            ax.axhline(median, color="#2ca02c", linestyle="--", linewidth=1.0, label=f"median {median:.3g}")
        if threshold is not None and math.isfinite(threshold):
            ax.axhline(
                threshold, color="#ff7f0e", linestyle=":", linewidth=1.5, label=f"threshold {threshold:.3g}"
            )
        ax.set_ylabel("unknown_rate")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize="small")
        if aggregated:
            # Fixed margins: tight_layout lays the text out twice and was ~40% of the large chart's time.
            fig.subplots_adjust(**CHART_MARGINS)
        else:
            fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=CHART_DPI, metadata={"Software": None})
    return buf.getvalue()


def _plot_runs(ax: Any, series: pd.DataFrame) -> None:
    """One point per run, x = position in (timestamp, run_id) order (small histories)."""
    df = series.copy()
    if len(df):
        df["timestamp"] = _utc(df["timestamp"])
        df = df.sort_values(["timestamp", "run_id"], kind="mergesort").reset_index(drop=True)
    x = np.arange(len(df), dtype=float)
    y = pd.to_numeric(df["unknown_rate"], errors="coerce").to_numpy(dtype=float) if len(df) else np.array([])
    spikes = df["is_spike"].fillna(False).astype(bool).to_numpy() if len(df) else np.array([], dtype=bool)
    if len(df):
        ax.plot(x, y, color="#1f77b4", linewidth=1.0, marker="o", markersize=3, label="unknown_rate")
        mask = spikes & np.isfinite(y)
        if mask.any():
            ax.scatter(x[mask], y[mask], color="#d62728", marker="x", s=60, zorder=3, label="spike")
    else:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("run (ordered by timestamp, run_id)")
    ax.set_title("unknown_rate over runs")


def daily_unknown_rate(series: pd.DataFrame) -> pd.DataFrame:
    """Per UTC date of ``timestamp``: n (runs with a finite unknown_rate), p5, median, p95 (linear
    interpolation), indexed by the day (tz-naive midnight UTC), sorted by day. Row order does not matter."""
    ts = _utc(series["timestamp"])
    y = pd.to_numeric(series["unknown_rate"], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(y) & ts.notna().to_numpy()
    frame = pd.DataFrame({"day": ts.dt.floor("D").dt.tz_localize(None).to_numpy()[ok], "y": y[ok]})
    grouped = frame.groupby("day", sort=True)["y"]
    out = grouped.quantile(list(CHART_BAND_QUANTILES)).unstack()
    out.columns = ["p5", "median", "p95"]
    out.insert(0, "n", grouped.size())
    return out


def _plot_daily(ax: Any, series: pd.DataFrame) -> None:
    """Per-day median with a p5–p95 band, plus every spike run at its own timestamp (large histories)."""
    import matplotlib.dates as mdates

    daily = daily_unknown_rate(series)
    # Daily values sit at noon so a day's spike markers scatter around its point.
    x = daily.index.to_numpy(dtype="datetime64[ns]") + np.timedelta64(12, "h")
    ax.fill_between(
        x,
        daily["p5"].to_numpy(),
        daily["p95"].to_numpy(),
        color="#1f77b4",
        alpha=0.25,
        linewidth=0,
        label="daily p5–p95",
    )
    ax.plot(x, daily["median"].to_numpy(), color="#1f77b4", linewidth=1.0, label="daily median")
    spikes = series[series["is_spike"].fillna(False).astype(bool).to_numpy()]
    sy = pd.to_numeric(spikes["unknown_rate"], errors="coerce").to_numpy(dtype=float)
    spikes = spikes.assign(_y=sy, timestamp=_utc(spikes["timestamp"]))
    spikes = spikes[np.isfinite(sy) & spikes["timestamp"].notna().to_numpy()]
    if len(spikes):
        # Sorted so the draw order (and so every pixel) is independent of the input row order.
        spikes = spikes.sort_values(["timestamp", "run_id"], kind="mergesort")
        ax.scatter(
            spikes["timestamp"].dt.tz_localize(None).to_numpy(dtype="datetime64[ns]"),
            spikes["_y"].to_numpy(),
            color="#d62728",
            marker="x",
            s=12,
            linewidths=0.8,
            zorder=3,
            label=f"spike ({len(spikes)} runs)",
        )
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("date (UTC)")
    ax.set_title(f"unknown_rate per day ({len(series)} runs, {len(daily)} days)")


# --------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list):
        return orjson.dumps(normalize_json(v), option=orjson.OPT_SORT_KEYS).decode().replace("|", "\\|")
    return str(v).replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows[:MAX_TABLE_ROWS]:
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    if len(rows) > MAX_TABLE_ROWS:
        lines.append(f"\n… {len(rows) - MAX_TABLE_ROWS} more rows in rollout_metrics.json")
    return lines


def _columns(keys: set[str]) -> list[str]:
    """Readable column order: identifiers and counts, then min/median/max, then the rest by name."""
    first = [k for k in PREFERRED_COLUMNS if k in keys]
    return first + sorted(keys - set(first))


def _render_any(obj: Any) -> list[str]:
    """Render a statistics section generically (tables for records, key/value for flat mappings)."""
    obj = normalize_json(obj)
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        header = _columns({k for r in obj for k in r})
        return _md_table(header, [[r.get(k) for k in header] for r in obj])
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        keys = [k for k in _columns({k for v in obj.values() for k in v}) if k != "name"]
        return _md_table(["name", *keys], [[name, *[obj[name].get(k) for k in keys]] for name in sorted(obj)])
    if isinstance(obj, dict) and obj and all(isinstance(v, list) for v in obj.values()):
        lines: list[str] = []
        for name in sorted(obj):
            lines += [f"**{name}**", "", *_render_any(obj[name]), ""]
        return lines[:-1]
    if isinstance(obj, dict) and obj:
        return _md_table(["key", "value"], [[k, obj[k]] for k in sorted(obj)])
    if isinstance(obj, list) and obj:
        return [f"- {_cell(v)}" for v in obj]
    if obj in (None, [], {}):
        return ["_empty_"]
    return [_cell(obj)]


def _rule_table(rules: Sequence[RuleResult]) -> list[str]:
    rows = []
    for r in rules:
        ci = (
            f"{_cell(r.ci_low)} – {_cell(r.ci_high)}"
            if r.ci_low is not None and r.ci_high is not None
            else "–"
        )
        cond = f"{r.comparator} {_cell(r.threshold)}" if r.comparator else "–"
        rows.append(
            [
                r.name,
                r.kind,
                "observe-only" if r.observe_only else "yes",
                r.verdict,
                r.observed,
                cond,
                ci,
                r.n,
                r.why,
            ]
        )
    return _md_table(["rule", "kind", "counted", "verdict", "observed", "condition", "CI", "n", "why"], rows)


def render_report_md(
    decision: Decision, statistics: Mapping[str, Any] | None, chart_filename: str | None
) -> str:
    """The human report rollout_series_v1.md: decision with every rule's value vs threshold and why,
    the chart, unknown_rate min/median/max per group, class frequencies, strata, further statistics.
    Missing statistics sections are shown as "not computed"."""
    stats = dict(statistics or {})
    d = decision
    nxt = d.next_phase or "(final phase)"
    out = [
        "# Rollout series report (v1)",
        "",
        f"- policy_hash: `{d.policy_hash or 'none'}` (selected: {d.policy_selection})"
        + (f", previous: `{d.previous_policy_hash}`" if d.previous_policy_hash else ""),
        f"- phase: {d.current_phase} → {nxt} (config `{d.config_name}`)",
        f"- evidence: {d.n_runs} runs"
        + (f" over {d.days:.1f} days" if d.days is not None else "")
        + (f", {d.first_run_at} to {d.last_run_at}" if d.first_run_at else ""),
        "",
        "## Decision",
        "",
        f"**{d.verdict}** — {d.why}",
        "",
        "Precedence over counted rules: ROLLBACK > NO_GO > HOLD > GO; observe-only rules are reported, not counted.",
        "",
        *_rule_table(d.rules),
    ]
    for r in d.rules:
        if r.strata:
            out += ["", f"### {r.name} per stratum", ""]
            out += _md_table(
                ["stratum", "verdict", "observed", "n", "CI", "why"],
                [
                    [
                        s.name,
                        s.verdict,
                        s.observed,
                        s.n,
                        f"{_cell(s.ci_low)} – {_cell(s.ci_high)}" if s.ci_low is not None else "–",
                        s.why,
                    ]
                    for s in r.strata
                ],
            )
    out += ["", "## unknown_rate over runs", ""]
    out.append(f"![unknown_rate over runs]({chart_filename})" if chart_filename else "Chart: not computed.")
    for key, title in KNOWN_SECTIONS:
        out += ["", f"## {title}", ""]
        out += _render_any(stats[key]) if key in stats else ["Not computed."]
    others = sorted(k for k in stats if k not in {k for k, _ in KNOWN_SECTIONS})
    if others:
        out += ["", "## Further statistics"]
        for key in others:
            out += ["", f"### {key}", "", *_render_any(stats[key])]
    return "\n".join(out) + "\n"


_ORDER = {"ROLLBACK": 0, "FAIL": 1, "HOLD": 2, "PASS": 3}


def render_ci_comment(decision: Decision) -> str:
    """Compact PR comment (<= ~15 lines): decision, policy_hash, phase transition, deciding rules first."""
    d = decision
    counted = sorted((r for r in d.rules if not r.observe_only), key=lambda r: (_ORDER[r.verdict], r.name))
    observed_only = [r for r in d.rules if r.observe_only and r.verdict != "PASS"]
    shown = counted[:MAX_COMMENT_RULES]
    lines = [
        f"### Gate decision: {d.verdict}",
        f"policy_hash `{d.policy_hash or 'none'}` · phase {d.current_phase} → {d.next_phase or '(final)'} · "
        f"{d.n_runs} runs" + (f" over {d.days:.1f} days" if d.days is not None else ""),
        d.why,
        "",
    ]
    lines += [f"- **{r.verdict}** `{r.name}`: {r.why}" for r in shown]
    room = MAX_COMMENT_RULES - len(shown)
    lines += [f"- {r.verdict} `{r.name}` (observe-only): {r.why}" for r in observed_only[: max(room, 0)]]
    hidden = len(counted) - len(shown) + len(observed_only) - min(len(observed_only), max(room, 0))
    if hidden > 0:
        lines.append(f"- … {hidden} more rule(s) in rollout_series_v1.md")
    return "\n".join(lines) + "\n"


__all__ = [
    "CHART_MAX_POINTS",
    "PROVENANCE_KEYS",
    "chart_key",
    "daily_unknown_rate",
    "dumps_canonical",
    "normalize_json",
    "render_chart",
    "render_ci_comment",
    "render_report_md",
    "rollout_metrics_document",
]


#: Data-store file holding the last chart: "<chart key> <png sha256>\n" + PNG bytes.
CHART_CACHE = "rollout_chart_cache.bin"


def chart_png(
    data: Store, series: pd.DataFrame, median: float | None, threshold: float | None
) -> tuple[bytes, bool]:
    """The chart PNG and whether it was reused: rendering (and importing matplotlib) only when what it
    draws changed since the stored chart (same key, same bytes; e.g. a whitelist backfill or a decision
    config edit). A cache entry whose PNG does not match its recorded hash is ignored."""
    key = chart_key(series, median, threshold)
    if key is not None and data.exists(CHART_CACHE):
        head, _, png = data.read_bytes(CHART_CACHE).partition(b"\n")
        if head == f"{key} {sha256_bytes(png)}".encode():
            return png, True
    png = render_chart(series, median, threshold)
    if key is not None:
        data.write_bytes(f"{key} {sha256_bytes(png)}\n".encode() + png, CHART_CACHE)
    return png, False


def chart_inputs(history: pd.DataFrame, statistics: dict) -> tuple[pd.DataFrame, float | None, float | None]:
    """The series with spikes (per policy_hash) marked, and the candidate policy's median and recommended WARN
    threshold (None until it has enough runs)."""
    # Every run above its policy's spike bound (the statistics document lists only the highest spikes).
    spikes = statistics.get("spikes", {})
    bounds = {p["policy_hash"]: p["bound"] for p in spikes.get("by_policy", []) if p.get("bound") is not None}
    if bounds:
        labels = (
            history["policy_hash"]
            .astype(object)
            .where(history["policy_hash"].notna(), spikes["null_group_label"])
        )
        is_spike = history["unknown_rate"].gt(labels.map(bounds).astype(float)).fillna(False)
    else:
        is_spike = False
    series = history[["timestamp", "run_id", "unknown_rate"]].assign(is_spike=is_spike)
    threshold = statistics.get("warn_threshold", {}).get("threshold")
    median = statistics.get("warn_threshold", {}).get("median")
    return series, median, threshold
