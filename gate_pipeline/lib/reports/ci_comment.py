"""ci_comment.md: the compact PR comment (decision, policy, phase, the deciding rules first)."""

from __future__ import annotations

from gate_pipeline.lib.escape import md_code, md_text
from gate_pipeline.lib.rules import Decision

MAX_COMMENT_RULES = 8

_ORDER = {"ROLLBACK": 0, "FAIL": 1, "HOLD": 2, "PASS": 3}


def render_ci_comment(decision: Decision) -> str:
    """Compact PR comment (<= ~15 lines): decision, policy_hash, phase transition, named warnings (e.g.
    simpsons_paradox), deciding rules first.
    Every value that can come from an artifact is escaped (lib/escape.py): it renders as text, never as
    Markdown, HTML or a mention."""
    d = decision
    counted = sorted((r for r in d.rules if not r.observe_only), key=lambda r: (_ORDER[r.verdict], r.name))
    observed_only = [r for r in d.rules if r.observe_only and r.verdict != "PASS"]
    shown = counted[:MAX_COMMENT_RULES]
    lines = [
        f"### Gate decision: {d.verdict}",
        f"policy_hash {md_code(d.policy_hash or 'none')} · phase {d.current_phase} → {d.next_phase or '(final)'} · "
        f"{d.n_runs} runs" + (f" over {d.days:.1f} days" if d.days is not None else ""),
        md_text(d.why, line_start=True),
        *(f"- **Warning {w.name}** ({w.metric}): {md_text(w.message)}" for w in d.warnings),
        _method_line(d),
        "",
    ]
    lines += [f"- **{r.verdict}** {md_code(r.name)}: {md_text(r.why)}" for r in shown]
    room = MAX_COMMENT_RULES - len(shown)
    lines += [
        f"- {r.verdict} {md_code(r.name)} (observe-only): {md_text(r.why)}"
        for r in observed_only[: max(room, 0)]
    ]
    hidden = len(counted) - len(shown) + len(observed_only) - min(len(observed_only), max(room, 0))
    if hidden > 0:
        lines.append(f"- … {hidden} more rule(s) in rollout_series_v1.md")
    return "\n".join(lines) + "\n"


def _method_line(d: Decision) -> str:
    m = d.method
    kind = "anytime-valid confidence sequences" if m.interval == "sequential" else "fixed-sample intervals"
    return (
        f"_Intervals: {kind}; GO at alpha {m.alpha_go:g} per rule, NO_GO at family-wise {m.alpha_no_go:g} "
        f"({m.multiplicity}, {m.no_go_tests} tests), ROLLBACK at {m.alpha_rollback:g} "
        f"({m.rollback_tests} trigger{'s' if m.rollback_tests != 1 else ''})._"
    )
