"""Disk retention (SPEC.md "Retention"): the runs' logs, done items' worktrees and the gates' output kept within
``[retention]``'s age and size.

A sweep, every ``sweep_every_s`` while the pipeline is driven: ended runs' logs older than
``compress_after_s`` are gzip-compressed (readers read either, ``agents.runlog``), those older
than ``delete_after_s`` removed with the gate and hook output recorded before then, and done items'
worktrees older than ``compress_after_s`` pruned where nothing would be lost (``jobs.retire``: their
before_remove hooks, and the same refusal archive gives). Then, while the total is over
``max_bytes``: ended runs' logs of items that are over are removed oldest first, then done items'
worktrees whatever their age, then any ended run's log. A live run's log is never touched.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from gangline.core.disk import DiskOut, SweepOut
from gangline.core.items import Item
from gangline.core.records import RunRow
from gangline.core.stages import Stage
from gangline.core.types import Clock
from gangline.project.config import RetentionPolicy
from gangline.project.paths import ProjectPaths
from gangline.repo.worktrees import worktree_path
from gangline.store import Store

log = logging.getLogger(__name__)

FIRST_S = 5.0  # the first sweep waits this long after the pipeline starts: a short `gangline run` makes none
OVER = (Stage.DONE, Stage.ARCHIVED)
Retire = Callable[[Item], Awaitable[str | None]]  # prune an over item's worktree; why it was kept, or None


@dataclass
class _Log:
    run: RunRow
    path: Path  # as it is on disk: the log, or its .gz
    bytes: int


class Retention:
    """The project's disk, kept within ``policy``; ``disk`` is the last measure (None before the first sweep)."""

    def __init__(self, paths: ProjectPaths, store: Store, retire: Retire, policy: RetentionPolicy,
                 clock: Clock) -> None:  # fmt: skip
        self.paths = paths
        self.store = store
        self.retire = retire
        self.policy = policy
        self.clock = clock
        self.disk: DiskOut | None = None
        self._kept: dict[int, float] = {}  # item id -> its updated_at when its worktree was last kept: not retried

    async def run(self) -> None:
        """Sweep now and then until cancelled; a sweep that fails is logged and the next one tries again."""
        await asyncio.sleep(FIRST_S)
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("retention sweep failed", extra={"action": "retention_failed"})
            await asyncio.sleep(self.policy.sweep_every_s)

    async def sweep(self) -> DiskOut:
        """One sweep (see the module's docstring); the disk as it is after it."""
        now, policy = self.clock(), self.policy
        done = SweepOut(at=now, compressed_logs=0, deleted_logs=0, pruned_worktrees=0, cleared_outputs=0,
                        freed_bytes=0, kept=[])  # fmt: skip
        logs = await asyncio.to_thread(_logs, self.store)
        for entry in [e for e in logs if _ended_before(e.run, now - policy.delete_after_s)]:
            await asyncio.to_thread(self._delete, entry, done)
            logs.remove(entry)
        for entry in [e for e in logs if _ended_before(e.run, now - policy.compress_after_s)]:
            if entry.path.suffix != ".gz":
                await asyncio.to_thread(_compress, entry, done)
        done.cleared_outputs = self.store.clear_gate_output(now - policy.delete_after_s)
        over = self.store.list_items(OVER)
        for item in over:
            if item.updated_at < now - policy.compress_after_s:
                await self._prune(item, done)
        disk = await self.measure(done)
        if disk.over:
            disk = await self._fit(disk, done, over)
        self.disk = disk
        log.info("retention sweep", extra={"action": "retention_swept", **done.model_dump(exclude={"kept", "at"})})
        return disk

    async def measure(self, sweep: SweepOut | None = None) -> DiskOut:
        return await measure(self.paths, self.store, int(self.policy.max_bytes), sweep)

    # --- the parts ------------------------------------------------------------------------

    async def _fit(self, disk: DiskOut, done: SweepOut, over: list[Item]) -> DiskOut:
        """Free space until the total is within ``max_bytes``: the over items' logs, their worktrees, any log."""
        logs = await asyncio.to_thread(_logs, self.store)  # as they are now: some were compressed by this sweep
        ended = sorted(logs, key=lambda e: e.run.ended_at or 0)
        finished = {item.id for item in over}
        first = [e for e in ended if e.run.item_id is None or e.run.item_id in finished]
        excess = disk.total_bytes - disk.limit_bytes
        for entry in first:
            if excess <= 0:
                break
            excess -= await asyncio.to_thread(self._delete, entry, done)
        for item in sorted(over, key=lambda i: i.updated_at):
            if excess <= 0:
                break
            before = done.freed_bytes
            await self._prune(item, done)
            excess -= done.freed_bytes - before
        for entry in (e for e in ended if e not in first and e.path.exists()):
            if excess <= 0:
                break
            excess -= await asyncio.to_thread(self._delete, entry, done)
        return await self.measure(done)

    async def _prune(self, item: Item, done: SweepOut) -> None:
        """The item's worktree removed if it is safe to; one kept is not tried again until the item changes."""
        path = worktree_path(self.paths.worktrees_dir, item.id, item.slug)
        if not path.is_dir() or self._kept.get(item.id) == item.updated_at:
            return
        size = await asyncio.to_thread(_du, path)
        kept = await self.retire(item)
        if kept is None:
            done.pruned_worktrees += 1
            done.freed_bytes += size
            self._kept.pop(item.id, None)
        else:
            self._kept[item.id] = item.updated_at
            done.kept.append(f"#{item.id}: {kept}")

    def _delete(self, entry: _Log, done: SweepOut) -> int:
        try:
            entry.path.unlink()
        except FileNotFoundError:
            return 0
        done.deleted_logs += 1
        done.freed_bytes += entry.bytes
        return entry.bytes


async def measure(paths: ProjectPaths, store: Store, limit_bytes: int, sweep: SweepOut | None = None) -> DiskOut:
    """What the runs' logs, the worktrees and the gates' output take now (``gangline doctor`` asks it too)."""
    logs = await asyncio.to_thread(_logs, store)
    trees = await asyncio.to_thread(_trees, paths)
    gates = store.gate_output_bytes()
    in_logs, in_trees = sum(e.bytes for e in logs), sum(trees.values())
    return DiskOut(
        at=time.time(), run_logs_bytes=in_logs, run_logs=len(logs),
        compressed_logs=sum(e.path.suffix == ".gz" for e in logs), worktrees_bytes=in_trees,
        worktrees=len(trees), gate_output_bytes=gates, total_bytes=in_logs + in_trees + gates,
        limit_bytes=limit_bytes, last_sweep=sweep,
    )  # fmt: skip


def _logs(store: Store) -> list[_Log]:
    """The runs' logs on disk, oldest run first; a live run's is left out: it is being written."""
    found = []
    for run in store.runs():
        if run.ended_at is None:
            continue
        plain = Path(run.log_path)
        for path in (plain, plain.with_name(plain.name + ".gz")):
            try:
                found.append(_Log(run, path, path.stat().st_size))
            except OSError:
                continue
    return found


def _trees(paths: ProjectPaths) -> dict[Path, int]:
    """Each item's worktree and the merge workspace, with what it takes."""
    folder = paths.worktrees_dir
    roots = [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    return {root: _du(root) for root in (*roots, *([paths.merge_dir] if paths.merge_dir.is_dir() else []))}


def _ended_before(run: RunRow, when: float) -> bool:
    return run.ended_at is not None and run.ended_at < when


def _compress(entry: _Log, done: SweepOut) -> None:
    """``<log>.gz`` written beside it (under a temporary name, then renamed), then the log removed."""
    target = entry.path.with_name(entry.path.name + ".gz")
    partial = target.with_name(target.name + ".partial")
    with entry.path.open("rb") as source, gzip.open(partial, "wb", compresslevel=6) as sink:
        shutil.copyfileobj(source, sink)
    os.replace(partial, target)
    entry.path.unlink()
    done.compressed_logs += 1
    done.freed_bytes += max(0, entry.bytes - target.stat().st_size)


def _du(root: Path) -> int:
    """Bytes ``root`` takes on disk (its files' blocks), not following links."""
    total = 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in (*files, *dirs):
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                continue
    return total
