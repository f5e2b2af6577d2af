"""Group `decision`: decision_timeline, the decision as it stood at the end of each day (lib/timeline.py)."""

import base64

import dagster as dg

from gate_pipeline.dagster_helpers.conditions import eager_after_series
from gate_pipeline.dagster_helpers.metadata import OWNERS
from gate_pipeline.defs.lifecycle import PHASE_LOG, decision_config_files, lifecycle_config
from gate_pipeline.defs.resources import GateStorage
from gate_pipeline.defs.series import HISTORY_FILE
from gate_pipeline.lib import analysis, lifecycle, timeline
from gate_pipeline.lib.memory import release_memory
from gate_pipeline.lib.provenance import config_sha256
from gate_pipeline.lib.published import frame_columns
from gate_pipeline.lib.reports.markdown_table import markdown_table
from gate_pipeline.lib.reports.timeline_chart import render_timeline_chart
from gate_pipeline.settings import Settings

TIMELINE_FILE = timeline.STORE_FILE  # data root: the rows and the keys they were computed from
TIMELINE_CSV = ("tables", "decision_timeline.csv")
TIMELINE_PNG = "decision_timeline.png"
SHOWN_DAYS = 14  # latest days in the asset's metadata table


def build_timeline_assets() -> list:
    @dg.asset(
        group_name="decision",
        deps=["rollout_series", "decision_config", "analysis_config", "unknown_whitelist", PHASE_LOG],
        owners=OWNERS,
        kinds={"csv", "png"},
        automation_condition=eager_after_series(),
        description="The decision as it stood at the end of each day of history (evaluated on the runs up "
        "to that day, in the phase the phase log gave the policy then): verdict, phase, evidence, the "
        "deciding rule, config and whitelist hashes. Only new days are evaluated; a config change replays "
        "all, a whitelist change only the days whose runs it changed. tables/decision_timeline.csv and decision_timeline.png in the outputs.",
    )
    def decision_timeline(context: dg.AssetExecutionContext, storage: GateStorage) -> dg.MaterializeResult:
        release_memory()
        cfg, _ = storage.decision_config()
        data, outputs = storage.data(), storage.outputs()
        with data.open_read(HISTORY_FILE) as source:
            table = analysis.read_history(source, frame_columns(cfg))
        history = table.to_pandas(split_blocks=True, self_destruct=True)  # no consolidation copy
        del table
        release_memory()  # the Arrow pool keeps the converted columns' pages until told otherwise
        previous = data.read_parquet(TIMELINE_FILE) if data.exists(TIMELINE_FILE) else None
        lifecycle_cfg = lifecycle_config(storage, cfg)
        frame, evaluated = timeline.build_timeline(
            history,
            cfg,
            lifecycle.read_log(outputs, cfg.phase_order),
            config_sha256=config_sha256(decision_config_files(storage)),
            whitelist_sha256=storage.whitelist().sha256,
            chart_rule=lifecycle_cfg.timeline_chart_rule,
            previous=previous,
            max_days=lifecycle_cfg.timeline_max_days,
        )
        data.write_parquet(frame, TIMELINE_FILE)
        csv_path = outputs.write_bytes(analysis.table_csv_bytes(timeline.published(frame)), *TIMELINE_CSV)
        chart = render_timeline_chart(frame)
        chart_path = outputs.write_bytes(chart, TIMELINE_PNG)
        context.log.info(f"decision timeline: {evaluated} day(s) evaluated, {len(frame) - evaluated} reused")
        shown = frame.tail(SHOWN_DAYS)
        rows = [
            [r.date, r.policy_hash or "—", r.phase, r.verdict, str(r.n_runs), r.deciding_rule or "—"]
            for r in shown.itertuples()
        ]
        image = base64.b64encode(chart).decode()
        return dg.MaterializeResult(
            metadata={
                "days": len(frame),
                "evaluated_days": evaluated,
                "chart": dg.MetadataValue.md(f"![decision timeline](data:image/png;base64,{image})"),
                "latest_days": dg.MetadataValue.md(
                    markdown_table(["date", "policy_hash", "phase", "verdict", "runs", "deciding rule"], rows)
                ),
                "csv": dg.MetadataValue.path(csv_path),
                "chart_path": dg.MetadataValue.path(chart_path),
            }
        )

    return [decision_timeline]


def build(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=build_timeline_assets())


@dg.definitions
def defs() -> dg.Definitions:
    return build(Settings.from_env())
