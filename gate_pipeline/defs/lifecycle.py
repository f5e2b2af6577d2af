"""The phase lifecycle in Dagster: the phase log as an observable source (group `config`), so a transition
makes gate_decision stale and re-evaluated with the new phase's rules, and `phase_auto_advance` (group
`decision`), which records each published decision and advances a policy automatically where
config/lifecycle.yaml allows it (lib/lifecycle.py holds the logic; `gate-pipeline advance` the manual path).
"""

import dagster as dg

from gate_pipeline.dagster_helpers.metadata import OWNERS
from gate_pipeline.defs.resources import ANALYSIS_FILE, GateStorage
from gate_pipeline.defs.series import HISTORY_FILE
from gate_pipeline.lib import lifecycle, published, rules
from gate_pipeline.lib.provenance import provenance, stored_manifest_sha256
from gate_pipeline.lib.reports.markdown_table import markdown_table
from gate_pipeline.lib.storage import sha256_bytes
from gate_pipeline.settings import Settings

PHASE_LOG = "phase_log"
LOG_HEADER = ["#", "at (UTC)", "policy_hash", "action", "phase", "by", "note"]


def lifecycle_config(storage: GateStorage, cfg: rules.DecisionConfig) -> lifecycle.LifecycleConfig:
    """config/lifecycle.yaml, validated against the decision config's phases (defaults when absent)."""
    config = storage.config()
    return lifecycle.load_lifecycle_config(
        storage.config_file(lifecycle.LIFECYCLE_FILE), config.url(lifecycle.LIFECYCLE_FILE), cfg.phase_order
    )


def evidence_now(storage: GateStorage) -> dict[str, str]:
    """The provenance a decision would carry if made now: stored runs, whitelist, config, code version."""
    data = storage.data()
    with data.open_read(HISTORY_FILE) as source:
        manifest = stored_manifest_sha256(source)  # a row group at a time
    return provenance(
        None, storage.whitelist().sha256, decision_config_files(storage), manifest_sha256=manifest
    )


def decision_config_files(storage: GateStorage) -> dict[str, bytes]:
    """The config files a decision depends on (hashed into its provenance as config_sha256)."""
    return published.config_files(storage.decision_config()[1], storage.config_file(ANALYSIS_FILE))


def phase_history_table(
    entries: list[lifecycle.LogEntry], decision: rules.Decision, cfg: rules.DecisionConfig
) -> dg.MetadataValue:
    """The decided policy's transitions as a metadata table (gate_decision's phase_history)."""
    rows = lifecycle.log_rows([e for e in entries if e.policy_hash == decision.policy_hash])
    text = (
        markdown_table(LOG_HEADER, rows)
        if rows
        else f"_no transitions yet: starting phase {cfg.current_phase}_"
    )
    return dg.MetadataValue.md(text)


def phases_in_use(storage: GateStorage, cfg: rules.DecisionConfig) -> list[str]:
    """The starting phase and every phase the log has a policy in now. A log that cannot be read gives the
    starting phase only here: the definitions still load, and the decision step reports the log's error."""
    try:
        current = lifecycle.phases(lifecycle.read_log(storage.outputs(), cfg.phase_order), cfg.current_phase)
    except lifecycle.PhaseLogError:
        current = {}
    return [p for p in cfg.phase_order if p == cfg.current_phase or p in current.values()]


def rules_of_phases(cfg: rules.DecisionConfig, phases: list[str] | None) -> list:
    """One rule per name over ``phases`` (default: the starting phase): gate_decision declares a check for
    each, as the phase log decides which phase's rules run (a policy advanced since the definitions loaded
    runs rules without a check until they reload, as after a config edit)."""
    seen: dict[str, object] = {}
    for phase in [cfg.current_phase, *(phases or [])]:
        for rule in cfg.rules_for(phase):
            seen.setdefault(rule.name, rule)
    return [seen[name] for name in sorted(seen)]


def not_in_phase(check_name: str, phase: str) -> dg.AssetCheckResult:
    """The result of a declared rule check the policy's phase does not run (not a failure, not evidence)."""
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key="gate_decision",
        passed=True,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"verdict": "NOT_EVALUATED", "why": f"not a rule of the {phase} phase the policy is in"},
    )


def build_lifecycle_assets() -> list:
    """Built per Definitions (as the other groups' assets), so a module-level object is never loaded twice."""

    @dg.multi_observable_source_asset(
        name=PHASE_LOG,
        specs=[
            dg.AssetSpec(
                PHASE_LOG,
                group_name="config",
                description="The rollout phase of each policy: the append-only transition log "
                "<out>/phase_log.jsonl (gate-pipeline advance / rollback, automatic advance).",
                owners=OWNERS,
                kinds={"json"},
            )
        ],
        required_resource_keys={"storage"},
    )
    def phase_log_source(context):
        outputs = context.resources.storage.outputs()
        name = lifecycle.LOG_FILE
        digest = sha256_bytes(outputs.read_bytes(name)) if outputs.exists(name) else "absent"
        yield dg.ObserveResult(
            asset_key=PHASE_LOG,
            data_version=dg.DataVersion(digest),
            metadata={"path": dg.MetadataValue.path(outputs.url(name)), "sha256": digest},
        )

    @dg.asset(
        group_name="decision",
        deps=["gate_decision"],
        owners=OWNERS,
        kinds={"json"},
        automation_condition=dg.AutomationCondition.eager(),
        description="Records each published decision as an evaluation and advances its policy automatically "
        "where config/lifecycle.yaml allows it (GO on K consecutive evaluations over D hours, cooldown after a "
        "rollback); other phases wait for `gate-pipeline advance --approve`.",
    )
    def phase_auto_advance(context: dg.AssetExecutionContext, storage: GateStorage) -> dg.MaterializeResult:
        cfg, _ = storage.decision_config()
        try:
            outcome = lifecycle.observe_decision(
                storage.outputs(),
                lifecycle_config(storage, cfg),
                evidence_now=lambda: evidence_now(storage),
                phase_order=cfg.phase_order,
                start_phase=cfg.current_phase,
            )
        except (lifecycle.Refused, lifecycle.LockBusy) as exc:
            outcome = f"no automatic advance: {exc}"
        context.log.info(outcome)
        return dg.MaterializeResult(metadata={"outcome": outcome})

    return [phase_log_source, phase_auto_advance]


def build(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=build_lifecycle_assets())


@dg.definitions
def defs() -> dg.Definitions:
    return build(Settings.from_env())
