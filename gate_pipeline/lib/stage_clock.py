"""Wall and CPU seconds per named stage of a computation (listing, parsing, writing, ...), summable across
worker processes. Pure: no Dagster. The daily step reports its stages so a slow build can be attributed."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

_DONE = object()


@dataclass
class StageClock:
    """Accumulated seconds per stage: ``wall`` (elapsed) and ``cpu`` (this process, all its threads).
    Exclusive: a stage entered inside another is counted to itself only, not to the outer one too."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    _inner: list[list[float]] = field(default_factory=list, repr=False)  # per open stage: inner wall, cpu

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        self._inner.append([0.0, 0.0])
        try:
            yield
        finally:
            inner_wall, inner_cpu = self._inner.pop()
            spent_wall, spent_cpu = time.perf_counter() - wall, time.process_time() - cpu
            self.wall[name] = self.wall.get(name, 0.0) + spent_wall - inner_wall
            self.cpu[name] = self.cpu.get(name, 0.0) + spent_cpu - inner_cpu
            if self._inner:
                self._inner[-1][0] += spent_wall
                self._inner[-1][1] += spent_cpu

    def timed_yields(self, items: Iterable, work: str, handling: str) -> Iterator:
        """Yield from ``items``, counting the time to produce each to ``work`` and the time until the
        consumer asks for the next (e.g. Dagster storing the event just yielded) to ``handling``."""
        items = iter(items)
        while True:
            with self.stage(work):
                item = next(items, _DONE)
            if item is _DONE:
                return
            with self.stage(handling):
                yield item

    def add(self, other: StageClock) -> None:
        for name in other.wall:
            self.wall[name] = self.wall.get(name, 0.0) + other.wall[name]
            self.cpu[name] = self.cpu.get(name, 0.0) + other.cpu[name]

    def as_dict(self) -> dict[str, dict[str, float]]:
        """{stage: {"wall_s", "cpu_s"}}, rounded to milliseconds, in the order stages first ran."""
        return {n: {"wall_s": round(self.wall[n], 3), "cpu_s": round(self.cpu[n], 3)} for n in self.wall}
