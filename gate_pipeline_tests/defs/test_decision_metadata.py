"""gate_decision's page reads at a glance: verdicts map to check severities, the rule table is native table
metadata, and each materialization says what it said before and what changed since."""

import json
import shutil

import dagster as dg
import pytest

from gate_pipeline.defs.decision import VERDICT_CODE, check_severity
from gate_pipeline.lib.provenance import changed_inputs
from gate_pipeline.lib.reports.decision_svg import INLINE_MARKDOWN_LIMIT
from gate_pipeline_tests.pipeline_helpers import CONFIG, SAMPLE, date_range, materialize_all, settings_for


@pytest.mark.parametrize(
    ("verdict", "rule_severity", "expected"),
    [
        ("HOLD", "ERROR", dg.AssetCheckSeverity.WARN),
        ("FAIL", "ERROR", dg.AssetCheckSeverity.ERROR),
        ("ROLLBACK", "ERROR", dg.AssetCheckSeverity.ERROR),
        ("FAIL", "WARN", dg.AssetCheckSeverity.WARN),
    ],
)
def test_check_severity_follows_the_verdict(verdict, rule_severity, expected):
    assert check_severity(verdict, rule_severity) == expected


def test_changed_inputs_names_what_differs():
    before = {
        "artifact_manifest_sha256": "a",
        "whitelist_sha256": "w",
        "config_sha256": "c",
        "code_version": "1",
    }
    assert changed_inputs({}, before) == ["first decision"]
    assert changed_inputs(before, dict(before)) == []
    assert changed_inputs(before, {**before, "whitelist_sha256": "w2", "artifact_manifest_sha256": "b"}) == [
        "artifacts",
        "whitelist",
    ]


@pytest.mark.slow
def test_decision_metadata_is_a_decision_log(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    settings = settings_for(SAMPLE, tmp_path, config)
    first, last = date_range(SAMPLE)
    with dg.instance_for_test() as instance:
        result = materialize_all(settings, first, last, instance)
        assert result.success
        [first_decision] = [
            m
            for m in result.get_asset_materialization_events()
            if m.asset_key == dg.AssetKey("gate_decision")
        ]
        meta = first_decision.materialization.metadata
        decision_doc = json.loads((tmp_path / "outputs" / "rollout_metrics.json").read_text())
        table = meta["rules"].value
        assert {c.name for c in table.schema.columns} >= {
            "rule",
            "verdict",
            "observed",
            "ci_low",
            "ci_high",
        }
        # The chart is short enough for the UI to draw inline, and its legend names the rule's threshold.
        chart = meta["chart"].value
        assert isinstance(meta["chart"], dg.MarkdownMetadataValue)
        assert len(chart) < INLINE_MARKDOWN_LIMIT and "(<data:image/svg+xml;utf8," in chart
        assert "%26lt;= 0.1%3C/text%3E" in chart  # the threshold's label, "<= 0.1", at the end of its line
        assert meta["chart_legend"].value.startswith("fail_rate per day")
        assert "threshold (<= 0.1 now)" in meta["chart_legend"].value
        by_rule = {r.data["rule"]: r.data for r in table.records}
        assert by_rule["fail_rate"]["verdict"] == "HOLD"
        assert (
            by_rule["fail_rate"]["ci_low"]
            < by_rule["fail_rate"]["threshold"]
            < by_rule["fail_rate"]["ci_high"]
        )
        assert meta[VERDICT_CODE].value == 0 and meta["verdict"].value == "HOLD"
        assert (meta["policy_hash"].value, meta["baseline_policy_hash"].value) == (
            decision_doc["decision"]["policy_hash"],
            decision_doc["decision"]["previous_policy_hash"],
        )
        assert meta["baseline_policy_hash"].value not in ("", "(none)", meta["policy_hash"].value)
        assert meta["changed_since_previous"].value == "first decision"
        holds = [e for e in result.get_asset_check_evaluations() if e.check_name == "rule_fail_rate"]
        assert holds[0].passed is False and holds[0].severity == dg.AssetCheckSeverity.WARN

        # A stricter threshold: the next materialization names the config as what changed, and the verdict change.
        policy = config / "policy_constants.yaml"
        policy.write_text(policy.read_text().replace("threshold: 0.40", "threshold: 0.05", 1))
        again = materialize_all(settings, first, last, instance)
        assert again.success
        [second] = [
            m for m in again.get_asset_materialization_events() if m.asset_key == dg.AssetKey("gate_decision")
        ]
        meta2 = second.materialization.metadata
        assert meta2["changed_since_previous"].value == "config"
        assert meta2["verdict_change"].value == f"HOLD → {meta2['verdict'].value}"
        rows = {r.data["figure"]: r.data for r in meta2["before_after"].value.records}
        assert rows["verdict"] == {"figure": "verdict", "before": "HOLD", "after": meta2["verdict"].value}
        assert (
            rows["class occurrences, whitelisted"]["before"]
            == rows["class occurrences, whitelisted"]["after"]
        )
        first_rows = {r.data["figure"]: r.data for r in meta["before_after"].value.records}
        assert first_rows["verdict"]["before"] == "(none)"


def test_key_figures_sum_class_occurrences_by_kind():
    from gate_pipeline.lib.reports import key_figures

    doc = {
        "decision": {"verdict": "GO"},
        "statistics": {
            "class_frequencies": {
                "frequencies": [
                    {"scope": "overall", "kind": "whitelisted", "runs": 3},
                    {"scope": "overall", "kind": "whitelisted", "runs": 2},
                    {"scope": "overall", "kind": "non_whitelisted", "runs": 4},
                    {"scope": "policy_hash", "kind": "whitelisted", "runs": 99},
                    {"scope": "overall", "kind": "cause", "runs": 7},
                ]
            },
            "warn_threshold": {"with_whitelist": {"false_discovery_rate": 0.25, "false_positive_rate": None}},
        },
    }
    assert key_figures(doc) == {
        "verdict": "GO",
        "class occurrences, whitelisted": 5,
        "class occurrences, non-whitelisted": 4,
        "false_discovery_rate (WARN threshold, with whitelist)": 0.25,
        "false_positive_rate (WARN threshold, with whitelist)": None,
    }
