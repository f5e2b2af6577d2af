import hashlib
import json
from datetime import date
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gate_pipeline.lib.config import ConfigError
from gate_pipeline.lib.whitelist import (
    Whitelist,
    WhitelistEntry,
    load_whitelist,
    whitelist_health,
)

ROOT = Path(__file__).resolve().parents[2]


def wl_bytes(entries, version="1") -> bytes:
    return json.dumps({"schema_version": version, "entries": entries}).encode()


def entry(reason, cls, match="exact", owner="team-a", expires=None, note=""):
    e = {"reason": reason, "match": match, "class": cls, "owner": owner, "note": note}
    if expires is not None:
        e["expires"] = expires
    return e


def test_load_parses_fields_and_hashes_raw_bytes():
    raw = wl_bytes([entry("flaky_test", "flaky", expires="2026-06-30", note="n")])
    wl = load_whitelist(raw, "cfg/wl.json")
    assert wl.sha256 == hashlib.sha256(raw).hexdigest()
    assert wl.source == "cfg/wl.json"
    e = wl.entries[0]
    assert (e.reason, e.match, e.class_, e.owner, e.expires, e.note) == (
        "flaky_test",
        "exact",
        "flaky",
        "team-a",
        date(2026, 6, 30),
        "n",
    )
    assert e.label == "whitelisted:flaky"


def test_hash_changes_with_bytes_even_if_content_equal():
    a = b'{"schema_version": "1", "entries": []}'
    b = b'{"schema_version":"1","entries":[]}'
    assert load_whitelist(a, "a").sha256 != load_whitelist(b, "b").sha256


def test_in_memory_whitelist_has_stable_hash():
    w1 = Whitelist(entries=[WhitelistEntry(reason="x", class_="c", owner="o")])
    w2 = Whitelist(entries=[WhitelistEntry(reason="x", class_="c", owner="o")])
    assert w1.sha256 == w2.sha256 and len(w1.sha256) == 64


def test_exact_wins_over_glob_and_globs_in_file_order():
    wl = load_whitelist(
        wl_bytes(
            [
                entry("infra_*", "infra_any", match="glob"),
                entry("infra_t*", "infra_t", match="glob"),
                entry("infra_timeout", "timeout"),
            ]
        ),
        "w",
    )
    assert wl.match("infra_timeout").class_ == "timeout"
    assert wl.match("infra_tls").class_ == "infra_any"  # first glob in file order
    assert wl.match("network") is None
    assert wl.match_index("infra_timeout") == 2


def test_glob_is_case_sensitive_and_exact_is_literal():
    wl = load_whitelist(wl_bytes([entry("infra_*", "infra", match="glob"), entry("a*b", "lit")]), "w")
    assert wl.match("INFRA_X") is None
    assert wl.match("a*b").class_ == "lit"
    assert wl.match("axxb") is None  # exact entries are not patterns


def test_expiry_is_inclusive_and_falls_through_to_next_entry():
    wl = load_whitelist(
        wl_bytes([entry("infra_dns", "dns", expires="2026-03-02"), entry("infra_*", "infra", match="glob")]),
        "w",
    )
    assert wl.match("infra_dns", date(2026, 3, 2)).class_ == "dns"
    assert wl.match("infra_dns", date(2026, 3, 3)).class_ == "infra"
    assert wl.match("infra_dns").class_ == "dns"  # no date: expiry not applied


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        (b"{not json", ["w.json", "not valid JSON"]),
        (b"[]", ["w.json: <root>: top level must be a mapping"]),
        (wl_bytes([], version="2"), ["w.json", "schema_version"]),
        (
            wl_bytes([{"reason": "flaky_test", "class": "flaky"}]),
            ["w.json: entries[0] (reason 'flaky_test').owner: Field required"],
        ),
        (
            wl_bytes([entry("ok", "ok"), entry("bad", "has space")]),
            ["entries[1]", "'bad'", "class", "no spaces"],
        ),
        (wl_bytes([entry("x", "whitelisted:x")]), ["entries[0]", "bare class name"]),
        (wl_bytes([entry("x", "c", match="regex")]), ["entries[0]", "match", "'exact' or 'glob'"]),
        (wl_bytes([entry("x", "c", expires="31.12.2026")]), ["entries[0]", "expires", "date"]),
        (wl_bytes([entry("x", "c", owner="  ")]), ["entries[0]", "owner", "blank"]),
        (
            wl_bytes([entry("x", "c"), entry("x", "d")]),
            ["w.json: entries[1] (reason 'x'): duplicate of entries[0]"],
        ),
        (wl_bytes([{**entry("x", "c"), "colour": "red"}]), ["entries[0]", "colour", "Extra inputs"]),
    ],
)
def test_invalid_whitelist_errors_name_file_entry_and_problem(raw, fragments):
    with pytest.raises(ConfigError) as exc:
        load_whitelist(raw, "w.json")
    msg = str(exc.value)
    assert msg.startswith("w.json: ")
    for frag in fragments:
        assert frag in msg, msg


def runs(top_reasons: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"run_id": [f"r{i}" for i in range(len(top_reasons))], "top_reasons": top_reasons})


def test_health_reports_expired_and_never_matched_with_owner():
    wl = load_whitelist(
        wl_bytes(
            [
                entry("flaky_test", "flaky", owner="ci"),
                entry("old", "old", owner="alice", expires="2026-01-31"),
                entry("flaky_*", "flaky_any", match="glob", owner="bob"),
                entry("unused", "u", owner="carol"),
            ]
        ),
        "w",
    )
    df = runs(['["flaky_test","old"]', '["flaky_test"]', "[]", '["other"]'])
    h = whitelist_health(wl, df, today=date(2026, 3, 1))
    got = [(r.entry_index, r.problem, r.owner, r.matched_runs) for r in h.itertuples()]
    assert got == [
        (1, "expired", "alice", 1),
        (2, "never_matched", "bob", 0),
        (3, "never_matched", "carol", 0),
    ]
    assert "shadowed by entries[0]" in h.loc[1, "detail"]
    assert h.loc[2, "detail"] == "no run reason matches this entry"
    assert h.loc[0, "expires"] == "2026-01-31"


def test_health_expiry_boundary_and_empty_runs():
    wl = load_whitelist(wl_bytes([entry("a", "a", expires="2026-03-01")]), "w")
    h = whitelist_health(wl, runs(['["a"]']), today=date(2026, 3, 1))
    assert h.empty  # expires today: still valid, and matched
    h2 = whitelist_health(wl, runs([]), today=date(2026, 3, 2))
    assert list(h2["problem"]) == ["expired", "never_matched"]
    assert list(h2["matched_runs"]) == [0, 0]


def test_repo_example_whitelist_is_valid_against_model_and_schema():
    raw = (ROOT / "config" / "unknown_whitelist.json").read_bytes()
    wl = load_whitelist(raw, "config/unknown_whitelist.json")
    schema = json.loads((ROOT / "gate_pipeline" / "schemas" / "unknown_whitelist.schema.json").read_text())
    jsonschema.validate(json.loads(raw), schema)
    assert wl.match("flaky_test").class_ == "flaky"
    assert wl.match("infra_dns").class_ == "infra"
    assert wl.match("infra_timeout").class_ == "infra_timeout"
    # the example deliberately carries one entry already expired
    assert any(e.expires is not None and e.expires < date(2026, 3, 1) for e in wl.entries)


def test_schema_rejects_what_the_model_rejects():
    schema = json.loads((ROOT / "gate_pipeline" / "schemas" / "unknown_whitelist.schema.json").read_text())
    for bad in (
        {"schema_version": "1", "entries": [{"reason": "x", "class": "c"}]},
        {"schema_version": "1", "entries": [{"reason": "x", "class": "c d", "owner": "o"}]},
        {"schema_version": "1", "entries": [{"reason": "x", "class": "c", "owner": "o", "match": "re"}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


@given(st.text(alphabet="abc_*?", min_size=1, max_size=6), st.text(alphabet="abc_", max_size=6))
def test_match_is_deterministic_and_consistent_with_candidates(pattern, reason):
    wl = Whitelist(
        entries=[
            WhitelistEntry(reason=pattern, match="glob", class_="g", owner="o"),
            WhitelistEntry(reason=reason or "r", class_="e", owner="o"),
        ]
    )
    m1, m2 = wl.match(reason), wl.match(reason)
    assert m1 == m2
    cands = wl.candidates(reason)
    assert (m1 is None) == (not cands)
    if reason == (reason or "r") and reason:
        assert m1.class_ == "e"  # exact entry always wins
