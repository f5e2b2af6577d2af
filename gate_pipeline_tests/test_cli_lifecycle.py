"""`gate-pipeline advance | rollback | phase` as an operator runs them, on the sample (local disk and S3)."""

import shutil

import orjson
import pandas as pd
import pytest

from gate_pipeline.lib import lifecycle
from gate_pipeline.lib.storage import Store
from gate_pipeline.lib.store_lock import locked
from gate_pipeline_tests.pipeline_helpers import CONFIG, SAMPLE, run_cli
from gate_pipeline_tests.s3_server import upload_tree


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    # The sample HOLDs: its FAIL-rate interval straddles 10% (and the rollback trigger's 25%, and the small
    # unknown stratum's interval the 40% WARN+FAIL threshold). With the FAIL rate at <= 50%, the trigger at
    # > 50% and WARN+FAIL at <= 90%, every interval clears its threshold: the observe phase says GO.
    constants = (config / "policy_constants.yaml").read_text()
    for old, new in (("threshold: 0.10", "threshold: 0.50"), ("threshold: 0.25", "threshold: 0.50")):
        constants = constants.replace(old, new, 1)
    (config / "policy_constants.yaml").write_text(constants.replace("threshold: 0.40", "threshold: 0.90", 1))
    return tmp_path, config


def _decision(out) -> dict:
    return orjson.loads((out / "rollout_metrics.json").read_bytes())["decision"]


def test_advance_refusals_then_advance_redecide_and_rollback(workspace, capsys):
    tmp_path, config = workspace
    out = tmp_path / "out"
    where = ("--artifacts", str(SAMPLE), "--out", str(out), "--config", str(config))
    assert run_cli("advance", "--approve", "--by", "ana", *where) == 1
    assert capsys.readouterr().err == (
        f"advance refused: no published decision at {out}/rollout_metrics.json: run `gate-pipeline run` first\n"
    )
    assert run_cli("run", *where) == 0
    assert _decision(out)["verdict"] == "GO"
    capsys.readouterr()
    # The decision timeline: the decision at each day end of the sample, counted by hand from its runs
    # (per UTC day: a6f53e 6, 5, 6, 6, 6, 5 runs; b71c02 from 03-07: 6, 6, 6, 5, 6, 6).
    days = pd.read_csv(out / "tables" / "decision_timeline.csv")
    assert days["date"].tolist() == [f"2026-03-{d:02d}" for d in range(1, 13)]
    assert days["policy_hash"].tolist() == ["a6f53e"] * 6 + ["b71c02"] * 6
    assert days["n_runs"].tolist() == [6, 11, 17, 23, 29, 34, 6, 12, 18, 23, 29, 35]
    assert days["verdict"].iloc[-1] == "GO" and days["phase"].iloc[-1] == "observe"
    assert (out / "decision_timeline.png").read_bytes()[:4] == b"\x89PNG"

    assert run_cli("advance", "--by", "ana", *where) == 1
    assert capsys.readouterr().err == "advance refused: an advance needs --approve (and --by NAME)\n"

    # A whitelist edit after the decision: the evidence it rested on is stale.
    whitelist = orjson.loads((config / "unknown_whitelist.json").read_bytes())
    (config / "unknown_whitelist.json").write_bytes(orjson.dumps(whitelist, option=orjson.OPT_INDENT_2))
    assert run_cli("advance", "--approve", "--by", "ana", *where) == 1
    err = capsys.readouterr().err
    assert err.startswith("advance refused: the evidence changed since the latest decision: the whitelist (")
    assert "re-run the decision (`gate-pipeline run`, or `gate-pipeline backfill` after a whitelist" in err
    assert "artifact manifest" not in err and "config (" not in err
    assert not (out / "phase_log.jsonl").exists()

    assert run_cli("backfill", *where) == 0
    capsys.readouterr()
    assert run_cli("advance", "--approve", "--by", "ana", "--note", "FAIL rate well below 50%", *where) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("policy b71c02: advanced observe → warn by ana at ")
    assert "(FAIL rate well below 50%); recorded in" in printed

    # The same decision cannot carry a second advance.
    assert run_cli("advance", "--approve", "--by", "bob", *where) == 1
    assert capsys.readouterr().err == (
        "advance refused: the latest decision is about observe → warn, but policy b71c02 is in phase warn "
        "now: decide again on its rules (`gate-pipeline backfill`) and advance on that\n"
    )
    # Decided again, the policy is judged on the warn phase's rules (FAIL rate <= 5%): 5/35 FAIL is not GO
    # (its interval straddles 5%, so HOLD).
    assert run_cli("backfill", *where) == 0
    decision = _decision(out)
    assert (decision["current_phase"], decision["next_phase"], decision["verdict"]) == (
        "warn",
        "enforce",
        "HOLD",
    )
    capsys.readouterr()
    assert run_cli("advance", "--approve", "--by", "bob", *where) == 1
    assert capsys.readouterr().err.startswith(
        "advance refused: the latest decision for policy b71c02 is HOLD"
    )

    assert run_cli("rollback", "--by", "ben", "--note", "enforcement too early", *where) == 0
    assert capsys.readouterr().out.startswith("policy b71c02: rolled back warn → observe by ben at ")
    assert run_cli("phase", *where) == 0
    shown = capsys.readouterr().out
    assert "| b71c02 | observe |" in shown and "| ben | 2 |" in shown
    assert "| 1 |" in shown and "| advance | observe → warn | ana | FAIL rate well below 50% |" in shown
    assert "| rollback | warn → observe | ben | enforcement too early |" in shown
    entries = lifecycle.read_log(Store.at(out), ["observe", "warn", "enforce"])
    assert [e.evidence["whitelist_sha256"] for e in entries] == [
        orjson.loads((out / "rollout_metrics.json").read_bytes())["provenance"]["whitelist_sha256"]
    ] * 2


def test_a_held_lock_and_a_corrupt_log_are_refused_with_their_reasons(workspace, capsys):
    tmp_path, config = workspace
    out = tmp_path / "out"
    where = ("--artifacts", str(SAMPLE), "--out", str(out), "--config", str(config))
    assert run_cli("run", *where) == 0
    capsys.readouterr()
    with locked(Store.at(out), lifecycle.LOCK_FILE, "carl", 600):
        assert run_cli("advance", "--approve", "--by", "ana", *where) == 1
    err = capsys.readouterr().err
    assert err.startswith("advance refused: another phase change is in progress (")
    assert "held by carl on " in err and err.endswith("nothing was changed, retry when it has finished\n")
    assert not (out / "phase_log.jsonl").exists()

    (out / "phase_log.jsonl").write_text('{"seq": 1, "at": \n')
    for verb in (("phase",), ("advance", "--approve", "--by", "ana"), ("rollback", "--by", "ben")):
        assert run_cli(*verb, *where) == 2
        err = capsys.readouterr().err
        assert err.startswith(
            f"{verb[0]} refused: the phase log is corrupt: {out}/phase_log.jsonl: line 1: not valid JSON"
        )
        assert "never reset" in err
    assert (out / "phase_log.jsonl").read_text() == '{"seq": 1, "at": \n'


def test_advance_and_rollback_on_s3(workspace, s3_bucket, capsys):
    tmp_path, config = workspace
    upload_tree(SAMPLE, s3_bucket.url("ci/gate"), s3_bucket.storage_options)
    upload_tree(config, s3_bucket.url("ci/config"), s3_bucket.storage_options)
    where = ("--artifacts", s3_bucket.url("ci/gate"), "--out", s3_bucket.url("ci/reports"))
    where += ("--config", s3_bucket.url("ci/config"))
    assert run_cli("run", *where) == 0
    assert run_cli("advance", "--approve", "--by", "ana", *where) == 0
    assert run_cli("rollback", "--by", "ben", *where) == 0
    assert run_cli("phase", *where) == 0
    assert "| b71c02 | observe |" in capsys.readouterr().out
    store = Store.at(s3_bucket.url("ci/reports"), s3_bucket.storage_options)
    entries = lifecycle.read_log(store, ["observe", "warn", "enforce"])
    assert [(e.action, e.from_phase, e.to_phase, e.by) for e in entries] == [
        ("advance", "observe", "warn", "ana"),
        ("rollback", "warn", "observe", "ben"),
    ]
    assert not store.exists(lifecycle.LOCK_FILE)
