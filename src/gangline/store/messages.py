"""A person's messages to an item's coder: kept, listed, and marked with the run that took them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Row, insert, select, update

from gangline.core.messages import LineComment, Message
from gangline.core.records import REASON_CHARS
from gangline.store import schema as t
from gangline.store.base import StoreBase
from gangline.store.rows import insert_event


class Messages(StoreBase):
    def add_message(self, item_id: int, actor: str, text: str, comments: Sequence[LineComment]) -> Message:
        """Keep a message for the item's coder, with a ``message`` event; NotFoundError for no such item."""
        now = self.clock()
        said = [comment.model_dump() for comment in comments]
        with self._tx() as conn:
            self._item(conn, item_id)
            key = conn.execute(
                insert(t.messages).values(item_id=item_id, actor=actor, text=text, comments=said, created_at=now)
            ).inserted_primary_key
            assert key is not None
            insert_event(conn, now, "message", actor, item_id=item_id, reason=text[:REASON_CHARS] or None,
                         data={"message_id": int(key[0]), "comments": len(said)})  # fmt: skip
        return Message(int(key[0]), item_id, actor, text, tuple(comments), now, None)

    def messages(self, item_id: int, waiting_only: bool = False) -> list[Message]:
        """The item's messages, oldest first (``waiting_only``: those no run has taken yet)."""
        query = select(t.messages).where(t.messages.c.item_id == item_id).order_by(t.messages.c.id)
        if waiting_only:
            query = query.where(t.messages.c.run_id.is_(None))
        with self.engine.connect() as conn:
            return [_message(row) for row in conn.execute(query)]

    def deliver_messages(self, ids: Sequence[int], run_id: str) -> None:
        """Mark messages as taken by ``run_id`` (those another run took meanwhile stay its)."""
        if not ids:
            return
        where = (t.messages.c.id.in_(list(ids)), t.messages.c.run_id.is_(None))
        with self.engine.begin() as conn:
            conn.execute(update(t.messages).where(*where).values(run_id=run_id))


def _message(row: Row[tuple[object, ...]]) -> Message:
    m = row._mapping
    comments = tuple(LineComment.model_validate(c) for c in m["comments"] or ())
    return Message(m["id"], m["item_id"], m["actor"], m["text"], comments, m["created_at"], m["run_id"])
