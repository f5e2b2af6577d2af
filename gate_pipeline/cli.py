"""`gate-pipeline`: materialize the whole asset graph for an artifact root, from a terminal or a CI step.

gate-pipeline run --artifacts <path|s3://…> --out <path|s3://…> [--config <dir>] [--data <path|s3://…>]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from gate_pipeline import cli_lifecycle
from gate_pipeline.lib.discovery import dump_cursor, load_cursor, scan_for_changes
from gate_pipeline.lib.ingest import files_read
from gate_pipeline.settings import Settings, project_root

# With --exit-code the process exit status reflects the decision, for use as a CI step.
EXIT_CODES = {"GO": 0, "HOLD": 3, "NO_GO": 4, "ROLLBACK": 5}


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


def cmd_run(args: argparse.Namespace) -> int:
    """Materialize the days that are new or changed since the last run (all days on the first run or --full)."""
    from gate_pipeline.definitions import ALL_ASSETS_JOB
    from gate_pipeline.summary import print_summary

    settings = _settings(args)
    data = settings.store(settings.data_url)
    root = settings.store(settings.artifacts_url).root
    pipeline = settings.pipeline_config()
    cursor = (
        None
        if args.full or not data.exists(RUN_CURSOR)
        else load_cursor(data.read_bytes(RUN_CURSOR).decode())
    )
    # Same discovery as the sensor: only recent days and newer date folders are listed, so a re-run
    # costs in proportion to what is new. settle_seconds=0: an explicit run takes the files as they are.
    scan = scan_for_changes(
        root,
        cursor,
        today=datetime.now(UTC).date(),
        lookback_days=pipeline.sensor.lookback_days,
        settle_seconds=0,
    )
    days = sorted(change.date for change in scan.changed)
    if not days and cursor is None:
        print(f"error: no date folders (YYYY-MM-DD) under {settings.artifacts_url}", file=sys.stderr)
        return 2
    if not days:
        print(
            f"gate-pipeline: nothing new under {settings.artifacts_url} since the last run (--full rebuilds)"
        )
    else:
        if days[0] < pipeline.partitions.start_date:
            # The partitions must reach back to the first date folder.
            settings = settings.model_copy(update={"start_date": days[0]})
        what = f"all {len(days)}" if cursor is None else f"{len(days)} new or changed"
        print(
            f"gate-pipeline: materializing {what} day(s) {days[0]}..{days[-1]} from {settings.artifacts_url}"
        )
        result = _execute(settings, ALL_ASSETS_JOB, days, args.verbose)
        if not result.success:
            return 1
        data.write_bytes(dump_cursor(scan.cursor).encode(), RUN_CURSOR)
    decision = print_summary(settings)
    return EXIT_CODES[decision["verdict"]] if args.exit_code else 0


def _execute(settings: Settings, job_name: str, days: list[str], verbose: bool = False):
    import dagster as dg

    from gate_pipeline.definitions import build_definitions
    from gate_pipeline.defs.config import unchanged_config_sources
    from gate_pipeline.defs.resources import GateStorage

    home = _ensure_dagster_home()
    defs = build_definitions(settings)
    job = defs.resolve_job_def(job_name)
    tags = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}
    with dg.DagsterInstance.get() as instance:
        # A config file that has not changed since its last observation is not observed again.
        unchanged = unchanged_config_sources(instance, GateStorage.from_settings(settings))
        selection = [key for key in job.asset_layer.selected_asset_keys if key not in unchanged]
        # The full event log is in the instance (and the UI); the terminal gets warnings unless --verbose.
        level = "INFO" if verbose else "WARNING"
        run_config = {"loggers": {"console": {"config": {"log_level": level}}}}
        result = job.execute_in_process(
            instance=instance,
            tags=tags,
            run_config=run_config,
            raise_on_error=False,
            asset_selection=selection,
        )
    print(f"dagster run {result.run_id} ({'success' if result.success else 'FAILED'}), instance {home}")
    if not result.success:
        for event in result.all_events:
            if event.is_failure:
                print(f"  {event.step_key}: {event.message}", file=sys.stderr)
    return result


def cmd_backfill(args: argparse.Namespace) -> int:
    """Re-classify all stored history after a whitelist (or analysis/decision config) change, in one run."""
    import orjson

    from gate_pipeline.definitions import RECLASSIFY_JOB
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
    reads_before = files_read()
    result = _execute(settings, RECLASSIFY_JOB, days, args.verbose)
    if not result.success:
        return 1
    print(f"artifact files read during the backfill: {files_read() - reads_before}")
    decision = print_summary(settings)
    if before is not None:
        old = before["decision"]
        print(f"\nDecision before → after: {old['verdict']} → {decision['verdict']}")
        fp_before = before["statistics"].get("warn_threshold", {}).get("with_whitelist", {}).get("fp_rate")
        after = orjson.loads(outputs.read_bytes("rollout_metrics.json"))
        fp_after = after["statistics"].get("warn_threshold", {}).get("with_whitelist", {}).get("fp_rate")
        print(f"False-positive rate of the WARN threshold (with whitelist): {fp_before} → {fp_after}")
    return EXIT_CODES[decision["verdict"]] if args.exit_code else 0


def cmd_generate(args: argparse.Namespace) -> int:
    from gate_pipeline import synthetic

    synthetic.main(args.rest)
    return 0


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
        help="exit with the decision: GO=0, HOLD=3, NO_GO=4, ROLLBACK=5 (1 = pipeline failed, 2 = bad input)",
    )
    run.add_argument("--verbose", action="store_true", help="print Dagster's event log")
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
    backfill.set_defaults(func=cmd_backfill)
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
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
