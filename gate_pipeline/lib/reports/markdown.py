"""rollout_series_v1.md: the decision with every rule, the chart, and the statistics sections.

``statistics`` is an opaque JSON-able dict produced by the statistics assets. The report renders these
sections by name when present and says "not computed" when absent:

* ``unknown_rate_by_group``: list of ``{name, n, min, median, max, ...}`` (or a dict ``{group_by: [...]}``),
* ``class_frequencies``: list of ``{name, count, ...}``,
* ``strata``: list of ``{name, n, ...}``.

Any other top-level statistics key is rendered generically under "Further statistics".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from gate_pipeline.lib.escape import md_code, md_text
from gate_pipeline.lib.reports.canonical import normalize_json
from gate_pipeline.lib.reports.markdown_table import markdown_table
from gate_pipeline.lib.rules import Decision, RuleResult

KNOWN_SECTIONS: tuple[tuple[str, str], ...] = (
    ("unknown_rate_by_group", "unknown_rate min / median / max per group"),
    ("class_frequencies", "Unknown class frequencies"),
    ("strata", "Strata"),
)
BASELINE_SECTION = "baseline_comparison"
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


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list):
        return md_text(orjson.dumps(normalize_json(v), option=orjson.OPT_SORT_KEYS).decode())
    return md_text(v)


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = markdown_table(header, [[_cell(v) for v in row] for row in rows[:MAX_TABLE_ROWS]]).split("\n")
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
            lines += [f"**{md_text(name)}**", "", *_render_any(obj[name]), ""]
        return lines[:-1]
    if isinstance(obj, dict) and obj:
        return _md_table(["key", "value"], [[k, obj[k]] for k in sorted(obj)])
    if isinstance(obj, list) and obj:
        return [f"- {_cell(v)}" for v in obj]
    if obj in (None, [], {}):
        return ["_empty_"]
    return [_cell(obj)]


def _interval(method: str | None, lo: float | None, hi: float | None) -> str:
    """The interval a verdict rests on; an unbounded side (too few runs for its level) is ±∞."""
    if method is None:
        return "–"
    return f"{'−∞' if lo is None else _cell(lo)} – {'+∞' if hi is None else _cell(hi)}"


def _rule_table(rules: Sequence[RuleResult]) -> list[str]:
    rows = []
    for r in rules:
        ci = _interval(r.ci_method, r.ci_low, r.ci_high)
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
                r.method or "–",
                r.why,
            ]
        )
    header = ["rule", "kind", "counted", "verdict", "observed", "condition", "interval", "n", "method", "why"]
    return _md_table(header, rows)


def _baseline_lines(doc: Mapping[str, Any] | None, methods: Mapping[str, Any] | None) -> list[str]:
    """The candidate pair of the baseline_comparison section: pooled vs standardized difference per metric,
    per stratum, the exclusions, and the methods by name."""
    if not doc:
        return ["Not computed."]
    cand, base = doc.get("candidate"), doc.get("baseline")
    if doc.get("status") != "ok":
        return [f"No comparison: {md_text(doc.get('status'))} (candidate {md_code(cand or 'none')})."]
    pair = [r for r in doc.get("comparisons", []) if (r["policy_hash"], r["baseline_hash"]) == (cand, base)]
    out = [
        f"Candidate {md_code(cand)} against baseline {md_code(base)}, by {md_text(doc.get('strata_column'))}; "
        "difference = candidate − baseline (negative: the candidate has the lower rate).",
        "",
    ]
    out += _md_table(
        [
            "metric",
            "candidate",
            "baseline",
            "pooled diff",
            "pooled interval",
            "standardized diff",
            "standardized interval",
            "se",
            "mix distance",
            "Simpson's paradox",
        ],
        [
            [
                r["metric"],
                f"{r['candidate_events']}/{r['candidate_compared']}",
                f"{r['baseline_events']}/{r['baseline_compared']}",
                r["pooled_diff"],
                _interval("newcombe", r["pooled_ci_low"], r["pooled_ci_high"])
                if r["pooled_diff"] is not None
                else "–",
                r["standardized_diff"],
                _interval("mover", r["standardized_ci_low"], r["standardized_ci_high"])
                if r["standardized_diff"] is not None
                else r["standardized_status"],
                r["standardized_se"],
                r["mix_distance"],
                "**yes**" if r["simpsons_paradox"] else "no",
            ]
            for r in pair
        ],
    )
    for w in doc.get("warnings", []):
        out += ["", f"**Warning {md_text(w['name'])}**: {md_text(w['message'])}"]
    strata = [r for r in doc.get("strata", []) if (r["policy_hash"], r["baseline_hash"]) == (cand, base)]
    out += ["", "Per stratum:", ""]
    out += _md_table(
        [
            "metric",
            "stratum",
            "candidate",
            "candidate share",
            "baseline",
            "baseline share",
            "weight",
            "rate diff",
            "treatment",
        ],
        [
            [
                r["metric"],
                r["stratum"],
                f"{r['candidate_events']}/{r['candidate_compared']}",
                r["candidate_share"],
                f"{r['baseline_events']}/{r['baseline_compared']}",
                r["baseline_share"],
                r["weight"],
                r["rate_diff"],
                r["treatment"],
            ]
            for r in strata
        ],
    )
    counts = pair[0] if pair else {}
    out += [
        "",
        "Runs: "
        + "; ".join(
            f"{side} {counts.get(f'{side}_runs', 0)} = {counts.get(f'{side}_compared', 0)} compared + "
            f"{counts.get(f'{side}_excluded', 0)} excluded + {counts.get(f'{side}_outcome_null', 0)} without outcome"
            for side in ("candidate", "baseline")
        )
        + f". Every run with its status: {md_text(doc.get('compared_runs_file'))}.",
        "",
    ]
    exclusions = [
        r for r in doc.get("exclusions", []) if (r["policy_hash"], r["baseline_hash"]) == (cand, base)
    ]
    out += (
        _md_table(
            ["exclusion", "side", "runs", "by class"],
            [[r["exclusion"], r["side"], r["runs"], r["classes"]] for r in exclusions],
        )
        if exclusions
        else ["No exclusions configured."]
    )
    if methods:
        out += [
            "",
            "Methods: "
            + "; ".join(
                f"{k.replace('_', ' ')}: {md_text(methods[k])}"
                for k in (
                    "pooled_difference",
                    "standardized_difference",
                    "standardized_interval",
                    "standardized_se",
                    "empty_strata",
                    "simpsons_paradox",
                )
                if k in methods
            )
            + ".",
        ]
    return out


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
        f"- policy_hash: {md_code(d.policy_hash or 'none')} (selected: {d.policy_selection})"
        + (f", previous: {md_code(d.previous_policy_hash)}" if d.previous_policy_hash else ""),
        f"- phase: {d.current_phase} → {nxt} (config `{d.config_name}`)",
        f"- evidence: {d.n_runs} runs"
        + (f" over {d.days:.1f} days" if d.days is not None else "")
        + (f", {d.first_run_at} to {d.last_run_at}" if d.first_run_at else ""),
        "",
        "## Decision",
        "",
        f"**{d.verdict}** — {md_text(d.why)}",
        "",
        *(f"- **Warning {w.name}** ({w.metric}): {md_text(w.message)}" for w in d.warnings),
        *([""] if d.warnings else []),
        "Precedence over counted rules: ROLLBACK > NO_GO > HOLD > GO; observe-only rules are reported, not counted.",
        "",
        f"Method: {d.method.description}",
        "",
        *_rule_table(d.rules),
    ]
    for r in d.rules:
        if r.strata:
            out += ["", f"### {md_text(r.name)} per stratum", ""]
            out += _md_table(
                ["stratum", "verdict", "observed", "n", "interval", "runs needed", "why"],
                [
                    [
                        s.name,
                        s.verdict,
                        s.observed,
                        s.n,
                        _interval(r.ci_method if s.observed is not None else None, s.ci_low, s.ci_high),
                        "–" if s.runs_needed is None else s.runs_needed,
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
    out += ["", "## Candidate against baseline policy", ""]
    out += _baseline_lines(stats.get(BASELINE_SECTION), (stats.get("methods") or {}).get(BASELINE_SECTION))
    others = sorted(k for k in stats if k not in {k for k, _ in KNOWN_SECTIONS} | {BASELINE_SECTION})
    if others:
        out += ["", "## Further statistics"]
        for key in others:
            out += ["", f"### {key}", "", *_render_any(stats[key])]
    return "\n".join(out) + "\n"
