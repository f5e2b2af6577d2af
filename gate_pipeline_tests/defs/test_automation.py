"""rollout_series follows classified_runs by event ids, also when a day lands in the tick the series finishes;
the timeline and decision wait for the series after a whitelist edit."""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterRunStatus

from gate_pipeline.dagster_helpers.conditions import SEEN_EVENT_ID, latest_event_id, seen_event_id
from gate_pipeline.dagster_helpers.partitions import register_days
from gate_pipeline.definitions import build_definitions
from gate_pipeline.defs.ingest import INGEST_CHAIN
from gate_pipeline.settings import Settings
from gate_pipeline.synthetic import CorpusSpec, generate
from gate_pipeline_tests.pipeline_helpers import CONFIG, date_range, materialize_all, settings_for

SERIES = dg.AssetKey("rollout_series")
CLASSIFIED = dg.AssetKey("classified_runs")


@dataclass
class History:
    """Artifacts of a synthetic corpus but its last day, and their Definitions; ``add_new_day`` drops it in."""

    corpus: Path
    artifacts: Path
    old_days: list[str]
    new_day: str
    settings: Settings
    defs: dg.Definitions

    def add_new_day(self) -> None:
        shutil.copytree(self.corpus / self.new_day, self.artifacts / self.new_day)


def _history(tmp_path: Path, spec: CorpusSpec) -> History:
    corpus = tmp_path / "corpus"
    generate(corpus, spec)
    *old_days, new_day = sorted(p.name for p in corpus.iterdir())
    artifacts = tmp_path / "artifacts"
    for day in old_days:
        shutil.copytree(corpus / day, artifacts / day)
    settings = settings_for(artifacts, tmp_path)
    return History(corpus, artifacts, old_days, new_day, settings, build_definitions(settings))


def _run(defs: dg.Definitions, instance, selection, partition_key=None) -> None:
    job = defs.resolve_implicit_global_asset_job_def()
    if partition_key is not None:
        register_days(instance, [partition_key])  # the artifact sensor adds a new day's partition
    result = job.execute_in_process(
        instance=instance, asset_selection=selection, partition_key=partition_key, raise_on_error=False
    )
    assert result.success


@pytest.mark.slow
def test_series_follows_a_day_that_lands_in_the_same_tick_as_its_own_update(tmp_path):
    history = _history(tmp_path, CorpusSpec(runs=40, days=4, seed=11))
    defs, new_day = history.defs, history.new_day

    with dg.instance_for_test() as instance:
        assert materialize_all(history.settings, *date_range(history.artifacts), instance=instance).success
        # The cold build's series saw every classified day it read.
        assert seen_event_id(instance, SERIES) == latest_event_id(instance, CLASSIFIED)
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.get_num_requested(SERIES) == 0

        # Within one tick: the series is re-materialized by another run, then a new day is classified.
        # eager() counts the day as handled by the series update; the event ids say it is not in it.
        _run(defs, instance, [SERIES])
        seen = seen_event_id(instance, SERIES)
        history.add_new_day()
        _run(defs, instance, INGEST_CHAIN, partition_key=new_day)
        assert latest_event_id(instance, CLASSIFIED) > seen
        second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert second.get_num_requested(SERIES) == 1
        # Statistics and the decision follow the series in the same request.
        assert second.get_num_requested(dg.AssetKey("gate_decision")) == 1

        # Once the series has read the new day, nothing is asked again.
        _run(defs, instance, [SERIES])
        materialization = instance.get_latest_materialization_event(SERIES).asset_materialization
        assert materialization.metadata[SEEN_EVENT_ID].value == latest_event_id(instance, CLASSIFIED)
        assert materialization.metadata["days"].value == len(history.old_days) + 1
        third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
        assert third.get_num_requested(SERIES) == 0


@pytest.mark.slow
def test_failed_series_waits_for_the_next_classified_update_instead_of_retrying(tmp_path):
    history = _history(tmp_path, CorpusSpec(runs=30, days=3, seed=12))
    defs, new_day = history.defs, history.new_day

    with dg.instance_for_test() as instance:
        assert materialize_all(history.settings, *date_range(history.artifacts), instance=instance).success
        history.add_new_day()
        _run(defs, instance, INGEST_CHAIN, partition_key=new_day)
        requested = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert requested.get_num_requested(SERIES) == 1

        # The requested series run fails: the new day's stored table is unreadable.
        stored = tmp_path / "data" / "classified_runs" / f"{new_day}.parquet"
        good = stored.read_bytes()
        stored.write_bytes(b"not parquet")
        failed = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[SERIES], raise_on_error=False
        )
        assert not failed.success
        after_failure = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=requested.cursor
        )
        assert after_failure.get_num_requested(SERIES) == 0  # no retry loop every tick

        # The day is classified again (here: the file restored and the day re-run): the series follows.
        stored.write_bytes(good)
        _run(defs, instance, INGEST_CHAIN, partition_key=new_day)
        again = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=after_failure.cursor)
        assert again.get_num_requested(SERIES) == 1


@pytest.mark.slow
def test_a_whitelist_edit_waits_for_the_series_before_the_timeline_and_decision(tmp_path):
    """After a whitelist edit the re-classification is under way (or done) before the series has read it: the
    timeline and the decision, which also follow the whitelist, wait for the series instead of publishing
    a decision on runs classified with the old whitelist; then all three go in one request."""
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    history = _history(tmp_path, CorpusSpec(runs=30, days=3, seed=13))
    settings = settings_for(history.artifacts, tmp_path, config)
    defs = build_definitions(settings)
    timeline, decision = dg.AssetKey("decision_timeline"), dg.AssetKey("gate_decision")
    day = history.old_days[0]

    with dg.instance_for_test() as instance:
        assert materialize_all(settings, *date_range(history.artifacts), instance=instance).success
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.get_num_requested(timeline) == 0

        whitelist = config / "unknown_whitelist.json"
        document = json.loads(whitelist.read_text())
        document["entries"].append(
            {"reason": "schema_drift", "match": "exact", "class": "schema", "owner": "t"}
        )
        whitelist.write_text(json.dumps(document))
        _run(defs, instance, [dg.AssetKey("unknown_whitelist")])  # the config source's observation
        # The backfill has started: a run re-classifying a day is in progress.
        job = defs.resolve_implicit_global_asset_job_def()
        backfill = instance.create_run_for_job(
            job,
            asset_selection={CLASSIFIED},
            tags={"dagster/partition": day},
            status=DagsterRunStatus.STARTED,
        )
        waiting = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert waiting.get_num_requested(timeline) == waiting.get_num_requested(decision) == 0

        # The re-classification ends; the series has not read it yet: still nothing but the series.
        instance.report_run_failed(backfill)
        _run(defs, instance, [CLASSIFIED], partition_key=day)
        caught_up = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=waiting.cursor)
        assert caught_up.get_num_requested(SERIES) == 1
        # ... and the timeline and decision in the same request, after it.
        assert caught_up.get_num_requested(timeline) == caught_up.get_num_requested(decision) == 1
