"""The room a run works in: a bubblewrap sandbox that shows the machine read-only, the run's own paths writable.

A ``Room`` says what one run may touch; ``confine`` turns a command into the same command inside
bubblewrap (``bwrap``). The order of the mounts is the whole design (SPEC.md "Sandbox"):

1. the machine read-only (``--ro-bind / /``), a fresh ``/dev`` and ``/proc``, a private
   ``/dev/shm``;
2. what must not be seen at all (``.gangline/``, the person's secrets and CLI state) under an
   empty tmpfs, or ``/dev/null`` for a file;
3. what the run may read inside those (the guard's hooks, its MCP settings) read-only;
4. what it may write (its worktree, its git metadata, its object quarantine, its branch's
   refs, its temporary directory, its CLI's state) read-write, each at a path of its own.

The run gets a pid namespace of its own whose init is bwrap: when the command exits, or gangline
dies (``--die-with-parent``), the kernel kills every process left in it, daemons included.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

BWRAP = "bwrap"
INSTALL = "install bubblewrap (Debian, Ubuntu: apt install bubblewrap; Fedora: dnf install bubblewrap)"
_PROBE_TIMEOUT_S = 10


@dataclass(frozen=True)
class Room:
    """What one run may touch; every path absolute. Sources and destinations are the same path unless paired."""

    workdir: Path  # the worktree or workspace: writable, and the command's working directory
    writable: tuple[Path, ...] = ()  # more directories the run writes (its git metadata, temp, CLI state)
    moved: tuple[tuple[Path, Path], ...] = ()  # (source, shown at) writable directories seen elsewhere
    readable: tuple[Path, ...] = ()  # shown read-only although under a hidden directory
    hidden: tuple[Path, ...] = ()  # not shown at all: a directory becomes empty, a file empty
    env: Mapping[str, str] = field(default_factory=dict)  # set inside (TMPDIR, the CLI's state, git's objects)


@functools.cache
def bwrap_path() -> str | None:
    """The bwrap binary, if it is installed and can make a sandbox here (user and pid namespaces allowed)."""
    found = shutil.which(BWRAP)
    if found is None:
        return None
    probe = [found, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid", "--", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=_PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found if done.returncode == 0 else None


def why_unavailable() -> str:
    """Why ``bwrap_path()`` is None, for doctor and for a refusal."""
    found = shutil.which(BWRAP)
    if found is None:
        return f"bubblewrap (bwrap) is not installed; {INSTALL}"
    return f"{found} cannot create a sandbox here (are user or pid namespaces disabled?)"


def confine(argv: list[str], room: Room, bwrap: str) -> list[str]:
    """``argv`` run inside the room: the bwrap command line."""
    args = [
        bwrap,
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--hostname",
        "gangline-run",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/dev/shm",
    ]
    for path in room.hidden:
        if path.is_dir():
            args += ["--tmpfs", str(path)]
        elif path.exists() or path.is_symlink():
            args += ["--ro-bind", "/dev/null", str(path)]
    for path in room.readable:
        args += ["--ro-bind-try", str(path), str(path)]
    for path in (room.workdir, *room.writable):
        args += ["--bind", str(path), str(path)]
    for source, shown in room.moved:
        args += ["--bind", str(source), str(shown)]
    for name, value in room.env.items():
        args += ["--setenv", name, value]
    return [*args, "--chdir", str(room.workdir), "--", *argv]


def unwrapped_status(returncode: int) -> int:
    """The confined command's status as a Popen returncode: bwrap exits ``128 + N`` when a signal N killed it."""
    if 128 < returncode < 128 + 65:
        return -(returncode - 128)
    return returncode
