"""The live runs' process trees, sampled for every door (``core.top``): ``gangline top``, ``GET /api/top``, the
``top`` tool, the board's Top view, chat's ``htop`` and ``/metrics``.

CPU is measured between two readings of /proc. The last reading is kept as the next one's
baseline, so a door that asks every few seconds costs one pass over /proc per ask; one that asks
first, or after a long pause, waits ``over_s`` for a second reading.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from gangline.agents.usage import ProcessUsage, trees_usage
from gangline.core.top import TopOut, run_top
from gangline.core.wire import RunOut

SAMPLE_S = 1.0  # the interval CPU is measured over when there is no recent reading
MIN_S = 0.2  # a baseline younger than this measures too short an interval: read again after ``over_s``
STALE_S = 30.0  # one older than this says nothing about now


class Top:
    """A sampler of the live runs (``runs``) with the last reading as its baseline."""

    def __init__(self, runs: Callable[[], list[RunOut]], clock: Callable[[], float] = time.monotonic) -> None:
        self.runs = runs
        self.clock = clock
        self._last: tuple[float, dict[int, float]] | None = None  # (when, pid -> CPU seconds)
        self._lock = asyncio.Lock()

    async def sample(self, over_s: float = SAMPLE_S) -> TopOut:
        """Every live run with its process tree, CPU over the interval since the last reading, and memory now."""
        async with self._lock:
            if self._last is None or not MIN_S <= self.clock() - self._last[0] <= STALE_S:
                self._last = (self.clock(), _cpu(await asyncio.to_thread(trees, self.runs())))
                await asyncio.sleep(over_s)
            runs = self.runs()
            found = await asyncio.to_thread(trees, runs)
            now = self.clock()
            since, before = self._last
            self._last = (now, _cpu(found))
        over = max(now - since, 1e-3)
        rows = [run_top(run, found.get(run.id, []), before, over) for run in runs]
        return TopOut(at=time.time(), over_s=round(over, 3), runs=rows)


def trees(runs: Sequence[RunOut]) -> dict[str, list[ProcessUsage]]:
    """The process tree of each run of this machine (a build node's run has its processes there), one /proc pass."""
    here = {run.id: run.pid for run in runs if run.pid is not None and run.node_id is None}
    found = trees_usage(here.values()) if here else {}
    return {run_id: found[pid] for run_id, pid in here.items()}


def _cpu(found: dict[str, list[ProcessUsage]]) -> dict[int, float]:
    return {process.pid: process.cpu_s for tree in found.values() for process in tree}
