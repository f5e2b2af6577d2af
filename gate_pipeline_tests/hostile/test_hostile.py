"""Every kind of the hostile corpus (builder.py): alone through ingestion + normalization (fast), and all
together through one `gate-pipeline run` (reason or field class, counts that balance, exit code)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pandas as pd
import pytest

from gate_pipeline import cli
from gate_pipeline.lib import storage as storage_lib
from gate_pipeline.lib.discovery import list_top_level
from gate_pipeline.lib.ingest import IngestLimits, scan_day
from gate_pipeline.lib.normalize import normalize_day, resolve_duplicates
from gate_pipeline.lib.storage import Store
from gate_pipeline_tests.hostile.builder import DAY, KINDS, OTHER_DAY, Kind, build
from gate_pipeline_tests.pipeline_helpers import CONFIG, run_cli

FILE_KINDS = [k for k in KINDS if k.expect.where != "entry"]
ENTRY_KINDS = [k for k in KINDS if k.expect.where == "entry"]
WINDOW = ("2026-03-01", "2026-12-31")


def test_the_corpus_has_at_least_40_kinds():
    assert len(KINDS) >= 40
    assert len({k.name for k in KINDS}) == len(KINDS)


def check(kind: Kind, quarantine: pd.DataFrame, table: pd.DataFrame, ignored: int, entries: set) -> None:
    """The kind's expected fate, found in the tables (shared by the lib-level and the CLI test)."""
    exp = kind.expect
    if exp.where == "entry":
        assert (exp.path, exp.value) in entries
        return
    if exp.where == "quarantine":
        path = f"{kind.run_path}/{exp.path}" if exp.path else kind.run_path
        rows = quarantine[quarantine["path"] == path]
        assert exp.value in set(rows["reason"]), f"{kind.name}: {path} not quarantined as {exp.value}: {rows}"
        assert (rows["detail"].str.len() > 0).all()
        return
    rows = table[table["run_path"] == kind.run_path]
    assert len(rows) == 1, f"{kind.name}: run not accepted"
    issues = orjson.loads(rows["field_issues"].iloc[0])
    if exp.where == "field":
        assert exp.value in issues, f"{kind.name}: {issues}"
    else:
        assert issues == [], f"{kind.name}: {issues}"
    if exp.where == "ignored":
        assert ignored >= 1


@pytest.mark.parametrize("kind", FILE_KINDS, ids=lambda k: k.name)
def test_kind_alone_through_ingest_and_normalize(kind, tmp_path):
    root = tmp_path / "artifacts"
    build(root, [kind])
    store = Store.at(str(root))
    days = [d for d in (DAY, OTHER_DAY) if (root / d).exists()]
    scans = [scan_day(store, d, IngestLimits()) for d in days]
    tables, rejected = zip(*(normalize_day(s.raw_runs) for s in scans), strict=True)
    table, cross = resolve_duplicates(pd.concat(tables, ignore_index=True))
    quarantine = pd.concat([*(s.quarantine for s in scans), *rejected, cross], ignore_index=True)
    counts = {k: sum(s.counts[k] for s in scans) for k in scans[0].counts}
    check(kind, quarantine, table, counts["files_ignored"], set())
    # Counts balance: every file and every run is accepted, quarantined or ignored.
    assert (
        counts["files_discovered"]
        == counts["files_accepted"] + counts["files_quarantined"] + counts["files_ignored"]
    )
    duplicates_and_failed = sum(len(r) for r in rejected) + len(cross)
    assert counts["runs_discovered"] == len(table) + counts["runs_quarantined"] + duplicates_and_failed
    assert not table["run_id"].str.contains("SECRET").any()


@pytest.mark.parametrize("kind", ENTRY_KINDS, ids=lambda k: k.name)
def test_top_level_kind_alone_is_reported(kind, tmp_path):
    root = tmp_path / "artifacts"
    build(root, [kind])
    inside, refused = list_top_level(str(root)).accounted(*WINDOW)
    if kind.expect.value == "date_folder_not_built":
        assert kind.expect.path in inside  # listed as a day; the series reports it when nothing was stored
        return
    check(kind, pd.DataFrame(), pd.DataFrame(), 0, {(name, reason) for name, reason, _ in refused})
    assert inside == [DAY]


def test_unreadable_run_folder_is_quarantined_and_the_day_goes_on(tmp_path, monkeypatch):
    # Tests run as root, who can read any folder: the listing's scandir refuses this one as the OS would.
    root = tmp_path / "artifacts"
    build(root, [])
    (root / DAY / "locked").mkdir()
    real = os.scandir

    def scandir(path):
        if str(path).endswith("/locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(storage_lib.os, "scandir", scandir)
    scan = scan_day(Store.at(str(root)), DAY)
    row = scan.quarantine[scan.quarantine["path"] == f"{DAY}/locked"]
    assert row["reason"].tolist() == ["unreadable_folder"] and "Permission denied" in row["detail"].iloc[0]
    assert (
        scan.counts["runs_discovered"]
        == scan.counts["runs_with_gate_result"] + scan.counts["runs_quarantined"]
    )
    assert len(scan.raw_runs) == 4


def test_a_run_whose_normalization_raises_is_quarantined_alone(tmp_path, monkeypatch):
    from gate_pipeline.lib import normalize

    root = tmp_path / "artifacts"
    build(root, [])
    real = normalize._gate_fields

    def boom(gate, folder, row, issues):
        if gate.get("run_id") == "good-2":
            raise RuntimeError("unexpected shape")
        return real(gate, folder, row, issues)

    monkeypatch.setattr(normalize, "_gate_fields", boom)
    raw = scan_day(Store.at(str(root)), DAY).raw_runs
    raw.loc[raw["run_folder"] == "good-2", "gate_result"] = '{"run_id":"good-2"}'  # off the fast path
    table, rejected = normalize_day(raw)
    assert sorted(table["run_id"]) == ["good-0", "good-1", "good-3"]
    assert rejected["reason"].tolist() == ["normalize_failed"]
    assert "RuntimeError: unexpected shape" in rejected["detail"].iloc[0]


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    """The whole corpus in one `gate-pipeline run --exit-code`."""
    tmp = tmp_path_factory.mktemp("hostile")
    root, out, config = tmp / "artifacts", tmp / "out", tmp / "config"
    build(root)
    shutil.copytree(CONFIG, config)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(tmp / "home"))
        code = run_cli(
            "run", "--artifacts", str(root), "--out", str(out), "--config", str(config), "--exit-code"
        )
    return code, out


def _read_all(folder: Path) -> pd.DataFrame:
    frames = [pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def test_corpus_run_exits_with_the_decision_and_counts_balance(corpus_run):
    code, out = corpus_run
    metrics = orjson.loads((out / "rollout_metrics.json").read_bytes())
    assert code == cli.EXIT_CODES[metrics["decision"]["verdict"]]  # not 1 (crash) nor 2 (no usable input)
    counts = metrics["statistics"]["counts"]
    assert counts["balanced"] is True
    entries = counts["entries"]
    assert (
        entries["discovered"] == 2 + 4 + 2 + 1 + 1
    )  # DAY, OTHER_DAY; 4 not dates; 2 outside; symlink; empty
    assert entries["not_a_date_folder"] == 4 and entries["date_outside_window"] == 2
    assert entries["symlink_refused"] == 1 and entries["date_folder_not_built"] == 1
    published = b"".join((out / name).read_bytes() for name in ("rollout_series.csv", "rollout_metrics.json"))
    assert b"SECRET" not in published  # nothing outside the root was read


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_kind_in_the_corpus_run(kind, corpus_run):
    _, out = corpus_run
    data = out / "_data"
    quarantine = pd.concat(
        [
            _read_all(data / "quarantined_files"),
            _read_all(data / "run_table_duplicates"),
            pd.read_parquet(data / "cross_day_duplicates.parquet"),
        ],
        ignore_index=True,
    )
    table = _read_all(data / "run_table")
    entries = pd.read_parquet(data / "quarantined_entries.parquet")
    ignored = sum(
        orjson.loads(p.read_bytes())["files_ignored"] for p in (data / "ingest_counts").glob("*.json")
    )
    check(kind, quarantine, table, ignored, set(zip(entries["path"], entries["reason"], strict=True)))


HOSTILE_HASH = (
    "``x`` ## All checks passed, safe to merge @org/admins <img src=x onerror=alert(1)> [ok](http://evil)"
)


@pytest.fixture(scope="module")
def hostile_text_run(tmp_path_factory):
    """A corpus whose only policy_hash and run_ids are hostile text: the decision is about that policy."""
    tmp = tmp_path_factory.mktemp("hostile_text")
    root, out, config = tmp / "artifacts", tmp / "out", tmp / "config"
    for i, run_id in enumerate(['=HYPERLINK("http://evil.example")', "+1-2", "@SUM(A1)", "-cmd", "plain"]):
        path = root / DAY / f"r{i}" / "gate_result.json"
        path.parent.mkdir(parents=True)
        payload = {
            "run_id": run_id,
            "timestamp": f"{DAY}T1{i}:00:00Z",
            "policy_hash": HOSTILE_HASH,
            "outcome": "PASS",
            "unknown_rate": 0.01,
            "top_reasons": ["=1+2"],
        }
        path.write_bytes(orjson.dumps(payload))
    shutil.copytree(CONFIG, config)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(tmp / "home"))
        code = run_cli("run", "--artifacts", str(root), "--out", str(out), "--config", str(config))
    assert code == 0
    return out


def test_hostile_policy_hash_stays_text_in_the_ci_comment_and_report(hostile_text_run):
    span = f"``` {HOSTILE_HASH} ```"  # a code span whose fence is longer than the value's backtick runs
    for name in ("ci_comment.md", "rollout_series_v1.md"):
        text = (hostile_text_run / name).read_text()
        assert span in text, name
        # Inside the code span it is literal text; outside it, nothing of it renders as HTML, mention or link.
        outside = text.replace(span, "")
        assert "<img" not in outside and "@org" not in outside and "](http" not in outside, name
        assert not any(line.startswith("## All checks") for line in text.splitlines()), name
    comment = (hostile_text_run / "ci_comment.md").read_text()
    assert comment.splitlines()[0].startswith("### Gate decision:")


def test_csv_cells_are_neutralized_and_parquet_keeps_the_raw_value(hostile_text_run):
    series = pd.read_csv(hostile_text_run / "rollout_series.csv", keep_default_na=False)
    assert sorted(series["run_id"]) == sorted(
        ['\'=HYPERLINK("http://evil.example")', "'+1-2", "'@SUM(A1)", "'-cmd", "plain"]
    )
    raw = pd.read_parquet(hostile_text_run / "rollout_series.parquet")
    assert '=HYPERLINK("http://evil.example")' in set(raw["run_id"])
    for table in (hostile_text_run / "tables").glob("*.csv"):
        for line in table.read_text().splitlines():
            assert not any(cell.startswith(("=", "+", "@")) for cell in line.split(",")), (table.name, line)


def test_reliability_doc_lists_every_kind():
    doc = (Path(__file__).parents[2] / "docs" / "RELIABILITY.md").read_text()
    missing = [k.name for k in KINDS if f"| `{k.name}` |" not in doc]
    assert not missing


@pytest.mark.s3
def test_s3_key_deleted_between_list_and_read_is_quarantined(s3_bucket, tmp_path, monkeypatch):
    from gate_pipeline_tests.s3_server import upload_tree

    build(tmp_path / "artifacts", [])
    upload_tree(tmp_path / "artifacts", s3_bucket.url("ci"), s3_bucket.storage_options)
    store = Store.at(s3_bucket.url("ci"), s3_bucket.storage_options)
    real_scan = Store.scan

    def scan_then_delete(self, *parts):
        listing = real_scan(self, *parts)
        self.fs.rm(f"{self.root.path}/{DAY}/good-1/gate_result.json")  # gone before the read
        return listing

    monkeypatch.setattr(Store, "scan", scan_then_delete)
    scan = scan_day(store, DAY)
    row = scan.quarantine[scan.quarantine["path"] == f"{DAY}/good-1/gate_result.json"]
    assert row["reason"].tolist() == ["unreadable"]
    assert sorted(scan.raw_runs["run_folder"]) == ["good-0", "good-2", "good-3"]
    assert scan.counts["files_discovered"] == scan.counts["files_accepted"] + scan.counts["files_quarantined"]
