"""The SQLite edge: opening the embedded database, its pragmas, waiting out locks, and migrating."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext

from gangline.core.errors import DatabaseBusyError
from gangline.core.types import Clock
from gangline.store.migrate import migrate
from gangline.store.store import Store

log = logging.getLogger(__name__)

# How long a write waits for another process's write lock (a `gangline add` beside the server)
# before it gives up with a clear error. Read when a database is opened.
BUSY_TIMEOUT_S = 10.0


def open_sqlite(
    path: Path, clock: Clock = time.time, busy_timeout_s: float | None = None, *, patient: bool = False
) -> Store:
    """Open (creating and migrating) the embedded database at ``path``.

    A write waits up to ``busy_timeout_s`` (default ``BUSY_TIMEOUT_S``) for another process's
    lock; past that it raises DatabaseBusyError, having written nothing. A ``patient`` store (a
    long-lived orchestrator's: its work must not fail because someone held the lock a while)
    waits as long as the lock is held instead, logging a warning after each wait.
    """
    wait_s = BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
    if patient and wait_s <= 0:
        raise ValueError("a patient store needs a busy timeout above 0 s, or it would spin while waiting")
    path.parent.mkdir(parents=True, exist_ok=True)
    # The driver's own timeout covers the connect-time pragmas too (journal_mode reads the file).
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": wait_s})
    _listen(engine, path, wait_s, patient)
    migrate(engine)
    return Store(engine, clock)


def _listen(engine: Engine, path: Path, wait_s: float, patient: bool) -> None:
    """The pragmas every connection gets, our own ``BEGIN IMMEDIATE``, and a lock past the wait said clearly."""

    @event.listens_for(engine, "handle_error")
    def _locked(context: ExceptionContext) -> None:
        # SQLITE_BUSY after the busy timeout: say what happened instead of a driver traceback.
        # The transaction is rolled back by the caller's ``begin()``, so nothing is half written.
        if _is_busy(context.original_exception):
            raise DatabaseBusyError(path, wait_s) from context.original_exception

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # Our own BEGIN (below) instead of the driver's implicit one, so DDL is transactional.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={round(wait_s * 1000)}")
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed transition survives power loss, not just a killed process.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front: a read-then-write transaction can then never
        # fail half way with SQLITE_BUSY because another process (say `gangline add`) wrote.
        # Waiting happens here, before the transaction's body has run, so retrying is safe.
        raw = conn.connection.driver_connection
        assert raw is not None
        waited = 0.0
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as err:
                if not _is_busy(err):
                    raise
                waited += wait_s
                if not patient:
                    raise DatabaseBusyError(path, waited) from err
                log.warning(
                    "database locked by another process; still waiting",
                    extra={"action": "database_busy", "path": str(path), "waited_s": round(waited, 1)},
                )


def _is_busy(err: BaseException) -> bool:
    return isinstance(err, sqlite3.OperationalError) and "database is locked" in str(err)
