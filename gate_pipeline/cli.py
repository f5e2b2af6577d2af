"""`gate-pipeline`: materialize the whole asset graph for an artifact root, from a terminal or a CI step.

gate-pipeline run --artifacts <path|s3://…> --out <path|s3://…> [--config <dir>] [--data <path|s3://…>]
gate-pipeline whatif --config <candidate config dir> [--name NAME] [--out …]   (reads no artifact)
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from fsspec.implementations.local import LocalFileSystem

from gate_pipeline import cli_lifecycle, preflight
from gate_pipeline.lib import runlock
from gate_pipeline.lib.daily import DAILY_ASSETS, forget_day, stop_worker_support, stored_days
from gate_pipeline.lib.discovery import (
    date_window,
    dump_cursor,
    list_top_level,
    load_cursor,
    scan_for_changes,
)
from gate_pipeline.progress import RunProgress, Totals
from gate_pipeline.settings import Settings, project_root

# With --exit-code the process exit status reflects the decision, for use as a CI step.
EXIT_CODES = {"GO": 0, "HOLD": 3, "NO_GO": 4, "ROLLBACK": 5}
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT), as shells report it: 128 + 2


def _ensure_dagster_home() -> Path:
    """A persistent instance, so `make ui` later shows what the CLI materialized."""
    home = Path(os.environ.get("DAGSTER_HOME") or project_root() / "var" / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    template = project_root() / "dagster.yaml"
    if not (home / "dagster.yaml").exists() and template.exists():
        shutil.copyfile(template, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _settings(args: argparse.Namespace) -> Settings:
    data = args.data or (f"{args.out.rstrip('/')}/_data" if args.out else None)
    return Settings.from_env(
        artifacts_url=args.artifacts, outputs_url=args.out, config_url=args.config, data_url=data
    )


RUN_CURSOR = "run_cursor.json"
MAX_LISTED = 20  # ignored top-level entries printed one per line; the rest are counted
PROGRESS_INTERVAL = 30.0  # seconds between progress lines in CI logs (not a terminal)


def _locked(command=None, *, dagster_run: bool = True):
    """Check config, storage and environment first (gate_pipeline/preflight.py: one message, exit 2), then
    run the command holding the locks of its Dagster instance and (local) data folder (lib/runlock.py).
    A failure outside the Dagster run prints one line; --verbose shows the traceback. A command that starts
    no Dagster run (``dagster_run=False``: what-if) reads no artifact, so the artifact root is not checked,
    and holds the data folder's lock only."""
    if command is None:
        return functools.partial(_locked, dagster_run=dagster_run)

    @functools.wraps(command)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            settings = _settings(args)
            preflight.check(settings, dagster_run=dagster_run)
            folders = [_ensure_dagster_home()] if dagster_run else []
            data = settings.store(settings.data_url)
            if isinstance(data.fs, LocalFileSystem):
                folders.append(Path(data.root.path))
            with runlock.hold(folders):
                return command(args)
        except (preflight.PreflightError, *preflight.CONFIG_ERRORS) as exc:
            if args.verbose:
                raise
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return wrapper


@_locked
def cmd_run(args: argparse.Namespace) -> int:
    """Materialize the days that are new or changed since the last run (all days on the first run or --full).

    Every date folder inside the date window is listed and fingerprinted on every run (not only the sensor's
    lookback), so a file added, changed or deleted in any day, and a deleted or emptied day, is seen; days
    that are gone are removed from the data store. The outputs then equal a clean run of the current inputs.
    """
    from gate_pipeline.definitions import ALL_ASSETS_JOB
    from gate_pipeline.summary import print_summary

    settings = _settings(args)
    data = settings.store(settings.data_url)
    root = settings.store(settings.artifacts_url).root
    pipeline = settings.pipeline_config()
    today = datetime.now(UTC).date()
    first, last = date_window(pipeline.partitions.start_date, pipeline.partitions.max_future_days, today)
    top = list_top_level(root)
    inside, refused = top.accounted(first, last)
    previous = (
        None
        if args.full or not data.exists(RUN_CURSOR)
        else load_cursor(data.read_bytes(RUN_CURSOR).decode())
    )
    # Valid whatever the window: a folder entering it is a new day, one leaving it is a gone day below.
    cursor = previous or None
    scan = scan_for_changes(root, cursor, today=today, lookback_days=0, settle_seconds=0, days=inside)
    days = sorted(change.date for change in scan.changed)
    for entry, reason, detail in refused[:MAX_LISTED]:
        print(f"gate-pipeline: ignored {entry}: {reason} ({detail})", file=sys.stderr)
    if len(refused) > MAX_LISTED:
        print(
            f"gate-pipeline: … and {len(refused) - MAX_LISTED} more ignored top-level entries",
            file=sys.stderr,
        )
    present = {d for d, listing in scan.listings.items() if listing.file_count}
    gone = [d for d in stored_days(data) if d not in present]
    if not present:
        print(
            f"error: no date folders (YYYY-MM-DD) under {settings.artifacts_url} hold any file",
            file=sys.stderr,
        )
        if refused:
            print(f"  {len(refused)} top-level entr(ies) ignored, see above", file=sys.stderr)
        return 2
    for day in gone:
        forget_day(data, day)
    _sync_partitions(sorted(present), gone)
    entries = [[name, reason] for name, reason, _ in refused]  # not the detail: it names today's window
    if not days and not gone and cursor is not None and cursor.get("entries") == entries:
        print(
            f"gate-pipeline: nothing new under {settings.artifacts_url} since the last run (--full rebuilds)"
        )
    else:
        if days:
            what = f"all {len(days)}" if cursor is None else f"{len(days)} new or changed"
            print(
                f"gate-pipeline: materializing {what} day(s) {days[0]}..{days[-1]} from {settings.artifacts_url}"
            )
        if gone:
            print(f"gate-pipeline: {len(gone)} day(s) no longer present, removed: {', '.join(gone)}")
        runs = sum(len(scan.listings[d].run_folders) for d in days if d in scan.listings)
        result = _execute(settings, ALL_ASSETS_JOB, days, args.verbose, _progress(args, len(days), runs))
        if not result.success:
            return 1
        print(f"artifact files read: {files_read(result)}")
        data.write_bytes(dump_cursor({**scan.cursor, "entries": entries}).encode(), RUN_CURSOR)
    decision = print_summary(settings)
    return EXIT_CODES[decision["verdict"]] if args.exit_code else 0


def _progress(args: argparse.Namespace, days: int, runs: int | None) -> RunProgress | None:
    """Progress on stderr for the run about to start, unless --quiet (gate_pipeline/progress.py)."""
    if args.quiet:
        return None
    return RunProgress(Totals(days=days, runs=runs), interval=args.progress_interval)


def _sync_partitions(present: list[str], gone: list[str]) -> None:
    """The instance's day partitions follow the date folders: each one with files is a partition (an
    instance from before dynamic partitions gets its days here), a removed one is dropped."""
    import dagster as dg

    from gate_pipeline.dagster_helpers.partitions import forget_days, register_days

    with dg.DagsterInstance.get() as instance:
        forget_days(instance, gone)
        register_days(instance, present)


def _execute(
    settings: Settings,
    job_name: str,
    days: list[str],
    verbose: bool = False,
    progress: RunProgress | None = None,
):
    import dagster as dg

    from gate_pipeline.dagster_helpers.partitions import key_range, register_days
    from gate_pipeline.definitions import build_definitions
    from gate_pipeline.defs.config import unchanged_config_sources
    from gate_pipeline.defs.resources import GateStorage

    home = _ensure_dagster_home()
    defs = build_definitions(settings)
    job = defs.resolve_job_def(job_name)
    # No day to (re)build (days were only removed): the unpartitioned assets alone, from the stored days.
    skip = set() if days else {dg.AssetKey(name) for name in DAILY_ASSETS}
    with dg.DagsterInstance.get() as instance:
        tags = {}
        if days:
            register_days(instance, days)  # dynamic partitions: a day is a partition once it has data
            first, last = key_range(instance, days)
            tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
        # A config file that has not changed since its last observation is not observed again.
        unchanged = unchanged_config_sources(instance, GateStorage.from_settings(settings))
        selection = [
            key for key in job.asset_layer.selected_asset_keys if key not in unchanged and key not in skip
        ]
        # The full event log is in the instance (and the UI); the terminal gets warnings unless --verbose.
        level = "INFO" if verbose else "WARNING"
        run_config = {"loggers": {"console": {"config": {"log_level": level}}}}
        run_id = str(uuid.uuid4())  # known before the run starts, to follow its events
        with progress or contextlib.nullcontext():
            if progress is not None:  # the run's events, as they are stored, also go to the progress display
                instance.add_event_listener(run_id, progress)
            result = job.execute_in_process(
                instance=instance,
                tags=tags,
                run_config=run_config,
                raise_on_error=False,
                asset_selection=selection,
                run_id=run_id,
            )
    print(f"dagster run {result.run_id} ({'success' if result.success else 'FAILED'}), instance {home}")
    if _interrupted(result):
        raise KeyboardInterrupt  # Dagster turned the Ctrl-C into a failed run; main() reports it once
    if not result.success:
        for event in result.all_events:
            if event.is_failure:
                print(f"  {event.step_key}: {event.message}{_root_cause(event)}", file=sys.stderr)
    return result


def _interrupted(result) -> bool:
    """Whether the run failed because it was interrupted (SIGINT, or SIGTERM which Dagster maps to it)."""
    if result.success:
        return False
    reasons = [
        getattr(getattr(e.event_specific_data, "failure_reason", None), "value", None)
        for e in result.all_events
        if e.event_type_value == "PIPELINE_FAILURE"
    ]
    return "UNEXPECTED_TERMINATION" in reasons


def files_read(result) -> int:
    """Artifact files the run's daily step read (from its materialization metadata)."""
    from gate_pipeline.defs.ingest import CLASSIFIED_RUNS, FILES_READ, RAW_RUNS  # noqa: F401

    counts = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if (
            materialization.asset_key in (RAW_RUNS, CLASSIFIED_RUNS)
            and FILES_READ in materialization.metadata
        ):
            counts[materialization.asset_key] = materialization.metadata[FILES_READ].value
    return max(counts.values(), default=0)  # the same step's count, on each asset it materialized


def _root_cause(event) -> str:
    """The innermost error message of a failed step (e.g. which stored file is corrupt and what recovers)."""
    if not event.is_step_failure:
        return ""
    error = event.step_failure_data.error
    while error is not None and (error.cause or error.context) is not None:
        error = error.cause or error.context
    return f"\n    cause: {error.message.strip()}" if error is not None else ""


@_locked
def cmd_backfill(args: argparse.Namespace) -> int:
    """Re-classify all stored history after a whitelist (or analysis/decision config) change, in one run."""
    import orjson

    from gate_pipeline.definitions import RECLASSIFY_JOB
    from gate_pipeline.lib.reports import key_figures
    from gate_pipeline.summary import print_summary

    settings = _settings(args)
    data, outputs = settings.store(settings.data_url), settings.store(settings.outputs_url)
    days = [n.removesuffix(".parquet") for n in data.list_names("run_table") if n.endswith(".parquet")]
    if not days:
        print(
            f"error: no stored run tables under {settings.data_url}; run `gate-pipeline run` first",
            file=sys.stderr,
        )
        return 2
    if days[0] < settings.pipeline_config().partitions.start_date:
        settings = settings.model_copy(update={"start_date": days[0]})
    before = (
        orjson.loads(outputs.read_bytes("rollout_metrics.json"))
        if outputs.exists("rollout_metrics.json")
        else None
    )
    print(
        f"gate-pipeline: re-classifying {len(days)} stored day(s) {days[0]}..{days[-1]} (no artifact is re-read)"
    )
    result = _execute(settings, RECLASSIFY_JOB, days, args.verbose, _progress(args, len(days), None))
    if not result.success:
        return 1
    print(f"artifact files read during the backfill: {files_read(result)}")
    decision = print_summary(settings)
    if before is not None:
        old = before["decision"]
        print(f"\nDecision before → after: {old['verdict']} → {decision['verdict']}")
        after = orjson.loads(outputs.read_bytes("rollout_metrics.json"))
        was, now = key_figures(before), key_figures(after)
        for label in [k for k in was if k != "verdict"]:
            print(f"{label}: {_figure(was[label])} → {_figure(now[label])}")
    return EXIT_CODES[decision["verdict"]] if args.exit_code else 0


@_locked(dagster_run=False)
def cmd_whatif(args: argparse.Namespace) -> int:
    """Replay the stored history under a candidate config beside the current one (lib/whatif.py): nothing
    live is written and no artifact is read; the results go to <out>/whatif/<name>/."""
    from gate_pipeline.lib import whatif

    settings = _settings(args)
    store = settings.store
    outputs = store(settings.outputs_url)
    try:
        name = whatif.check_name(args.name or whatif.default_name(args.candidate))
        configs = whatif.load_configs(store(settings.config_url), store(args.candidate))
        result = whatif.replay(store(settings.data_url), outputs, configs, name, days=args.days)
    except whatif.WhatIfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except preflight.CONFIG_ERRORS as exc:
        print(f"error: the candidate config is not valid:\n{exc}", file=sys.stderr)
        return 2
    files, info = whatif.outputs_of(result)
    urls = whatif.write(whatif.destination(outputs, name), files)
    print(whatif.summary_text(info, args.candidate))
    print("Outputs (nothing live was changed):")
    width = max(len(urls[path]) for path in whatif.LISTED)
    for path, what in whatif.LISTED.items():
        print(f"  {urls[path]:<{width}}  {what}")
    verdict = result.candidate.result.decision.verdict
    return EXIT_CODES[verdict] if args.exit_code else 0


def _figure(value: object) -> object:
    """A figure as printed: "n/a" when there is none (e.g. no WARN threshold under its minimum runs)."""
    return "n/a" if value is None else value


def cmd_generate(args: argparse.Namespace) -> int:
    from gate_pipeline import synthetic

    synthetic.main(args.rest)
    return 0


def _progress_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quiet", action="store_true", help="no progress on stderr (errors and the summary still print)"
    )
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=PROGRESS_INTERVAL,
        metavar="SECONDS",
        help="off a terminal (CI logs), print how far the run is every SECONDS "
        f"(default {PROGRESS_INTERVAL:g}; 0: only a line per stage)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gate-pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialize every asset for an artifact root and write the outputs")
    run.add_argument(
        "--artifacts",
        default=None,
        help="artifact root (default: $CI_ARTIFACT_PATH, else the bundled sample)",
    )
    run.add_argument(
        "--out", default=None, help="outputs location (default: $GATE_PIPELINE_OUT, else ./var/outputs)"
    )
    run.add_argument(
        "--config", default=None, help="config folder (default: $GATE_PIPELINE_CONFIG, else ./config)"
    )
    run.add_argument("--data", default=None, help="intermediate tables (default: <out>/_data)")
    run.add_argument(
        "--exit-code",
        action="store_true",
        help="exit with the decision: GO=0, HOLD=3, NO_GO=4, ROLLBACK=5 (1 = pipeline failed, 2 = bad input, "
        "130 = interrupted)",
    )
    run.add_argument("--verbose", action="store_true", help="print Dagster's event log")
    _progress_flags(run)
    run.add_argument(
        "--full", action="store_true", help="re-materialize every day, not only new or changed ones"
    )
    run.set_defaults(func=cmd_run)
    backfill = sub.add_parser(
        "backfill", help="re-classify all stored history after a whitelist/config change (reads no artifact)"
    )
    for flag, help_text in (
        ("--artifacts", "artifact root the history came from (default: as for run)"),
        ("--out", "outputs location (default: as for run)"),
        ("--config", "config folder (default: as for run)"),
        ("--data", "intermediate tables (default: <out>/_data)"),
    ):
        backfill.add_argument(flag, default=None, help=help_text)
    backfill.add_argument("--exit-code", action="store_true", help="exit with the decision, as for run")
    backfill.add_argument("--verbose", action="store_true", help="print Dagster's event log")
    _progress_flags(backfill)
    backfill.set_defaults(func=cmd_backfill)
    what = sub.add_parser(
        "whatif",
        help="replay the stored history under a candidate config beside the current one (reads no "
        "artifact, changes nothing live; writes <out>/whatif/<name>/)",
    )
    what.add_argument(
        "--config",
        dest="candidate",
        required=True,
        help="candidate config folder (local or s3://): the files to change (unknown_whitelist.json, "
        "policy_constants.yaml, analysis.yaml, lifecycle.yaml); the others are the current ones",
    )
    what.add_argument("--name", default=None, help="names <out>/whatif/<name>/ (default: the folder's name)")
    what.add_argument(
        "--days",
        type=int,
        default=None,
        help="replay the decision at the end of the last N days with runs (0 = all; default: "
        "lifecycle.timeline_max_days, as a backfill's decision timeline)",
    )
    for flag, dest, help_text in (
        ("--artifacts", "artifacts", "artifact root (default: as for run; never read)"),
        ("--out", "out", "outputs location (default: as for run); results go to <out>/whatif/<name>/"),
        ("--current-config", "config", "the current config folder (default: as for run's --config)"),
        ("--data", "data", "intermediate tables (default: <out>/_data)"),
    ):
        what.add_argument(flag, dest=dest, default=None, help=help_text)
    what.add_argument(
        "--exit-code", action="store_true", help="exit with the candidate's decision, as for run"
    )
    what.add_argument("--verbose", action="store_true", help="tracebacks instead of one-line errors")
    what.set_defaults(func=cmd_whatif)
    gen = sub.add_parser(
        "generate", help="write a synthetic artifact corpus (see python -m gate_pipeline.synthetic -h)"
    )
    gen.add_argument("rest", nargs=argparse.REMAINDER)
    gen.set_defaults(func=cmd_generate)
    cli_lifecycle.add_parsers(sub)  # advance, rollback, phase
    return parser


def main(argv: list[str] | None = None) -> None:
    import warnings

    from dagster_shared.utils.warnings import BetaWarning

    # Beta APIs are used on purpose (single-run backfills, observable config sources); keep the terminal readable.
    warnings.filterwarnings("ignore", category=BetaWarning)
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print(
            "gate-pipeline: interrupted; the run cursor was not advanced, so the next run redoes these days",
            file=sys.stderr,
        )
        code = EXIT_INTERRUPTED
    finally:
        # Worker processes are gone with their pool; the forkserver that started them is stopped here.
        stop_worker_support()
    sys.exit(code)


if __name__ == "__main__":
    main()
