"""Agent processes: spawn in a PTY in a new session, identify, and kill whole process groups."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import struct
import subprocess
import termios
import tty
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PTY_ROWS, PTY_COLS = 50, 200
_POLL_S = 0.02  # how often a dying group is re-checked; there is no event for "group empty"


@dataclass(frozen=True)
class ProcessRecord:
    """Enough to find the group again after a restart and not mistake a reused pid for it."""

    pid: int
    pgid: int
    start_ticks: int


@dataclass
class Spawned:
    popen: subprocess.Popen[bytes]
    master_fd: int
    record: ProcessRecord


def start_ticks(pid: int) -> int:
    """Process start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or 0."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return 0
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[19])


def boot_id() -> str:
    """This machine's current boot (``/proc/sys/kernel/random/boot_id``): where a pid and its start ticks mean anything.

    Several machines (or one machine after a reboot) share a database: a recorded process is this
    one's only when its boot is this boot.
    """
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def spawn_in_pty(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> Spawned:
    """Start ``argv`` with a new PTY as stdin/stdout/stderr, leading a new session and group.

    The PTY is put in raw mode: no echo, and no ONLCR, so lines end in ``\\n`` alone.
    Raises OSError (FileNotFoundError, PermissionError, ...) if it cannot start.
    """
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", PTY_ROWS, PTY_COLS, 0, 0))
        popen = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,  # setsid(): the child leads its own session and group
            close_fds=True,
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        # Our copy of the slave must go, or the master never sees EOF when the child exits.
        os.close(slave)
    os.set_blocking(master, False)
    record = ProcessRecord(pid=popen.pid, pgid=popen.pid, start_ticks=start_ticks(popen.pid))
    return Spawned(popen=popen, master_fd=master, record=record)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in group ``pgid``.

    ``killpg(pgid, 0)`` is not enough: zombies count as members until reaped, and in a
    container whose init does not reap orphans they never are.
    """
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] != b"Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _killpg(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


async def terminate_group(pgid: int, grace_s: float) -> str:
    """SIGTERM the group, wait up to ``grace_s`` for it to empty, then SIGKILL what is left.

    Returns what it took: ``"none"`` (already gone), ``"SIGTERM"`` or ``"SIGKILL"``.
    """
    if not group_members(pgid):
        return "none"
    _killpg(pgid, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    while loop.time() < deadline:
        if not group_members(pgid):
            return "SIGTERM"
        await asyncio.sleep(_POLL_S)
    if not group_members(pgid):
        return "SIGTERM"
    log.warning("process group ignored SIGTERM; killing", extra={"action": "kill_group", "pgid": pgid})
    _killpg(pgid, signal.SIGKILL)
    deadline = loop.time() + 5.0
    while group_members(pgid) and loop.time() < deadline:
        await asyncio.sleep(_POLL_S)
    return "SIGKILL"


def kill_group_now(pgid: int) -> None:
    """SIGKILL without waiting: for paths that cannot await (cancellation, interpreter exit)."""
    _killpg(pgid, signal.SIGKILL)


async def kill_and_reap(proc: asyncio.subprocess.Process, bound_s: float = 5.0) -> None:
    """SIGKILL ``proc``'s group (it leads one) and wait, within ``bound_s``, until its exit is seen.

    For a caller being cancelled: the wait goes on through further cancellations (a task group
    aborting, then the event loop closing), which are raised once it is over. Otherwise a process
    whose exit the loop never saw keeps its transport open, and warns at some later garbage collection.
    """
    if proc.returncode is None:  # once its exit is seen, its pid may be another's
        kill_group_now(proc.pid)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound_s
    cancelled = False
    while proc.returncode is None and loop.time() < deadline:
        try:
            async with asyncio.timeout_at(deadline):  # no task of its own: the loop's cancelling cannot orphan it
                await proc.wait()
        except TimeoutError:
            break
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


class ProcessRegistry:
    """Every live agent process group, by run id, so stop and shutdown can reach them."""

    def __init__(self) -> None:
        self._groups: dict[str, ProcessRecord] = {}

    def register(self, run_id: str, record: ProcessRecord) -> None:
        self._groups[run_id] = record

    def unregister(self, run_id: str) -> None:
        self._groups.pop(run_id, None)

    def get(self, run_id: str) -> ProcessRecord | None:
        return self._groups.get(run_id)

    def live(self) -> dict[str, ProcessRecord]:
        return dict(self._groups)
