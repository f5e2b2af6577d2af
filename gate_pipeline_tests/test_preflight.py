"""Config, storage and environment errors are found before the Dagster run starts: one clear message naming
the file, entry and key (or the URL and the cause), exit code 2, no traceback."""

from __future__ import annotations

import orjson
import pytest

from gate_pipeline_tests.pipeline_helpers import SAMPLE, run_cli, tmpfs


def _run(tmp_path, config, *extra: str) -> int:
    return run_cli("run", "--artifacts", str(SAMPLE), "--config", str(config), *extra)


def _assert_one_message(capsys, *parts: str) -> None:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert "dagster run" not in captured.out  # nothing started
    for part in parts:
        assert part in captured.err, captured.err


@pytest.mark.parametrize(
    ("file", "content", "expected"),
    [
        ("pipeline.yaml", "ingest: [unclosed\n", "pipeline.yaml: <root>: not valid YAML"),
        (
            "pipeline.yaml",
            "ingest:\n  bogus: 1\n",
            "pipeline.yaml: ingest.bogus: Extra inputs are not permitted",
        ),
        ("analysis.yaml", "strata_all_pairs: maybe\n", "analysis.yaml"),
        ("policy_constants.yaml", "{{{", "policy_constants.yaml"),
    ],
)
def test_a_bad_config_file_is_one_message_and_exit_2(workspace, capsys, file, content, expected):
    tmp_path, config = workspace
    (config / file).write_text(content)
    assert _run(tmp_path, config, "--out", str(tmp_path / "out")) == 2
    _assert_one_message(capsys, "error: ", str(config / file), expected.split(": ", 1)[-1])
    assert not (tmp_path / "out" / "rollout_metrics.json").exists()


def test_candidate_settings_that_disagree_between_analysis_and_decision_are_one_message(workspace, capsys):
    """analysis.yaml and policy_constants.yaml both say how the candidate policy is picked; when they differ the
    statistics and the decision could describe different policies, so the run does not start."""
    tmp_path, config = workspace
    analysis = config / "analysis.yaml"
    analysis.write_text(
        analysis.read_text().replace("candidate_recent_runs: 50", "candidate_recent_runs: 80")
    )
    assert _run(tmp_path, config, "--out", str(tmp_path / "out")) == 2
    _assert_one_message(
        capsys,
        f"error: {config / 'policy_constants.yaml'}: policy.recent_runs: 50 differs from",
        f"{config / 'analysis.yaml'}: candidate_recent_runs: 80",
    )


def test_a_bad_whitelist_expiry_names_the_entry_and_key(workspace, capsys):
    tmp_path, config = workspace
    whitelist = orjson.loads((config / "unknown_whitelist.json").read_bytes())
    whitelist["entries"][1]["expires"] = "next tuesday"
    (config / "unknown_whitelist.json").write_bytes(orjson.dumps(whitelist))
    assert _run(tmp_path, config, "--out", str(tmp_path / "out")) == 2
    reason = whitelist["entries"][1]["reason"]
    _assert_one_message(capsys, f"unknown_whitelist.json: entries[1] (reason '{reason}').expires")


def test_missing_config_folder(workspace, capsys):
    tmp_path, _ = workspace
    assert _run(tmp_path, tmp_path / "nope", "--out", str(tmp_path / "out")) == 2
    _assert_one_message(capsys, f"error: config folder {tmp_path / 'nope'} does not exist")


def test_out_is_a_file(workspace, capsys):
    tmp_path, config = workspace
    (tmp_path / "out").write_text("not a folder")
    assert _run(tmp_path, config, "--out", str(tmp_path / "out")) == 2
    _assert_one_message(capsys, f"error: --out {tmp_path / 'out'} is a file, not a folder")


def test_out_is_read_only(workspace, capsys):
    tmp_path, config = workspace
    with tmpfs(tmp_path / "ro", "ro,size=64k") as mount:
        assert _run(tmp_path, config, "--out", str(mount / "out")) == 2
        _assert_one_message(capsys, f"error: --out {mount / 'out'} is not writable", "Read-only file system")


def test_verbose_shows_the_traceback(workspace):
    tmp_path, config = workspace
    (config / "pipeline.yaml").write_text("ingest:\n  bogus: 1\n")
    from gate_pipeline.preflight import PreflightError

    with pytest.raises(PreflightError):
        _run(tmp_path, config, "--out", str(tmp_path / "out"), "--verbose")


@pytest.mark.s3
def test_s3_missing_artifacts_bucket(s3_bucket, workspace, capsys):
    tmp_path, config = workspace
    code = run_cli(
        "run",
        "--artifacts",
        "s3://no-such-bucket/ci",
        "--out",
        str(tmp_path / "out"),
        "--config",
        str(config),
    )
    assert code == 2
    _assert_one_message(
        capsys, "error: artifact root s3://no-such-bucket/ci: bucket 'no-such-bucket' does not exist"
    )


@pytest.mark.s3
def test_s3_missing_output_bucket_is_an_error_not_created(s3_bucket, workspace, capsys):
    import s3fs

    tmp_path, config = workspace
    code = run_cli(
        "run", "--artifacts", str(SAMPLE), "--out", "s3://missing-out-bucket/reports", "--config", str(config)
    )
    assert code == 2
    _assert_one_message(
        capsys, "error: --out s3://missing-out-bucket/reports: bucket 'missing-out-bucket' does not exist"
    )
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_bucket.storage_options)
    assert not fs.exists("missing-out-bucket")


@pytest.mark.s3
def test_s3_bad_credentials(s3_bucket, workspace, capsys, monkeypatch):
    import requests
    import s3fs

    tmp_path, config = workspace
    # The moto server checks signatures only once told to (its reset-auth endpoint); keys it has never
    # issued are then rejected as S3 would reject them.
    reset_auth = f"{s3_bucket.endpoint_url}/moto-api/reset-auth"
    requests.post(reset_auth, data="0", timeout=10).raise_for_status()
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        s3fs.S3FileSystem.clear_instance_cache()
        code = run_cli(
            "run", "--artifacts", s3_bucket.url("ci"), "--out", str(tmp_path / "out"), "--config", str(config)
        )
    finally:
        requests.post(reset_auth, data="inf", timeout=10).raise_for_status()
        s3fs.S3FileSystem.clear_instance_cache()
    captured = capsys.readouterr()
    line = captured.err.strip()
    assert code == 2, captured
    assert "\n" not in line and "Traceback" not in line, line
    assert line.startswith(f"error: artifact root {s3_bucket.url('ci')}: cannot be read ("), line
    assert "InvalidAccessKeyId" in line, line  # the cause, as S3 names it


@pytest.mark.s3
def test_s3_endpoint_down_is_one_line_with_url_and_cause(s3_bucket, workspace, capsys, monkeypatch):
    import s3fs

    tmp_path, config = workspace
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # nothing listens on port 1
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    s3fs.S3FileSystem.clear_instance_cache()
    code = run_cli(
        "run", "--artifacts", "s3://any-bucket/ci", "--out", str(tmp_path / "out"), "--config", str(config)
    )
    captured = capsys.readouterr()
    assert code == 2
    line = captured.err.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith("error: artifact root s3://any-bucket/ci: cannot be read (")
