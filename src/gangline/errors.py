"""The exceptions gangline raises, as one shallow tree.

    GanglineError                 base; ``str(err)`` is a message fit for a person
    ├── ConfigError               a setting is missing or invalid (``field`` names it)
    ├── AgentNotFoundError        the agent CLI binary is missing or not executable (``path``)
    ├── RunLogError               a run log cannot be created, written or read (``path``)
    └── RunnerError               a run could not be started or is unknown (``run_id``)

Surfaces translate these at their edge: the CLI prints the message and exits non-zero,
and later the REST and MCP doors map them to status codes. Callers read fields, never
match on message text.
"""

from __future__ import annotations

from pathlib import Path


class GanglineError(Exception):
    """Base of every error gangline raises on purpose."""

    exit_code = 1


class ConfigError(GanglineError):
    """A configuration value is missing or invalid."""

    exit_code = 2

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class AgentNotFoundError(GanglineError):
    """The agent CLI named by a profile cannot be executed."""

    exit_code = 3

    def __init__(self, profile: str, path: str, reason: str) -> None:
        super().__init__(f"agent profile {profile!r}: CLI binary {path!r} {reason}")
        self.profile = profile
        self.path = path
        self.reason = reason


class RunLogError(GanglineError):
    """A durable run log cannot be used."""

    exit_code = 4

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"run log {str(path)!r}: {reason}")
        self.path = path
        self.reason = reason


class RunnerError(GanglineError):
    """A run cannot be started, found or stopped."""

    def __init__(self, run_id: str, message: str) -> None:
        super().__init__(f"run {run_id}: {message}")
        self.run_id = run_id
