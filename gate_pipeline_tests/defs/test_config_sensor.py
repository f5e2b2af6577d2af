"""config_sensor: observes a config file only when its bytes change (no run) and keeps the check
'classified with the current whitelist' on classified_runs current across an edit and a re-classification."""

import shutil

import dagster as dg
import orjson
import pytest

from gate_pipeline.definitions import RECLASSIFY_JOB, build_definitions
from gate_pipeline.defs.config import (
    CLASSIFIED_RUNS,
    DATA_VERSION_TAG,
    WHITELIST_CHECK,
    build_config_sensor,
    classified_with_current_whitelist,
)
from gate_pipeline.defs.resources import GateStorage
from gate_pipeline.lib.storage import sha256_bytes
from gate_pipeline_tests.pipeline_helpers import CONFIG, SAMPLE, date_range, materialize_all, settings_for

pytestmark = pytest.mark.slow


def _events(result: dg.SensorResult) -> tuple[dict[str, dg.AssetObservation], list[dg.AssetCheckEvaluation]]:
    observations = {
        e.asset_key.path[-1]: e for e in result.asset_events if isinstance(e, dg.AssetObservation)
    }
    checks = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    return observations, checks


def test_config_sensor_observes_changes_and_tracks_whitelist_currency(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    settings = settings_for(SAMPLE, tmp_path, config)
    storage = GateStorage.from_settings(settings)
    sensor = build_config_sensor(30)
    first_day, last_day = date_range(SAMPLE)
    whitelist_path = config / "unknown_whitelist.json"
    with dg.instance_for_test() as instance:
        assert materialize_all(settings, first_day, last_day, instance).success

        def tick(cursor):
            context = dg.build_sensor_context(
                instance=instance, cursor=cursor, resources={"storage": storage}
            )
            return sensor(context)

        first = tick(None)
        observations, checks = _events(first)
        assert sorted(observations) == ["analysis_config", "decision_config", "unknown_whitelist"]
        digest = sha256_bytes(whitelist_path.read_bytes())
        assert observations["unknown_whitelist"].tags[DATA_VERSION_TAG] == digest
        entries = observations["unknown_whitelist"].metadata["entries"].value
        n_entries = len(orjson.loads(whitelist_path.read_bytes())["entries"])
        assert (
            len(entries.records) == n_entries
            and observations["unknown_whitelist"].metadata["entry_count"].value == n_entries
        )
        assert {c.name for c in entries.schema.columns} >= {
            "reason",
            "class",
            "owner",
            "expires",
            "days_to_expiry",
        }
        [check] = checks
        assert (check.asset_key, check.check_name, check.passed) == (CLASSIFIED_RUNS, WHITELIST_CHECK, True)
        assert check.metadata["classified_days"].value == 12 and check.metadata["stale_days"].value == 0
        assert not first.run_requests

        # Nothing changed: no event, and the cursor moves on.
        quiet = tick(first.cursor)
        assert quiet.asset_events == [] and quiet.skip_reason is not None

        # A whitelist edit: only that file is observed again, and the check warns about every stored day.
        document = orjson.loads(whitelist_path.read_bytes())
        document["entries"].append(
            {
                "reason": "made_up_reason",
                "match": "exact",
                "class": "infra",
                "owner": "team-test",
                "expires": "2026-12-31",
                "note": "test",
            }
        )
        whitelist_path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
        edited = tick(quiet.cursor)
        observations, [check] = _events(edited)
        assert list(observations) == ["unknown_whitelist"]
        assert observations["unknown_whitelist"].tags[DATA_VERSION_TAG] == sha256_bytes(
            whitelist_path.read_bytes()
        )
        assert len(observations["unknown_whitelist"].metadata["entries"].value.records) == n_entries + 1
        assert check.passed is False and check.severity == dg.AssetCheckSeverity.WARN
        assert check.metadata["stale_days"].value == 12
        assert check.metadata["stale_day_list"].value[0] == first_day

        # Re-classifying every stored day brings it current; the check is also part of that run.
        job = build_definitions(settings).resolve_job_def(RECLASSIFY_JOB)
        tags = {
            "dagster/asset_partition_range_start": first_day,
            "dagster/asset_partition_range_end": last_day,
        }
        result = job.execute_in_process(instance=instance, tags=tags)
        [in_run] = [e for e in result.get_asset_check_evaluations() if e.check_name == WHITELIST_CHECK]
        assert in_run.passed
        current = tick(edited.cursor)
        observations, [check] = _events(current)
        assert observations == {} and check.passed and check.metadata["stale_days"].value == 0


def test_whitelist_check_by_hand_reads_the_event_log(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    settings = settings_for(SAMPLE, tmp_path, config)
    first_day, last_day = date_range(SAMPLE)
    with dg.instance_for_test() as instance:
        assert materialize_all(settings, first_day, last_day, instance).success
        (config / "unknown_whitelist.json").write_bytes(
            (config / "unknown_whitelist.json").read_bytes() + b"\n"
        )
        context = dg.build_asset_check_context(
            instance=instance, resources={"storage": GateStorage.from_settings(settings)}
        )
        result = classified_with_current_whitelist(context)
        assert result.passed is False and result.metadata["stale_days"].value == 12
