"""Pipeline state: compare-and-set transitions, holds and bookkeeping, each with its event row."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from gangline.core.errors import StateConflict
from gangline.core.items import Item
from gangline.core.records import REASON_CHARS, EventRow
from gangline.core.stages import Facts, IllegalTransition, ItemState, Stage, Trigger, apply
from gangline.store import schema as t
from gangline.store.base import StoreBase
from gangline.store.rows import event_row, insert_event, same_state, state_values


class Transitions(StoreBase):
    # --- pipeline state: only the orchestrator calls these ----------------------------------

    def transition(
        self,
        item_id: int,
        trigger: Trigger,
        actor: str,
        *,
        expected: ItemState | None = None,
        facts: Facts = Facts(),  # noqa: B008 (frozen dataclass)
        updates: Mapping[str, object] | None = None,
        run_id: str | None = None,
    ) -> Item:
        """Apply ``trigger`` compare-and-set, with its event row, in one transaction.

        ``expected`` None means "whatever the item is now" (a person acting on what they see).
        Raises IllegalTransition (naming the current state) or StateConflict.
        """
        now = self.clock()
        with self._tx() as conn:
            current = self._state(conn, item_id)
            if expected is not None and not same_state(current, expected):
                raise StateConflict(item_id, expected.describe(), current.describe())
            try:
                new = apply(current, trigger, facts)
            except IllegalTransition as err:
                raise IllegalTransition(current, trigger, err.why, item_id) from None
            self._cas(conn, item_id, current, state_values(new) | dict(updates or {}), now)
            reason = facts.reason
            insert_event(
                conn,
                now,
                "transition",
                actor,
                item_id=item_id,
                run_id=run_id,
                trigger=trigger.value,
                frm=current,
                to=new,
                reason=reason,
            )
            return self._item(conn, item_id)

    def hold(
        self,
        item_id: int,
        trigger: Trigger,
        actor: str,
        reason: str,
        *,
        expected: ItemState | None = None,
        updates: Mapping[str, object] | None = None,
        run_id: str | None = None,
    ) -> Item:
        """Set a hold (``block``, ``hold_for_review``, ``merge_failed``) with its reason, capped at 2,000 characters."""
        facts = Facts(reason=reason[:REASON_CHARS])
        return self.transition(item_id, trigger, actor, expected=expected, facts=facts, updates=updates, run_id=run_id)

    def bookkeep(
        self,
        item_id: int,
        kind: str,
        actor: str,
        *,
        expected: ItemState,
        updates: Mapping[str, object],
        reason: str | None = None,
        data: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> Item:
        """Change pipeline bookkeeping (retries, parking, session) without moving the stage."""
        now = self.clock()
        with self._tx() as conn:
            self._cas(conn, item_id, expected, dict(updates), now)
            insert_event(conn, now, kind, actor, item_id=item_id, run_id=run_id, reason=reason, data=data)
            return self._item(conn, item_id)

    def schedule_start(self, item_id: int, at: float | None, actor: str) -> Item:
        """Start a backlog item no earlier than ``at`` (epoch seconds; None: as soon as it can)."""
        item = self.get_item(item_id)
        if item.stage is not Stage.BACKLOG:
            raise StateConflict(item_id, "backlog", item.state.describe())
        return self.bookkeep(
            item_id, "scheduled", actor, expected=item.state, updates={"start_after": at}, data={"start_after": at}
        )

    def record_event(
        self,
        kind: str,
        actor: str,
        *,
        item_id: int | None = None,
        run_id: str | None = None,
        reason: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        with self._tx() as conn:
            return insert_event(
                conn, self.clock(), kind, actor, item_id=item_id, run_id=run_id, reason=reason, data=data
            )

    def last_event_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(t.events.c.id))).scalar() or 0)

    def events_after(self, after_id: int = 0, limit: int = 1000, item_id: int | None = None) -> list[EventRow]:
        query = select(t.events).where(t.events.c.id > after_id).order_by(t.events.c.id).limit(limit)
        if item_id is not None:
            query = query.where(t.events.c.item_id == item_id)
        with self.engine.connect() as conn:
            return [event_row(row) for row in conn.execute(query)]
