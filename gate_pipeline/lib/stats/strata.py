"""Per-stratum WARN/FAIL metrics and pairwise deltas of the combined rate (seed 001)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from gate_pipeline.lib.stats.config import AnalysisConfig
from gate_pipeline.lib.stats.document import Section, to_jsonable
from gate_pipeline.lib.stats.intervals import estimate_cols, newcombe_diff, wilson
from gate_pipeline.lib.stats.runs import (
    Runs,
    as_runs,
    factorize,
    groups,
    no_nan,
    outcome_flags,
    policy_coded,
    rates_of,
    sort_cols,
    strata_coded,
)


@dataclass
class StrataTables:
    """Per-stratum metrics (``table``) and pairwise deltas of the combined WARN+FAIL rate (``deltas``)."""

    strata_column: str
    table: pd.DataFrame = field(repr=False)
    deltas: pd.DataFrame = field(repr=False)


STRATUM_COLUMNS = [
    "scope",
    "policy_hash",
    "stratum",
    "runs",
    "outcome_known",
    "outcome_null",
    "warn_runs",
    "fail_runs",
    "warn_rate",
    "fail_rate",
    "warn_fail_runs",
    "warn_fail_rate",
    "warn_fail_ci_low",
    "warn_fail_ci_high",
    "warn_fail_status",
    "unknown_rate_n",
    "unknown_rate_mean",
    "unknown_causes",
    "drift_warn_count",
    "drift_fail_count",
    "drift_unknown_count",
    "overrides_runs",
    "overrides_null_runs",
    "overrides_total",
    "overrides_per_run",
]

DELTA_COLUMNS = [
    "scope",
    "policy_hash",
    "stratum_a",
    "stratum_b",
    "runs_a",
    "warn_fail_a",
    "rate_a",
    "runs_b",
    "warn_fail_b",
    "rate_b",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "delta_status",
]


def _scope_sorted(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    # overall ('stratum') rows first, then per policy_hash
    df = df.assign(_scope_rank=(df["scope"] != "stratum").astype(int))
    return sort_cols(df, ["_scope_rank", *cols]).drop(columns="_scope_rank")


class _CauseCounter:
    """Summed ``unknown_causes`` counts of row groups as canonical JSON; each distinct JSON string is parsed
    once. Non-JSON values, non-objects and non-numeric (or boolean) counts are skipped; counts truncate to int."""

    def __init__(self, values: pd.Series | None, n: int):
        if values is None:
            self.codes, self.parsed = np.full(n, -1, dtype=np.intp), []
            return
        self.codes, uniques = factorize(values.astype(object, copy=False))
        self.parsed = [self._parse(u) for u in uniques]

    @staticmethod
    def _parse(raw: Any) -> list[tuple[str, int]]:
        try:
            obj = orjson.loads(raw)
        except (orjson.JSONDecodeError, TypeError):
            return []
        if not isinstance(obj, dict):
            return []
        return [(c, int(v)) for c, v in obj.items() if isinstance(v, int | float) and not isinstance(v, bool)]

    def totals(self, idx: np.ndarray) -> str:
        codes = self.codes[idx]
        per_value = np.bincount(codes[codes >= 0], minlength=len(self.parsed))
        totals: dict[str, int] = {}
        for u in np.flatnonzero(per_value).tolist():
            cnt = int(per_value[u])
            for cause, v in self.parsed[u]:
                totals[cause] = totals.get(cause, 0) + v * cnt
        return orjson.dumps(totals, option=orjson.OPT_SORT_KEYS).decode()


def _sum_int(values: np.ndarray) -> int:
    """int of the sum with nulls as 0 (same values, same order as a pandas ``fillna(0).sum()``)."""
    return int(np.where(np.isnan(values), 0.0, values).sum())


def stratum_metrics(classified: pd.DataFrame | Runs, cfg: AnalysisConfig | None = None) -> StrataTables:
    """Seed 001 metrics per stratum (scope 'stratum', policy_hash None) and per (policy_hash, stratum)
    (scope 'policy_hash_stratum').

    Outcome-based: warn_runs / fail_runs are runs whose ``outcome`` is in warn_outcomes / fail_outcomes;
    rates divide by ``outcome_known`` (runs with a non-null outcome); ``warn_fail_rate`` = (warn + fail) /
    outcome_known with a Wilson CI. Drift-report totals: drift_warn_count / drift_fail_count /
    drift_unknown_count are sums of the drift counts (nulls as 0), ``unknown_causes`` the summed cause counts
    as canonical JSON. Overrides: ``overrides_per_run`` = mean of overrides_count over runs where it is not
    null (``overrides_runs``); runs without it are counted in ``overrides_null_runs``.

    ``deltas``: for each configured pair (a, b) and, if ``strata_all_pairs``, every other pair of observed
    strata (alphabetical a < b): delta = warn_fail_rate(a) - warn_fail_rate(b) with a Newcombe hybrid score CI,
    overall (scope 'stratum') and within each policy_hash. A stratum without runs gives ``empty_cell``.
    Both tables: scope 'stratum' rows first, then by (policy_hash, stratum) resp. (policy_hash, stratum_a,
    stratum_b).
    """
    cfg = cfg or AnalysisConfig()
    z = cfg.z
    runs = as_runs(classified)
    classified = runs.df
    known, is_warn, is_fail = outcome_flags(runs, cfg)
    warn, fail = known & is_warn, known & is_fail
    rate = rates_of(runs).to_numpy()
    drift = {
        dst: pd.to_numeric(classified[src], errors="coerce").to_numpy(
            dtype=float
        )  # no copy of a float column
        if src in classified
        else np.full(len(classified), np.nan)
        for src, dst in (
            ("warn_count", "dw"),
            ("fail_count", "df"),
            ("unknown_count", "du"),
            ("overrides_count", "ov"),
        )
    }
    causes = _CauseCounter(classified.get("unknown_causes"), len(classified))

    rows = []
    counts: dict[tuple[str, str | None, str], tuple[int, int]] = {}

    def summarise(scope: str, h: str | None, s: str, idx: np.ndarray) -> None:
        # idx: the group's row positions in input order, so every float sum adds the same values in the same
        # order as the pandas per-group Series did (bit-identical means).
        n_known = int(known[idx].sum())
        w, f = int(warn[idx].sum()), int(fail[idx].sum())
        wf = wilson(w + f, n_known, z)
        r = rate[idx]
        r_ok = ~np.isnan(r)
        n_rate = int(r_ok.sum())
        ov = drift["ov"][idx]
        ov = ov[~np.isnan(ov)]
        ov_sum = ov.sum()
        counts[(scope, h, s)] = (n_known, w + f)
        rows.append(
            {
                "scope": scope,
                "policy_hash": h,
                "stratum": s,
                "runs": len(idx),
                "outcome_known": n_known,
                "outcome_null": len(idx) - n_known,
                "warn_runs": w,
                "fail_runs": f,
                "warn_rate": w / n_known if n_known else None,
                "fail_rate": f / n_known if n_known else None,
                "warn_fail_runs": w + f,
                "warn_fail_rate": wf.rate,
                "warn_fail_ci_low": wf.ci_low,
                "warn_fail_ci_high": wf.ci_high,
                "warn_fail_status": wf.status,
                "unknown_rate_n": n_rate,
                "unknown_rate_mean": float(np.where(r_ok, r, 0.0).sum() / np.float64(n_rate))
                if n_rate
                else None,
                "unknown_causes": causes.totals(idx),
                "drift_warn_count": _sum_int(drift["dw"][idx]),
                "drift_fail_count": _sum_int(drift["df"][idx]),
                "drift_unknown_count": _sum_int(drift["du"][idx]),
                "overrides_runs": len(ov),
                "overrides_null_runs": len(idx) - len(ov),
                "overrides_total": int(ov_sum),
                "overrides_per_run": float(ov_sum / np.float64(len(ov))) if len(ov) else None,
            }
        )

    for (s,), idx in groups(strata_coded(runs, cfg)):
        summarise("stratum", None, s, idx)
    for (h, s), idx in groups(policy_coded(runs, cfg), strata_coded(runs, cfg)):
        summarise("policy_hash_stratum", h, s, idx)
    table = no_nan(_scope_sorted(pd.DataFrame(rows, columns=STRATUM_COLUMNS), ["policy_hash", "stratum"]))

    observed = sorted(
        strata_coded(runs, cfg)[1].tolist()
    )  # the distinct strata, without a pass over every run
    pairs: list[tuple[str, str]] = []
    for a, b in cfg.strata_comparisons:
        if (a, b) not in pairs and a != b:
            pairs.append((a, b))
    if cfg.strata_all_pairs:
        for i, a in enumerate(observed):
            for b in observed[i + 1 :]:
                if (a, b) not in pairs and (b, a) not in pairs:
                    pairs.append((a, b))
    scopes: list[tuple[str, str | None]] = [("stratum", None)] + [
        ("policy_hash_stratum", h) for h in sorted(policy_coded(runs, cfg)[1].tolist())
    ]
    drows = []
    for scope, h in scopes:
        for a, b in pairs:
            na, xa = counts.get((scope, h, a), (0, 0))
            nb, xb = counts.get((scope, h, b), (0, 0))
            d = newcombe_diff(xa, na, xb, nb, z)
            drows.append(
                {
                    "scope": scope,
                    "policy_hash": h,
                    "stratum_a": a,
                    "stratum_b": b,
                    "runs_a": na,
                    "warn_fail_a": xa,
                    "rate_a": xa / na if na else None,
                    "runs_b": nb,
                    "warn_fail_b": xb,
                    "rate_b": xb / nb if nb else None,
                    **estimate_cols("delta", d),
                }
            )
    deltas = no_nan(
        _scope_sorted(pd.DataFrame(drows, columns=DELTA_COLUMNS), ["policy_hash", "stratum_a", "stratum_b"])
    )
    return StrataTables(cfg.strata_column, table, deltas)


def strata_section(history: pd.DataFrame | Runs, cfg: AnalysisConfig) -> Section:
    result = stratum_metrics(history, cfg)
    overall = result.table[result.table["scope"] == "stratum"] if not result.table.empty else result.table
    numbers: dict[str, float | int | None] = {
        f"warn_fail_rate[{rec.stratum}]": rec.warn_fail_rate for rec in overall.itertuples(index=False)
    }
    doc = {
        "strata_column": result.strata_column,
        "rows": to_jsonable(result.table),
        "deltas": to_jsonable(result.deltas),
    }
    return Section("strata", doc, {"strata": result.table, "strata_deltas": result.deltas}, numbers)
