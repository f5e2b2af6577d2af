"""Real services on the sample, verified through GraphQL: counts, the blocking schema check, partitions, binding."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from gate_pipeline_tests.e2e.conftest import asset_keys_of
from gate_pipeline_tests.e2e.services import HOST

pytestmark = pytest.mark.e2e


def hand_count_runs(artifacts: Path, days: list[str]) -> tuple[int, int]:
    """(run folders that hold at least one file, files inside run folders), counted on disk."""
    runs = files = 0
    for day in days:
        for run in sorted(p for p in (artifacts / day).iterdir() if p.is_dir()):
            inside = [f for f in run.rglob("*") if f.is_file()]
            runs += bool(inside)
            files += len(inside)
    return runs, files


def test_run_table_metadata_counts_discovered_and_accepted(sample_services):
    services = sample_services.services
    # The last day's events; the run's totals over all days are under run_total_*, the same on every day.
    last = sample_services.days[-1]
    raw = services.latest_materialization_metadata("raw_runs", partition=last)
    table = services.latest_materialization_metadata("run_table", partition=last)

    runs_on_disk, _files = hand_count_runs(sample_services.artifacts, sample_services.days)
    assert raw["run_total_runs_discovered"] == runs_on_disk
    assert (
        raw["run_total_runs_discovered"]
        == raw["run_total_runs_with_gate_result"] + raw["run_total_runs_quarantined"]
    )
    assert raw["run_total_files_discovered"] >= raw["run_total_files_accepted"] > 0

    # The stored per-day parquet files, read independently of the services, hold exactly the accepted runs.
    stored = sorted((sample_services.data / "run_table").glob("*.parquet"))
    assert [p.stem for p in stored] == sample_services.days
    rows = sum(len(pd.read_parquet(p)) for p in stored)
    assert table["run_total_runs_accepted"] == rows
    assert table["run_total_runs_in"] == raw["run_total_runs_with_gate_result"]
    assert (
        table["run_total_runs_in"]
        == table["run_total_runs_accepted"] + table["run_total_duplicates_quarantined"]
    )
    # Each day's own event: its row count is that day's table.
    last_day = len(pd.read_parquet(stored[-1]))
    assert table["dagster/row_count"] == table["runs_accepted"] == last_day < rows
    runs_last_day, _ = hand_count_runs(sample_services.artifacts, sample_services.days[-1:])
    assert raw["runs_discovered"] == runs_last_day


def test_run_table_schema_check_passed(sample_services):
    services = sample_services.services
    checks = {c["name"]: c for c in services.asset_checks("run_table")}
    assert checks["run_table_schema"]["blocking"] is True

    executions = services.asset_check_executions("run_table", "run_table_schema")["run_table_schema"]
    evaluated = [e for e in executions if e["runId"] == sample_services.run_id and e["success"] is not None]
    assert evaluated, f"no evaluated run_table_schema execution in run {sample_services.run_id}: {executions}"
    latest = evaluated[0]
    assert latest["status"] == "SUCCEEDED"
    assert latest["success"] is True
    assert latest["severity"] == "ERROR"  # blocking checks must be ERROR severity to block
    assert latest["metadata"]["failure_count"] == 0
    assert json.loads(latest["metadata"]["failure_cases"]) == []
    assert latest["metadata"]["days_checked"] == len(sample_services.days)


def test_rule_checks_map_verdicts_to_severity(sample_services):
    """PASS passes; HOLD is a warning (yellow in the UI), never a red failure; the decision's rule table is
    native table metadata with the interval of every rule."""
    services = sample_services.services
    executions = services.asset_check_executions("gate_decision")
    verdicts = {}
    for name, rows in executions.items():
        latest = next(e for e in rows if e["success"] is not None)
        verdict = latest["metadata"]["verdict"]
        verdicts[name] = verdict
        assert latest["success"] is (verdict == "PASS"), (name, latest)
        if verdict == "HOLD":
            assert latest["severity"] == "WARN", (name, latest)
    assert "HOLD" in verdicts.values(), f"the sample should hold on some rule: {verdicts}"
    decision = services.latest_materialization_metadata("gate_decision")
    assert decision["verdict_change"].endswith(decision["verdict"])
    assert decision["changed_since_previous"]


def test_every_sample_day_is_materialized_for_every_daily_asset(sample_services):
    defs = sample_services.definitions()
    graph = defs.resolve_asset_graph()
    partitioned = [k for k in asset_keys_of(defs) if graph.get(_key(k)).is_partitioned]
    assert "run_table" in partitioned and "raw_runs" in partitioned
    for key in partitioned:
        materialized = sample_services.services.materialized_partitions(key)
        assert materialized == sample_services.days, f"{key}: {materialized}"


def test_every_materializable_asset_has_a_materialization(sample_services):
    defs = sample_services.definitions()
    graph = defs.resolve_asset_graph()
    materializable = [k for k in asset_keys_of(defs) if graph.get(_key(k)).is_materializable]
    missing = []
    for key in materializable:
        try:
            sample_services.services.latest_materialization_metadata(key)
        except Exception as exc:  # collect all, report once
            missing.append(f"{key}: {exc}")
    assert not missing, "\n".join(missing)


def test_sensors_of_definitions_are_known_to_the_services(sample_services):
    defs = sample_services.definitions()
    names = sorted(s.name for s in (defs.sensors or []))
    assert names == ["artifact_sensor", "automation_sensor", "config_sensor"]
    for name in names:
        state = sample_services.services.sensor_state(name)
        assert state["status"] in {"RUNNING", "STOPPED"}, f"{name}: {state}"


def listening_addresses(port: int) -> list[str]:
    """Local IPv4/IPv6 addresses with a LISTEN socket on ``port``, read from /proc/net/tcp{,6}."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:  # 0A = TCP_LISTEN
                continue
            if width == 8:
                # Little-endian hex of the IPv4 address.
                found.append(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
            else:
                found.append("v6:" + address)
    return sorted(found)


def test_webserver_binds_loopback_only(sample_services):
    services = sample_services.services
    assert services.url == f"http://{HOST}:{services.port}"
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp on this platform to read listening sockets from")
    assert listening_addresses(services.port) == ["127.0.0.1"]


def _key(user_string: str):
    import dagster as dg

    return dg.AssetKey.from_user_string(user_string)
