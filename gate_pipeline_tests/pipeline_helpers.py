"""Run the whole asset graph in-process on a tmp folder, the way the CLI does."""

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from gate_pipeline.definitions import ALL_ASSETS_JOB, build_definitions
from gate_pipeline.settings import Settings, project_root

REPO = project_root()
SAMPLE = REPO / "gate_pipeline" / "sample_artifacts"
CONFIG = REPO / "config"
# Every published output, for byte-for-byte comparisons between runs (local, S3, scale-out).
OUTPUTS = [
    "rollout_series.csv",
    "rollout_series.parquet",
    "rollout_metrics.json",
    "rollout_series_v1.md",
    "rollout_chart.png",
    "ci_comment.md",
    "tables/compared_runs.csv",
    "tables/spikes_by_policy.csv",
    "tables/strata.csv",
    "tables/unknown_rate_by_group.csv",
]


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at `path` (e.g. "size=600k", "ro,size=64k") for the test; skips where mounting is
    not allowed (it needs root and a sandbox that permits it)."""
    import pytest

    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def run_cli(*argv: str) -> int:
    """`gate-pipeline ARGV` in-process; returns the exit code instead of exiting."""
    from gate_pipeline import cli

    args = cli.build_parser().parse_args(list(argv))
    return args.func(args)


def settings_for(artifacts: Path | str, out: Path, config: Path | str = CONFIG) -> Settings:
    return Settings(
        artifacts_url=str(artifacts),
        outputs_url=str(out / "outputs"),
        data_url=str(out / "data"),
        config_url=str(config),
    )


def date_range(artifacts: Path) -> tuple[str, str]:
    days = sorted(p.name for p in Path(artifacts).iterdir() if p.is_dir())
    return days[0], days[-1]


def materialize_all(settings: Settings, first: str, last: str, instance: dg.DagsterInstance | None = None):
    defs = build_definitions(settings)
    job = defs.resolve_job_def(ALL_ASSETS_JOB)
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    if instance is not None:
        return job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    with dg.instance_for_test() as temp_instance:
        return job.execute_in_process(instance=temp_instance, tags=tags, raise_on_error=False)


S3_ROOT_VARS = ("CI_ARTIFACT_PATH", "GATE_PIPELINE_OUT", "GATE_PIPELINE_DATA", "GATE_PIPELINE_CONFIG")


def assert_s3_outputs_equal_local_run(s3_bucket, tmp_path: Path, monkeypatch, capsys, reports: str) -> None:
    """A local CLI run of the sample (its own DAGSTER_HOME, the S3 roots unset) publishes every output
    byte-identical to the ones under ``s3_bucket``/``reports``."""
    local_out = tmp_path / "local"
    shutil.copytree(CONFIG, tmp_path / "config")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "local_home"))
    for key in S3_ROOT_VARS:
        monkeypatch.delenv(key)
    code = run_cli(
        "run", "--artifacts", str(SAMPLE), "--out", str(local_out), "--config", str(tmp_path / "config")
    )
    capsys.readouterr()
    assert code == 0
    for name in OUTPUTS:
        assert s3_bucket.upath(f"{reports}/{name}").read_bytes() == (local_out / name).read_bytes(), name
