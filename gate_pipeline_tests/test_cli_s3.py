"""The whole pipeline against a real S3 API (moto server on loopback): artifacts, config and outputs on S3."""

import shutil

import pytest

from gate_pipeline_tests.pipeline_helpers import CONFIG, OUTPUTS, SAMPLE, run_cli
from gate_pipeline_tests.s3_server import upload_tree

pytestmark = pytest.mark.s3


def test_s3_run_matches_local_run_byte_for_byte(s3_bucket, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    upload_tree(SAMPLE, s3_bucket.url("ci/artifacts"), s3_bucket.storage_options)
    upload_tree(CONFIG, s3_bucket.url("ci/config"), s3_bucket.storage_options)
    # The S3 endpoint and credentials come from the standard AWS variables the fixture set, as in production.
    code = run_cli(
        "run",
        "--artifacts",
        s3_bucket.url("ci/artifacts"),
        "--out",
        s3_bucket.url("ci/reports"),
        "--config",
        s3_bucket.url("ci/config"),
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "runs:  74 discovered = 71 accepted + 2 quarantined" in printed
    assert f"{s3_bucket.url('ci/reports')}/rollout_metrics.json" in printed

    local_out = tmp_path / "local"
    shutil.copytree(CONFIG, tmp_path / "config")
    assert (
        run_cli(
            "run", "--artifacts", str(SAMPLE), "--out", str(local_out), "--config", str(tmp_path / "config")
        )
        == 0
    )
    for name in OUTPUTS:
        remote = s3_bucket.upath(f"ci/reports/{name}").read_bytes()
        assert remote == (local_out / name).read_bytes(), name
