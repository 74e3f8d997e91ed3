"""The exceptions gangline raises, as one shallow tree.

    GanglineError                 base; ``str(err)`` is a message fit for a person
    ├── ConfigError               a setting is missing or invalid (``field`` names it)
    ├── AgentNotFoundError        the agent CLI binary is missing or not executable (``path``)
    ├── RunLogError               a run log cannot be created, written or read (``path``)
    ├── RunnerError               a run could not be started or is unknown (``run_id``)
    ├── StateConflict             a compare-and-set lost: the item changed (``item_id``,
    │                             ``expected``, ``current``); exit 5
    ├── (stages.IllegalTransition) the table forbids the trigger (``state``, ``trigger``); exit 5
    ├── GitError                  a git command failed or timed out (``args``, ``cwd``,
    │                             ``returncode``, ``stderr``); exit 6
    ├── NotFoundError             no such item, run or profile (``what``, ``key``); exit 7
    ├── ServerLockedError         another server drives this project; exit 8
    ├── Unavailable               it needs a server or an orchestrator that is not running
    ├── DatabaseBusyError         another process held the database's write lock past the
    │                             wait (``path``, ``waited_s``); exit 10
    └── VerdictError              a QA or mergemaster agent's final message is not a valid report
                                  (``role``, ``reason``); exit 9

Each class has a stable ``code``, the one word every door says it with: REST's
``{"error": {"code", "message", "field"?...}}`` (``detail()``), the MCP tools' error text (the same
object), and the CLI's exit code (``exit_code``; a command through a server turns the code back
into the class, ``problems.error_from_detail``). Callers read fields, never match on message text.

    code                 class                 exit  HTTP
    invalid              ConfigError              2   422
    agent_not_found      AgentNotFoundError       3   500
    run_log              RunLogError              4   500
    run                  RunnerError              1   409
    conflict             StateConflict            5   409
    illegal_transition   IllegalTransition        5   409
    git                  GitError                 6   500
    not_found            NotFoundError            7   404
    locked               ServerLockedError        8   503
    invalid_report       VerdictError             9   422
    busy                 DatabaseBusyError       10   503
    unavailable          Unavailable              1   503
    error                GanglineError            1   500
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class GanglineError(Exception):
    """Base of every error gangline raises on purpose."""

    exit_code = 1
    code = "error"

    def detail(self) -> dict[str, object]:
        """What every door says about it: the code, the message, and what it concerns."""
        return {"code": self.code, "message": str(self), **self.fields()}

    def fields(self) -> dict[str, object]:
        return {}


class ConfigError(GanglineError):
    """A configuration value is missing or invalid."""

    exit_code = 2
    code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field

    def fields(self) -> dict[str, object]:
        return {"field": self.field}


class AgentNotFoundError(GanglineError):
    """The agent CLI named by a profile cannot be executed."""

    exit_code = 3
    code = "agent_not_found"

    def __init__(self, profile: str, path: str, reason: str) -> None:
        super().__init__(f"agent profile {profile!r}: CLI binary {path!r} {reason}")
        self.profile = profile
        self.path = path
        self.reason = reason


class RunLogError(GanglineError):
    """A durable run log cannot be used."""

    exit_code = 4
    code = "run_log"

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"run log {str(path)!r}: {reason}")
        self.path = path
        self.reason = reason


class RunnerError(GanglineError):
    """A run cannot be started, found or stopped."""

    code = "run"

    def __init__(self, run_id: str, message: str) -> None:
        super().__init__(f"run {run_id}: {message}")
        self.run_id = run_id


class NotFoundError(GanglineError):
    """An item, run or profile named by the caller does not exist."""

    exit_code = 7
    code = "not_found"

    def __init__(self, what: str, key: object) -> None:
        super().__init__(f"{what} {key} does not exist")
        self.what = what
        self.key = key


class StateConflict(GanglineError):
    """A compare-and-set lost: the item changed since the caller read it."""

    exit_code = 5
    code = "conflict"

    def __init__(self, item_id: int, expected: str, current: str) -> None:
        super().__init__(f"item {item_id} is {current}, not {expected} as expected; read it again")
        self.item_id = item_id
        self.expected = expected
        self.current = current

    def fields(self) -> dict[str, object]:
        return {"expected": self.expected, "current": self.current}


class NotListening(GanglineError):
    """A message to an item's coder that no coder can take: the item is merged, archived, or being merged."""

    exit_code = 5
    code = "conflict"

    def __init__(self, item_id: int, why: str) -> None:
        super().__init__(f"item {item_id} {why}")
        self.item_id = item_id


class NotMerged(GanglineError):
    """An overview asked of an item that was never merged: there is no squash commit to tell of."""

    exit_code = 5
    code = "conflict"

    def __init__(self, item_id: int, where: str) -> None:
        super().__init__(f"item {item_id} is not merged ({where}): an overview tells what a merged item changed")
        self.item_id = item_id


class VerdictError(GanglineError):
    """A QA or mergemaster agent did not end with the one JSON object its prompt asked for."""

    exit_code = 9
    code = "invalid_report"

    def __init__(self, role: str, reason: str) -> None:
        super().__init__(f"{role} report rejected: {reason}")
        self.role = role
        self.reason = reason


class GitError(GanglineError):
    """A git command failed, timed out or could not be started.

    ``args`` holds git's arguments (not the exception's message, unlike other exceptions),
    ``returncode`` is None when git timed out or never started.
    """

    exit_code = 6
    code = "git"

    def __init__(self, args: Sequence[str], cwd: Path, returncode: int | None, stderr: str) -> None:
        first = next((line.strip() for line in stderr.splitlines() if line.strip()), "no error output")
        status = "timed out or did not start" if returncode is None else f"exit {returncode}"
        self.message = f"git {shlex.join(args)} in {cwd} failed ({status}): {first}"
        super().__init__(self.message)
        self.args = tuple(args)
        self.cwd = cwd
        self.returncode = returncode
        self.stderr = stderr

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # BaseException pickles as cls(*self.args); ours holds git's arguments instead.
        return (type(self), (self.args, self.cwd, self.returncode, self.stderr))


class ServerLockedError(GanglineError):
    """Another gangline server already drives this project."""

    exit_code = 8
    code = "locked"


class Unavailable(GanglineError):
    """What was asked for needs something that is not running (a server, the orchestrator)."""

    code = "unavailable"


class DatabaseBusyError(GanglineError):
    """Another process held the database's write lock for longer than this process would wait."""

    exit_code = 10
    code = "busy"

    def __init__(self, path: Path, waited_s: float) -> None:
        super().__init__(
            f"database {str(path)!r} is locked by another process (waited {waited_s:g} s); "
            "try again once it has finished"
        )
        self.path = path
        self.waited_s = waited_s


class DatabaseUnreachable(GanglineError):
    """The shared database (PostgreSQL) did not take a connection."""

    exit_code = 10
    code = "unavailable"

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"cannot reach the database {where}: {why}")
        self.where = where
