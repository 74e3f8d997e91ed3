"""The PostgreSQL edge: opening a shared database, migrating it, and a connection that fails said clearly.

Several gangline processes (a server and its standby, the CLI beside them) share one database
here. Every transaction is as short as on SQLite; compare-and-set needs nothing more than
PostgreSQL's READ COMMITTED (an ``UPDATE … WHERE`` re-checks its condition on the row it waited
for), and two live runs of one item are refused by the same partial unique index. Times are
stored as seconds since the epoch (UTC by definition); sessions run in UTC anyway.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import OperationalError

from gangline.core.errors import DatabaseUnreachable
from gangline.core.types import Clock
from gangline.store.migrate import migrate, revision
from gangline.store.migrations import HEAD_REVISION
from gangline.store.store import Store

CONNECT_TIMEOUT_S = 10


def probe_postgres(url: str) -> str:
    """What the database at ``url`` is, read without changing it (doctor); DatabaseUnreachable without a connection."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar()
        at = revision(engine)
    finally:
        engine.dispose()
    schema = "empty: made at the first start" if at is None else f"schema at revision {at}"
    newest = "" if at in (None, HEAD_REVISION) else f" (this gangline migrates it to {HEAD_REVISION} when it opens it)"
    return f"PostgreSQL {version} at {make_url(url).render_as_string(hide_password=True)}, {schema}{newest}"


def open_postgres(url: str, clock: Clock = time.time) -> Store:
    """Open (migrating) the PostgreSQL database at ``url`` (``postgresql+psycopg://…``).

    DatabaseUnreachable, naming the database (never its password), when it takes no connection.
    """
    engine = _engine(url)
    try:
        migrate(engine)
    except DatabaseUnreachable:
        engine.dispose()
        raise
    return Store(engine, clock)


def _engine(url: str) -> Engine:
    engine = create_engine(
        url,
        pool_pre_ping=True,  # a connection the server closed (a restart, a failover) is replaced, not used
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "options": "-c timezone=UTC"},
    )
    _listen(engine, make_url(url).render_as_string(hide_password=True))
    return engine


def _listen(engine: Engine, where: str) -> None:
    @event.listens_for(engine, "handle_error")
    def _unreachable(context: ExceptionContext) -> None:
        # A refused or lost connection: say which database and why, not a driver traceback.
        original = context.original_exception
        if isinstance(context.sqlalchemy_exception, OperationalError) and (
            context.is_disconnect or context.connection is None
        ):
            why = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
            raise DatabaseUnreachable(where, why) from original
