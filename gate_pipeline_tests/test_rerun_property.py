"""Re-runs are correct, not only fast: after any sequence of added, changed and deleted runs and days (each
followed by `gate-pipeline run`), the outputs equal a clean run of what is there now, byte for byte."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gate_pipeline_tests.pipeline_helpers import CONFIG, OUTPUTS, run_cli

DAYS = ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05"]


def _gate(run_id: str, day: str, outcome: str, rate: float) -> bytes:
    return orjson.dumps(
        {
            "run_id": run_id,
            "timestamp": f"{day}T10:00:00Z",
            "policy_hash": "b71c02",
            "outcome": outcome,
            "unknown_rate": rate,
            "top_reasons": ["flaky_test"] if rate > 0.05 else [],
        }
    )


def _write_run(root: Path, day: str, run_id: str, outcome: str = "PASS", rate: float = 0.02) -> None:
    folder = root / day / run_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gate_result.json").write_bytes(_gate(run_id, day, outcome, rate))


def _runs(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*") if p.is_dir())


def _apply(root: Path, op: tuple, step: int) -> None:
    kind, pick, outcome = op
    runs = _runs(root)
    if kind == "add":
        _write_run(root, DAYS[pick % len(DAYS)], f"r-add-{step}", outcome, 0.01 * (step % 9))
    elif kind == "change" and runs:
        run = runs[pick % len(runs)]
        _write_run(root, run.parent.name, run.name, outcome, 0.5)
    elif kind == "delete_run" and len(runs) > 1:
        shutil.rmtree(runs[pick % len(runs)])
    elif kind == "delete_day":
        days = sorted(p for p in root.iterdir() if p.is_dir())
        if len(days) > 1:
            shutil.rmtree(days[pick % len(days)])
    # "rerun": nothing changes


def _run(root: Path, out: Path, config: Path) -> int:
    return run_cli("run", "--artifacts", str(root), "--out", str(out), "--config", str(config), "--exit-code")


OPS = st.tuples(
    st.sampled_from(["add", "change", "delete_run", "delete_day", "rerun"]),
    st.integers(0, 50),
    st.sampled_from(["PASS", "FAIL", "WARN"]),
)


@pytest.mark.slow
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(ops=st.lists(OPS, min_size=2, max_size=3))
# Always tried: a change in an old day (outside the sensor lookback) and a deleted day, which the former
# "nothing new" path served stale.
@example(ops=[("change", 0, "FAIL"), ("delete_day", 2, "PASS")])
def test_incremental_reruns_equal_a_clean_build(ops):
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        root, config = tmp / "artifacts", tmp / "config"
        shutil.copytree(CONFIG, config)
        for i, day in enumerate(DAYS[:3]):
            _write_run(root, day, f"r-{i}-a")
            _write_run(root, day, f"r-{i}-b", "FAIL" if i == 1 else "PASS", 0.08)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DAGSTER_HOME", str(tmp / "home"))
            assert _run(root, tmp / "out", config) not in (1, 2)
            for step, op in enumerate(ops):
                _apply(root, op, step)
                assert _run(root, tmp / "out", config) not in (1, 2)
            clean = _run(root, tmp / "clean", config)
            assert clean not in (1, 2)
        for name in OUTPUTS:
            incremental, fresh = (tmp / "out" / name).read_bytes(), (tmp / "clean" / name).read_bytes()
            assert incremental == fresh, f"{name} differs from a clean build after {ops}"
