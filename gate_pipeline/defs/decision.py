"""Group `decision`: gate_decision (one asset check per rule, evidence in metadata) and rollout_report."""

import base64

import dagster as dg
import orjson
import pyarrow.compute as pc

from gate_pipeline.dagster_helpers.conditions import eager_after_series
from gate_pipeline.dagster_helpers.metadata import OWNERS, readable
from gate_pipeline.defs.lifecycle import (
    PHASE_LOG,
    decision_config_files,
    not_in_phase,
    phase_history_table,
    phases_in_use,
    rules_of_phases,
)
from gate_pipeline.defs.resources import GateStorage
from gate_pipeline.defs.series import HISTORY_FILE
from gate_pipeline.defs.statistics import STATISTICS_DESCRIPTIONS
from gate_pipeline.lib import analysis, lifecycle, provenance, published, reports, rules, timeline
from gate_pipeline.lib.memory import release_memory
from gate_pipeline.lib.provenance import PROVENANCE_LABELS, changed_inputs
from gate_pipeline.lib.reports import decision_svg
from gate_pipeline.lib.storage import sha256_bytes
from gate_pipeline.settings import Settings

GROUP = "decision"
TIMELINE_FILE = timeline.STORE_FILE  # data root: written by decision_timeline (defs/timeline.py)
STATISTICS_DEPS = list(STATISTICS_DESCRIPTIONS)


def read_statistics(storage: GateStorage) -> dict:
    data = storage.data()
    names = [n for n in data.list_names("statistics") if n.endswith(".json")]
    return {n.removesuffix(".json"): orjson.loads(data.read_bytes("statistics", n)) for n in names}


def rule_check_name(rule_name: str) -> str:
    return f"rule_{rule_name}"


def _rule_evidence(result: rules.RuleResult) -> dict:
    evidence = {
        "verdict": result.verdict,
        "why": result.why,
        "kind": result.kind,
        "metric": result.metric or "",
        "comparator": result.comparator or "",
        "sample_size": result.n,
        "missing_values": result.missing,
        "observe_only": result.observe_only,
    }
    for key in ("observed", "threshold", "ci_low", "ci_high"):
        value = getattr(result, key)
        if value is not None:
            evidence[key] = readable(value)
    if result.method:
        evidence["method"] = result.method  # the interval and the alpha of each side the verdict rests on
    if result.strata:
        evidence["strata"] = dg.MetadataValue.json([s.model_dump() for s in result.strata])
        failing = sorted(s.name for s in result.strata if s.verdict != "PASS")
        evidence["failing_strata"] = dg.MetadataValue.json(failing)
    if result.details:
        evidence["details"] = dg.MetadataValue.json(result.details)
    if result.evidence_run_ids:
        evidence["evidence_run_ids"] = dg.MetadataValue.json(result.evidence_run_ids)
    return evidence


RULE_COLUMNS = [
    ("rule", "string"),
    ("verdict", "string"),
    ("observed", "float"),
    ("comparator", "string"),
    ("threshold", "float"),
    ("ci_low", "float"),
    ("ci_high", "float"),
    ("n", "int"),
    ("counted", "bool"),
]


def rules_table(decision: rules.Decision) -> dg.TableMetadataValue:
    """Every rule as one row of native table metadata (shown inline on the asset page, not in a popup)."""
    records = [
        dg.TableRecord(
            {
                "rule": r.name,
                "verdict": r.verdict,
                "observed": None if r.observed is None else readable(r.observed),
                "comparator": r.comparator or "",
                "threshold": None if r.threshold is None else readable(r.threshold),
                "ci_low": None if r.ci_low is None else readable(r.ci_low),
                "ci_high": None if r.ci_high is None else readable(r.ci_high),
                "n": r.n,
                "counted": not r.observe_only,
            }
        )
        for r in decision.rules
    ]
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in RULE_COLUMNS])
    return dg.MetadataValue.table(records=records, schema=schema)


#: The numeric verdict's legend travels in its label, so a plot of it over time reads without a lookup.
VERDICT_CODE = "verdict_code (GO=1, HOLD=0, NO_GO=-1, ROLLBACK=-2)"


def check_severity(verdict: str, rule_severity: str) -> dg.AssetCheckSeverity:
    """A rule that holds for more evidence is a warning (yellow), not a failure; a failing rule is an error
    unless its config marks it as a warning."""
    if verdict == "HOLD" or rule_severity == "WARN":
        return dg.AssetCheckSeverity.WARN
    return dg.AssetCheckSeverity.ERROR


def timeline_chart(data, decision: rules.Decision) -> dict:
    """``chart``: the decision timeline's chart rule per day as SVG Markdown short enough to be drawn on the
    page, with the threshold the rule had each day; ``chart_legend``: how to read it."""
    if not data.exists(TIMELINE_FILE):
        return {"chart": "(no decision timeline yet: materialize decision_timeline)"}
    days = data.read_parquet(TIMELINE_FILE)
    rule = str(days["chart_rule"].iloc[-1]) if len(days) else ""
    result = next((r for r in decision.rules if r.name == rule), None)
    comparator = (result.comparator if result else None) or ""
    return {
        "chart": dg.MetadataValue.md(decision_svg.timeline_chart_markdown(days, comparator) or "(no day)"),
        "chart_legend": decision_svg.legend(rule, comparator, result.threshold if result else None),
    }


def previous_decision(instance: dg.DagsterInstance) -> tuple[dict[str, str], dict | None]:
    """Verdict and provenance hashes of the last gate_decision materialization ({} if none), and its key
    figures (None if none were recorded)."""
    event = instance.get_latest_materialization_event(dg.AssetKey("gate_decision"))
    if event is None or event.asset_materialization is None:
        return {}, None
    metadata = event.asset_materialization.metadata
    figures = metadata.get("key_figures")
    return (
        {k: str(v.value) for k, v in metadata.items() if k == "verdict" or k in PROVENANCE_LABELS},
        figures.value if figures is not None else None,
    )


def before_after(previous: dict | None, current: dict) -> dg.TableMetadataValue:
    """Each key figure before (the previous decision) and after (this one): what a whitelist or config
    change did, on the decision's own page."""
    records = [
        dg.TableRecord(
            {
                "figure": label,
                "before": "(none)"
                if previous is None or previous.get(label) is None
                else str(previous[label]),
                "after": "(none)" if value is None else str(value),
            }
        )
        for label, value in current.items()
    ]
    columns = [dg.TableColumn(name, "string") for name in ("figure", "before", "after")]
    return dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=columns))


def build_decision_assets(cfg: rules.DecisionConfig, phases: list[str] | None = None) -> list:
    """Check specs come from the decision config as it is when Definitions load (one check per rule)."""
    rule_specs = [
        dg.AssetCheckSpec(
            rule_check_name(rule.name),
            asset="gate_decision",
            description=f"[{rule.kind}{', observe-only' if rule.observe_only else ''}] {rule.description}",
        )
        for rule in rules_of_phases(cfg, phases)
    ]
    declared = {spec.name for spec in rule_specs}
    severity = {rule_check_name(r.name): r.severity for r in rules_of_phases(cfg, phases)}

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                "gate_decision",
                deps=["rollout_series", *STATISTICS_DEPS, "decision_config", PHASE_LOG, "decision_timeline"],
                group_name=GROUP,
                description="Should the policy move to its next rollout phase? GO, HOLD, NO_GO or ROLLBACK, "
                "with every rule's observed value, threshold, interval, sample size and reason; published "
                "as rollout_metrics.json.",
                owners=OWNERS,
                kinds={"json"},
                automation_condition=eager_after_series(),
            ),
            dg.AssetSpec(
                "rollout_report",
                deps=["gate_decision"],
                group_name=GROUP,
                description="The report for people (rollout_series_v1.md with the unknown-rate chart) and "
                "the short pull-request comment (ci_comment.md).",
                owners=OWNERS,
                kinds={"markdown", "png"},
                automation_condition=dg.AutomationCondition.eager(),
            ),
        ],
        check_specs=rule_specs,
    )
    def decision_outputs(context: dg.AssetExecutionContext, storage: GateStorage):
        """Decision and report in one step: both need the whole classified history, read once."""
        release_memory()
        cfg_now, _ = storage.decision_config()
        data, outputs = storage.data(), storage.outputs()
        with data.open_read(HISTORY_FILE) as source:
            # Nothing of the history is whole in memory but the frame the rules read: the manifest is hashed
            # a row group at a time, the frame read a column at a time (text through its dictionary), and
            # whitelist_sha256 (a few versions, 64 characters a run) stays dictionary-encoded in Arrow.
            manifest = provenance.stored_manifest_sha256(source)
            release_memory()  # the pages the manifest's row groups were decoded into
            frame = analysis.history_frame(source, published.frame_columns(cfg_now), unique=["run_id"])
            table = analysis.read_history(source, ["whitelist_sha256"], dictionary=["whitelist_sha256"])
        statistics = read_statistics(storage)
        whitelist = storage.whitelist()
        entries = lifecycle.read_log(outputs, cfg_now.phase_order)
        # In the phase the log gives the policy; what-if replay (lib/whatif.py) publishes through the same call.
        made = published.decide(
            table,
            cfg_now,
            entries,
            whitelist_sha256=whitelist.sha256,
            config=decision_config_files(storage),
            statistics=statistics,
            manifest_sha256=manifest,
            frame=frame,
        )
        del frame  # made.history is the same frame
        decision, hashes, doc, payload = made.decision, made.hashes, made.document, made.payload
        phase_history = phase_history_table(entries, decision, cfg_now)
        path = outputs.write_bytes(payload, "rollout_metrics.json")
        stale = (
            sorted(set(pc.unique(table.column("whitelist_sha256")).to_pylist()) - {whitelist.sha256})
            if table.num_rows
            else []
        )
        previous, previous_figures = previous_decision(context.instance)
        figures = reports.key_figures(doc)
        yield dg.MaterializeResult(
            asset_key="gate_decision",
            metadata={
                # Read at a glance, in this order: the verdict and why, for what, on how much evidence, by rule.
                "verdict": decision.verdict,
                "why": decision.why,
                "warnings": dg.MetadataValue.json([w.model_dump() for w in decision.warnings]),
                "policy_hash": decision.policy_hash or "",
                # The policy the candidate's relative rules and the baseline comparison measure it against.
                "baseline_policy_hash": decision.previous_policy_hash or "(none)",
                "phase": f"{decision.current_phase} → {decision.next_phase or '(final)'}",
                "phase_history": phase_history,
                "runs": decision.n_runs,
                "days": round(float(decision.days or 0.0), 1),
                # Short SVG Markdown, so the UI draws it on the page (a PNG would sit behind a popup).
                **timeline_chart(data, decision),
                "rules": rules_table(decision),
                # The asset's history reads as a decision log: what it said before and what changed since.
                "verdict_change": f"{previous.get('verdict', '(none)')} → {decision.verdict}",
                "changed_since_previous": ", ".join(changed_inputs(previous, hashes)) or "nothing",
                "before_after": before_after(previous_figures, figures),
                "key_figures": dg.MetadataValue.json(figures),
                VERDICT_CODE: decision.decision_as_number,
                **hashes,
                "rollout_metrics": dg.MetadataValue.path(path),
                "rollout_metrics_sha256": sha256_bytes(payload),
                # Days classified with another whitelist version: backfill classified_runs to bring them current.
                "stale_whitelist_versions": dg.MetadataValue.json(stale),
            },
        )
        for result in decision.rules:
            name = rule_check_name(result.name)
            if name not in declared:
                context.log.warning(f"rule {result.name} has no asset check yet: reload the code location")
                continue
            yield dg.AssetCheckResult(
                check_name=name,
                asset_key="gate_decision",
                passed=result.verdict == "PASS",
                severity=check_severity(result.verdict, severity[name]),
                metadata=_rule_evidence(result),
            )
        for name in sorted(declared - {rule_check_name(r.name) for r in decision.rules}):
            yield not_in_phase(name, decision.current_phase)

        rule_line = reports.chart_rule_line(decision, cfg_now)
        chart, reused = reports.chart_png(data, *reports.chart_inputs(made.history, statistics), rule_line)
        if reused:
            context.log.info("chart inputs unchanged: rollout_chart.png reused without rendering")
        chart_path = outputs.write_bytes(chart, "rollout_chart.png")
        report = reports.render_report_md(decision, statistics, "rollout_chart.png")
        report_path = outputs.write_bytes(report.encode(), "rollout_series_v1.md")
        comment = reports.render_ci_comment(decision)
        comment_path = outputs.write_bytes(comment.encode(), "ci_comment.md")
        image = base64.b64encode(chart).decode()
        yield dg.MaterializeResult(
            asset_key="rollout_report",
            metadata={
                "chart": dg.MetadataValue.md(f"![unknown_rate over runs](data:image/png;base64,{image})"),
                "ci_comment": dg.MetadataValue.md(comment),
                "report": dg.MetadataValue.path(report_path),
                "chart_path": dg.MetadataValue.path(chart_path),
                "ci_comment_path": dg.MetadataValue.path(comment_path),
            },
        )

    return [decision_outputs]


def build(settings: Settings) -> dg.Definitions:
    # One asset check per rule of the decision config as it is when the definitions load, for the phases
    # the phase log has policies in.
    storage = GateStorage.from_settings(settings)
    decision_cfg, _ = storage.decision_config()
    return dg.Definitions(assets=build_decision_assets(decision_cfg, phases_in_use(storage, decision_cfg)))


@dg.definitions
def defs() -> dg.Definitions:
    return build(Settings.from_env())
