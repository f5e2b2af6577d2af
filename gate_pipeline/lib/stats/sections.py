"""The statistics sections the pipeline publishes, the history columns they read, and the run counts.

One function per statistics asset (:data:`SECTIONS`); the decision embeds every section in
rollout_metrics.json under the section's name, and the report reads `unknown_rate_by_group`,
`class_frequencies` and `strata` from there. Pass every section the same ``Runs(history)`` so the per-run
arrays they share are derived once.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gate_pipeline.lib.stats.baseline import METHODS as BASELINE_METHODS
from gate_pipeline.lib.stats.baseline import baseline_section
from gate_pipeline.lib.stats.classes import class_section
from gate_pipeline.lib.stats.config import METRICS_PREFIX, AnalysisConfig
from gate_pipeline.lib.stats.document import Section, table_csv_bytes, to_jsonable
from gate_pipeline.lib.stats.risk import risk_section
from gate_pipeline.lib.stats.runs import Runs, candidate_label, policy_order
from gate_pipeline.lib.stats.spikes import spike_section
from gate_pipeline.lib.stats.strata import strata_section
from gate_pipeline.lib.stats.summary import unknown_rate_section
from gate_pipeline.lib.stats.warn import warn_threshold_section

#: Run columns the statistics sections and the whitelist health check read (the strata column comes from the
#: config). The history has ~30 columns; the file hashes and metrics JSON are most of its bytes and unused here.
STATISTICS_COLUMNS: tuple[str, ...] = (
    "run_id",
    "timestamp",
    "date",
    "policy_hash",
    "outcome",
    "unknown_rate",
    "top_reasons",
    "unknown_causes",
    "warn_count",
    "fail_count",
    "unknown_count",
    "overrides_count",
    "unknown_classes",
    "whitelisted_classes",
    "non_whitelisted_reasons",
)


def statistics_columns(cfg: AnalysisConfig) -> list[str]:
    """Every history column :data:`SECTIONS` can read under ``cfg``."""
    strata = cfg.strata_column
    return [*STATISTICS_COLUMNS, "metrics" if strata.startswith(METRICS_PREFIX) else strata]


def read_history(
    source: bytes | BinaryIO,
    columns: Iterable[str] | None = None,
    *,
    dictionary: Iterable[str] = (),
    use_threads: bool = False,
) -> pa.Table:
    """Parquet (bytes, or a file open for reading: only the wanted column chunks are read) as an Arrow table
    holding only ``columns`` (all when None) that the file has, in file order; the ``dictionary`` columns
    dictionary-encoded (for columns of few distinct values that stay in Arrow, e.g. whitelist_sha256).
    ``use_threads``: decode a row group's columns on every core (a reader in its own process, e.g. the
    what-if; the pipeline's steps share a process and keep their transient buffers small).

    A column the file lacks stays absent, exactly as in a full read; call ``.to_pandas()`` for the frame."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    names = pq.read_schema(source).names
    if columns is not None:
        wanted = set(columns)
        names = [n for n in names if n in wanted]
    encoded = [n for n in dictionary if n in names] or None
    # One row group at a time, without pre-buffering: at 1M runs the whole-file read's transient buffers
    # added ~160 MB to the peak on top of the table itself.
    file = pq.ParquetFile(source, read_dictionary=encoded, pre_buffer=False)
    if file.num_row_groups < 2:
        return file.read(columns=names, use_threads=use_threads)
    parts = [
        file.read_row_group(i, columns=names, use_threads=use_threads) for i in range(file.num_row_groups)
    ]
    return pa.concat_tables(parts)


def _text_cells(file: pq.ParquetFile, name: str) -> np.ndarray:
    """A text column as the object array ``to_pandas`` gives (str cells, None for null), read a row group at
    a time. Dictionary-encoded: one str object per distinct value of each chunk, not one per row. Plain
    (mostly distinct values): without ``to_pandas``' de-duplication (its table of every distinct string cost
    more than the strings themselves)."""
    out = np.empty(file.metadata.num_rows, dtype=object)
    start = 0
    for i in range(file.num_row_groups):
        for chunk in file.read_row_group(i, columns=[name], use_threads=False).column(0).chunks:
            if pa.types.is_dictionary(chunk.type):
                values = np.append(chunk.dictionary.to_numpy(zero_copy_only=False), None)  # last: null
                cells = values[chunk.indices.fill_null(len(chunk.dictionary)).to_numpy()]
            else:
                cells = chunk.to_numpy(zero_copy_only=False)
            out[start : start + len(chunk)] = cells
            start += len(chunk)
    return out


def history_frame(
    source: bytes | BinaryIO, columns: Iterable[str], *, unique: Iterable[str] = (), arrow: Iterable[str] = ()
) -> pd.DataFrame:
    """``read_history(source, columns).to_pandas()``, the same columns, dtypes and cells, read a column at a
    time with the text columns dictionary-encoded (except ``unique``: text whose values are mostly distinct):
    the whole Arrow table and pandas' conversion copies of it are never held at once (at 1M runs the
    statistics step read 224 MB of Arrow into a 195 MB frame with a peak ~590 MB above its start).

    ``arrow``: text columns kept in Arrow (``pd.ArrowDtype``), for a reader that turns only a few of their
    cells into str (run ids: ~13 MB in Arrow at 1M runs, ~75 MB as str)."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    schema = pq.read_schema(source)
    wanted, plain = set(columns), set(unique)
    names = [n for n in schema.names if n in wanted]
    text = [n for n in names if pa.types.is_string(schema.field(n).type)]
    encoded = [n for n in text if n not in plain]
    file = pq.ParquetFile(source, read_dictionary=encoded or None, pre_buffer=False)
    frame: dict[str, Any] = {}
    in_arrow = set(arrow)
    for name in names:
        if name in text and name in in_arrow:
            column = file.read(columns=[name], use_threads=False).column(0)
            frame[name] = pd.Series(pd.arrays.ArrowExtensionArray(column), copy=False)
        elif name in text:
            frame[name] = _text_cells(file, name)
        else:
            frame[name] = file.read(columns=[name], use_threads=False).to_pandas(self_destruct=True)[name]
        # Arrow's pool keeps the pages a column was decoded into until told otherwise (~40 MB at 1M runs).
        pa.default_memory_pool().release_unused()
    # copy=False: no consolidation of the object columns into one block (a copy of them all).
    return pd.DataFrame(frame, columns=names, copy=False)


SECTIONS = {
    "unknown_rate_stats": unknown_rate_section,
    "class_frequencies": class_section,
    "unknown_spikes": spike_section,
    "risk_measures": risk_section,
    "stratum_metrics": strata_section,
    "warn_threshold": warn_threshold_section,
    "baseline_deltas": baseline_section,
}


@dataclass(frozen=True)
class Statistics:
    """Every statistics section of one history under one config, as the pipeline stores and publishes them:
    ``documents`` are the files ``statistics/<name>.json`` of the data store (``methods`` and one per section,
    which rollout_metrics.json embeds), ``tables()`` the files ``tables/<name>.csv`` of the outputs."""

    sections: dict[str, Section]  # statistics asset name -> its section
    documents: dict[str, bytes]

    def tables(self) -> dict[str, bytes]:
        return {name: table_csv_bytes(df) for s in self.sections.values() for name, df in s.tables.items()}

    def loaded(self) -> dict[str, Any]:
        """The documents as the decision reads them back from the data store (JSON decoded)."""
        return {name: orjson.loads(payload) for name, payload in self.documents.items()}


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


#: What decides the candidate policy and the introduction order of policies (:func:`candidate_label`,
#: :func:`policy_order`): derived once by :func:`compute_sections`, not by each section from its own frame.
POLICY_COLUMNS = ("policy_hash", "timestamp", "run_id")

#: The history columns each section of :data:`SECTIONS` reads, besides the strata column
#: (:func:`section_columns`) and what :data:`POLICY_COLUMNS` decide. A section given a frame of only these
#: (and the policies derived from those) computes what it computes from the whole history.
SECTION_COLUMNS: dict[str, tuple[str, ...]] = {
    "unknown_rate_stats": ("policy_hash", "unknown_rate"),
    "class_frequencies": ("policy_hash", "unknown_classes", "top_reasons", "non_whitelisted_reasons"),
    "unknown_spikes": (
        "policy_hash",
        "run_id",
        "timestamp",
        "date",
        "outcome",
        "unknown_rate",
        "top_reasons",
    ),
    "risk_measures": ("outcome", "top_reasons", "whitelisted_classes", "non_whitelisted_reasons"),
    "stratum_metrics": (
        "policy_hash",
        "outcome",
        "unknown_rate",
        "warn_count",
        "fail_count",
        "unknown_count",
        "overrides_count",
        "unknown_causes",
    ),
    "warn_threshold": (
        "policy_hash",
        "outcome",
        "unknown_rate",
        "whitelisted_classes",
        "non_whitelisted_reasons",
    ),
    "baseline_deltas": ("policy_hash", "run_id", "timestamp", "outcome", "unknown_classes"),
}


def section_columns(asset_name: str, cfg: AnalysisConfig) -> list[str]:
    """The history columns the section ``asset_name`` of :data:`SECTIONS` reads under ``cfg``."""
    strata = cfg.strata_column
    return [*SECTION_COLUMNS[asset_name], "metrics" if strata.startswith(METRICS_PREFIX) else strata]


#: Text columns a section reads only a few cells of as str (the spike runs' ids), or keeps in its tables as
#: they are (compared_runs' ids, written as text a slice at a time): read into Arrow.
SECTION_ARROW_COLUMNS: dict[str, tuple[str, ...]] = {
    "unknown_spikes": ("run_id",),
    "baseline_deltas": ("run_id",),
}


def compute_sections(
    read: Callable[[list[str], list[str]], pd.DataFrame], cfg: AnalysisConfig
) -> Iterator[tuple[str, Section, bytes]]:
    """The sections of :func:`compute_statistics`, the same results and documents, one at a time: each from
    ``read(columns, arrow)``, a frame of only the history columns it reads (:func:`section_columns`; the
    ``arrow`` ones as ``pd.ArrowDtype``, e.g. :func:`history_frame`), so no section's frame, per-run arrays
    or tables are held while the next is computed (at 1M runs the whole history's columns and every
    section's arrays at once were ~450 MB). Yields (asset name, section, its document)."""
    # The policies' order and the candidate read the run ids of tied timestamps only.
    policies = Runs(read(list(POLICY_COLUMNS), ["run_id"]))
    candidate_label(policies, cfg)
    policy_order(policies)
    policies.df = pd.DataFrame()  # only the derived values are taken over (a slice would keep the columns)
    for asset_name, compute in SECTIONS.items():
        frame = read(section_columns(asset_name, cfg), list(SECTION_ARROW_COLUMNS.get(asset_name, ())))
        section = compute(Runs(frame, known=policies), cfg)
        del frame
        yield asset_name, section, _json(section.document)


def methods_bytes(cfg: AnalysisConfig) -> bytes:
    """statistics/methods.json as :func:`compute_statistics` writes it."""
    return _json(to_jsonable(methods_document(cfg)))


def compute_statistics(history: pd.DataFrame, cfg: AnalysisConfig) -> Statistics:
    """Every section of :data:`SECTIONS` over ``history`` (at least :func:`statistics_columns`), sharing one
    :class:`Runs`; the rollout_statistics asset and what-if replay both publish exactly this."""
    runs = Runs(history)  # per-run arrays the sections share (outcome flags, labels, parsed JSON)
    # methods: embedded as statistics.methods in rollout_metrics.json
    documents = {"methods": methods_bytes(cfg)}
    sections = {}
    for asset_name, compute in SECTIONS.items():
        section = sections[asset_name] = compute(runs, cfg)
        documents[section.name] = _json(section.document)
    return Statistics(sections, documents)


def methods_document(cfg: AnalysisConfig) -> dict[str, Any]:
    """The methods behind every statistics section, named for rollout_metrics.json (``statistics.methods``)
    and the report, with the parameters in effect."""
    return {
        "confidence_level": cfg.confidence_level,
        "z": cfg.z,
        "sequential": "none: these statistics are fixed-sample descriptions of the history; the decision's "
        "rules name their own interval and sequential method",
        "quantile": "linear interpolation between order statistics (numpy 'linear', Hyndman & Fan type 7)",
        "quantile_interval": "exact binomial order-statistic interval, two-sided, ranks of "
        "scipy.stats.quantile_test; none (status too_few_runs) when n is too small for the level",
        "rate_interval": "Wilson score",
        "difference_interval": "Newcombe hybrid score (independent groups, 1998 method 10); Newcombe paired "
        "with continuity-corrected phi (same runs)",
        "ratio_interval": "log method: Katz (independent groups); var = (b+c)/((a+b)(a+c)) (same runs)",
        "mad": "median absolute deviation, unscaled (scipy.stats.median_abs_deviation, scale 1)",
        "spike_bound": "per policy_hash: median + max(spike_mad_k * spike_mad_scale * MAD, spike_min_excess)",
        "spike_mad_k": cfg.spike_mad_k,
        "spike_mad_scale": cfg.spike_mad_scale,
        "spike_min_excess": cfg.spike_min_excess,
        "warn_threshold": "per policy_hash: max(warn_threshold_multiplier * median, warn_threshold_floor), "
        "from at least warn_threshold_min_runs runs",
        "warn_threshold_multiplier": cfg.warn_threshold_multiplier,
        "warn_threshold_floor": cfg.warn_threshold_floor,
        "warn_threshold_min_runs": cfg.warn_threshold_min_runs,
        "false_discovery_rate": "false positives / flagged runs (flagged: unknown_rate above the threshold; "
        "false positive: flagged with an outcome neither in fail_outcomes nor in warn_outcomes)",
        "false_positive_rate": "false positives / clean runs (outcome neither in fail_outcomes nor in "
        "warn_outcomes)",
        "baseline_comparison": {
            **BASELINE_METHODS,
            "metrics": list(cfg.baseline_comparison.metrics),
            "direction_tolerance": cfg.baseline_comparison.direction_tolerance,
            "exclude": [e.model_dump(mode="json") for e in cfg.baseline_comparison.exclude],
        },
        "candidate_min_share": cfg.candidate_min_share,
        "candidate_recent_runs": cfg.candidate_recent_runs,
        "policies": "spikes, recurring patterns and the WARN threshold are per policy_hash (null hash: "
        f"{cfg.null_group_label!r}); the decision uses the candidate's: the most recently introduced "
        f"policy_hash holding at least {cfg.candidate_min_share} of the last {cfg.candidate_recent_runs} runs "
        "with a hash; risk measures and strata rows with scope 'stratum' pool all policy hashes",
    }


COUNT_KEYS = [
    "files_discovered",
    "files_accepted",
    "files_quarantined",
    "files_ignored",
    "runs_discovered",
    "runs_with_gate_result",
    "runs_quarantined",
]


ROOT_ENTRY_REASONS = ("not_a_date_folder", "symlink_refused", "date_outside_window", "date_folder_not_built")


def counts_section(
    ingest_counts: list[dict],
    table_counts: list[dict],
    cross_day_duplicates: int,
    accepted: int,
    root_entries: list[tuple] = (),
) -> dict:
    """discovered = accepted + quarantined, at file and run level, over all stored days; and every top-level
    entry of the artifact root: date folders built + entries not built (by reason)."""
    totals = {k: sum(int(c.get(k, 0)) for c in ingest_counts) for k in COUNT_KEYS}
    in_day_duplicates = sum(int(c.get("duplicates_quarantined", 0)) for c in table_counts)
    runs = {
        "discovered": totals["runs_discovered"],
        "accepted": accepted,
        "quarantined_no_usable_gate_result": totals["runs_quarantined"],
        "quarantined_duplicate_run_id": in_day_duplicates + cross_day_duplicates,
        "quarantined_normalize_failed": sum(int(c.get("runs_failed", 0)) for c in table_counts),
    }
    files = {
        "discovered": totals["files_discovered"],
        "accepted": totals["files_accepted"],
        "quarantined": totals["files_quarantined"],
        "ignored_not_an_artifact": totals["files_ignored"],
    }
    balanced = (
        runs["discovered"]
        == accepted
        + runs["quarantined_no_usable_gate_result"]
        + runs["quarantined_duplicate_run_id"]
        + runs["quarantined_normalize_failed"]
    )
    balanced = (
        balanced
        and files["discovered"] == files["accepted"] + files["quarantined"] + files["ignored_not_an_artifact"]
    )
    by_reason = {reason: sum(1 for e in root_entries if e[6] == reason) for reason in ROOT_ENTRY_REASONS}
    entries = {
        "discovered": len(ingest_counts) + len(root_entries),
        "date_folders_built": len(ingest_counts),
        **by_reason,
    }
    return {
        "days": len(ingest_counts),
        "entries": entries,
        "files": files,
        "runs": runs,
        "balanced": balanced,
    }
