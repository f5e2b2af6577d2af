"""gate_decision declares a check per rule of the phases the phase log has policies in."""

from gate_pipeline.definitions import build_definitions
from gate_pipeline.lib import lifecycle
from gate_pipeline.lib.storage import Store
from gate_pipeline_tests.lib.test_lifecycle import EVIDENCE, PHASES, publish
from gate_pipeline_tests.pipeline_helpers import SAMPLE, settings_for


def _checks(settings) -> set[str]:
    defs = build_definitions(settings)
    return {
        key.name
        for key in defs.resolve_asset_graph().asset_check_keys
        if key.asset_key.path == ["gate_decision"]
    }


def test_checks_follow_the_phases_in_the_log_and_a_corrupt_log_still_loads(tmp_path):
    settings = settings_for(SAMPLE, tmp_path)
    starting = _checks(settings)
    assert "rule_fail_rate" in starting and "rule_unknown_rate_vs_previous_policy" not in starting
    out = Store.at(settings.outputs_url)
    publish(out)
    lifecycle.advance(
        out, by="ana", note="", evidence_now=lambda: EVIDENCE, phase_order=PHASES, start_phase="observe",
        stale_lock_seconds=600,
    )  # fmt: skip
    assert _checks(settings) == starting | {"rule_unknown_rate_vs_previous_policy"}
    out.write_bytes(b"not json\n", lifecycle.LOG_FILE)
    assert _checks(settings) == starting
