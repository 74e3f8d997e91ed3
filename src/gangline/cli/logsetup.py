"""Structured, joinable log lines: every record carries its action and the ids it concerns."""

from __future__ import annotations

import logging

_FIELDS = ("action", "run_id", "session_id", "pid", "pgid", "outcome", "reason", "error")


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        pairs = [f"{name}={getattr(record, name)!r}" for name in _FIELDS if hasattr(record, name)]
        return f"{self.formatTime(record)} {record.levelname} {record.name}: {record.getMessage()} {' '.join(pairs)}"


def configure(level: int) -> None:
    """Log lines at ``level`` and above to stderr (a server keeps more in its ring: ``server.logring``)."""
    handler = logging.StreamHandler()
    handler.setLevel(level)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger("gangline")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
