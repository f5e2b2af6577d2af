"""`gate-pipeline`: materialize the whole asset graph for an artifact root, from a terminal or a CI step.

gate-pipeline run --artifacts <path|s3://…> --out <path|s3://…> [--config <dir>] [--data <path|s3://…>]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

from gate_pipeline.settings import Settings, project_root

DATE_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
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


def _date_partitions(settings: Settings) -> list[str]:
    store = settings.store(settings.artifacts_url)
    return [name for name in store.list_names() if DATE_FOLDER.match(name)]


def cmd_run(args: argparse.Namespace) -> int:
    import dagster as dg

    from gate_pipeline.definitions import ALL_ASSETS_JOB, build_definitions
    from gate_pipeline.summary import print_summary

    settings = _settings(args)
    days = _date_partitions(settings)
    if not days:
        print(f"error: no date folders (YYYY-MM-DD) under {settings.artifacts_url}", file=sys.stderr)
        return 2
    configured_start = settings.pipeline_config().partitions.start_date
    if days[0] < configured_start:
        os.environ["GATE_PIPELINE_START_DATE"] = days[0]
    home = _ensure_dagster_home()
    defs = build_definitions(settings)
    job = defs.resolve_job_def(ALL_ASSETS_JOB)
    tags = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}
    print(
        f"gate-pipeline: materializing {len(days)} day(s) {days[0]}..{days[-1]} from {settings.artifacts_url}"
    )
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    print(f"dagster run {result.run_id} ({'success' if result.success else 'FAILED'}), instance {home}")
    if not result.success:
        for event in result.all_events:
            if event.is_failure:
                print(f"  {event.step_key}: {event.message}", file=sys.stderr)
        return 1
    decision = print_summary(settings, result)
    if args.exit_code:
        return EXIT_CODES[decision["verdict"]]
    return 0


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
    run.set_defaults(func=cmd_run)
    gen = sub.add_parser(
        "generate", help="write a synthetic artifact corpus (see python -m gate_pipeline.synthetic -h)"
    )
    gen.add_argument("rest", nargs=argparse.REMAINDER)
    gen.set_defaults(func=cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
