"""Phase lifecycle: the rollout phase of each policy as an append-only, hash-chained log on the storage.

``current_phase`` in the decision config is the starting phase only; the phase a policy is in is the fold of
``<out>/phase_log.jsonl`` (outputs root, beside the published decision it rests on; the data root holds derived
tables a rebuild may replace, the log is state that must survive that). One JSON object per line, canonical
(sorted keys): every transition with its time (UTC), from → to, policy_hash, the published decision and the
evidence hashes it rested on, who and a note. Each line carries the sha256 of the line before it, so a hand edit
or a truncated line is a clear :class:`PhaseLogError`, never a silent reset.

Changes take a lock (``phase_log.lock``, lib/store_lock.py), so two ``advance`` at once never both succeed.

Automatic advance (opt-in per phase in ``config/lifecycle.yaml``) needs GO on K consecutive evaluations (distinct
published decisions, recorded in ``phase_evaluations.jsonl``) spanning at least D hours, and no rollback of the
policy within the cooldown. Pure logic: no Dagster imports.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gate_pipeline.lib import rules
from gate_pipeline.lib.config import ConfigError, load_model
from gate_pipeline.lib.escape import md_text
from gate_pipeline.lib.rules import Decision, DecisionConfig
from gate_pipeline.lib.storage import Store, sha256_bytes
from gate_pipeline.lib.store_lock import LockBusy, break_stale_lock, iso, locked, parse_time

LOG_FILE = "phase_log.jsonl"
LOCK_FILE = "phase_log.lock"
EVALUATIONS_FILE = "phase_evaluations.jsonl"
METRICS_FILE = "rollout_metrics.json"
LIFECYCLE_FILE = "lifecycle.yaml"
#: Provenance keys of rollout_metrics.json an advance compares with the evidence as it is now.
EVIDENCE_KEYS: dict[str, str] = {
    "artifact_manifest_sha256": "the stored runs (artifact manifest)",
    "whitelist_sha256": "the whitelist",
    "config_sha256": "the decision/analysis config",
    "code_version": "the gate_pipeline version",
}
AUTO_BY = "auto (config/lifecycle.yaml)"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AutoAdvance(_Strict):
    """Hysteresis for leaving one phase without approval."""

    consecutive_go: int = Field(3, ge=1, description="GO on this many consecutive evaluations")
    min_hours: float = Field(24.0, ge=0, description="between the first and the last of those evaluations")


class LifecycleConfig(_Strict):
    """config/lifecycle.yaml: which phases advance automatically, cooldown after a rollback, the lock rule."""

    schema_version: Literal["1"] = "1"
    auto_advance: dict[str, AutoAdvance] = Field(
        default_factory=dict,
        description="phase -> hysteresis: leaving that phase needs no approval; phases not listed do",
    )
    rollback_cooldown_hours: float = Field(
        24.0, ge=0, description="no automatic advance of a policy this long after its last rollback"
    )
    stale_lock_seconds: int = Field(
        600, gt=0, description="a lock older than this is reported as stale and may be broken on request"
    )
    timeline_chart_rule: str = Field(
        "fail_rate", description="the rule whose value, interval and threshold decision_timeline.png draws"
    )
    timeline_max_days: int = Field(
        30,
        ge=0,
        description="decision_timeline covers the last this many days with runs (0 = all): each day is one "
        "evaluation of the rules (~0.5 s at 100k runs), which a cold build pays for every day",
    )


def load_lifecycle_config(raw: bytes | None, source: str, phase_order: list[str]) -> LifecycleConfig:
    """Validate lifecycle.yaml (all defaults when absent); auto_advance must name non-final phases."""

    def checks(cfg: LifecycleConfig) -> list[tuple[str, str]]:
        return [
            (f"auto_advance.{phase}", f"not a phase with a next phase in phase_order {phase_order}")
            for phase in cfg.auto_advance
            if phase not in phase_order[:-1]
        ]

    return load_model(raw or b"", source, LifecycleConfig, checks=checks, empty_is_default=True)


class LifecycleError(Exception):
    """A phase change that cannot be made; the message is what the operator reads."""


class PhaseLogError(LifecycleError):
    """The phase log (or evaluation log) is corrupt or was edited by hand."""


class Refused(LifecycleError):
    """A transition the evidence does not allow."""


class DecisionRef(_Strict):
    verdict: str
    current_phase: str
    next_phase: str | None
    rollout_metrics_sha256: str


class LogEntry(_Strict):
    seq: int
    at: str
    policy_hash: str
    action: Literal["advance", "rollback"]
    from_phase: str
    to_phase: str
    by: str
    note: str
    auto: bool
    decision: DecisionRef | None
    evidence: dict[str, str]
    prev_sha256: str


class Evaluation(_Strict):
    """One distinct published decision. ``at`` is the time of its latest evidence (the decision's last run),
    so the record is a function of the data; ``log_seq`` the number of log lines when it was recorded."""

    at: str
    log_seq: int
    policy_hash: str
    phase: str
    verdict: str
    rollout_metrics_sha256: str


def _lines(store: Store, name: str) -> list[bytes]:
    return store.read_bytes(name).splitlines() if store.exists(name) else []


_NEVER_RESET = (
    "the log is append-only and is never reset: restore the last good version (backup or bucket versioning)"
)


def _parse_line(store: Store, name: str, n: int, line: bytes, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(orjson.loads(line))
    except orjson.JSONDecodeError as exc:
        problem = f"not valid JSON ({exc})"
    except ValidationError as exc:
        problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    raise PhaseLogError(f"{store.url(name)}: line {n}: {problem}; {_NEVER_RESET}")


def read_log(store: Store, phase_order: list[str] | None = None) -> list[LogEntry]:
    """Every transition, checked: valid lines, seq 1..n, each line's prev_sha256 the hash of the line before,
    phases in ``phase_order`` (when given). Raises PhaseLogError naming the file and line."""
    entries: list[LogEntry] = []
    prev = ""
    for n, line in enumerate(_lines(store, LOG_FILE), start=1):
        entry = _parse_line(store, LOG_FILE, n, line, LogEntry)
        where = f"{store.url(LOG_FILE)}: line {n}"
        if entry.prev_sha256 != prev:
            raise PhaseLogError(
                f"{where}: prev_sha256 does not match line {n - 1} (the log was edited or reordered); {_NEVER_RESET}"
            )
        if entry.seq != n:
            raise PhaseLogError(f"{where}: seq {entry.seq}, expected {n}; {_NEVER_RESET}")
        unknown = {entry.from_phase, entry.to_phase} - set(phase_order or [entry.from_phase, entry.to_phase])
        if unknown:
            raise PhaseLogError(f"{where}: phase(s) {sorted(unknown)} not in phase_order {phase_order}")
        entries.append(entry)
        prev = sha256_bytes(line)
    return entries


def phases(entries: list[LogEntry], start_phase: str) -> dict[str, str]:
    """The phase of every policy that has a transition (others are in ``start_phase``): the fold of the log."""
    state: dict[str, str] = {}
    for entry in entries:
        was = state.get(entry.policy_hash, start_phase)
        if entry.from_phase != was:
            raise PhaseLogError(
                f"{LOG_FILE}: line {entry.seq}: moves policy {entry.policy_hash} from {entry.from_phase!r}, "
                f"but the lines before leave it in {was!r}; {_NEVER_RESET}"
            )
        state[entry.policy_hash] = entry.to_phase
    return state


def read_evaluations(store: Store) -> list[Evaluation]:
    return [
        _parse_line(store, EVALUATIONS_FILE, n, line, Evaluation)
        for n, line in enumerate(_lines(store, EVALUATIONS_FILE), start=1)
    ]


def published_decision(outputs: Store) -> dict[str, Any]:
    """The latest published decision (rollout_metrics.json): verdict, phases, policy, provenance, sha256."""
    if not outputs.exists(METRICS_FILE):
        raise Refused(f"no published decision at {outputs.url(METRICS_FILE)}: run `gate-pipeline run` first")
    raw = outputs.read_bytes(METRICS_FILE)
    doc = orjson.loads(raw)
    decision = doc["decision"]
    return {
        "verdict": decision["verdict"],
        "at": decision.get("last_run_at") or decision.get("evaluated_at"),
        "why": decision.get("why", ""),
        "policy_hash": doc.get("policy_hash"),
        "current_phase": decision["current_phase"],
        "next_phase": decision.get("next_phase"),
        "provenance": doc.get("provenance", {}),
        "sha256": sha256_bytes(raw),
    }


def _append(store: Store, name: str, payload: dict[str, Any]) -> bytes:
    line = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    old = store.read_bytes(name) if store.exists(name) else b""
    store.write_bytes(old + line + b"\n", name)
    return line


def _entry(
    store: Store,
    entries: list[LogEntry],
    now: datetime,
    policy: str,
    action: str,
    frm: str,
    to: str,
    **kw: Any,
) -> dict[str, Any]:
    lines = _lines(store, LOG_FILE)
    return {
        "seq": len(entries) + 1,
        "at": iso(now),
        "policy_hash": policy,
        "action": action,
        "from_phase": frm,
        "to_phase": to,
        "prev_sha256": sha256_bytes(lines[-1]) if lines else "",
        **kw,
    }


def _check_advance(doc: dict[str, Any], phase: str, evidence: Callable[[], dict[str, str]]) -> None:
    policy = doc["policy_hash"]
    if doc["verdict"] != "GO":
        raise Refused(f"the latest decision for policy {policy} is {doc['verdict']}, not GO: {doc['why']}")
    if doc["current_phase"] != phase:
        raise Refused(
            f"the latest decision is about {doc['current_phase']} → {doc['next_phase']}, but policy {policy} is "
            f"in phase {phase} now: decide again on its rules (`gate-pipeline backfill`) and advance on that"
        )
    if doc["next_phase"] is None:
        raise Refused(f"policy {policy} is in the final phase {phase}: nothing to advance to")
    evidence_now = evidence()
    changed = [
        f"{label} ({str(doc['provenance'].get(key))[:12]} → {str(evidence_now.get(key))[:12]})"
        for key, label in EVIDENCE_KEYS.items()
        if doc["provenance"].get(key) != evidence_now.get(key)
    ]
    if changed:
        raise Refused(
            "the evidence changed since the latest decision: "
            + ", ".join(changed)
            + "; re-run the decision (`gate-pipeline run`, or `gate-pipeline backfill` after a whitelist or "
            "config edit) and advance on that"
        )


def _decision_ref(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc[k] for k in ("verdict", "current_phase", "next_phase")} | {
        "rollout_metrics_sha256": doc["sha256"]
    }


def advance(
    outputs: Store,
    *,
    by: str,
    note: str,
    evidence_now: Callable[[], dict[str, str]],
    phase_order: list[str],
    start_phase: str,
    stale_lock_seconds: int,
    now: datetime | None = None,
    auto: bool = False,
) -> LogEntry:
    """Record current → next phase for the published decision's policy, if it is GO for the phase the
    policy is in and the evidence it rested on is unchanged (``evidence_now()``: the provenance as it is now,
    asked for only once the decision itself allows the advance)."""
    now = now or datetime.now(UTC)
    with locked(outputs, LOCK_FILE, by, stale_lock_seconds, now):
        entries = read_log(outputs, phase_order)
        doc = published_decision(outputs)
        policy = doc["policy_hash"]
        if policy is None:
            raise Refused("the latest decision names no policy_hash (no runs of any policy yet)")
        phase = phases(entries, start_phase).get(policy, start_phase)
        _check_advance(doc, phase, evidence_now)
        entry = _entry(
            outputs, entries, now, policy, "advance", phase, doc["next_phase"], by=by, note=note, auto=auto,
            decision=_decision_ref(doc), evidence={k: doc["provenance"][k] for k in EVIDENCE_KEYS},
        )  # fmt: skip
        _append(outputs, LOG_FILE, entry)
        return LogEntry.model_validate(entry)


def rollback(
    outputs: Store,
    *,
    by: str,
    note: str,
    phase_order: list[str],
    start_phase: str,
    stale_lock_seconds: int,
    policy_hash: str | None = None,
    now: datetime | None = None,
) -> LogEntry:
    """Record a rollback of a policy (default: the published decision's) to the phase before its current one
    (the first phase stays where it is; the rollback is recorded and starts the cooldown)."""
    now = now or datetime.now(UTC)
    with locked(outputs, LOCK_FILE, by, stale_lock_seconds, now):
        entries = read_log(outputs, phase_order)
        doc = published_decision(outputs) if outputs.exists(METRICS_FILE) else None
        policy = policy_hash or (doc or {}).get("policy_hash")
        if policy is None:
            raise Refused("no policy to roll back: pass --policy HASH (no published decision names one)")
        phase = phases(entries, start_phase).get(policy, start_phase)
        to = phase_order[max(phase_order.index(phase) - 1, 0)]
        rests_on = doc is not None and doc["policy_hash"] == policy
        entry = _entry(
            outputs, entries, now, policy, "rollback", phase, to, by=by, note=note, auto=False,
            decision=_decision_ref(doc) if rests_on else None,
            evidence={k: doc["provenance"][k] for k in EVIDENCE_KEYS} if rests_on else {},
        )  # fmt: skip
        _append(outputs, LOG_FILE, entry)
        return LogEntry.model_validate(entry)


def auto_advance_due(
    evaluations: list[Evaluation],
    entries: list[LogEntry],
    policy: str,
    phase: str,
    rule: AutoAdvance,
    cooldown_hours: float,
    now: datetime,
) -> tuple[bool, str]:
    """Hysteresis: GO on ``rule.consecutive_go`` consecutive evaluations of ``policy`` in ``phase`` since it
    entered that phase, spanning ``rule.min_hours``, and no rollback within ``cooldown_hours``."""
    mine = [e for e in entries if e.policy_hash == policy]
    entered = mine[-1].seq if mine else 0
    rollbacks = [parse_time(e.at) for e in mine if e.action == "rollback"]
    if rollbacks and now - rollbacks[-1] < timedelta(hours=cooldown_hours):
        return False, f"cooldown: rolled back at {iso(rollbacks[-1])}, cooldown {cooldown_hours:g} h"
    streak: list[Evaluation] = []
    for ev in reversed([e for e in evaluations if e.policy_hash == policy and e.phase == phase]):
        if ev.verdict != "GO" or ev.log_seq < entered:
            break
        streak.append(ev)
    if len(streak) < rule.consecutive_go:
        return False, f"GO on {len(streak)} consecutive evaluation(s), needs {rule.consecutive_go}"
    span = (parse_time(streak[0].at) - parse_time(streak[-1].at)).total_seconds() / 3600
    if span < rule.min_hours:
        return False, f"GO streak spans {span:.1f} h, needs {rule.min_hours:g} h"
    return True, f"GO on {len(streak)} consecutive evaluations over {span:.1f} h"


def observe_decision(
    outputs: Store,
    cfg: LifecycleConfig,
    *,
    evidence_now: Callable[[], dict[str, str]],
    phase_order: list[str],
    start_phase: str,
    now: datetime | None = None,
) -> str:
    """Record the published decision as an evaluation (once per distinct document) and advance its policy
    automatically when its phase opts in and the hysteresis holds. Returns what happened, for the log."""
    now = now or datetime.now(UTC)
    doc = published_decision(outputs)
    policy = doc["policy_hash"]
    if policy is None:
        return "no policy to track"
    with locked(outputs, LOCK_FILE, AUTO_BY, cfg.stale_lock_seconds, now):
        entries = read_log(outputs, phase_order)
        phase = phases(entries, start_phase).get(policy, start_phase)
        evaluations = read_evaluations(outputs)
        last = next((e for e in reversed(evaluations) if e.policy_hash == policy), None)
        if last is None or last.rollout_metrics_sha256 != doc["sha256"]:
            ev = Evaluation(
                at=doc["at"] or iso(now),
                log_seq=len(entries), policy_hash=policy, phase=doc["current_phase"], verdict=doc["verdict"],
                rollout_metrics_sha256=doc["sha256"],
            )  # fmt: skip
            _append(outputs, EVALUATIONS_FILE, ev.model_dump())
            evaluations.append(ev)
    rule = cfg.auto_advance.get(phase)
    if rule is None:
        return f"policy {policy} in {phase}: leaving it needs approval (`gate-pipeline advance --approve`)"
    due, why = auto_advance_due(evaluations, entries, policy, phase, rule, cfg.rollback_cooldown_hours, now)
    if not due:
        return f"policy {policy} in {phase}: no automatic advance yet ({why})"
    entry = advance(
        outputs, by=AUTO_BY, note=why, evidence_now=evidence_now, phase_order=phase_order,
        start_phase=start_phase, stale_lock_seconds=cfg.stale_lock_seconds, now=now, auto=True,
    )  # fmt: skip
    return f"policy {policy}: advanced {entry.from_phase} → {entry.to_phase} automatically ({why})"


def phases_at(entries: list[LogEntry], start_phase: str, until: datetime | None = None) -> dict[str, str]:
    """The fold of the transitions recorded up to ``until`` (all when None)."""
    return phases([e for e in entries if until is None or parse_time(e.at) <= until], start_phase)


def evaluate_in_phase(
    history: pd.DataFrame,
    cfg: DecisionConfig,
    entries: list[LogEntry],
    *,
    until: datetime | None = None,
    cache: rules.PrefixCache | None = None,
) -> Decision:
    """The decision for the phase the decided policy is in according to the log (``cfg.current_phase`` is
    only its starting phase): evaluated once to learn the policy, again when its phase differs. ``cache``:
    see :func:`rules.evaluate`."""
    decision = rules.evaluate(history, cfg, now=until, cache=cache)
    phase = phases_at(entries, cfg.current_phase, until).get(decision.policy_hash or "", cfg.current_phase)
    if phase == cfg.current_phase:
        return decision
    return rules.evaluate(history, cfg.model_copy(update={"current_phase": phase}), now=until, cache=cache)


def phase_rows(entries: list[LogEntry], start_phase: str) -> list[list[str]]:
    """One row per policy with a transition: policy, phase, since, by, transitions (Markdown table cells:
    the operator's text is escaped)."""
    rows: dict[str, list[str]] = {}
    state = phases(entries, start_phase)
    for e in entries:
        count = int(rows[e.policy_hash][4]) + 1 if e.policy_hash in rows else 1
        rows[e.policy_hash] = [md_text(e.policy_hash), state[e.policy_hash], e.at, md_text(e.by), str(count)]
    return list(rows.values())


def log_rows(entries: list[LogEntry]) -> list[list[str]]:
    """The log as Markdown table cells: who approved and the note are the operator's own text, escaped so
    that a note renders as the text it is (no HTML, link or mention) in the UI and the terminal."""
    return [
        [
            str(e.seq),
            e.at,
            md_text(e.policy_hash),
            e.action,
            f"{e.from_phase} → {e.to_phase}",
            md_text(e.by),
            md_text(e.note),
        ]
        for e in entries
    ]


__all__ = [
    "ConfigError",
    "LifecycleConfig",
    "LifecycleError",
    "LockBusy",
    "LOCK_FILE",
    "LogEntry",
    "PhaseLogError",
    "Refused",
    "advance",
    "auto_advance_due",
    "break_stale_lock",
    "load_lifecycle_config",
    "observe_decision",
    "phases",
    "published_decision",
    "read_log",
    "rollback",
]
