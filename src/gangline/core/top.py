"""What each live run's processes use: the records ``gangline top``, the board's Top view, ``/metrics`` and chat's
``htop`` show, and how they are computed from two readings of the process table (``agents.usage``).

CPU is a share of one core over the interval between the readings (a process busy on two cores
shows 200%); memory is each process's resident set. A run on a build node has its processes
there: it is listed, without a tree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from pydantic import BaseModel, Field

from gangline.core.wire import RunOut


class Reading(Protocol):
    """One process as read from /proc (``agents.usage.ProcessUsage`` is one)."""

    @property
    def pid(self) -> int: ...
    @property
    def ppid(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def cpu_s(self) -> float: ...
    @property
    def rss_bytes(self) -> int: ...


class ProcessTop(BaseModel):
    pid: int
    ppid: int
    name: str
    depth: int  # 0: the run's own process; its children 1, theirs 2, ...
    cpu_percent: float
    rss_bytes: int


class RunTop(BaseModel):
    run: RunOut
    processes: list[ProcessTop]  # in tree order, each after its parent
    cpu_percent: float
    rss_bytes: int
    note: str | None = None  # why no tree is shown (on a build node, not started yet, gone)


class TopQuery(BaseModel):
    """How a reading is asked for: ``over_s`` is the interval CPU is measured over when there is no recent reading
    to measure from."""

    over_s: float = Field(default=1.0, ge=0.1, le=10.0)


class TopOut(BaseModel):
    at: float  # when the second reading was taken (seconds since the epoch)
    over_s: float  # the interval CPU was measured over
    runs: list[RunTop]


def run_top(run: RunOut, tree: Sequence[Reading], before: Mapping[int, float], over_s: float) -> RunTop:
    """One run's row: its tree in order with depths; CPU from ``before`` (pid -> CPU seconds at the first reading).

    A process born between the readings is measured from nothing: all its CPU time is in the interval.
    """
    if run.node_id is not None:
        return RunTop(run=run, processes=[], cpu_percent=0, rss_bytes=0, note=f"on build node {run.node_id}")
    if not tree:
        note = "its process has not started" if run.pid is None else "its processes have ended"
        return RunTop(run=run, processes=[], cpu_percent=0, rss_bytes=0, note=note)
    rows = [
        ProcessTop(pid=p.pid, ppid=p.ppid, name=p.name, depth=depth,
                   cpu_percent=round(max(0.0, p.cpu_s - before.get(p.pid, 0.0)) / over_s * 100, 1),
                   rss_bytes=p.rss_bytes)
        for p, depth in _in_order(tree)
    ]  # fmt: skip
    return RunTop(
        run=run,
        processes=rows,
        cpu_percent=round(sum(r.cpu_percent for r in rows), 1),
        rss_bytes=sum(r.rss_bytes for r in rows),
    )


def _in_order(tree: Sequence[Reading]) -> list[tuple[Reading, int]]:
    """Depth-first from the root (the one whose parent is not in the tree), children by pid."""
    pids = {p.pid for p in tree}
    children: dict[int, list[Reading]] = {}
    for p in sorted(tree, key=lambda p: p.pid):
        children.setdefault(p.ppid, []).append(p)
    ordered: list[tuple[Reading, int]] = []
    todo = [(p, 0) for p in reversed(sorted(tree, key=lambda p: p.pid)) if p.ppid not in pids]
    while todo:
        process, depth = todo.pop()
        ordered.append((process, depth))
        todo.extend((child, depth + 1) for child in reversed(children.get(process.pid, [])))
    return ordered
