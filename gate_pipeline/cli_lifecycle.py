"""`gate-pipeline advance | rollback | phase`: the phase lifecycle from a terminal (logic: lib/lifecycle.py).

gate-pipeline advance --approve --by NAME [--note TEXT]   current → next phase on a GO with unchanged evidence
gate-pipeline rollback --by NAME [--note TEXT] [--policy HASH]   back one phase, recorded (starts the cooldown)
gate-pipeline phase [--break-stale-lock]                  the phase of each policy and the transition log
Exit status: 0 done, 1 refused (the reason is printed), 2 bad input (config or a corrupt log).
"""

from __future__ import annotations

import argparse
import sys

from gate_pipeline.lib import lifecycle
from gate_pipeline.lib.config import ConfigError
from gate_pipeline.lib.reports.markdown_table import markdown_table
from gate_pipeline.lib.store_lock import LockBusy

LOCATION_FLAGS = (
    ("--artifacts", "artifact root (default: as for run)"),
    ("--out", "outputs location, where phase_log.jsonl lives (default: as for run)"),
    ("--config", "config folder (default: as for run)"),
    ("--data", "intermediate tables (default: <out>/_data)"),
)


def _context(args: argparse.Namespace):
    from gate_pipeline.cli import _settings
    from gate_pipeline.defs.lifecycle import lifecycle_config
    from gate_pipeline.defs.resources import GateStorage

    storage = GateStorage.from_settings(_settings(args))
    cfg, _ = storage.decision_config()
    return storage, cfg, lifecycle_config(storage, cfg)


def _run(verb: str, action) -> int:
    try:
        print(action())
    except lifecycle.PhaseLogError as exc:
        print(f"{verb} refused: the phase log is corrupt: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"{verb} refused: bad config:\n{exc}", file=sys.stderr)
        return 2
    except (lifecycle.LifecycleError, LockBusy) as exc:
        print(f"{verb} refused: {exc}", file=sys.stderr)
        return 1
    return 0


def _done(entry: lifecycle.LogEntry, outputs) -> str:
    what = "advanced" if entry.action == "advance" else "rolled back"
    return (
        f"policy {entry.policy_hash}: {what} {entry.from_phase} → {entry.to_phase} by {entry.by} at {entry.at}"
        f"{f' ({entry.note})' if entry.note else ''}; recorded in {outputs.url(lifecycle.LOG_FILE)}.\n"
        f"Decide on the {entry.to_phase} phase's rules with `gate-pipeline backfill` (or the next run with new "
        "days; in Dagster the decision shows as out of date once the phase log is observed)."
    )


def _transition(verb: str, args: argparse.Namespace) -> int:
    """advance or rollback of the decided policy (rollback: or --policy), as the log's next line."""

    def action() -> str:
        from gate_pipeline.defs.lifecycle import evidence_now

        storage, cfg, lc = _context(args)
        outputs = storage.outputs()
        common = {
            "by": args.by,
            "note": args.note,
            "phase_order": cfg.phase_order,
            "start_phase": cfg.current_phase,
            "stale_lock_seconds": lc.stale_lock_seconds,
        }
        if verb == "advance":
            entry = lifecycle.advance(outputs, evidence_now=lambda: evidence_now(storage), **common)
        else:
            entry = lifecycle.rollback(outputs, policy_hash=args.policy, **common)
        return _done(entry, outputs)

    return _run(verb, action)


def cmd_advance(args: argparse.Namespace) -> int:
    if not args.approve:
        print("advance refused: an advance needs --approve (and --by NAME)", file=sys.stderr)
        return 1
    return _transition("advance", args)


def cmd_rollback(args: argparse.Namespace) -> int:
    return _transition("rollback", args)


def cmd_phase(args: argparse.Namespace) -> int:
    def action() -> str:
        storage, cfg, lc = _context(args)
        outputs = storage.outputs()
        if args.break_stale_lock:
            return lifecycle.break_stale_lock(outputs, lifecycle.LOCK_FILE, lc.stale_lock_seconds)
        entries = lifecycle.read_log(outputs, cfg.phase_order)
        lines = [f"starting phase (policy_constants.yaml current_phase): {cfg.current_phase}"]
        rows = lifecycle.phase_rows(entries, cfg.current_phase)
        decided = lifecycle.published_decision(outputs) if outputs.exists(lifecycle.METRICS_FILE) else None
        if decided and decided["policy_hash"] and decided["policy_hash"] not in {r[0] for r in rows}:
            rows.append([decided["policy_hash"], cfg.current_phase, "—", "—", "0"])
        header = ["policy_hash", "phase", "since (UTC)", "by", "transitions"]
        lines += ["", markdown_table(header, rows) if rows else "no policy has a phase yet"]
        if decided:
            lines.append(
                f"\nlatest decision: {decided['verdict']} for policy {decided['policy_hash']} "
                f"({decided['current_phase']} → {decided['next_phase'] or '(final)'})"
            )
        auto = ", ".join(
            f"{phase} (GO on {rule.consecutive_go} consecutive decisions over {rule.min_hours:g} h)"
            for phase, rule in lc.auto_advance.items()
        )
        lines.append(f"automatic advance from: {auto or 'no phase (every advance needs approval)'}")
        if entries:
            header = ["#", "at (UTC)", "policy_hash", "action", "phase", "by", "note"]
            lines += [
                "",
                f"log {outputs.url(lifecycle.LOG_FILE)}:",
                markdown_table(header, lifecycle.log_rows(entries)),
            ]
        return "\n".join(lines)

    return _run("phase", action)


def add_parsers(sub) -> None:
    """The lifecycle subcommands, added to `gate-pipeline`'s subparsers."""
    advance = sub.add_parser("advance", help="advance the decided policy to its next phase (needs a GO)")
    advance.add_argument("--approve", action="store_true", help="approve the advance (required)")
    rollback = sub.add_parser("rollback", help="record a rollback of a policy to its previous phase")
    rollback.add_argument("--policy", default=None, help="policy_hash (default: the latest decision's)")
    for parser in (advance, rollback):
        parser.add_argument("--by", required=True, help="operator name, recorded in the log")
        parser.add_argument("--note", default="", help="why, recorded in the log")
    phase = sub.add_parser("phase", help="print the phase of each policy and the transition log")
    phase.add_argument(
        "--break-stale-lock",
        action="store_true",
        help="remove a phase-change lock older than stale_lock_seconds",
    )
    for parser, func in ((advance, cmd_advance), (rollback, cmd_rollback), (phase, cmd_phase)):
        for flag, help_text in LOCATION_FLAGS:
            parser.add_argument(flag, default=None, help=help_text)
        parser.set_defaults(func=func)
