"""What-if replay: the decision, the statistics and the day-by-day decision under a candidate config, next to
the current config's, from the stored history alone. Pure logic: no Dagster imports.

The candidate is a config folder holding the files to change (unknown_whitelist.json, policy_constants.yaml,
analysis.yaml, lifecycle.yaml); every file it lacks is the current one. Both configs are replayed the way the
pipeline computes them, through the same functions (lib/classify.py, lib/stats, lib/published.py,
lib/timeline.py), on the stored classified history (``rollout_runs.parquet``): cross-day duplicates and the
run order do not depend on the config, so re-classifying that history equals a backfill's re-classification
of each day. Nothing is read from the artifacts and nothing live is written: everything goes to
``<out>/whatif/<name>/`` (see :func:`write`), where ``candidate/`` holds the files a backfill under the
candidate config would publish, byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from gate_pipeline.lib import lifecycle, published, stored_statistics, timeline
from gate_pipeline.lib.classify import CLASSIFIED_COLUMNS, classify_runs, parse_json_array
from gate_pipeline.lib.escape import md_code, md_text
from gate_pipeline.lib.provenance import config_sha256
from gate_pipeline.lib.reports import dumps_canonical, key_figures, markdown_table, render_ci_comment
from gate_pipeline.lib.rules import DecisionConfig, RuleResult, load_decision_config
from gate_pipeline.lib.stats import (
    AnalysisConfig,
    Statistics,
    compute_statistics,
    load_analysis_config,
    statistics_columns,
    table_csv_bytes,
)
from gate_pipeline.lib.storage import Store, sha256_bytes
from gate_pipeline.lib.stored_statistics import StoredStatistics
from gate_pipeline.lib.tables import WhatIfClassCounts, WhatIfRuns, WhatIfTimeline, validate
from gate_pipeline.lib.whitelist import Whitelist, load_whitelist

WHITELIST_FILE = "unknown_whitelist.json"
#: The config files a what-if can change, in the order the report lists them.
CONFIG_FILES = (WHITELIST_FILE, published.DECISION_FILE, published.ANALYSIS_FILE, lifecycle.LIFECYCLE_FILE)
HISTORY_FILE = published.HISTORY_FILE
STATISTICS_FOLDER = "statistics"  # data store: statistics/<name>.json, what rollout_metrics.json embeds
FOLDER = "whatif"  # <out>/whatif/<name>/
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SHOWN_RUNS = 20  # changed runs listed in the report (all of them are in changed_runs.csv)
SHOWN_DAYS = 14  # days listed in the report's day-by-day table (all of them are in timeline.csv)
# What the report shows of each run whose classification changes.
RUN_COLUMNS = ["run_id", "timestamp", "date", "policy_hash", "outcome", "unknown_rate"]
CLASS_INPUTS = ["top_reasons", "field_issues", "unknown_causes", "date"]
BAND = {"GO": "G", "HOLD": "h", "NO_GO": "N", "ROLLBACK": "R"}


class WhatIfError(ValueError):
    """Bad input for a what-if (its candidate folder, its name, no stored history): the message says what."""


@dataclass(frozen=True)
class ConfigSet:
    """The config files one side of a what-if evaluates (name → bytes), validated."""

    files: dict[str, bytes]
    whitelist: Whitelist
    analysis: AnalysisConfig
    decision: DecisionConfig
    lifecycle: lifecycle.LifecycleConfig

    @property
    def decision_files(self) -> dict[str, bytes]:
        """The files hashed into a decision's provenance (config_sha256)."""
        return published.config_files(
            self.files[published.DECISION_FILE], self.files.get(published.ANALYSIS_FILE)
        )


def load_config_set(
    files: dict[str, bytes], sources: dict[str, str], same_as: ConfigSet | None = None
) -> ConfigSet:
    """Validate config files with the pipeline's loaders (the same errors, naming ``sources[name]``). The
    whitelist and policy_constants.yaml are required; analysis.yaml and lifecycle.yaml default when absent.
    ``same_as``: a set already loaded whose parsed configs are taken over for the files with the same bytes
    (parsing the YAML again cost ~0.2 s a replay)."""
    for name in (WHITELIST_FILE, published.DECISION_FILE):
        if name not in files:
            raise WhatIfError(f"{sources[name]}: file not found")

    def unchanged(*names: str) -> bool:
        return same_as is not None and all(files.get(n) == same_as.files.get(n) for n in names)

    decision = (
        same_as.decision
        if unchanged(published.DECISION_FILE)
        else load_decision_config(files[published.DECISION_FILE], sources[published.DECISION_FILE])
    )
    analysis_raw = files.get(published.ANALYSIS_FILE)
    if unchanged(published.ANALYSIS_FILE):
        analysis = same_as.analysis
    elif analysis_raw is None:
        analysis = AnalysisConfig()
    else:
        analysis = load_analysis_config(analysis_raw, sources[published.ANALYSIS_FILE])
    published.check_candidate_settings(
        analysis, decision, sources[published.DECISION_FILE], sources[published.ANALYSIS_FILE]
    )
    return ConfigSet(
        files=dict(files),
        whitelist=same_as.whitelist
        if unchanged(WHITELIST_FILE)
        else load_whitelist(files[WHITELIST_FILE], sources[WHITELIST_FILE]),
        analysis=analysis,
        decision=decision,
        lifecycle=same_as.lifecycle
        if unchanged(lifecycle.LIFECYCLE_FILE, published.DECISION_FILE)
        else lifecycle.load_lifecycle_config(
            files.get(lifecycle.LIFECYCLE_FILE),
            sources[lifecycle.LIFECYCLE_FILE],
            decision.phase_order,
        ),
    )


def _read_config(store: Store) -> tuple[dict[str, bytes], dict[str, str]]:
    files = {name: store.read_bytes(name) for name in CONFIG_FILES if store.exists(name)}
    return files, {name: store.url(name) for name in CONFIG_FILES}


@dataclass(frozen=True)
class Configs:
    current: ConfigSet
    candidate: ConfigSet
    changed: list[str]  # config files whose candidate differs from the current one
    ignored: list[str]  # files of the candidate folder a what-if does not evaluate


def load_configs(current: Store, candidate: Store) -> Configs:
    """The current config and the candidate: the current one with the candidate folder's files over it."""
    names = candidate.list_names()
    if not names and not candidate.exists():
        raise WhatIfError(f"candidate config folder {candidate.url()} does not exist")
    cur_files, cur_sources = _read_config(current)
    cand_own, cand_sources = _read_config(candidate)
    if not cand_own:
        raise WhatIfError(
            f"candidate config folder {candidate.url()} holds none of the files a what-if evaluates "
            f"({', '.join(CONFIG_FILES)})"
        )
    sources = {n: cand_sources[n] if n in cand_own else cur_sources[n] for n in CONFIG_FILES}
    cand_files = {**cur_files, **cand_own}
    current_set = load_config_set(cur_files, cur_sources)
    return Configs(
        current=current_set,
        candidate=load_config_set(cand_files, sources, same_as=current_set),
        changed=[n for n in CONFIG_FILES if cand_files.get(n) != cur_files.get(n)],
        ignored=[n for n in names if n not in CONFIG_FILES],
    )


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise WhatIfError(
            f"what-if name {name!r}: use letters, digits, '.', '_' or '-' (at most 64, not starting with "
            "'.', '_' or '-'); it names the folder <out>/whatif/<name>/"
        )
    return name


def default_name(candidate_url: str) -> str:
    """The candidate folder's own name, made safe for a folder name."""
    base = candidate_url.rstrip("/").rsplit("/", 1)[-1]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", base).lstrip("._-")[:64]
    return safe or "candidate"


# --- one side: the pipeline's outputs under one config ----------------------------------------------------


@dataclass(frozen=True)
class Side:
    config: ConfigSet
    table: pa.Table  # the stored history, classified with this side's whitelist
    statistics: Statistics | StoredStatistics  # stored: the statistics asset's own, taken over
    result: published.Published
    timeline: pd.DataFrame  # lib/timeline.py rows (with their reuse keys)
    evaluated_days: int  # days whose rules were evaluated (the rest reused)

    @property
    def classes(self) -> np.ndarray:
        return self.table.column("unknown_classes").to_numpy(zero_copy_only=False)

    def files(
        self, known: dict[str, tuple[pd.DataFrame, bytes]] | None = None
    ) -> dict[tuple[str, ...], bytes]:
        """The outputs a pipeline run under this config publishes that a replay reproduces, by path.
        ``known``: statistics tables already written as CSV (name → frame or None, bytes), shared between the sides:
        a table equal to the other side's is not written again (tables/compared_runs.csv alone is ~7 MB at
        100k runs); this side's tables are added to it."""
        known = {} if known is None else known
        tables = {}
        if isinstance(self.statistics, StoredStatistics):  # as published: no frames, the CSV itself
            for name, payload in self.statistics.tables.items():
                known[name] = (None, payload)
                tables[("tables", f"{name}.csv")] = payload
        for section in getattr(self.statistics, "sections", {}).values():
            for name, frame in section.tables.items():
                seen = known.get(name)
                payload = (
                    seen[1]
                    if seen is not None and seen[0] is not None and same_frame(seen[0], frame)
                    else table_csv_bytes(frame)
                )
                known[name] = (frame, payload)
                tables[("tables", f"{name}.csv")] = payload
        return {
            ("rollout_metrics.json",): self.result.payload,
            ("ci_comment.md",): render_ci_comment(self.result.decision).encode(),
            **tables,
            ("tables", "decision_timeline.csv"): table_csv_bytes(timeline.published(self.timeline)),
        }


def same_frame(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two frames are cell for cell the same, so their CSV text is too: the same columns and dtypes,
    numbers bit for bit, objects equal and of the same types (floats among them by their text). False
    when unsure (e.g. a NaN among objects), which only costs writing the CSV again."""
    if a is b:
        return True
    if list(a.columns) != list(b.columns) or len(a) != len(b) or not a.dtypes.equals(b.dtypes):
        return False
    for i in range(a.shape[1]):
        left, right = a.iloc[:, i], b.iloc[:, i]
        if isinstance(left.dtype, pd.DatetimeTZDtype):  # as int64 ns: no Timestamp object per cell
            x, y = left.array.asi8, right.array.asi8
        else:
            x, y = left.to_numpy(), right.to_numpy()
        if x.dtype == object:
            kinds = {pd.api.types.infer_dtype(x, skipna=False), pd.api.types.infer_dtype(y, skipna=False)}
            if kinds == {"string"}:  # only str on both sides (the usual case): compared in one pass
                if not (x == y).all():
                    return False
                continue
            xs, ys = x.tolist(), y.tolist()
            if xs != ys or list(map(type, xs)) != list(map(type, ys)):
                return False
            if [repr(v) for v in xs if type(v) is float] != [repr(v) for v in ys if type(v) is float]:
                return False  # 0.0 == -0.0, but their text differs
        elif x.dtype.kind in "fc":
            if not np.array_equal(
                np.ascontiguousarray(x).view(np.uint8), np.ascontiguousarray(y).view(np.uint8)
            ):
                return False
        elif not np.array_equal(x, y):
            return False
    return True


def read_history(data: Store) -> bytes:
    if not data.exists(HISTORY_FILE):
        raise WhatIfError(
            f"no stored history under {data.url()} ({HISTORY_FILE}): run `gate-pipeline run` first"
        )
    return data.read_bytes(HISTORY_FILE)


def reclassify(table: pa.Table, whitelist: Whitelist) -> pa.Table:
    """The history with its class columns as classify_runs gives them under ``whitelist`` (as a backfill
    re-classifies every stored day; nothing else of a run depends on the whitelist). A history classified
    with that whitelist already is returned as it is (the same function made it)."""
    versions = table.column("whitelist_sha256").unique().to_pylist()
    if versions == [whitelist.sha256]:
        return table
    classified = classify_runs(table.select(CLASS_INPUTS).to_pandas(), whitelist)
    for name in CLASSIFIED_COLUMNS:
        i = table.schema.get_field_index(name)
        values = pa.array(classified[name].to_numpy(dtype=object), type=table.schema.field(name).type)
        table = table.set_column(i, table.schema.field(name), values)
    return table


def _stored_statistics(data: Store) -> dict[str, bytes]:
    """statistics/*.json by name without .json (the run counts come from the series step)."""
    stored = data.read_folder(STATISTICS_FOLDER, suffix=".json")
    return {name.removesuffix(".json"): payload for name, payload in stored.items()}


def same_evaluation(table: pa.Table, config: ConfigSet, other: Side) -> bool:
    """Whether the rules under ``config`` on ``table`` evaluate exactly as they did for ``other``: the same
    decision config and timeline chart rule, and the same values in every class column the rules read (the
    other columns of both histories are the same stored runs)."""
    rule_columns = published.frame_columns(config.decision) & set(CLASSIFIED_COLUMNS)
    return (
        config.files[published.DECISION_FILE] == other.config.files[published.DECISION_FILE]
        and config.lifecycle.timeline_chart_rule == other.config.lifecycle.timeline_chart_rule
        and all(table.column(c).equals(other.table.column(c)) for c in rule_columns)
    )


def replay_side(
    table: pa.Table,
    config: ConfigSet,
    entries: list[lifecycle.LogEntry],
    stored_statistics: dict[str, Any],
    *,
    days: int,
    previous: pd.DataFrame | None,
    other: Side | None = None,
    stored: StoredStatistics | None = None,
) -> Side:
    """Statistics, decision and timeline over the history under ``config``: what the statistics, decision and
    timeline assets compute after a backfill with it (``previous``: timeline rows that may be reused).
    ``other``: the other side, whose decision and timeline are taken over when the rules evaluate alike.
    ``stored``: the statistics asset's statistics of the stored history under ``config.analysis``, taken
    over when the history is not re-classified."""
    same_classes = other is not None and config.whitelist.sha256 == other.config.whitelist.sha256
    stored_table = table
    table = other.table if same_classes else reclassify(table, config.whitelist)
    if same_classes and config.analysis == other.config.analysis:
        # The same history under the same analysis config: the other side's statistics, not computed again.
        statistics = other.statistics
    elif stored is not None and table is stored_table:
        statistics = stored  # what the statistics asset computed from these very runs and analysis config
    else:
        wanted = set(statistics_columns(config.analysis))
        history = table.select([c for c in table.column_names if c in wanted]).to_pandas()
        statistics = compute_statistics(history, config.analysis)
    reuse = other is not None and same_evaluation(table, config, other)
    result = published.decide(
        table,
        config.decision,
        entries,
        whitelist_sha256=config.whitelist.sha256,
        config=config.decision_files,
        # Stored statistics are among the stored documents already (decoded once).
        statistics=stored_statistics
        if isinstance(statistics, StoredStatistics)
        else {**stored_statistics, **statistics.loaded()},
        decision=other.result.evaluated if reuse else None,
        # The manifest hashes the stored runs' files, which no config changes: hashed once.
        manifest_sha256=None if other is None else other.result.hashes["artifact_manifest_sha256"],
        frame=other.result.history
        if same_classes
        and published.frame_columns(config.decision) == published.frame_columns(other.config.decision)
        else None,
    )
    keys = {
        "config_sha256": config_sha256(config.decision_files),
        "whitelist_sha256": config.whitelist.sha256,
    }
    if reuse:
        # Every day evaluates as on the other side: its rows, with this config's hashes as their keys.
        return Side(config, table, statistics, result, other.timeline.assign(**keys), 0)
    frame, evaluated = timeline.build_timeline(
        result.history,
        config.decision,
        entries,
        **keys,
        chart_rule=config.lifecycle.timeline_chart_rule,
        previous=previous,
        max_days=days,
    )
    return Side(config, table, statistics, result, frame, evaluated)


def reusable_rows(rows: pd.DataFrame, current: ConfigSet, candidate: ConfigSet) -> pd.DataFrame | None:
    """The current timeline's rows as rows the candidate's timeline may reuse, when the two evaluate with
    the same decision config: a day's evaluation reads only its runs (the history_key), policy_constants.yaml
    and the phase log, so a day whose runs did not change under the candidate whitelist has the same row,
    with the candidate's hashes."""
    if current.files[published.DECISION_FILE] != candidate.files[published.DECISION_FILE]:
        return None
    return rows.assign(
        config_sha256=config_sha256(candidate.decision_files), whitelist_sha256=candidate.whitelist.sha256
    )


@dataclass(frozen=True)
class WhatIf:
    name: str
    configs: Configs
    current: Side
    candidate: Side
    days: int  # the timeline window (days with runs; 0 = all)
    notes: list[str] = field(default_factory=list)


def replay(
    data: Store,
    outputs: Store,
    configs: Configs,
    name: str,
    *,
    days: int | None = None,
) -> WhatIf:
    """Both sides of the what-if from the data store (history, stored statistics, stored timeline) and the
    phase log in ``outputs`` (read only). ``days``: the timeline window (default: the candidate's
    lifecycle.timeline_max_days, which is the window a backfill under it covers)."""
    cur, cand = configs.current, configs.candidate
    window = cand.lifecycle.timeline_max_days if days is None else days
    columns = set(CLASS_INPUTS) | set(CLASSIFIED_COLUMNS) | set(RUN_COLUMNS)
    for side in (cur, cand):
        columns |= published.history_columns(side.decision) | set(statistics_columns(side.analysis))
    from gate_pipeline.lib.stats import read_history as read_parquet_columns

    raw = read_history(data)
    table = read_parquet_columns(raw, columns, use_threads=True)  # its own process: every core decodes
    stored_raw = _stored_statistics(data)
    stored = {
        name: orjson.loads(payload) for name, payload in stored_raw.items()
    }  # as the decision reads them
    # The current side's statistics as stored, when computed from these bytes under its analysis config.
    key = stored_statistics.source_key(sha256_bytes(raw), cur.analysis)
    del raw
    kept = stored_statistics.load(data, outputs, key, stored_raw)
    stored_rows = timeline.STORE_FILE
    previous = data.read_parquet(stored_rows) if data.exists(stored_rows) else None

    def side(config: ConfigSet, rows: pd.DataFrame | None, other: Side | None = None, **kw: Any) -> Side:
        entries = lifecycle.read_log(outputs, config.decision.phase_order)
        return replay_side(table, config, entries, stored, days=window, previous=rows, other=other, **kw)

    current = side(cur, previous, stored=kept)
    candidate = side(cand, reusable_rows(current.timeline, cur, cand), current)
    notes = []
    stale = sorted(set(table.column("whitelist_sha256").unique().to_pylist()) - {cur.whitelist.sha256})
    if stale:
        notes.append(
            "the stored classification is from another whitelist version than the current one "
            f"({', '.join(s[:12] for s in stale)}): the current side re-classified it; "
            "`gate-pipeline backfill` brings the live outputs up to date"
        )
    if not configs.changed:
        notes.append("the candidate config equals the current config")
    return WhatIf(check_name(name), configs, current, candidate, window, notes)


# --- comparisons --------------------------------------------------------------------------------------------


def changed_runs(whatif: WhatIf) -> pd.DataFrame:
    """Every run whose unknown classes differ between the two configs, in history order."""
    if whatif.candidate.table is whatif.current.table:  # the same classified history: no run changes
        mask = np.zeros(whatif.current.table.num_rows, dtype=bool)
        before = after = np.empty(0, dtype=object)
    else:
        every_before, every_after = whatif.current.classes, whatif.candidate.classes
        mask = every_before != every_after
        before, after = every_before[mask], every_after[mask]
    runs = whatif.current.table.select(RUN_COLUMNS).filter(pa.array(mask)).to_pandas()
    pairs = pd.DataFrame({"before": before, "after": after})
    # Few distinct (before, after) pairs: the added and removed classes are worked out once per pair.
    codes, uniques = pd.factorize(pd.MultiIndex.from_frame(pairs)) if len(pairs) else (np.zeros(0, int), [])
    diffs = []
    for old, new in uniques:
        was, now = set(parse_json_array(old)[0]), set(parse_json_array(new)[0])
        diffs.append((";".join(sorted(was - now)), ";".join(sorted(now - was))))
    removed = np.array([d[0] for d in diffs], dtype=object)[codes] if len(diffs) else []
    added = np.array([d[1] for d in diffs], dtype=object)[codes] if len(diffs) else []
    frame = runs.assign(
        timestamp=runs["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        classes_removed=removed,
        classes_added=added,
        unknown_classes_current=pairs["before"].to_numpy(),
        unknown_classes_candidate=pairs["after"].to_numpy(),
    )
    frame = frame.astype({c: object for c in frame.columns if c != "unknown_rate"})
    return frame[list(WhatIfRuns.to_schema().columns)]


def class_counts(whatif: WhatIf) -> pd.DataFrame:
    """Runs per unknown class (overall) under each config, from the class_frequencies statistics."""

    def overall(side: Side) -> pd.DataFrame:
        if isinstance(side.statistics, StoredStatistics):  # the document holds every row of the table
            rows = orjson.loads(side.statistics.documents["class_frequencies"])["frequencies"]
            freq = pd.DataFrame(rows, columns=["scope", "class", "kind", "runs"]).astype({"runs": "int64"})
        else:
            freq = side.statistics.sections["class_frequencies"].tables["class_frequencies"]
        return freq.loc[freq["scope"] == "overall", ["class", "kind", "runs"]]

    merged = overall(whatif.current).merge(
        overall(whatif.candidate), on=["class", "kind"], how="outer", suffixes=("_current", "_candidate")
    )
    merged = merged.fillna({"runs_current": 0, "runs_candidate": 0}).astype(
        {"runs_current": "int64", "runs_candidate": "int64"}
    )
    merged["change"] = merged["runs_candidate"] - merged["runs_current"]
    return merged.sort_values(["kind", "class"], kind="stable").reset_index(drop=True)[
        list(WhatIfClassCounts.to_schema().columns)
    ]


def _rule_text(rule: RuleResult | None) -> str:
    if rule is None:
        return "(not a rule)"
    observed = "n/a" if rule.observed is None else f"{rule.observed:.4g}"
    threshold = "" if rule.threshold is None else f" {rule.comparator} {rule.threshold:.4g}"
    return f"{rule.verdict} ({observed}{threshold})"


def rule_changes(whatif: WhatIf) -> list[dict[str, Any]]:
    """Every rule whose verdict differs (or that only one config has), by name."""
    before = {r.name: r for r in whatif.current.result.decision.rules}
    after = {r.name: r for r in whatif.candidate.result.decision.rules}
    rows = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old is not None and new is not None and old.verdict == new.verdict:
            continue
        rows.append(
            {
                "rule": name,
                "current": None if old is None else old.verdict,
                "candidate": None if new is None else new.verdict,
                "current_evidence": _rule_text(old),
                "candidate_evidence": _rule_text(new),
                "why": (new or old).why,
            }
        )
    return rows


def side_by_side(whatif: WhatIf) -> pd.DataFrame:
    """The decision at the end of each day under both configs."""
    keep = ["date", "policy_hash", "phase", "verdict", "n_runs", "deciding_rule"]
    merged = whatif.current.timeline[keep].merge(
        whatif.candidate.timeline[keep], on="date", how="outer", suffixes=("_current", "_candidate")
    )
    merged = merged.sort_values("date", kind="stable").reset_index(drop=True)
    merged["verdict_changes"] = merged["verdict_current"] != merged["verdict_candidate"]
    columns = list(WhatIfTimeline.to_schema().columns)
    types = {
        c: "Int64" if c.startswith("n_runs") else bool if c == "verdict_changes" else object for c in columns
    }
    return merged[columns].astype(types)


def first_go(days: pd.DataFrame, column: str) -> tuple[str | None, str | None]:
    """The first day with GO and the day the latest unbroken run of GO days up to the last day began."""
    go = days[column].eq("GO").to_numpy()
    if not go.any():
        return None, None
    dates = days["date"].to_numpy()
    since = None
    if go[-1]:
        breaks = np.flatnonzero(~go)
        since = dates[breaks[-1] + 1] if len(breaks) else dates[0]
    return str(dates[np.argmax(go)]), None if since is None else str(since)


def summary(whatif: WhatIf, days: pd.DataFrame, runs: pd.DataFrame) -> dict[str, Any]:
    cur, cand = whatif.current, whatif.candidate

    def side(s: Side, column: str) -> dict[str, Any]:
        d = s.result.decision
        first, since = first_go(days, column)
        return {
            "verdict": d.verdict,
            "why": d.why,
            "policy_hash": d.policy_hash,
            "phase": d.current_phase,
            "next_phase": d.next_phase,
            "runs": d.n_runs,
            "key_figures": key_figures(s.result.document),
            "provenance": s.result.hashes,
            "first_go_day": first,
            "go_since_day": since,
            "timeline_days_evaluated": s.evaluated_days,
        }

    return {
        "name": whatif.name,
        "changed_files": whatif.configs.changed,
        "ignored_files": whatif.configs.ignored,
        "current": side(cur, "verdict_current"),
        "candidate": side(cand, "verdict_candidate"),
        "rules_changed": rule_changes(whatif),
        "runs": int(cur.table.num_rows),
        "runs_reclassified": len(runs),
        "timeline_window_days": whatif.days,
        "timeline_days": len(days),
        "days_verdict_changes": int(days["verdict_changes"].sum()),
        "notes": whatif.notes,
    }


# --- the report ---------------------------------------------------------------------------------------------


def _go_sentence(label: str, first: str | None, since: str | None) -> str:
    if first is None:
        return f"- {label}: never GO in these days"
    tail = f", GO since {since}" if since else ", not GO on the last day"
    return f"- {label}: first GO at the end of {first}{tail}"


def _band(days: pd.DataFrame, column: str) -> str:
    return "".join(BAND.get(v, ".") if isinstance(v, str) else " " for v in days[column])


def render_report(
    whatif: WhatIf, info: dict[str, Any], days: pd.DataFrame, runs: pd.DataFrame, counts: pd.DataFrame
) -> str:
    cur, cand = info["current"], info["candidate"]
    changed = ", ".join(md_code(n) for n in info["changed_files"]) or "nothing (the same config)"
    lines = [
        f"# What-if {md_text(whatif.name)}",
        "",
        f"Candidate changes: {changed}. Replayed on the {info['runs']} stored runs (no artifact read; the live "
        "outputs are untouched). `candidate/` holds what a backfill under the candidate config would publish; "
        "`config/` is that config.",
        "",
        "## Decision",
        "",
        markdown_table(
            ["", "current", "candidate"],
            [
                ["verdict", cur["verdict"], cand["verdict"]],
                ["policy_hash", md_text(cur["policy_hash"] or "—"), md_text(cand["policy_hash"] or "—")],
                ["phase", md_text(cur["phase"]), md_text(cand["phase"])],
                ["runs", str(cur["runs"]), str(cand["runs"])],
            ],
        ),
        "",
        f"Current: {md_text(cur['why'])}",
        "",
        f"Candidate: {md_text(cand['why'])}",
        "",
        "## Rules whose verdict changes",
        "",
    ]
    if info["rules_changed"]:
        rows = [
            [md_text(r["rule"]), md_text(r["current_evidence"]), md_text(r["candidate_evidence"])]
            for r in info["rules_changed"]
        ]
        lines.append(markdown_table(["rule", "current", "candidate"], rows))
    else:
        lines.append("None: every rule has the same verdict.")
    figures = [
        [md_text(label), md_text(_figure(cur["key_figures"][label])), md_text(_figure(value))]
        for label, value in cand["key_figures"].items()
        if label != "verdict"
    ]
    lines += [
        "",
        "## Class counts and false positives",
        "",
        markdown_table(["figure", "current", "candidate"], figures),
    ]
    moved = counts[counts["change"] != 0]
    if len(moved):
        rows = [
            [md_code(r["class"]), r["kind"], str(r["runs_current"]), str(r["runs_candidate"])]
            for r in moved.to_dict("records")
        ]
        lines += [
            "",
            "Runs per class that change:",
            "",
            markdown_table(["class", "kind", "current", "candidate"], rows),
        ]
    lines += ["", f"## Runs whose classification changes: {len(runs)}", ""]
    if len(runs):
        rows = [
            [
                md_text(r["run_id"]),
                r["date"],
                md_text(r["classes_removed"] or "—"),
                md_text(r["classes_added"] or "—"),
            ]
            for r in runs.head(SHOWN_RUNS).to_dict("records")
        ]
        lines.append(markdown_table(["run_id", "date", "classes removed", "classes added"], rows))
        if len(runs) > SHOWN_RUNS:
            lines.append(f"\n… and {len(runs) - SHOWN_RUNS} more: all of them in `changed_runs.csv`.")
    window = "every day with runs" if not whatif.days else f"the last {whatif.days} days with runs"
    lines += [
        "",
        "## When would it have said GO?",
        "",
        f"The decision at the end of each day ({window}; `timeline.csv`), one letter a day "
        "(G = GO, h = HOLD, N = NO_GO, R = ROLLBACK):",
        "",
        "```",
        f"current   {_band(days, 'verdict_current')}",
        f"candidate {_band(days, 'verdict_candidate')}",
        "```",
        "",
        _go_sentence("current", cur["first_go_day"], cur["go_since_day"]),
        _go_sentence("candidate", cand["first_go_day"], cand["go_since_day"]),
    ]
    differ = days[days["verdict_changes"]]
    if len(differ):
        rows = [
            [
                r["date"],
                str(r["verdict_current"]),
                str(r["verdict_candidate"]),
                md_text(r["deciding_rule_candidate"] or "—"),
            ]
            for r in differ.tail(SHOWN_DAYS).to_dict("records")
        ]
        lines += [
            "",
            f"Days whose verdict differs: {len(differ)} (the latest {min(len(differ), SHOWN_DAYS)}):",
            "",
            markdown_table(["day", "current", "candidate", "candidate's deciding rule"], rows),
        ]
    if whatif.notes:
        lines += ["", "## Notes", ""] + [f"- {md_text(n)}" for n in whatif.notes]
    return "\n".join(lines) + "\n"


def _figure(value: object) -> str:
    return "n/a" if value is None else str(value)


#: The files the CLI lists, with what each holds.
LISTED: dict[tuple[str, ...], str] = {
    ("whatif.md",): "the report: decision, rules, class counts, changed runs, when it would have said GO",
    ("summary.json",): "the same figures as canonical JSON",
    ("changed_runs.csv",): "every run whose classification changes",
    ("class_counts.csv",): "runs per unknown class under each config",
    ("timeline.csv",): "the decision at the end of each day under both configs",
    ("candidate", "rollout_metrics.json"): "what a backfill under the candidate would publish "
    "(also ci_comment.md, tables/; current/ alike)",
    ("config", WHITELIST_FILE): "the candidate config as evaluated (copy it to apply it)",
}


def outputs_of(whatif: WhatIf) -> tuple[dict[tuple[str, ...], bytes], dict[str, Any]]:
    """Every file of ``<out>/whatif/<name>/`` by path under it, and the summary figures."""
    days = side_by_side(whatif)
    runs = changed_runs(whatif)
    counts = class_counts(whatif)
    for model, frame in ((WhatIfRuns, runs), (WhatIfTimeline, days), (WhatIfClassCounts, counts)):
        failures = validate(model, frame)
        if failures:
            raise ValueError(f"what-if table {model.__name__} violates its schema: {failures[:5]}")
    info = summary(whatif, days, runs)
    files: dict[tuple[str, ...], bytes] = {
        ("whatif.md",): render_report(whatif, info, days, runs, counts).encode(),
        ("summary.json",): dumps_canonical(info),
        ("changed_runs.csv",): table_csv_bytes(runs),
        ("class_counts.csv",): table_csv_bytes(counts),
        ("timeline.csv",): table_csv_bytes(days),
    }
    known: dict[str, tuple[pd.DataFrame, bytes]] = {}
    for label, side in (("current", whatif.current), ("candidate", whatif.candidate)):
        files.update({(label, *path): payload for path, payload in side.files(known).items()})
    files.update({("config", name): raw for name, raw in sorted(whatif.candidate.config.files.items())})
    return files, info


def destination(outputs: Store, name: str) -> Store:
    """``<out>/whatif/<name>/``."""
    return Store(outputs.path(FOLDER, check_name(name)), outputs.options)


def write(dest: Store, files: dict[tuple[str, ...], bytes]) -> dict[tuple[str, ...], str]:
    """Write every file under ``dest``, the report last (a reader who sees it sees the rest). Path → URL."""
    report = ("whatif.md",)
    urls = {path: dest.write_bytes(payload, *path) for path, payload in files.items() if path != report}
    urls[report] = dest.write_bytes(files[report], *report)
    return urls


def summary_text(info: dict[str, Any], candidate_url: str) -> str:
    """What the CLI prints: the two decisions, the rules and figures that change, when GO would have come."""
    cur, cand = info["current"], info["candidate"]
    changed = ", ".join(info["changed_files"]) or "nothing"
    lines = [
        f"gate-pipeline: what-if {info['name']!r}: candidate {candidate_url} changes {changed}; replayed on "
        f"{info['runs']} stored runs (no artifact read)",
        f"Decision current → candidate: {cur['verdict']} → {cand['verdict']} "
        f"(policy_hash {cur['policy_hash']} → {cand['policy_hash']})",
    ]
    for rule in info["rules_changed"]:
        lines.append(f"  {rule['rule']}: {rule['current_evidence']} → {rule['candidate_evidence']}")
    for label, value in cand["key_figures"].items():
        if label != "verdict":
            lines.append(f"{label}: {_figure(cur['key_figures'][label])} → {_figure(value)}")
    lines.append(f"runs whose classification changes: {info['runs_reclassified']}")
    for label, side in (("current", cur), ("candidate", cand)):
        first = side["first_go_day"] or "never"
        since = f", GO since {side['go_since_day']}" if side["go_since_day"] else ""
        lines.append(f"first GO in the {info['timeline_days']} replayed day(s), {label}: {first}{since}")
    lines += [f"note: {note}" for note in info["notes"]]
    if info["ignored_files"]:
        lines.append(
            f"note: not evaluated (not a config a what-if changes): {', '.join(info['ignored_files'])}"
        )
    return "\n".join(lines)
