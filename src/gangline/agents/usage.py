"""What a run's processes use: its process tree read from /proc, with CPU time and resident memory per process."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcessUsage:
    pid: int
    ppid: int
    name: str  # the command's name as the kernel keeps it (15 characters at most)
    cpu_s: float  # user + system time so far
    rss_bytes: int


def _read(pid: int) -> ProcessUsage | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None  # gone since the listing
    name = stat[stat.index(b"(") + 1 : stat.rindex(b")")].decode(errors="replace")
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] == b"Z":
        return None
    # After the state: ppid is field 4 of stat(5); utime, stime 14 and 15; rss 24 (in pages).
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return ProcessUsage(pid, int(fields[1]), name, cpu, int(fields[21]) * PAGE_BYTES)


def trees_usage(root_pids: Iterable[int]) -> dict[int, list[ProcessUsage]]:
    """Each of ``root_pids`` and every process descended from it (a sandbox's too), from one pass over /proc; a
    root that is gone has an empty tree."""
    found = {u.pid: u for entry in os.scandir("/proc") if entry.name.isdigit() and (u := _read(int(entry.name)))}
    children: dict[int, list[int]] = {}
    for usage in found.values():
        children.setdefault(usage.ppid, []).append(usage.pid)
    trees = {}
    for root_pid in root_pids:
        tree, todo = [], [root_pid] if root_pid in found else []
        while todo:
            pid = todo.pop()
            tree.append(found[pid])
            todo.extend(children.get(pid, ()))
        trees[root_pid] = sorted(tree, key=lambda u: u.pid)
    return trees
