"""What every table of the store stands on: the engine, one write transaction, compare-and-set."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Row, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from gangline.core.errors import DatabaseUnreachable, NotFoundError, ServerLockedError, StateConflict
from gangline.core.items import Criterion, Item
from gangline.core.records import RunRow
from gangline.core.stages import ItemState
from gangline.core.types import Clock
from gangline.store import schema as t
from gangline.store.rows import item_from, row_state, run_row

DRIVER_LOCK = 0x676C6472  # "gldr": the advisory lock of the process that drives a PostgreSQL database


def _answers(conn: Connection) -> bool:
    try:
        conn.execute(select(1))
    except (SQLAlchemyError, DatabaseUnreachable):
        return False
    return True


def _shown(store: StoreBase) -> str:
    return store.engine.url.render_as_string(hide_password=True)


class StoreBase:
    """The engine and the clock; each read or write is one short transaction."""

    def __init__(self, engine: Engine, clock: Clock = time.time) -> None:
        self.engine = engine
        self.clock = clock
        # Called after a transaction that appended to ``events`` commits (the orchestrator wakes
        # its viewers with it). Writes by other processes are not seen: viewers also re-read.
        self.on_event: Callable[[], None] = lambda: None

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def driving(self) -> Iterator[Callable[[], bool]]:
        """Be the one process that drives this database's pipeline while the block runs.

        ServerLockedError when another process does: two orchestrators on one database would
        both start the same items. On PostgreSQL a session advisory lock on a connection held
        for the block (the server dying ends the session, and the lock with it); on SQLite an
        flock beside the database file (gone with the process too). Yields ``still_held()``:
        False once the lock's connection is gone (the database restarted, or the network between
        cut it), when another process may already hold it.
        """
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as conn:
                if not conn.execute(select(func.pg_try_advisory_lock(DRIVER_LOCK))).scalar():
                    raise ServerLockedError(f"another gangline server already drives the database {_shown(self)}")
                try:
                    yield lambda: _answers(conn)
                finally:
                    with contextlib.suppress(SQLAlchemyError, DatabaseUnreachable):  # a lost session let go already
                        conn.execute(select(func.pg_advisory_unlock(DRIVER_LOCK)))
            return
        path = f"{self.engine.url.database}.driver.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ServerLockedError(f"another gangline server already drives the database {path}") from None
            yield lambda: True  # an flock is this process's until it ends
        finally:
            os.close(fd)

    def get_item(self, item_id: int) -> Item:
        with self.engine.connect() as conn:
            return self._item(conn, item_id)

    # --- internals -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One write transaction; listeners hear of it once it has committed."""
        with self.engine.begin() as conn:
            yield conn
        self.on_event()

    def _cas(self, conn: Connection, item_id: int, expected: ItemState, values: dict[str, object], now: float) -> None:
        hold = t.items.c.hold
        stmt = (
            update(t.items)
            .where(
                t.items.c.id == item_id,
                t.items.c.stage == expected.stage.value,
                hold.is_(None) if expected.hold is None else hold == expected.hold.value,
                t.items.c.frozen == expected.frozen,
            )
            .values(**values, updated_at=now)
        )
        if conn.execute(stmt).rowcount != 1:
            current = self._state(conn, item_id)
            raise StateConflict(item_id, expected.describe(), current.describe())

    def _state(self, conn: Connection, item_id: int) -> ItemState:
        row = conn.execute(
            select(t.items.c.stage, t.items.c.hold, t.items.c.hold_reason, t.items.c.frozen).where(
                t.items.c.id == item_id
            )
        ).first()
        if row is None:
            raise NotFoundError("item", item_id)
        return row_state(row)

    def _item(self, conn: Connection, item_id: int) -> Item:
        where = (t.items.c.id == item_id,)
        row = conn.execute(select(t.items).where(*where)).first()
        if row is None:
            raise NotFoundError("item", item_id)
        return self._items(conn, [row], where)[0]

    def _items(self, conn: Connection, rows: list[Row[Any]], where: Sequence[ColumnElement[bool]]) -> list[Item]:
        """The items of ``rows`` with their criteria and dependencies, read by ``where`` (the filter that chose them).

        The children are selected by the same filter as a subquery, never by a list of the ids:
        a list makes a new statement for every number of items (each one prepared and cached by
        the driver, hundreds of kilobytes at a thousand items) and past SQLite's bound on
        variables it would fail outright.
        """
        crit: dict[int, list[Criterion]] = {}
        deps: dict[int, list[int]] = {}
        if rows:
            chosen = select(t.items.c.id).where(*where) if where else None
            criteria = select(t.criteria).order_by(t.criteria.c.item_id, t.criteria.c.position)
            dependencies = select(t.dependencies).order_by(t.dependencies.c.item_id, t.dependencies.c.depends_on)
            if chosen is not None:
                criteria = criteria.where(t.criteria.c.item_id.in_(chosen))
                dependencies = dependencies.where(t.dependencies.c.item_id.in_(chosen))
            for c in conn.execute(criteria):
                crit.setdefault(c.item_id, []).append(Criterion(text=c.text, checked=c.checked))
            for d in conn.execute(dependencies):
                deps.setdefault(d.item_id, []).append(d.depends_on)
        return [item_from(row, crit.get(row.id, []), deps.get(row.id, [])) for row in rows]

    def _run(self, conn: Connection, run_id: str) -> RunRow:
        row = conn.execute(select(t.runs).where(t.runs.c.id == run_id)).first()
        if row is None:
            raise NotFoundError("run", run_id)
        return run_row(row)

    def _live_run(self, conn: Connection, item_id: int) -> str | None:
        query = select(t.runs.c.id).where(t.runs.c.item_id == item_id, t.runs.c.ended_at.is_(None))
        return conn.execute(query).scalar()
