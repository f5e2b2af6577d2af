"""bench/decisions.py stays runnable and its vectorized verdicts stay those of rules.evaluate."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "decisions.py"


@pytest.mark.slow
def test_benchmark_verdicts_agree_with_the_engine(capsys):
    spec = importlib.util.spec_from_file_location("bench_decisions", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    assert module.main(["--rollouts", "40", "--engine-checks", "1", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "rules.evaluate agreed with the vectorized verdicts in 50 of 50 looks" in out
    assert out.count("| sequential |") == 12 and out.count("| old rules |") == 12
