"""The runs table: a run recorded before its process exists, its process, its end and its cost."""

from __future__ import annotations

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from gangline.core.errors import RunnerError, StateConflict
from gangline.core.events import Usage
from gangline.core.records import NewRun, RunEnd, RunRow
from gangline.core.stages import ItemState
from gangline.store import schema as t
from gangline.store.base import StoreBase
from gangline.store.rows import ZERO_USAGE, day_of, insert_event, run_row


class Runs(StoreBase):
    # --- runs ------------------------------------------------------------------------------

    def start_run(self, new: NewRun, expected: ItemState | None, actor: str) -> RunRow:
        """Record a run as live before its process exists, compare-and-set on the item's state.

        The database's partial unique indexes refuse a second live run of the same item, and a
        second live chat agent run in the same room. A chat agent's run has no item (nor ``expected``).
        """
        now = self.clock()
        with self._tx() as conn:
            if new.item_id is not None:
                assert expected is not None
                self._cas(conn, new.item_id, expected, {}, now)
            values = {**new.__dict__, "role": new.role.value}
            try:
                # A savepoint: PostgreSQL refuses every statement of a transaction after a failed one.
                with conn.begin_nested():
                    conn.execute(insert(t.runs).values(**values, started_at=now, day=day_of(now), **ZERO_USAGE))
            except IntegrityError:
                if new.item_id is None:
                    raise RunnerError(new.id, f"the chat room {new.chat_room!r} has a live run already") from None
                running = f"running {self._live_run(conn, new.item_id)}"
                raise StateConflict(new.item_id, "without a live run", running) from None
            insert_event(
                conn,
                now,
                "run_started",
                actor,
                item_id=new.item_id,
                run_id=new.id,
                data={"role": new.role.value, "profile": new.profile, "attempt": new.attempt},
            )
            return self._run(conn, new.id)

    def record_process(self, run_id: str, pid: int, pgid: int, start_ticks: int, boot: str) -> None:
        """The run's process, and the machine boot its pid and start ticks belong to (``processes.boot_id``)."""
        values = {"pid": pid, "pgid": pgid, "start_ticks": start_ticks, "boot_id": boot or None}
        with self._tx() as conn:
            conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(**values))

    def finish_run(self, run_id: str, end: RunEnd, actor: str) -> RunRow:
        """Close a live run with its outcome and cost; closing it twice keeps the first ending."""
        now = self.clock()
        usage = end.usage or Usage()
        values = {
            "ended_at": now,
            "outcome": end.outcome.value,
            "reason": end.reason,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_input_tokens,
            "cache_write_tokens": usage.cache_creation_input_tokens,
            "cost_usd": end.cost_usd or 0.0,
        }
        if end.session_id:
            values["session_id"] = end.session_id
        with self._tx() as conn:
            done = conn.execute(
                update(t.runs).where(t.runs.c.id == run_id, t.runs.c.ended_at.is_(None)).values(**values)
            )
            run = self._run(conn, run_id)
            if done.rowcount == 1:
                insert_event(
                    conn,
                    now,
                    "run_finished",
                    actor,
                    item_id=run.item_id,
                    run_id=run_id,
                    reason=end.reason,
                    data={"outcome": end.outcome.value, "cost_usd": run.cost_usd},
                )
            return run

    def set_run_session(self, run_id: str, session_id: str) -> None:
        with self._tx() as conn:
            conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(session_id=session_id))

    def get_run(self, run_id: str) -> RunRow:
        with self.engine.connect() as conn:
            return self._run(conn, run_id)

    def runs(self, item_id: int | None = None, live_only: bool = False) -> list[RunRow]:
        query = select(t.runs).order_by(t.runs.c.started_at, t.runs.c.id)
        if item_id is not None:
            query = query.where(t.runs.c.item_id == item_id)
        if live_only:
            query = query.where(t.runs.c.ended_at.is_(None))
        with self.engine.connect() as conn:
            return [run_row(row) for row in conn.execute(query)]

    def session_profile(self, item_id: int, session_id: str | None) -> str | None:
        """The profile of the item's latest run in that session (None: no run of the item had it)."""
        latest = self._session_run(item_id, session_id)
        return latest[0] if latest is not None else None

    def session_node(self, item_id: int, session_id: str) -> int | None:
        """The build node the item's latest run in that session ran on (None: this server, or no such run)."""
        latest = self._session_run(item_id, session_id)
        return latest[1] if latest is not None else None

    def _session_run(self, item_id: int, session_id: str | None) -> tuple[str, int | None] | None:
        """Who made the item's session: the profile and the node of its latest run in it."""
        if session_id is None:
            return None
        runs = t.runs.c
        query = (
            select(runs.profile, runs.node_id)
            .where(runs.item_id == item_id, runs.session_id == session_id)
            .order_by(runs.started_at.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return (row.profile, row.node_id) if row is not None else None

    def session_usage(self, item_id: int, session_id: str) -> Usage:
        """The tokens the item's finished runs in that session were counted for."""
        runs = t.runs.c
        columns = (runs.input_tokens, runs.output_tokens, runs.cache_write_tokens, runs.cache_read_tokens)
        query = select(*(func.coalesce(func.sum(c), 0) for c in columns)).where(
            runs.item_id == item_id, runs.session_id == session_id, runs.ended_at.is_not(None)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).one()
        return Usage(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    def count_runs(self, item_id: int | None) -> int:
        """How many runs the item had (None: how many chat agent runs there were)."""
        whose = t.runs.c.item_id.is_(None) if item_id is None else t.runs.c.item_id == item_id
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.runs).where(whose)).scalar_one())
