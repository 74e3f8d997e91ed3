"""Restart safety: one server per project (an flock, and the database's driver lock fenced), and what a killed
server left is reaped and resumed.

Leftover processes are killed, not adopted: the PTY that read an agent died with the old
server, so its output since then is gone; resuming its session in a fresh run loses nothing
that was committed (SPEC.md "Restart").
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from gangline.agents.leftovers import cgroup_prefix, stale_cgroups
from gangline.agents.processes import boot_id, kill_group_now, start_ticks
from gangline.agents.recovery import kill_groups, leftover_groups, read_logged_run
from gangline.core.errors import GanglineError, ServerLockedError
from gangline.core.events import RunOutcome
from gangline.core.records import RunEnd
from gangline.core.stages import Stage
from gangline.core.types import SERVER
from gangline.pipeline.decisions import RESTARTED
from gangline.project.paths import ProjectPaths
from gangline.store import Store

FENCE_S = 2.0  # how often a driving server checks it still holds the database's driver lock
STANDBY_POLL_S = 1.0  # how often a standby tries the locks: it takes over within about this of the other's end
RESTARTED_CHAT = "gangline restarted while I was answering your last message, so it has no answer: ask me again."


class ProjectLock:
    """``.gangline/server.lock``, flocked while this process drives the project."""

    def __init__(self, paths: ProjectPaths) -> None:
        self.paths = paths
        self._fd = -1

    def acquire(self) -> None:
        """Hold the lock, or ServerLockedError naming the process that does."""
        self.paths.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.paths.state_dir / "server.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # flock dies with its process, so a SIGKILLed server never leaves a stale lock.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ServerLockedError(
                f"another gangline server (pid {holder}) is already running on {self.paths.root}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def recover(store: Store, root: Path) -> list[str]:
    """Kill what a previous server left running and close its live runs as crashed; their ids."""
    kill_groups(leftover_groups(root))
    for cgroup in stale_cgroups(cgroup_prefix(str(root))):
        cgroup.end()  # anything still in a run's cgroup, and the cgroup
    closed = []
    here = boot_id()
    for run in store.runs(live_only=True):
        # A pid means something only on the machine, and in the boot, that recorded it (a shared
        # database holds runs of other machines; a row from before boots were recorded has none).
        ours = run.boot_id in (None, here)
        if ours and run.pgid and run.pid and run.start_ticks and start_ticks(run.pid) == run.start_ticks:
            kill_group_now(run.pgid)
        logged = read_logged_run(Path(run.log_path))
        end = RunEnd(
            RunOutcome.CRASHED, "gangline stopped while this run was live", logged.session_id, logged.usage,
            logged.cost_usd,
        )  # fmt: skip
        store.finish_run(run.id, end, SERVER)
        closed.append(run.id)
        if run.item_id is not None:
            _resume_after_restart(store, run.item_id, logged.session_id)
        elif run.chat_transport is not None and run.chat_room is not None:
            _tell_the_room(store, run.chat_transport, run.chat_room, logged.session_id)
    return closed


def _tell_the_room(store: Store, transport: str, room: str, session_id: str | None) -> None:
    """A chat agent's run was cut short: its conversation goes on (same session), and the room is told."""
    if session_id is not None:
        store.set_agent_session(transport, room, session_id)
    store.queue_reply(transport, room, RESTARTED_CHAT, reply_to=None)


def _resume_after_restart(store: Store, item_id: int, session_id: str | None) -> None:
    try:
        item = store.get_item(item_id)
    except GanglineError:
        return
    if item.stage is not Stage.CODING or item.state.hold or item.state.frozen:
        return  # QA and merge restart from scratch; held items wait for a person
    session = session_id or item.session_id
    store.bookkeep(
        item_id,
        "interrupted",
        SERVER,
        expected=item.state,
        reason="gangline restarted",
        updates={"session_id": session, "feedback": RESTARTED if session else item.feedback},
    )


async def fenced(still_held: Callable[[], bool], every_s: float = FENCE_S) -> None:
    """Stop driving (its runs stop with it) the moment the database's driver lock may be someone else's.

    The lock's connection is asked every ``every_s``; a question not answered within ``every_s``
    (a network cut mid-query, where TCP would wait for minutes) counts as a lost lock too.
    """
    while True:
        await asyncio.sleep(every_s)
        try:
            held = await asyncio.wait_for(asyncio.to_thread(still_held), every_s)
        except TimeoutError:
            raise ServerLockedError(
                f"the database's driver lock did not answer within {every_s:g} s: stopped driving"
            ) from None
        if not held:
            raise ServerLockedError("lost the database's driver lock (its connection is gone): stopped driving")


async def take_locks(lock: ProjectLock, store: Store, standby: bool, held: contextlib.ExitStack) -> Callable[[], bool]:
    """The project's flock and the database's driver lock (one orchestrator per database, whatever the checkout);
    a ``standby`` waits for both. Returns the check that the driver lock is still held."""
    waited = False
    while True:
        try:
            lock.acquire()
            still_held = held.enter_context(store.driving())
            break
        except ServerLockedError:
            lock.release()
            if not standby:
                raise
        waited = True
        await asyncio.sleep(STANDBY_POLL_S)
    if waited:
        # The lock came free: its holder died, or lost its connection and checks that every FENCE_S.
        # Give a living one that long to notice and stop its runs before this one reaps them.
        await asyncio.sleep(FENCE_S + STANDBY_POLL_S)
    return still_held
