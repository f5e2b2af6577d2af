"""Phase lifecycle: the log, its fold, the refusals operators see, the lock, hysteresis."""

import threading
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from gate_pipeline.lib import lifecycle
from gate_pipeline.lib.config import ConfigError
from gate_pipeline.lib.lifecycle import AutoAdvance, LifecycleConfig, LockBusy, PhaseLogError, Refused
from gate_pipeline.lib.storage import Store

PHASES = ["observe", "warn", "enforce"]
NOW = datetime(2026, 3, 12, 18, 0, tzinfo=UTC)
EVIDENCE = {
    "artifact_manifest_sha256": "a" * 64,
    "whitelist_sha256": "b" * 64,
    "config_sha256": "c" * 64,
    "code_version": "0.1.0",
}


def publish(
    store: Store, verdict="GO", phase="observe", policy="b71c02", at="2026-03-12T10:00:00Z", **evidence
):
    nxt = PHASES[PHASES.index(phase) + 1] if phase != PHASES[-1] else None
    doc = {
        "policy_hash": policy,
        "decision": {
            "verdict": verdict,
            "why": f"{verdict}: because",
            "current_phase": phase,
            "next_phase": nxt,
            "last_run_at": at,
        },
        "provenance": EVIDENCE | evidence,
    }
    store.write_bytes(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), "rollout_metrics.json")


def advance(store: Store, by="ana", evidence=None, now=NOW, note="looks good"):
    return lifecycle.advance(
        store,
        by=by,
        note=note,
        evidence_now=lambda: evidence or EVIDENCE,
        phase_order=PHASES,
        start_phase="observe",
        stale_lock_seconds=600,
        now=now,
    )


def rollback(store: Store, now=NOW, policy=None):
    return lifecycle.rollback(
        store,
        by="ben",
        note="alerts",
        phase_order=PHASES,
        start_phase="observe",
        stale_lock_seconds=600,
        policy_hash=policy,
        now=now,
    )


@pytest.fixture
def out(tmp_path) -> Store:
    return Store.at(tmp_path / "outputs")


def test_advance_on_go_records_who_when_and_the_evidence(out):
    publish(out)
    entry = advance(out)
    assert (entry.from_phase, entry.to_phase, entry.by, entry.note) == (
        "observe",
        "warn",
        "ana",
        "looks good",
    )
    assert entry.at == "2026-03-12T18:00:00Z"
    assert entry.evidence == EVIDENCE
    assert entry.decision.verdict == "GO"
    assert len(entry.decision.rollout_metrics_sha256) == 64
    log = lifecycle.read_log(out, PHASES)
    assert log == [entry]
    assert lifecycle.phases(log, "observe") == {"b71c02": "warn"}


@pytest.mark.parametrize("verdict", ["HOLD", "NO_GO", "ROLLBACK"])
def test_advance_without_go_is_refused(out, verdict):
    publish(out, verdict=verdict)
    with pytest.raises(Refused) as err:
        advance(out)
    assert str(err.value) == f"the latest decision for policy b71c02 is {verdict}, not GO: {verdict}: because"
    assert not out.exists("phase_log.jsonl")


def test_advance_twice_on_the_same_decision_is_refused(out):
    publish(out)
    advance(out)
    with pytest.raises(
        Refused, match=r"decision is about observe → warn, but policy b71c02 is in phase warn now"
    ):
        advance(out)
    assert len(lifecycle.read_log(out, PHASES)) == 1


def test_advance_on_stale_evidence_names_what_changed(out):
    publish(out)
    changed = EVIDENCE | {"whitelist_sha256": "d" * 64, "artifact_manifest_sha256": "e" * 64}
    with pytest.raises(Refused) as err:
        advance(out, evidence=changed)
    assert str(err.value) == (
        "the evidence changed since the latest decision: the stored runs (artifact manifest) "
        "(aaaaaaaaaaaa → eeeeeeeeeeee), the whitelist (bbbbbbbbbbbb → dddddddddddd); re-run the decision "
        "(`gate-pipeline run`, or `gate-pipeline backfill` after a whitelist or config edit) and advance on that"
    )


def test_no_published_decision_and_final_phase_are_refused(out):
    with pytest.raises(
        Refused, match=r"no published decision at .*rollout_metrics.json: run `gate-pipeline run`"
    ):
        advance(out)
    publish(out, phase="enforce")
    log = out.url("phase_log.jsonl")
    # Bring the policy to enforce first, then a GO in enforce has nowhere to go.
    publish(out, phase="observe")
    advance(out)
    publish(out, phase="warn")
    advance(out)
    publish(out, phase="enforce")
    with pytest.raises(Refused, match="policy b71c02 is in the final phase enforce: nothing to advance to"):
        advance(out)
    assert lifecycle.phases(lifecycle.read_log(out, PHASES), "observe") == {"b71c02": "enforce"}, log


def test_rollback_goes_one_phase_back_and_a_new_policy_starts_its_own_lifecycle(out):
    publish(out)
    advance(out)
    entry = rollback(out, now=NOW + timedelta(hours=1))
    assert (entry.action, entry.from_phase, entry.to_phase, entry.by) == (
        "rollback",
        "warn",
        "observe",
        "ben",
    )
    publish(out, policy="c0ffee")
    advance(out, now=NOW + timedelta(hours=2))
    log = lifecycle.read_log(out, PHASES)
    assert lifecycle.phases(log, "observe") == {"b71c02": "observe", "c0ffee": "warn"}
    assert [row[:2] for row in lifecycle.phase_rows(log, "observe")] == [
        ["b71c02", "observe"],
        ["c0ffee", "warn"],
    ]


def test_a_bad_json_line_is_a_clear_error_never_a_reset(out):
    publish(out)
    advance(out)
    out.write_bytes(out.read_bytes("phase_log.jsonl") + b'{"seq": 2, oops\n', "phase_log.jsonl")
    with pytest.raises(PhaseLogError) as err:
        lifecycle.read_log(out, PHASES)
    assert "phase_log.jsonl: line 2: not valid JSON" in str(err.value)
    assert "append-only and is never reset" in str(err.value)
    publish(out, phase="warn")
    with pytest.raises(PhaseLogError):
        advance(out)  # refuses to write on top of a corrupt log
    assert out.read_bytes("phase_log.jsonl").count(b"\n") == 2


def test_a_hand_edited_line_breaks_the_hash_chain(out):
    publish(out)
    advance(out)
    rollback(out)
    first, second = out.read_bytes("phase_log.jsonl").splitlines()
    out.write_bytes(first.replace(b'"by":"ana"', b'"by":"eve"') + b"\n" + second + b"\n", "phase_log.jsonl")
    with pytest.raises(
        PhaseLogError, match=r"line 2: prev_sha256 does not match line 1 \(the log was edited"
    ):
        lifecycle.read_log(out, PHASES)


def test_a_log_with_a_phase_outside_the_config_is_an_error(out):
    publish(out)
    advance(out)
    with pytest.raises(PhaseLogError, match=r"line 1: phase\(s\) \['warn'\] not in phase_order"):
        lifecycle.read_log(out, ["observe", "enforce"])


def test_a_held_lock_refuses_and_a_stale_one_is_named_and_broken_only_on_request(out):
    publish(out)
    with lifecycle.locked(out, lifecycle.LOCK_FILE, "carl", 600, NOW):
        with pytest.raises(LockBusy) as err:
            advance(out, now=NOW + timedelta(seconds=5))
        assert "another phase change is in progress" in str(err.value)
        assert "held by carl on" in str(err.value) and "retry when it has finished" in str(err.value)
        with pytest.raises(LockBusy):
            lifecycle.break_stale_lock(out, lifecycle.LOCK_FILE, 600, NOW + timedelta(seconds=5))
        late = NOW + timedelta(seconds=601)
        with pytest.raises(LockBusy, match=r"older than stale_lock_seconds \(600 s\).*--break-stale-lock"):
            advance(out, now=late)
        assert lifecycle.break_stale_lock(out, lifecycle.LOCK_FILE, 600, late).startswith(
            "removed the stale lock"
        )
        assert advance(out, now=late).to_phase == "warn"
    assert not out.exists("phase_log.lock")


def _race(store: Store, n: int = 4) -> list[object]:
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = advance(store, by=f"op{i}")
        except (lifecycle.LifecycleError, LockBusy) as exc:
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_advances_never_both_succeed_on_local_disk(out):
    publish(out)
    for _ in range(5):
        results = _race(out)
        assert sum(isinstance(r, lifecycle.LogEntry) for r in results) <= 1
    log = lifecycle.read_log(out, PHASES)
    assert [(e.from_phase, e.to_phase) for e in log] == [("observe", "warn")]


def test_concurrent_advances_never_both_succeed_on_s3(s3_bucket):
    store = Store.at(s3_bucket.url("reports"), s3_bucket.storage_options)
    publish(store)
    results = _race(store)
    wins = [r for r in results if isinstance(r, lifecycle.LogEntry)]
    assert len(wins) == 1
    assert all(isinstance(r, (LockBusy, Refused)) for r in results if r not in wins)
    assert [(e.from_phase, e.to_phase) for e in lifecycle.read_log(store, PHASES)] == [("observe", "warn")]
    assert not store.exists("phase_log.lock")


def _observe(store: Store, cfg: LifecycleConfig, now=NOW) -> str:
    return lifecycle.observe_decision(
        store, cfg, evidence_now=lambda: EVIDENCE, phase_order=PHASES, start_phase="observe", now=now
    )


AUTO = LifecycleConfig(auto_advance={"observe": AutoAdvance(consecutive_go=3, min_hours=24)})


def test_a_flickering_decision_never_flaps_the_phase(out):
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for i in range(12):
        at = (start + timedelta(hours=12 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        publish(out, verdict="GO" if i % 2 == 0 else "HOLD", at=at)
        message = _observe(out, AUTO)
        assert "no automatic advance yet (GO on " in message
    assert not out.exists("phase_log.jsonl")
    assert len(lifecycle.read_evaluations(out)) == 12


def test_auto_advance_needs_k_consecutive_go_over_d_hours_then_stops_at_approval(out):
    start = datetime(2026, 3, 1, tzinfo=UTC)
    messages = []
    for i in range(4):
        publish(out, at=(start + timedelta(hours=12 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        messages.append(_observe(out, AUTO))
        _observe(out, AUTO)  # the same document again is not another evaluation
    assert messages[:2] == [
        "policy b71c02 in observe: no automatic advance yet (GO on 1 consecutive evaluation(s), needs 3)",
        "policy b71c02 in observe: no automatic advance yet (GO on 2 consecutive evaluation(s), needs 3)",
    ]
    assert (
        messages[2]
        == "policy b71c02: advanced observe → warn automatically (GO on 3 consecutive evaluations over 24.0 h)"
    )
    # The 4th GO was evaluated in observe: it is stale for warn, and warn needs approval anyway.
    assert (
        messages[3] == "policy b71c02 in warn: leaving it needs approval (`gate-pipeline advance --approve`)"
    )
    log = lifecycle.read_log(out, PHASES)
    assert [(e.by, e.auto, e.to_phase) for e in log] == [(lifecycle.AUTO_BY, True, "warn")]


def test_a_short_streak_waits_for_d_hours(out):
    for hour in (0, 1, 2, 3):
        publish(out, at=f"2026-03-01T0{hour}:00:00Z")
        message = _observe(out, AUTO)
    assert message.endswith("(GO streak spans 3.0 h, needs 24 h)")


def test_cooldown_after_a_rollback_blocks_automatic_advance(out):
    cfg = LifecycleConfig(
        auto_advance={"observe": AutoAdvance(consecutive_go=1, min_hours=0)}, rollback_cooldown_hours=48
    )
    publish(out)
    advance(out)
    rollback(out)
    publish(out, at="2026-03-13T10:00:00Z")
    assert _observe(out, cfg, now=NOW + timedelta(hours=47)).endswith(
        "(cooldown: rolled back at 2026-03-12T18:00:00Z, cooldown 48 h)"
    )
    assert "advanced observe → warn automatically" in _observe(out, cfg, now=NOW + timedelta(hours=49))


def test_lifecycle_config_rejects_unknown_or_final_phases():
    raw = b"auto_advance:\n  enforce: {}\n  typo: {consecutive_go: 0}\n"
    with pytest.raises(ConfigError) as err:
        lifecycle.load_lifecycle_config(raw, "config/lifecycle.yaml", PHASES)
    assert (
        "config/lifecycle.yaml: auto_advance.typo.consecutive_go: Input should be greater than or equal to 1"
        in str(err.value)
    )
    raw = b"auto_advance:\n  enforce: {}\n"
    with pytest.raises(ConfigError, match=r"auto_advance.enforce: not a phase with a next phase"):
        lifecycle.load_lifecycle_config(raw, "config/lifecycle.yaml", PHASES)
    assert lifecycle.load_lifecycle_config(None, "absent", PHASES) == LifecycleConfig()


def test_operator_text_in_the_log_renders_as_text_in_its_tables(out):
    """Who approved and the note reach the decision's phase_history (UI Markdown) and `gate-pipeline status`:
    HTML, links, mentions and a "|" stay text and never split a table row."""
    from gate_pipeline.lib.reports import markdown_table

    publish(out)
    note = "<img src=x onerror=alert(1)> | [click](http://evil) @team"
    entry = advance(out, by="ana|<b>root</b>", note=note)
    assert entry.note == note  # the log keeps the operator's words as given
    (row,) = lifecycle.log_rows([entry])
    table = markdown_table(["seq", "at", "policy", "action", "phases", "by", "note"], [row])
    body = table.splitlines()[2]
    assert "<img" not in table and "<b>" not in table and "](" not in table and "@team" not in table
    assert body.endswith(r"| &lt;img src=x onerror=alert(1)> \| [click]\(http://evil) &#64;team |")
    # 7 cells: every "|" of the operator's text is escaped ("\|"), so only the 8 cell bounds remain.
    assert body.replace("\\|", "").count("|") == 8
    (status,) = lifecycle.phase_rows([entry], "observe")
    assert status[3] == "ana|&lt;b>root&lt;/b>"
