"""Progress of a CLI run (gate_pipeline/progress.py), fed by the events of a real in-process Dagster run."""

import argparse
import io
import re

from gate_pipeline import cli
from gate_pipeline.definitions import ALL_ASSETS_JOB
from gate_pipeline.progress import RunProgress, Totals
from gate_pipeline_tests.pipeline_helpers import OUTPUTS, SAMPLE, run_cli

SAMPLE_DAYS = [f"2026-03-{d:02d}" for d in range(1, 13)]
SAMPLE_RUNS = 74  # run folders under the sample's 12 date folders (the summary's "runs: 74 discovered")


def _settings(tmp_path, config):
    namespace = argparse.Namespace(
        artifacts=str(SAMPLE), out=str(tmp_path / "out"), config=str(config), data=None
    )
    return cli._settings(namespace)


def test_plain_lines_follow_the_stages_and_count_every_day_and_run(workspace):
    tmp_path, config = workspace
    stream = io.StringIO()
    progress = RunProgress(Totals(days=12, runs=SAMPLE_RUNS), stream=stream, interval=0, live=False)
    result = cli._execute(_settings(tmp_path, config), ALL_ASSETS_JOB, SAMPLE_DAYS, progress=progress)
    assert result.success
    assert (progress.days_done, progress.runs_done, progress.stage) == (12, SAMPLE_RUNS, None)
    assert re.fullmatch(r"12/12 days, 74/74 runs, [\d,]+ runs/s", progress.status())
    lines = stream.getvalue().splitlines()
    assert all(re.match(r"gate-pipeline: \[\d:\d\d:\d\d\] ", line) for line in lines), lines
    started = [line.split("] ")[1].removesuffix(" started") for line in lines if line.endswith(" started")]
    done = [re.sub(r" done in [\d.]+ s$", "", line.split("] ")[1]) for line in lines if " done in " in line]
    assert {"daily_tables", "rollout_series"} <= set(started)
    assert sorted(started) == sorted(done)  # each stage: one line when it starts, one when it ends


def test_on_a_terminal_a_rich_display_shows_days_runs_rate_and_time_left(workspace):
    tmp_path, config = workspace
    stream = io.StringIO()
    progress = RunProgress(Totals(days=12, runs=SAMPLE_RUNS), stream=stream, live=True)
    assert cli._execute(_settings(tmp_path, config), ALL_ASSETS_JOB, SAMPLE_DAYS, progress=progress).success
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())  # without the terminal's control codes
    assert "12/12 days" in shown and "74/74 runs" in shown and "runs/s" in shown
    assert re.search(r"stage \d+: daily_tables", shown)
    assert "gate-pipeline: [" not in shown  # no plain lines on a terminal


def test_progress_is_on_stderr_only_and_quiet_silences_it_outputs_unchanged(workspace, capsys):
    tmp_path, config = workspace
    where = ["--artifacts", str(SAMPLE), "--config", str(config)]
    assert run_cli("run", *where, "--out", str(tmp_path / "shown"), "--progress-interval", "0") == 0
    shown = capsys.readouterr()
    assert "gate-pipeline: [" in shown.err and "daily_tables done in" in shown.err
    assert run_cli("run", *where, "--out", str(tmp_path / "quiet"), "--full", "--quiet") == 0
    quiet = capsys.readouterr()
    assert "gate-pipeline: [" not in quiet.err and "gate-pipeline: [" not in quiet.out
    # stdout is the same summary (but for the run id), and every output the same bytes
    assert re.sub(r"dagster run \S+|/shown", "", shown.out) == re.sub(
        r"dagster run \S+|/quiet", "", quiet.out
    )
    for name in OUTPUTS:
        assert (tmp_path / "shown" / name).read_bytes() == (tmp_path / "quiet" / name).read_bytes(), name


def test_a_backfill_counts_its_days_and_the_runs_it_reclassified(workspace):
    """A whitelist backfill reads no artifact: its days move chunk by chunk (ingest.days_per_chunk), and its run
    count is the runs classified (the sample's 71 accepted runs), with no total known in advance."""
    from gate_pipeline.definitions import RECLASSIFY_JOB

    tmp_path, config = workspace
    settings = _settings(tmp_path, config)
    assert cli._execute(settings, ALL_ASSETS_JOB, SAMPLE_DAYS).success
    stream = io.StringIO()
    progress = RunProgress(Totals(days=12), stream=stream, interval=0, live=False)
    assert cli._execute(settings, RECLASSIFY_JOB, SAMPLE_DAYS, progress=progress).success
    assert (progress.days_done, progress.runs_done) == (12, 71)
    assert re.fullmatch(r"12/12 days, 71 runs, [\d,]+ runs/s", progress.status())
