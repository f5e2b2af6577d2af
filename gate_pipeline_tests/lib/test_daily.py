"""The per-day pass: layers selected alone or together, worker processes, blocking validation."""

import pandas as pd
import pytest

from gate_pipeline.lib import daily
from gate_pipeline.lib.ingest import IngestLimits
from gate_pipeline.lib.whitelist import load_whitelist
from gate_pipeline.synthetic import CorpusSpec, generate
from gate_pipeline_tests.pipeline_helpers import CONFIG

DAYS = [f"2026-03-0{d}" for d in range(1, 7)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("daily") / "artifacts"
    generate(root, CorpusSpec(runs=90, days=6, bad_fraction=0.05, duplicates=2, seed=5))
    return root


def _whitelist():
    raw = (CONFIG / "unknown_whitelist.json").read_bytes()
    return load_whitelist(raw, "unknown_whitelist.json")


def _job(artifacts, data, *, ingest_=True, table=True, classify=True):
    return daily.DailyJob(
        artifacts_url=str(artifacts),
        data_url=str(data),
        storage_options={},
        limits=IngestLimits(),
        ingest=ingest_,
        table=table,
        whitelist=_whitelist() if classify else None,
    )


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("days", "workers", "per_chunk", "expected"),
    [
        (7, 1, 0, [7]),
        (7, 2, 0, [2, 2, 2, 1]),
        (3, 4, 0, [1, 1, 1]),
        (7, 1, 3, [3, 2, 2]),  # capped: a bounded slice of history per chunk, whatever the history
        (20, 2, 8, [5, 5, 5, 5]),  # two chunks per worker already stay under the cap
        (100, 2, 8, [8] * 9 + [7] * 4),
    ],
)
def test_chunks_are_consecutive_and_cover_every_day(days, workers, per_chunk, expected):
    names = [f"d{i}" for i in range(days)]
    chunks = daily.chunk_days(names, workers, per_chunk)
    assert [len(c) for c in chunks] == expected
    assert [d for c in chunks for d in c] == names


def test_worker_processes_write_the_same_bytes_and_count_their_reads(corpus, tmp_path):
    serial = list(daily.process_days(_job(corpus, tmp_path / "serial"), DAYS, workers=1))
    serial_reads = sum(c.files_read for c in serial)
    parallel = list(daily.process_days(_job(corpus, tmp_path / "parallel"), DAYS, workers=2))
    assert len(parallel) == 4  # two chunks per worker
    artifact_files = sum(1 for p in corpus.rglob("*.json"))
    # Every artifact file is read once (the oversized ones are quarantined unread); the workers' reads count here.
    assert 0 < serial_reads <= artifact_files
    assert sum(c.files_read for c in parallel) == serial_reads  # counted in the workers, returned as values
    assert _files(tmp_path / "serial") == _files(tmp_path / "parallel")
    assert [d.day for c in parallel for d in c.days] == DAYS
    flat = [d for c in serial for d in c.days]
    assert [d.ingest_counts for d in flat] == [d.ingest_counts for c in parallel for d in c.days]
    assert all(d.classified_rows == d.table_counts["runs_accepted"] for d in flat)
    stored = pd.read_parquet(tmp_path / "serial" / "classified_runs" / f"{DAYS[0]}.parquet")
    assert len(stored) == flat[0].classified_rows and "unknown_classes" in stored
    # Each chunk times its stages in the process that ran it, and the clocks come back with the result.
    stages = ["other", "listing", "reading", "parsing", "writing", "normalizing", "classifying", "validating"]
    for chunk in parallel:
        assert sorted(chunk.stages.cpu) == sorted(stages)
        assert all(v >= 0 for v in chunk.stages.cpu.values()) and chunk.stages.wall["reading"] > 0
    line = daily.stages_message(2, parallel[0].stages, parallel[1].stages)
    assert line.startswith(daily.STAGES_LOG) and '"processes":2' in line and '"parsing":{"wall_s":' in line


def test_classification_alone_reads_stored_tables_and_no_artifact(corpus, tmp_path):
    list(daily.process_days(_job(corpus, tmp_path, classify=False), DAYS[:3], workers=1))
    assert not (tmp_path / "classified_runs").exists()
    (result,) = daily.process_days(
        _job(corpus, tmp_path, ingest_=False, table=False), [*DAYS[:3], "2026-02-27"], workers=1
    )
    assert result.files_read == 0
    assert [d.classified_rows is not None for d in result.days] == [True, True, True, False]
    assert result.days[-1].missing_input == "run_table"  # a day without artifacts: counted, not an error
    assert sorted(p.name for p in (tmp_path / "classified_runs_versions").iterdir()) == [
        f"{d}.sha256" for d in DAYS[:3]
    ]


def test_an_invalid_run_table_blocks_classification(corpus, tmp_path, monkeypatch):
    real = daily.normalize_day

    def broken(raw, *args):
        table, duplicates = real(raw, *args)
        return table.assign(outcome="MAYBE"), duplicates

    monkeypatch.setattr(daily, "normalize_day", broken)
    (result,) = daily.process_days(_job(corpus, tmp_path), DAYS[:2], workers=1)
    assert result.table_failures and {f["column"] for f in result.table_failures} == {"outcome"}
    assert {f["day"] for f in result.table_failures} == set(DAYS[:2])
    assert result.classified_failures == []
    assert all(d.classified_rows is None for d in result.days)
    assert not (tmp_path / "classified_runs").exists()


def test_an_invalid_classification_is_not_written_but_the_run_tables_are(corpus, tmp_path, monkeypatch):
    real = daily.classify_runs
    monkeypatch.setattr(
        daily, "classify_runs", lambda table, wl: real(table, wl).assign(whitelist_sha256="x")
    )
    (result,) = daily.process_days(_job(corpus, tmp_path), DAYS[:2], workers=1)
    assert result.table_failures == []
    assert {f["column"] for f in result.classified_failures} == {"whitelist_sha256"}
    assert all(d.classified_rows is None for d in result.days)
    assert sorted(p.name for p in (tmp_path / "run_table").iterdir()) == [f"{d}.parquet" for d in DAYS[:2]]
    assert not (tmp_path / "classified_runs").exists()


def test_an_interrupted_iteration_terminates_the_workers_instead_of_waiting_for_them(corpus, tmp_path):
    """Ctrl-C, a failed step or a caller that stops iterating: the workers are stopped, not left reading."""
    import multiprocessing
    import signal

    before = set(multiprocessing.active_children())
    chunks = daily.process_days(_job(corpus, tmp_path), DAYS, workers=2)
    next(chunks)  # the first chunk is in; the workers are alive, waiting for or reading the others
    workers = [p for p in multiprocessing.active_children() if p not in before]
    assert len(workers) == 2
    chunks.close()
    # Terminated (SIGTERM), not told to finish their chunks and exit (0).
    assert [p.exitcode for p in workers] == [-signal.SIGTERM] * 2
