"""What Dagster's own bookkeeping costs for our asset graph, with every step doing nothing (issue 5 floor).

The real Definitions are rebuilt with the same asset specs, partitions, dependencies and asset checks, but
each step only reports its materializations and check results (no compute, no IO manager). Run on a copy
of a benchmark trial's SQLite instance (same history) and on a fresh Postgres instance, this is the lowest
step time an incremental run and the lowest wall time a whitelist backfill can reach with this graph on
this machine: whatever the pipeline computes comes on top.
"""

import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg


@dataclass
class FloorResult:
    steps_s: float  # sum of step durations
    run_wall_s: float  # execute_in_process wall, run creation (planned events) included
    events: int  # event log records of the run


def _noop_compute(order: list[dg.AssetKey]):
    """Report the selected assets (in declared order: upstream first, as Dagster requires) and checks."""

    def compute(context: dg.AssetExecutionContext):
        for asset_key in order:
            if asset_key in context.selected_asset_keys:
                yield dg.MaterializeResult(asset_key=asset_key)
        for check_key in sorted(context.selected_asset_check_keys):
            yield dg.AssetCheckResult(asset_key=check_key.asset_key, check_name=check_key.name, passed=True)

    return compute


def _noop_assets(real: dg.Definitions) -> list[dg.AssetsDefinition]:
    """One no-op multi_asset per real materializable step, same specs and checks."""
    graph = real.resolve_asset_graph()
    out, seen = [], set()
    for key in graph.materializable_asset_keys:
        assets_def = graph.get(key).assets_def
        if id(assets_def) in seen:
            continue
        seen.add(id(assets_def))
        specs = [spec.replace_attributes(automation_condition=None) for spec in assets_def.specs]
        compute = _noop_compute([spec.key for spec in specs])
        out.append(
            dg.multi_asset(
                name=assets_def.node_def.name,
                specs=specs,
                check_specs=list(assets_def.check_specs),
                can_subset=True,
            )(compute)
        )
    return out


def floor_definitions(real: dg.Definitions) -> dg.Definitions:
    return dg.Definitions(
        assets=_noop_assets(real),
        jobs=[
            dg.define_asset_job("floor_all", selection=dg.AssetSelection.all()),
            dg.define_asset_job(
                "floor_reclassify", selection=dg.AssetSelection.assets("classified_runs").downstream()
            ),
        ],
    )


def run_floor(
    defs: dg.Definitions, job_name: str, instance: dg.DagsterInstance, days: list[str]
) -> FloorResult:
    tags = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}
    job = defs.resolve_job_def(job_name)
    t0 = time.perf_counter()
    # The CLI's console level, so terminal logging costs the same as in the measured runs.
    run_config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    result = job.execute_in_process(instance=instance, tags=tags, run_config=run_config, raise_on_error=True)
    wall = time.perf_counter() - t0
    stats = instance.get_run_step_stats(result.run_id)
    steps = sum(s.end_time - s.start_time for s in stats if s.start_time and s.end_time)
    return FloorResult(steps, wall, len(instance.all_logs(result.run_id)))


def measure(
    real: dg.Definitions, home: Path, scratch: Path, new_day: str, all_days: list[str], repeat: int = 3
):
    """(incremental floor, backfill floor): medians over `repeat` runs, each on a fresh copy of `home`."""
    defs = floor_definitions(real)
    incremental, backfill = [], []
    for i in range(repeat):
        for label, job_name, days, into in (
            ("inc", "floor_all", [new_day], incremental),
            ("bf", "floor_reclassify", all_days, backfill),
        ):
            copy = scratch / f"floor_home_{label}_{i}"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(home, copy)
            with dg.DagsterInstance.from_config(str(copy)) as instance:
                into.append(run_floor(defs, job_name, instance, days))
            shutil.rmtree(copy, ignore_errors=True)
    return _median(incremental), _median(backfill)


def _median(results: list[FloorResult]) -> FloorResult:
    return FloorResult(
        statistics.median(r.steps_s for r in results),
        statistics.median(r.run_wall_s for r in results),
        int(statistics.median(r.events for r in results)),
    )


def measure_postgres(real: dg.Definitions, scratch: Path, new_day: str, all_days: list[str], repeat: int = 3):
    """The same floors on a Postgres instance (a throwaway loopback cluster), after one cold-shaped run."""
    from gate_pipeline_tests.postgres_server import postgres_cluster, postgres_instance_yaml

    defs = floor_definitions(real)
    home = scratch / "floor_home_postgres"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    incremental, backfill = [], []
    with postgres_cluster() as url:
        (home / "dagster.yaml").write_text(postgres_instance_yaml(url))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            run_floor(defs, "floor_all", instance, all_days)  # history, as after a cold build
            for _ in range(repeat):
                incremental.append(run_floor(defs, "floor_all", instance, [new_day]))
                backfill.append(run_floor(defs, "floor_reclassify", instance, all_days))
    shutil.rmtree(home, ignore_errors=True)
    return _median(incremental), _median(backfill)
