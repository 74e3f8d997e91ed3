"""The server's recent log, kept in memory for people to read: a bounded ring of its last lines.

``gangline serve`` writes warnings to stderr; the ring keeps the last ``RING_SIZE`` lines from
info up, with the fields each line carries (its action, item, run, error), so a person can see
what the server did from an assistant (the ``server_log`` tool), the CLI (``gangline
server-log``) or REST without the terminal it runs in. Nothing is written to disk.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import JsonValue

from gangline.core.logs import LEVEL_RANK, LogEntry, LogQuery

RING_SIZE = 2000
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


class LogRing(logging.Handler):
    """The last ``size`` log records from info up, as entries with ids that only grow."""

    def __init__(self, size: int = RING_SIZE) -> None:
        super().__init__(logging.INFO)
        self._entries: deque[LogEntry] = deque(maxlen=size)
        self._next = 1
        self._guard = threading.Lock()  # records come from worker threads too

    def emit(self, record: logging.LogRecord) -> None:
        fields = {name: _plain(value) for name, value in record.__dict__.items() if name not in _STANDARD}
        if record.exc_info and record.exc_info[1] is not None:
            fields["exception"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        with self._guard:
            entry = LogEntry(id=self._next, at=record.created, level=record.levelname.lower(), logger=record.name,
                             message=record.getMessage(), fields=fields)  # fmt: skip
            self._next += 1
            self._entries.append(entry)

    def entries(self, query: LogQuery) -> list[LogEntry]:
        """Entries after ``query.after`` at ``query.level`` or above, oldest first, ``query.limit`` at most."""
        rank = LEVEL_RANK[query.level]
        with self._guard:
            found = [e for e in self._entries if e.id > query.after and logging.getLevelName(e.level.upper()) >= rank]
        return found[: query.limit]


@contextmanager
def keeping(ring: LogRing) -> Iterator[LogRing]:
    """Feed ``ring`` from gangline's loggers while the block runs (info and up, whatever stderr shows)."""
    logger = logging.getLogger("gangline")
    before = logger.level
    logger.addHandler(ring)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield ring
    finally:
        logger.removeHandler(ring)
        logger.setLevel(before)


def _plain(value: object) -> JsonValue:
    """A record's extra field as JSON: kept as it is when it is JSON, else said as text."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value  # type: ignore[return-value]
