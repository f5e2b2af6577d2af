"""lib/stored_statistics.py: stored statistics are taken over only when everything they came from is the same."""

import re

from gate_pipeline.lib import stored_statistics as ss
from gate_pipeline.lib.stats import AnalysisConfig
from gate_pipeline.lib.storage import Store, sha256_bytes


def _stored(tmp_path, history: bytes, cfg: AnalysisConfig) -> tuple[Store, Store, dict[str, bytes]]:
    data, outputs = Store.at(str(tmp_path / "data")), Store.at(str(tmp_path / "out"))
    documents = {"methods": b'{"z":1.96}', "spikes": b'{"policies":[]}'}
    tables = {"spike_runs": b"run_id,bound\na,0.5\n", "strata": b"stratum\nx\n"}
    for name, payload in tables.items():
        outputs.write_bytes(payload, "tables", f"{name}.csv")
    digests = {name: sha256_bytes(payload) for name, payload in tables.items()}
    data.write_bytes(
        ss.key_document(ss.source_key(sha256_bytes(history), cfg), documents, digests), ss.KEY_FILE
    )
    return data, outputs, {**documents, "counts": b'{"runs":{}}'}


def test_taken_over_only_from_the_same_history_config_and_files(tmp_path):
    cfg = AnalysisConfig()
    data, outputs, read = _stored(tmp_path, b"history v1", cfg)
    kept = ss.load(data, outputs, ss.source_key(sha256_bytes(b"history v1"), cfg), read)
    assert kept is not None
    assert kept.documents == {"methods": b'{"z":1.96}', "spikes": b'{"policies":[]}'}  # not counts.json
    assert kept.tables == {"spike_runs": b"run_id,bound\na,0.5\n", "strata": b"stratum\nx\n"}
    assert kept.loaded()["methods"] == {"z": 1.96}

    # Another history, another analysis config: stale.
    assert ss.load(data, outputs, ss.source_key(sha256_bytes(b"history v2"), cfg), read) is None
    other = cfg.model_copy(update={"spike_mad_k": cfg.spike_mad_k + 1})
    assert ss.load(data, outputs, ss.source_key(sha256_bytes(b"history v1"), other), read) is None
    # A document or a table that is not the one written with the key: stale too.
    key = ss.source_key(sha256_bytes(b"history v1"), cfg)
    assert ss.load(data, outputs, key, {**read, "spikes": b"{}"}) is None
    outputs.write_bytes(b"run_id,bound\na,0.6\n", "tables", "spike_runs.csv")
    assert ss.load(data, outputs, key, read) is None
    outputs.delete("tables", "spike_runs.csv")
    assert ss.load(data, outputs, key, read) is None
    # No key (never written, or removed while the statistics asset rewrites them): computed again.
    data, outputs, read = _stored(tmp_path / "again", b"history v1", cfg)
    data.write_bytes(b"not json", ss.KEY_FILE)
    assert ss.load(data, outputs, key, read) is None
    data.delete(ss.KEY_FILE)
    assert ss.load(data, outputs, key, read) is None


def test_the_key_names_the_history_file_config_and_statistics_code(tmp_path):
    cfg = AnalysisConfig()
    store = Store.at(str(tmp_path))
    store.write_bytes(b"h" * 3000, "history.parquet")
    digest = ss.file_sha256(store, "history.parquet", chunk=1024)  # read in three chunks
    assert digest == sha256_bytes(b"h" * 3000)
    key = ss.source_key(digest, cfg)
    assert key["code_sha256"] == ss.code_sha256() and len(key["code_sha256"]) == 64
    assert key["history_sha256"] == digest
    assert ss.source_key(digest, AnalysisConfig()) == key  # the same config parsed again: the same key


def test_the_code_key_covers_every_lib_module_the_statistics_import():
    """A change in a shared module (the interval or distribution functions, the policy order) can change the
    figures, so its code is in the key: the list of shared modules names every one lib/stats imports."""
    imported = set()
    for path in ss.STATS_CODE.glob("*.py"):
        imported |= set(re.findall(r"^from gate_pipeline\.lib\.(\w+) import", path.read_text(), re.M))
    assert imported - {"stats"} == set(ss.STATS_SHARED)
