"""After a restart: find the processes a previous server left behind, and what its runs logged.

Policy (SPEC.md "Restart"): leftover process groups are killed, never adopted. An agent's PTY
died with the server that read it, so its output since then is gone and an adopted agent could
not be watched; resuming its session in a fresh run loses nothing that was committed.

Every process gangline starts (agents, gates, and everything they start) carries
``GANGLINE_PROJECT=<repo root>`` in its environment. That finds them even in the instant between
spawn and the moment their pid reached the database.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gangline.agents.runlog import replay
from gangline.core.errors import RunLogError
from gangline.core.events import Result, SessionStarted, Usage

PROJECT_VAR = "GANGLINE_PROJECT"


def leftover_groups(project_root: Path, own_pgid: int | None = None) -> set[int]:
    """Process groups holding a process started for this project, other than our own."""
    marker = f"{PROJECT_VAR}={project_root}".encode()
    own = own_pgid if own_pgid is not None else os.getpgrp()
    groups: set[int] = set()
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            pgid = os.getpgid(pid)
        except (OSError, ProcessLookupError):
            continue  # gone, or not ours to read
        if marker in environ.split(b"\0") and pgid != own:
            groups.add(pgid)
    return groups


def kill_groups(groups: set[int]) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def _pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


@dataclass(frozen=True)
class LoggedRun:
    """What a run's durable log says about a run its server did not see finish."""

    session_id: str | None
    usage: Usage | None
    cost_usd: float | None
    result_text: str | None


def read_logged_run(path: Path) -> LoggedRun:
    session_id = None
    result: Result | None = None
    try:
        for record in replay(path):
            event = record.event
            if isinstance(event, SessionStarted):
                session_id = event.session_id
            elif isinstance(event, Result):
                result = event
                session_id = event.session_id or session_id
    except (RunLogError, OSError):
        pass  # no log (the run never spawned) or an unreadable one: nothing more to learn
    if result is None:
        return LoggedRun(session_id, None, None, None)
    return LoggedRun(session_id, result.usage, result.cost_usd, result.result)
