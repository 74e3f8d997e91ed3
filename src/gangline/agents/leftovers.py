"""Every process dies with its run, sandbox or not: the run's marker, gangline as subreaper, a cgroup where delegated.

An agent's shell may start processes that leave its process group (``setsid``, a daemon that
double-forks, Claude Code's Bash tool, which puts every command in a group of its own), so
killing the group is not enough. Three nets catch them (SPEC.md "Every process dies with its
run"):

- **the marker**: everything a run starts carries ``GANGLINE_RUN_MARK=<random>`` in its
  environment, which survives ``setsid`` and reparenting; at the
  run's end every live process carrying both is killed (``end_marked``);
- **the subreaper**: gangline calls ``PR_SET_CHILD_SUBREAPER``, so an orphan is reparented to
  gangline rather than to init, and gangline reaps the ones it killed (not its own children
  that ``asyncio`` or ``subprocess`` wait for: those are tracked in ``spawned_here``);
- **a cgroup v2 per run**, where this process may create one below its own: ``cgroup.kill``
  ends all of it at once, and nothing in it can leave without write access to the hierarchy.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from gangline.core.events import EndedProcess

log = logging.getLogger(__name__)

MARK_VAR = "GANGLINE_RUN_MARK"  # a random value per run: unlike run ids, never the same in two projects
_PR_SET_CHILD_SUBREAPER = 36
_COMMAND_CHARS = 200
_REAP_TRIES, _REAP_PAUSE_S = 50, 0.002
spawned_here: set[int] = set()  # pids this process started itself and waits for (never reaped here)


def become_subreaper() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux); False where it cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def marked(markers: dict[str, str]) -> list[tuple[int, int, str]]:
    """(pid, ppid, command) of every live process whose environment holds all of ``markers``."""
    wanted = {f"{k}={v}".encode() for k, v in markers.items()}
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_bytes()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # gone, or not ours to read
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] == b"Z" or not wanted.issubset(environ.split(b"\0")):
            continue
        command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()[:_COMMAND_CHARS]
        found.append((pid, int(fields[1]), command))
    return found


def end_marked(markers: dict[str, str]) -> list[EndedProcess]:
    """SIGKILL every live process carrying ``markers``, reap those reparented to us; what was ended."""
    ended = []
    for pid, ppid, command in marked(markers):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            ended.append(EndedProcess(pid, command))
            if ppid == os.getpid() and pid not in spawned_here:
                _reap(pid)
    if ended:
        log.warning("ended what a run left behind", extra={"action": "leftovers_ended", "count": len(ended)})
    return ended


def _reap(pid: int) -> None:
    """Reap an orphan reparented to us, so it leaves no zombie; bounded (one in uninterruptible sleep is left)."""
    with contextlib.suppress(ChildProcessError, OSError):
        for _ in range(_REAP_TRIES):
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return
            time.sleep(_REAP_PAUSE_S)  # SIGKILL is prompt: this is a few milliseconds at most


def _pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


# --- a cgroup per run ----------------------------------------------------------------------


def _own_cgroup() -> Path | None:
    """Where this process's cgroup v2 is in the file system, or None (no cgroup v2 mounted)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    own = next((line[3:] for line in lines if line.startswith("0::")), None)
    mount = next((m.split(" - ")[0].split()[4] for m in mounts if " - cgroup2 " in m), None)
    if own is None or mount is None:
        return None
    return Path(mount) / own.lstrip("/")


class RunCgroup:
    """A cgroup v2 of one run's, below this process's own, when this process may make one there."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def make(cls, name: str) -> RunCgroup | None:
        parent = _own_cgroup()
        if parent is None:
            return None
        path = parent / name
        try:
            path.mkdir()
        except FileExistsError:
            pass
        except OSError:
            return None  # not delegated to us: the marker and the subreaper still hold
        if not (path / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                path.rmdir()
            return None  # a kernel before 5.14 cannot kill a cgroup at once
        return cls(path)

    def add(self, pid: int) -> bool:
        try:
            (self.path / "cgroup.procs").write_text(f"{pid}\n")
            return True
        except OSError:
            return False

    def end(self) -> list[EndedProcess]:
        """Kill everything still in the cgroup and remove it; what was ended."""
        ended = []
        with contextlib.suppress(OSError):
            for line in (self.path / "cgroup.procs").read_text().split():
                pid = int(line)
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    command = ""
                ended.append(EndedProcess(pid, command.strip()[:_COMMAND_CHARS]))
            if ended:
                (self.path / "cgroup.kill").write_text("1\n")
        for pid in (p.pid for p in ended):
            if pid not in spawned_here:
                _reap_if_ours(pid)
        self.remove()
        return ended

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()  # fails while a killed process is still exiting; the next sweep removes it


def _reap_if_ours(pid: int) -> None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return
    if int(stat[stat.rindex(b")") + 2 :].split()[1]) == os.getpid():
        _reap(pid)


def cgroup_prefix(project: str) -> str:
    """How the run cgroups of one project are named: a previous server's are found by it after a restart."""
    return f"gangline-{hashlib.sha256(project.encode()).hexdigest()[:12]}-"


def stale_cgroups(prefix: str) -> list[RunCgroup]:
    """The run cgroups a previous server of this project left (killed before it could remove them)."""
    parent = _own_cgroup()
    if parent is None or not parent.is_dir():
        return []
    with contextlib.suppress(OSError):
        return [RunCgroup(p) for p in parent.iterdir() if p.is_dir() and p.name.startswith(prefix)]
    return []
