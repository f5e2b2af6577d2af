"""`gate-pipeline whatif` and `whatif_job` as a user runs them: a candidate whitelist or threshold replayed on the
stored history of the sample, equal byte for byte to a real backfill under that config, reading no artifact and
changing nothing live."""

import re
import shutil
from pathlib import Path

import dagster as dg
import orjson
import pandas as pd
import pytest

from gate_pipeline import cli
from gate_pipeline.definitions import WHATIF_JOB, build_definitions
from gate_pipeline.lib import published
from gate_pipeline.lib.rules import load_decision_config
from gate_pipeline.settings import Settings
from gate_pipeline_tests.pipeline_helpers import CONFIG, SAMPLE, run_cli


def replayed(out: Path) -> list[str]:
    """The published files a what-if's candidate/ (and current/) reproduces: the decision document, the PR
    comment and every statistics table (tables/*.csv, the decision timeline's included)."""
    return [
        "rollout_metrics.json",
        "ci_comment.md",
        *(f"tables/{p.name}" for p in sorted((out / "tables").glob("*.csv"))),
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The sample built once (artifacts, config, outputs with their data store); tests work on copies."""
    root = tmp_path_factory.mktemp("whatif_built")
    shutil.copytree(SAMPLE, root / "artifacts")
    shutil.copytree(CONFIG, root / "config")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        argv = ["--artifacts", str(root / "artifacts"), "--out", str(root / "out")]
        assert run_cli("run", *argv, "--config", str(root / "config")) == 0
    return root


@pytest.fixture
def site(built, tmp_path, monkeypatch):
    for name in ("artifacts", "config", "out"):
        shutil.copytree(built / name, tmp_path / name)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "candidate").mkdir()
    return tmp_path


def _files(root: Path) -> dict[str, bytes]:
    """Every file under root but what-if results and run locks (which record the pid of their holder)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "whatif" not in p.relative_to(root).parts and p.name != ".gate-pipeline.lock"
    }


def _whatif(site: Path, *extra: str) -> int:
    return run_cli(
        "whatif",
        "--config",
        str(site / "candidate"),
        "--out",
        str(site / "out"),
        "--current-config",
        str(site / "config"),
        "--artifacts",
        str(site / "artifacts"),
        *extra,
    )


def _whitelist_schema_drift(config: Path) -> bytes:
    whitelist = orjson.loads((config / "unknown_whitelist.json").read_bytes())
    whitelist["entries"].append(
        {"reason": "schema_drift", "match": "exact", "class": "schema", "owner": "team:schemas", "note": "x"}
    )
    return orjson.dumps(whitelist, option=orjson.OPT_INDENT_2)


def _backfill(site: Path, capsys) -> None:
    """A real `gate-pipeline backfill` of the site under its live config (what a what-if is held to)."""
    argv = [
        "--artifacts",
        str(site / "artifacts"),
        "--out",
        str(site / "out"),
        "--config",
        str(site / "config"),
    ]
    assert run_cli("backfill", *argv) == 0
    capsys.readouterr()


def _assert_candidate_equals_backfill(site: Path, name: str, candidate_file: str, capsys) -> None:
    """Apply the candidate file to the live config, backfill, and hold the what-if's candidate/ to the
    published outputs byte for byte."""
    shutil.copyfile(site / "candidate" / candidate_file, site / "config" / candidate_file)
    _backfill(site, capsys)
    replay = site / "out" / "whatif" / name / "candidate"
    files = replayed(site / "out")
    assert "tables/decision_timeline.csv" in files and "tables/class_frequencies.csv" in files
    assert sorted(str(p.relative_to(replay)) for p in replay.rglob("*") if p.is_file()) == sorted(files)
    for path in files:
        assert (replay / path).read_bytes() == (site / "out" / path).read_bytes(), path


def test_candidate_whitelist_replays_like_a_backfill_reading_no_artifact(site, capsys):
    (site / "candidate" / "unknown_whitelist.json").write_bytes(_whitelist_schema_drift(site / "config"))
    live_before = _files(site / "out")
    # The artifact root is gone during the what-if: it reads stored tables only.
    (site / "artifacts").rename(site / "artifacts.away")
    code = _whatif(site, "--name", "schema-drift")
    printed = capsys.readouterr().out
    (site / "artifacts.away").rename(site / "artifacts")
    assert code == 0
    assert _files(site / "out") == live_before  # nothing live written
    result = site / "out" / "whatif" / "schema-drift"
    assert "candidate" in printed and "changes unknown_whitelist.json; replayed on 71 stored runs" in printed
    assert "Decision current → candidate: HOLD → HOLD (policy_hash b71c02 → b71c02)" in printed
    assert "runs whose classification changes: 8" in printed
    assert "class occurrences, whitelisted: 39 → 47" in printed
    assert f"{result}/whatif.md" in printed

    # The current side replays exactly what is published now.
    for path in replayed(site / "out"):
        assert (result / "current" / path).read_bytes() == (site / "out" / path).read_bytes(), path
    runs = pd.read_csv(result / "changed_runs.csv", keep_default_na=False)
    assert len(runs) == 8
    assert set(runs["classes_removed"]) == {"non_whitelisted:schema_drift"}
    assert set(runs["classes_added"]) == {"whitelisted:schema"}
    series = pd.read_csv(site / "out" / "rollout_series.csv", keep_default_na=False)
    drift = series[series["unknown_classes"].str.contains("non_whitelisted:schema_drift")]
    assert sorted(runs["run_id"]) == sorted(drift["run_id"])
    counts = pd.read_csv(result / "class_counts.csv").set_index("class")
    assert counts.loc["non_whitelisted:schema_drift", ["runs_current", "runs_candidate"]].tolist() == [8, 0]
    assert counts.loc["whitelisted:schema", ["runs_current", "runs_candidate", "change"]].tolist() == [
        0,
        8,
        8,
    ]
    summary = orjson.loads((result / "summary.json").read_bytes())
    assert summary["changed_files"] == ["unknown_whitelist.json"]
    assert summary["rules_changed"] == [] and summary["days_verdict_changes"] == 0
    days = pd.read_csv(result / "timeline.csv")
    assert days["date"].tolist() == [f"2026-03-{d:02d}" for d in range(1, 13)]
    assert (days["verdict_current"] == days["verdict_candidate"]).all()
    # The default rules read no class column: every day's evaluation is reused, none repeated.
    cfg = load_decision_config((site / "config" / "policy_constants.yaml").read_bytes(), "policy_constants")
    assert not published.frame_columns(cfg) & {"unknown_classes", "non_whitelisted_reasons"}
    assert summary["candidate"]["timeline_days_evaluated"] == 0
    report = (result / "whatif.md").read_text()
    assert "## Runs whose classification changes: 8" in report
    assert "| `non_whitelisted:schema_drift` | non_whitelisted | 8 | 0 |" in report
    assert (result / "config" / "unknown_whitelist.json").read_bytes() == (
        site / "candidate" / "unknown_whitelist.json"
    ).read_bytes()
    _assert_candidate_equals_backfill(site, "schema-drift", "unknown_whitelist.json", capsys)


def test_candidate_threshold_changes_the_decision_every_day_like_a_backfill(site, capsys):
    metrics = orjson.loads((site / "out" / "rollout_metrics.json").read_bytes())
    fail_rule = next(r for r in metrics["decision"]["rules"] if r["name"] == "fail_rate")
    constants = (site / "config" / "policy_constants.yaml").read_text()
    tightened = constants.replace("threshold: 0.10", f"threshold: {fail_rule['ci_low'] / 2:.4f}", 1)
    assert tightened != constants
    (site / "candidate" / "policy_constants.yaml").write_text(tightened)
    code = _whatif(site, "--exit-code")
    printed = capsys.readouterr().out
    assert code == cli.EXIT_CODES["NO_GO"]  # the candidate's decision
    assert "Decision current → candidate: HOLD → NO_GO" in printed
    assert "  fail_rate: HOLD (" in printed and "→ FAIL (" in printed
    result = site / "out" / "whatif" / "candidate"  # default name: the candidate folder's
    summary = orjson.loads((result / "summary.json").read_bytes())
    assert [(r["rule"], r["current"], r["candidate"]) for r in summary["rules_changed"]] == [
        ("fail_rate", "HOLD", "FAIL")
    ]
    assert summary["runs_reclassified"] == 0
    days = pd.read_csv(result / "timeline.csv")
    assert summary["candidate"]["timeline_days_evaluated"] == len(days) == 12
    assert set(days["verdict_current"]) == {"HOLD"}
    assert days["verdict_candidate"].iloc[-1] == "NO_GO"
    assert summary["days_verdict_changes"] == int((days["verdict_candidate"] != "HOLD").sum()) > 0
    report = (result / "whatif.md").read_text()
    assert "| fail_rate | HOLD (" in report and "current   hhhhhhhhhhhh" in report
    _assert_candidate_equals_backfill(site, "candidate", "policy_constants.yaml", capsys)


def test_whatif_job_in_process_writes_what_the_cli_writes(site, capsys):
    (site / "candidate" / "unknown_whitelist.json").write_bytes(_whitelist_schema_drift(site / "config"))
    assert _whatif(site, "--name", "by-cli") == 0
    capsys.readouterr()
    settings = Settings(
        artifacts_url=str(site / "absent"),
        outputs_url=str(site / "out"),
        data_url=str(site / "out" / "_data"),
        config_url=str(site / "config"),
    )
    job = build_definitions(settings).resolve_job_def(WHATIF_JOB)
    run_config = {
        "ops": {"whatif_replay": {"config": {"candidate_config": str(site / "candidate"), "name": "by-job"}}}
    }
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, run_config=run_config)
        assert result.success
        report = result.output_for_node("whatif_replay")
        [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
        metadata = event.step_output_data.metadata
        assert metadata["verdict"].value == "HOLD → HOLD" and metadata["runs_reclassified"].value == 8
        bad = {"ops": {"whatif_replay": {"config": {"candidate_config": str(site / "nowhere")}}}}
        failed = job.execute_in_process(instance=instance, run_config=bad, raise_on_error=False)
    assert report == str(site / "out" / "whatif" / "by-job" / "whatif.md")
    assert not failed.success
    [failure] = [e for e in failed.all_events if e.is_step_failure]
    assert f"what-if refused: candidate config folder {site / 'nowhere'} does not exist" in str(
        failure.step_failure_data.error.message
    )
    by_cli, by_job = site / "out" / "whatif" / "by-cli", site / "out" / "whatif" / "by-job"
    cli_files = sorted(p.relative_to(by_cli) for p in by_cli.rglob("*") if p.is_file())
    assert cli_files == sorted(p.relative_to(by_job) for p in by_job.rglob("*") if p.is_file())
    for rel in cli_files:
        if rel.name not in ("whatif.md", "summary.json"):  # these name the what-if
            assert (by_cli / rel).read_bytes() == (by_job / rel).read_bytes(), rel


def _error(site: Path, capsys, *extra: str) -> str:
    assert _whatif(site, *extra) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_bad_candidate_config_is_a_clear_error(site, capsys):
    candidate = site / "candidate"
    assert "error: candidate config folder" in _error(site, capsys)  # empty folder
    (candidate / "README.md").write_text("notes")
    err = _error(site, capsys)
    assert f"error: candidate config folder {candidate} holds none of the files a what-if evaluates" in err
    assert "unknown_whitelist.json, policy_constants.yaml, analysis.yaml, lifecycle.yaml" in err
    whitelist = orjson.loads(_whitelist_schema_drift(site / "config"))
    del whitelist["entries"][-1]["owner"]
    (candidate / "unknown_whitelist.json").write_bytes(orjson.dumps(whitelist))
    err = _error(site, capsys)
    assert err.startswith("error: the candidate config is not valid:\n")
    assert (
        f"{candidate / 'unknown_whitelist.json'}: entries[" in err and "(reason 'schema_drift').owner" in err
    )
    (candidate / "unknown_whitelist.json").unlink()
    (candidate / "policy_constants.yaml").write_text("phases: [\n")
    err = _error(site, capsys)
    assert f"{candidate / 'policy_constants.yaml'}" in err
    (candidate / "policy_constants.yaml").unlink()
    (candidate / "analysis.yaml").write_text("candidate_min_share: 0.3\n")  # the decision picks with 0.1
    err = _error(site, capsys)
    assert "policy.min_recent_share: 0.1 differs from" in err
    assert f"{candidate / 'analysis.yaml'}: candidate_min_share: 0.3" in err
    (candidate / "analysis.yaml").unlink()
    (candidate / "lifecycle.yaml").write_text("auto_advance:\n  nonsense: {}\n")
    err = _error(site, capsys)
    assert f"{candidate / 'lifecycle.yaml'}: auto_advance.nonsense: not a phase" in err
    assert "error: what-if name '../x'" in _error(site, capsys, "--name", "../x")
    assert f"error: candidate config folder {site / 'nowhere'} does not exist" in _error(
        site, capsys, "--config", str(site / "nowhere")
    )


def test_whatif_before_any_run_is_a_clear_error(workspace, capsys):
    tmp_path, config = workspace
    (tmp_path / "candidate").mkdir()
    (tmp_path / "candidate" / "unknown_whitelist.json").write_bytes(_whitelist_schema_drift(config))
    code = run_cli(
        "whatif",
        "--config",
        str(tmp_path / "candidate"),
        "--out",
        str(tmp_path / "out"),
        "--current-config",
        str(config),
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"error: no stored history under {tmp_path / 'out' / '_data'}" in err
    assert "run `gate-pipeline run` first" in err


@pytest.mark.s3
def test_whatif_on_s3_writes_what_a_local_whatif_writes(site, s3_bucket, capsys):
    """History, config, candidate and results on S3 (the moto server): the same files, byte for byte, as
    the same what-if on local disk."""
    from gate_pipeline_tests.s3_server import upload_tree

    (site / "candidate" / "unknown_whitelist.json").write_bytes(_whitelist_schema_drift(site / "config"))
    for name in ("out", "config", "candidate"):
        upload_tree(site / name, s3_bucket.url(f"ci/{name}"), s3_bucket.storage_options)
    code = run_cli(
        "whatif",
        "--config",
        s3_bucket.url("ci/candidate"),
        "--out",
        s3_bucket.url("ci/out"),
        "--current-config",
        s3_bucket.url("ci/config"),
        "--name",
        "wl",
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert f"{s3_bucket.url('ci/out')}/whatif/wl/whatif.md" in printed
    assert _whatif(site, "--name", "wl") == 0
    capsys.readouterr()
    local = site / "out" / "whatif" / "wl"
    files = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    assert (
        len(files) == 5 + 2 * len(replayed(site / "out")) + 4
    )  # report, summary, 3 CSVs; current/, candidate/; config/
    for rel in files:
        assert s3_bucket.upath(f"ci/out/whatif/wl/{rel}").read_bytes() == (local / rel).read_bytes(), rel


# Hostile text in the stored history: a run id, a policy_hash and a reason that try Markdown/HTML (image with
# onerror, a table cell break, a link), spreadsheet formulas and a line break.
HOSTILE_RUN_IDS = ['=HYPERLINK("http://evil.example")', "<img src=x onerror=alert(1)>", "| col | x |", "-cmd"]
HOSTILE_POLICY = "<b>p</b> | [ok](http://evil) @org/admins"
HOSTILE_REASON = '<img src=x onerror=alert(1)> | col |\n=HYPERLINK("http://evil")'


def test_hostile_text_in_the_history_stays_text_in_the_whatif_report_and_csvs(tmp_path, monkeypatch, capsys):
    root, out, config = tmp_path / "artifacts", tmp_path / "out", tmp_path / "config"
    for i, run_id in enumerate(HOSTILE_RUN_IDS):
        path = root / f"2026-03-0{1 + i % 2}" / f"r{i}" / "gate_result.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "run_id": run_id,
            "timestamp": f"2026-03-0{1 + i % 2}T1{i}:00:00Z",
            "policy_hash": HOSTILE_POLICY,
            "outcome": "FAIL",
            "unknown_rate": 0.5,
            "top_reasons": [HOSTILE_REASON],
        }
        path.write_bytes(orjson.dumps(payload))
    shutil.copytree(CONFIG, config)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert run_cli("run", "--artifacts", str(root), "--out", str(out), "--config", str(config)) == 0
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    whitelist = orjson.loads((config / "unknown_whitelist.json").read_bytes())
    whitelist["entries"].append(
        {
            "reason": HOSTILE_REASON,
            "match": "exact",
            "class": "hostile",
            "owner": "team:x",
            "note": "<i>n</i>",
        }
    )
    (candidate / "unknown_whitelist.json").write_bytes(orjson.dumps(whitelist))
    argv = [
        "--config",
        str(candidate),
        "--name",
        "hostile",
        "--out",
        str(out),
        "--current-config",
        str(config),
    ]
    assert run_cli("whatif", *argv, "--artifacts", str(root)) == 0
    capsys.readouterr()
    result = out / "whatif" / "hostile"

    report = (result / "whatif.md").read_text()
    assert "## Runs whose classification changes: 4" in report
    # Outside code spans (literal text): no raw HTML tag, link or mention.
    prose = re.sub(r"`[^`]*`", "", report)
    assert "<img" not in prose and "<b>" not in prose and "](http" not in prose and "@org" not in prose
    assert "&lt;img src=x onerror=alert(1)>" in prose
    # Every row of every table has its header's cells: no "|" from the data splits one.
    tables, current = [], []
    for line in [*report.splitlines(), ""]:
        if line.startswith("|"):
            current.append(len(re.split(r"(?<!\\)\|", line)))
        elif current:
            tables.append(current)
            current = []
    assert len(tables) == 4  # decision, figures, classes that change, changed runs
    assert all(len(set(table)) == 1 for table in tables), tables
    assert "| \\| col \\| x \\| | 2026-03-01 |" in report  # the run id "| col | x |", one cell

    # CSVs: no cell opens as a formula; the line break stays inside its quoted cell; values read back.
    runs = pd.read_csv(result / "changed_runs.csv", keep_default_na=False, dtype=str)
    assert sorted(runs["run_id"]) == sorted(["'" + r if r[0] in "=-" else r for r in HOSTILE_RUN_IDS])
    assert set(runs["classes_removed"]) == {"non_whitelisted:" + HOSTILE_REASON}
    assert set(runs["classes_added"]) == {"whitelisted:hostile"}
    assert set(runs["policy_hash"]) == {HOSTILE_POLICY}
    days = pd.read_csv(result / "timeline.csv", keep_default_na=False, dtype=str)
    assert days["date"].tolist() == ["2026-03-01", "2026-03-02"]
    assert set(days["policy_hash_current"]) == set(days["policy_hash_candidate"]) == {HOSTILE_POLICY}
    for name in ("changed_runs.csv", "timeline.csv", "class_counts.csv"):
        frame = pd.read_csv(result / name, keep_default_na=False, dtype=str)
        cells = [c for column in frame.columns for c in frame[column] if not re.fullmatch(r"-?[\d.]+", c)]
        assert not [c for c in cells if c.startswith(("=", "+", "-", "@"))], name


def test_current_statistics_are_the_stored_ones_until_their_sources_change(site, capsys, monkeypatch):
    """The statistics asset keys its outputs by what they came from; a what-if takes them over while the
    history, the analysis config and the code are the same, and computes them again once one changed."""
    from gate_pipeline.lib import whatif

    computed = []
    compute = whatif.compute_statistics
    monkeypatch.setattr(whatif, "compute_statistics", lambda *a: computed.append(1) or compute(*a))
    key = orjson.loads((site / "out" / "_data" / "statistics_source.json").read_bytes())
    assert set(key["source"]) == {"history_sha256", "analysis_sha256", "code_sha256"}
    published_tables = {p.stem for p in (site / "out" / "tables").glob("*.csv")} - {"decision_timeline"}
    assert {name for name, _ in key["tables"]} == published_tables
    constants = (site / "config" / "policy_constants.yaml").read_text()
    (site / "candidate" / "policy_constants.yaml").write_text(
        constants.replace("threshold: 0.10", "threshold: 0.30", 1)
    )
    assert _whatif(site, "--name", "kept") == 0
    assert computed == []  # a threshold candidate: neither side computes statistics
    for path in replayed(site / "out"):
        assert (site / "out" / "whatif" / "kept" / "current" / path).read_bytes() == (
            site / "out" / path
        ).read_bytes(), path

    # The current analysis config changes after the build: the stored statistics are stale.
    analysis = (site / "config" / "analysis.yaml").read_text()
    changed = analysis.replace("spike_mad_k: 3.0", "spike_mad_k: 1.0", 1)
    assert changed != analysis
    (site / "config" / "analysis.yaml").write_text(changed)
    assert _whatif(site, "--name", "stale") == 0
    assert computed == [1]  # the current side's, taken over by the candidate
    stale = site / "out" / "whatif" / "stale" / "current"
    # What the current side shows now is what the pipeline publishes under that analysis config.
    _backfill(site, capsys)
    kept = site / "out" / "whatif" / "kept" / "current"
    assert (stale / "rollout_metrics.json").read_bytes() != (kept / "rollout_metrics.json").read_bytes()
    for path in replayed(site / "out"):
        assert (stale / path).read_bytes() == (site / "out" / path).read_bytes(), path
