"""What-if replay as a job: `whatif_job` replays the stored history under a candidate config (lib/whatif.py).

Not an asset: it materializes nothing and changes nothing live; it writes `<out>/whatif/<name>/`, as
`gate-pipeline whatif` does. The candidate config folder (local or s3://) and the name are run config.
"""

import dagster as dg
from pydantic import Field

from gate_pipeline.defs.resources import GateStorage
from gate_pipeline.lib import whatif
from gate_pipeline.lib.reports.markdown_table import markdown_table
from gate_pipeline.lib.storage import Store
from gate_pipeline.preflight import CONFIG_ERRORS
from gate_pipeline.settings import Settings

WHATIF_JOB = "whatif_job"


class WhatIfConfig(dg.Config):
    candidate_config: str = Field(
        description="Candidate config folder (local path or s3:// URL) holding the files to change "
        "(unknown_whitelist.json, policy_constants.yaml, analysis.yaml, lifecycle.yaml); the others are the "
        "current ones."
    )
    name: str = Field("", description="Names <out>/whatif/<name>/ (default: the candidate folder's name).")
    days: int | None = Field(
        None,
        description="Replay the decision at the end of the last N days with runs (0 = all; default: "
        "lifecycle.timeline_max_days).",
    )


def build_whatif_job() -> dg.JobDefinition:
    """Built per Definitions (as the other groups' definitions), so a module-level object is never loaded
    twice."""

    @dg.op(
        description="Replays the stored history (no artifact) under a candidate config beside the current one and "
        "writes <out>/whatif/<name>/: both decisions, the rules and figures that change, the runs whose "
        "classification changes, the decision at the end of each day under both configs."
    )
    def whatif_replay(context: dg.OpExecutionContext, config: WhatIfConfig, storage: GateStorage) -> str:
        outputs = storage.outputs()
        try:
            name = whatif.check_name(config.name or whatif.default_name(config.candidate_config))
            candidate = Store.at(config.candidate_config, storage.storage_options)
            configs = whatif.load_configs(storage.config(), candidate)
            result = whatif.replay(storage.data(), outputs, configs, name, days=config.days)
        except (whatif.WhatIfError, *CONFIG_ERRORS) as exc:
            # Bad input, not a bug: the message says which file and what (no traceback to read).
            raise dg.Failure(description=f"what-if refused: {exc}", allow_retries=False) from exc
        files, info = whatif.outputs_of(result)
        urls = whatif.write(whatif.destination(outputs, name), files)
        context.log.info(whatif.summary_text(info, config.candidate_config))
        cur, cand = info["current"], info["candidate"]
        rows = [[r["rule"], r["current_evidence"], r["candidate_evidence"]] for r in info["rules_changed"]]
        report = urls[("whatif.md",)]
        context.add_output_metadata(
            {
                "verdict": f"{cur['verdict']} → {cand['verdict']}",
                "changed_files": dg.MetadataValue.json(info["changed_files"]),
                "runs_reclassified": info["runs_reclassified"],
                "days_verdict_changes": info["days_verdict_changes"],
                "rules_changed": dg.MetadataValue.md(
                    markdown_table(["rule", "current", "candidate"], rows) if rows else "none"
                ),
                "report": dg.MetadataValue.path(report),
            }
        )
        return report

    @dg.job(
        name=WHATIF_JOB,
        description="What-if replay of a candidate whitelist / decision / analysis config over the stored history "
        "(run config: ops.whatif_replay.config.candidate_config); reads no artifact, changes nothing live.",
    )
    def whatif_job():
        whatif_replay()

    return whatif_job


def build(settings: Settings) -> dg.Definitions:
    return dg.Definitions(jobs=[build_whatif_job()])


@dg.definitions
def defs() -> dg.Definitions:
    return build(Settings.from_env())
