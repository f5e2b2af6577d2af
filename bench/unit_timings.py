"""Timings that used to be asserts inside unit tests: measured here, compared with a generous budget.

    .venv/bin/python bench/unit_timings.py

Unit tests assert values only; how fast the hot paths are is this script's job (shared CI machines make
timing asserts in tests flaky). Exit status 1 when a measurement exceeds its budget.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
from upath import UPath

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gate_pipeline.lib import stats as S  # noqa: E402
from gate_pipeline.lib.classify import classify_runs  # noqa: E402
from gate_pipeline.lib.discovery import scan_for_changes  # noqa: E402
from gate_pipeline.lib.reports import render_chart  # noqa: E402
from gate_pipeline_tests.lib.test_classify import WL, make_runs  # noqa: E402
from gate_pipeline_tests.lib.test_discovery import _write_tree, settled  # noqa: E402
from gate_pipeline_tests.lib.test_reports import _big_series  # noqa: E402
from gate_pipeline_tests.lib.test_stats import classified  # noqa: E402


def classify_1m() -> None:
    base = make_runs(
        [
            {"top_reasons": ["flaky_test"]},
            {"top_reasons": ["infra_dns", "db_lock"], "unknown_causes": {"contract": 1}},
            {"top_reasons": [], "field_issues": ["unknown_field_missing:unknown_rate"]},
            {"top_reasons": ["network_blip"], "date": "2026-03-02"},
        ]
    )
    big = base.iloc[np.tile(np.arange(4), 250_000)].reset_index(drop=True)
    assert len(classify_runs(big, WL)) == 1_000_000


def statistics_400k() -> None:
    base = classified(
        [
            {"top_reasons": ["flaky_test"], "unknown_rate": 0.1, "outcome": "PASS"},
            {
                "top_reasons": ["db_lock", "infra_x"],
                "unknown_rate": 0.6,
                "outcome": "FAIL",
                "stratum": "unpinned",
            },
            {"top_reasons": [], "unknown_rate": 0.0, "outcome": "WARN", "policy_hash": "h2"},
            {"top_reasons": ["oom"], "unknown_rate": None, "outcome": None},
        ]
    )
    big = base.iloc[np.tile(np.arange(4), 100_000)].reset_index(drop=True)
    big["run_id"] = [f"r{i:07d}" for i in range(len(big))]
    assert S.stratum_metrics(big).table.iloc[0]["runs"] == 300_000
    S.risk_measures(big)
    S.class_frequencies(big)
    S.spikes(big)
    S.warn_threshold(big)


def large_chart() -> None:
    assert render_chart(_big_series(), median=0.25, threshold=0.6)[:4] == b"\x89PNG"


def local_tick_10k_files() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        day_names = _write_tree(Path(tmp), 100, 50, ("gate_result", "drift_report"))
        today = date.fromisoformat(day_names[-1])
        first = scan_for_changes(UPath(tmp), None, today=today, lookback_days=6, now=settled())
        scan_for_changes(UPath(tmp), first.cursor, today=today, lookback_days=6, now=settled())


#: name -> (function, budget in seconds: generous, for shared CPUs)
MEASUREMENTS: dict[str, tuple[Callable[[], None], float]] = {
    "classify 1M runs": (classify_1m, 10.0),
    "statistics families on 400k runs": (statistics_400k, 30.0),
    "daily chart of 5000 runs": (large_chart, 5.0),
    "local sensor tick, 10k files (first + steady)": (local_tick_10k_files, 10.0),
}


def main() -> int:
    over = []
    for name, (run, budget) in MEASUREMENTS.items():
        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
        flag = "" if elapsed <= budget else "  OVER BUDGET"
        print(f"{name:<48} {elapsed:7.2f} s  (budget {budget:.0f} s){flag}", flush=True)
        if elapsed > budget:
            over.append(name)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
