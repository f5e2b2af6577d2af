"""StageClock: exclusive per-stage seconds, summable across processes, and timed yields."""

import time

from gate_pipeline.lib.stage_clock import StageClock


def _busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_nested_stages_count_only_to_themselves_and_clocks_add_up():
    clock = StageClock()
    with clock.stage("outer"):
        _busy(0.05)
        with clock.stage("inner"):
            _busy(0.1)
    assert list(clock.as_dict()) == ["inner", "outer"]
    assert 0.1 <= clock.cpu["inner"] < 0.14
    assert 0.05 <= clock.cpu["outer"] < 0.09  # not the inner stage's 0.1 s too
    assert clock.wall["outer"] >= clock.cpu["outer"] - 0.01
    other = StageClock()
    with other.stage("inner"):
        _busy(0.02)
    clock.add(other)
    assert 0.12 <= clock.cpu["inner"] < 0.17 and set(clock.cpu) == {"inner", "outer"}


def test_timed_yields_splits_producing_from_handling():
    clock = StageClock()

    def produce():
        for i in range(3):
            _busy(0.02)
            yield i

    got = []
    for item in clock.timed_yields(produce(), work="work", handling="handling"):
        _busy(0.03)
        got.append(item)
    assert got == [0, 1, 2]
    assert 0.06 <= clock.cpu["work"] < 0.1 and 0.09 <= clock.cpu["handling"] < 0.13
    assert list(StageClock().timed_yields([], work="w", handling="h")) == []
