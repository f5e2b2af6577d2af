"""Unknown class frequencies and recurring unknown patterns per policy_hash (seed 000)."""

from __future__ import annotations

import pandas as pd

from gate_pipeline.lib.classify import class_kind
from gate_pipeline.lib.stats.config import AnalysisConfig
from gate_pipeline.lib.stats.document import Section, to_jsonable
from gate_pipeline.lib.stats.runs import (
    Runs,
    as_runs,
    code_counts,
    combos,
    json_sets,
    no_nan,
    policy_coded,
    sort_cols,
)

FREQ_COLUMNS = ["scope", "policy_hash", "class", "kind", "runs", "total_runs", "share"]


def class_frequencies(classified: pd.DataFrame | Runs, cfg: AnalysisConfig | None = None) -> pd.DataFrame:
    """How many runs carry each unknown class, overall and per policy_hash.

    ``runs`` counts runs having the class (a class counts once per run); ``share = runs / total_runs`` where
    total_runs is the number of runs in the scope (all runs, or the policy_hash's runs). ``kind`` is
    whitelisted / non_whitelisted / field / cause / other. Sorted by (scope, policy_hash, class) with the
    'overall' rows (policy_hash None) first.
    """
    cfg = cfg or AnalysisConfig()
    runs = as_runs(classified)
    codes, items = json_sets(runs, "unknown_classes")
    ph_codes, ph_names = ph_coded = policy_coded(runs, cfg)
    total = len(runs.df)
    totals_ph = code_counts(ph_coded)
    overall: dict[str, int] = {}
    per: dict[tuple[str, str], int] = {}
    for (code, p), n in combos(codes, ph_codes):
        h = ph_names[p]
        for cls in items[code] if code >= 0 else []:
            overall[cls] = overall.get(cls, 0) + n
            per[(h, cls)] = per.get((h, cls), 0) + n
    out = [("overall", None, cls, overall[cls], total) for cls in sorted(overall)]
    out += [("policy_hash", h, cls, per[(h, cls)], totals_ph[h]) for h, cls in sorted(per)]
    df = pd.DataFrame(out, columns=["scope", "policy_hash", "class", "runs", "total_runs"])
    df["kind"] = df["class"].map(class_kind) if len(df) else pd.Series([], dtype=object)
    df["share"] = df["runs"] / df["total_runs"] if len(df) else pd.Series([], dtype=float)
    df = df[FREQ_COLUMNS]
    return no_nan(sort_cols(df, ["scope", "policy_hash", "class"]))


RECUR_COLUMNS = [
    "policy_hash",
    "reason",
    "runs",
    "total_runs",
    "share",
    "whitelisted_runs",
    "non_whitelisted_runs",
    "criterion",
]


def recurring_patterns(classified: pd.DataFrame | Runs, cfg: AnalysisConfig | None = None) -> pd.DataFrame:
    """Top reasons recurring per policy_hash: in >= ``recurrence_min_runs`` runs OR in
    >= ``recurrence_min_share`` of that policy_hash's runs.

    Columns: policy_hash, reason, runs (runs listing the reason), total_runs, share, whitelisted_runs /
    non_whitelisted_runs (in how many of those runs the whitelist covered it; they differ only around an
    expiry date), criterion ('min_runs', 'min_share' or 'min_runs+min_share'). Sorted by (policy_hash, reason).
    """
    cfg = cfg or AnalysisConfig()
    runs = as_runs(classified)
    ph_codes, ph_names = ph_coded = policy_coded(runs, cfg)
    r_codes, r_items = json_sets(runs, "top_reasons")
    n_codes, n_items = json_sets(runs, "non_whitelisted_reasons")
    listed: dict[tuple[str, str], int] = {}  # (policy_hash, reason) -> runs listing the reason
    not_covered: dict[tuple[str, str], int] = {}  # ... of which list it as non-whitelisted too
    for (rc, nc, p), n in combos(r_codes, n_codes, ph_codes):
        if rc < 0:
            continue
        h = ph_names[p]
        non_wl = set(n_items[nc]) if nc >= 0 else set()
        for reason in r_items[rc]:
            listed[(h, reason)] = listed.get((h, reason), 0) + n
            if reason in non_wl:
                not_covered[(h, reason)] = not_covered.get((h, reason), 0) + n
    totals = code_counts(ph_coded)
    out = []
    for h, reason in sorted(listed):
        runs, tot, nwl = listed[(h, reason)], totals[h], not_covered.get((h, reason), 0)
        share = runs / tot
        by_k, by_s = runs >= cfg.recurrence_min_runs, share >= cfg.recurrence_min_share
        if not (by_k or by_s):
            continue
        crit = "+".join(x for x, ok in (("min_runs", by_k), ("min_share", by_s)) if ok)
        out.append((h, reason, runs, tot, share, runs - nwl, nwl, crit))
    df = pd.DataFrame(out, columns=RECUR_COLUMNS)
    return no_nan(sort_cols(df, ["policy_hash", "reason"]))


def class_section(history: pd.DataFrame | Runs, cfg: AnalysisConfig) -> Section:
    freq = class_frequencies(history, cfg)
    patterns = recurring_patterns(history, cfg)
    doc = {"frequencies": to_jsonable(freq), "recurring_patterns": to_jsonable(patterns)}
    numbers = {
        "distinct_classes": int(freq["class"].nunique()) if not freq.empty else 0,
        "recurring_patterns": len(patterns),
    }
    return Section(
        "class_frequencies", doc, {"class_frequencies": freq, "recurring_patterns": patterns}, numbers
    )
