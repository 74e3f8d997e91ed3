"""Chat's own rows: each room's settings and notice cursor, the outbox, and the messages taken up."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, Update, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from gangline.core.records import ChatRoomRow, OutboxRow
from gangline.store import schema as t
from gangline.store.base import StoreBase


class Chat(StoreBase):
    # These writes append no event row: they go through ``engine.begin`` and wake no viewer.

    def chat_room(self, transport: str, room: str) -> ChatRoomRow:
        """The room's row; a room never spoken in has the defaults (ambient as configured, no cursor)."""
        with self.engine.connect() as conn:
            return _room(conn, transport, room)

    def set_ambient(self, transport: str, room: str, ambient: bool) -> None:
        with self.engine.begin() as conn:
            _ensure_room(conn, transport, room)
            conn.execute(_room_update(transport, room).values(ambient=ambient))

    def set_agent_session(self, transport: str, room: str, session_id: str | None) -> None:
        """The chat agent's session in the room, resumed by its next run (None: the next run starts a new one)."""
        with self.engine.begin() as conn:
            _ensure_room(conn, transport, room)
            conn.execute(_room_update(transport, room).values(agent_session=session_id))

    def queue_notice(
        self, transport: str, room: str, text: str | None, through: int, request_id: str | None = None
    ) -> None:
        """Put a notice in the outbox and move the room's cursor to ``through`` in one transaction
        (``text`` None: only the cursor moves, past events that are no news)."""
        with self.engine.begin() as conn:
            _ensure_room(conn, transport, room)
            if text is not None:
                values = {"transport": transport, "room": room, "text": text, "request_id": request_id}
                conn.execute(insert(t.chat_outbox).values(**values, created_at=self.clock()))
            conn.execute(_room_update(transport, room).values(notified_through=through))

    def queue_reply(self, transport: str, room: str, text: str, reply_to: str | None) -> int:
        """Put an answer to a person in the outbox; its id."""
        values = {"transport": transport, "room": room, "text": text, "reply_to": reply_to, "created_at": self.clock()}
        with self.engine.begin() as conn:
            key = conn.execute(insert(t.chat_outbox).values(**values)).inserted_primary_key
        assert key is not None
        return int(key[0])

    def unsent(self, transport: str, limit: int = 100, skip_rooms: Collection[str] = ()) -> list[OutboxRow]:
        """What waits to be sent on ``transport``, oldest first (but in ``skip_rooms``)."""
        box = t.chat_outbox.c
        query = select(t.chat_outbox).where(box.transport == transport, box.sent_at.is_(None)).order_by(box.id)
        if skip_rooms:
            query = query.where(box.room.not_in(list(skip_rooms)))
        with self.engine.connect() as conn:
            return [OutboxRow(**row._mapping) for row in conn.execute(query.limit(limit))]

    def mark_sent(self, outbox_id: int, message_id: str | None, failure: str | None = None) -> None:
        """The row went out as ``message_id``, or was refused for good (``failure``): either way it is done."""
        with self.engine.begin() as conn:
            stmt = update(t.chat_outbox).where(t.chat_outbox.c.id == outbox_id)
            conn.execute(stmt.values(sent_at=self.clock(), message_id=message_id, failure=failure))

    def take_back(self, transport: str, message_id: str) -> bool:
        """A message the platform says it did not deliver after all is unsent again; False if none was sent so."""
        box = t.chat_outbox.c
        stmt = update(t.chat_outbox).where(box.transport == transport, box.message_id == message_id)
        with self.engine.begin() as conn:
            return bool(conn.execute(stmt.values(sent_at=None, message_id=None, failure=None)).rowcount)

    def sent_message(self, transport: str, message_id: str) -> OutboxRow | None:
        """The outbox row a platform message came from (a person answering a notice replies to it)."""
        box = t.chat_outbox.c
        query = select(t.chat_outbox).where(box.transport == transport, box.message_id == message_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return OutboxRow(**row._mapping) if row is not None else None

    def take_up(self, transport: str, message_id: str) -> bool:
        """True the first time a message is taken up; False ever after (answered already)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t.chat_seen).values(transport=transport, message_id=message_id, at=self.clock()))
        except IntegrityError:
            return False
        return True

    def prune_chat(self, before: float) -> int:
        """Forget messages taken up, and outbox rows sent (or set aside), before ``before``; how many rows went."""
        box, seen = t.chat_outbox.c, t.chat_seen.c
        with self.engine.begin() as conn:
            gone = conn.execute(delete(t.chat_seen).where(seen.at < before)).rowcount
            return int(gone + conn.execute(delete(t.chat_outbox).where(box.sent_at < before)).rowcount)


def _room_update(transport: str, room: str) -> Update:
    return update(t.chat_rooms).where(and_(t.chat_rooms.c.transport == transport, t.chat_rooms.c.room == room))


def _room(conn: Connection, transport: str, room: str) -> ChatRoomRow:
    rooms = t.chat_rooms.c
    row = conn.execute(select(t.chat_rooms).where(rooms.transport == transport, rooms.room == room)).first()
    return ChatRoomRow(**row._mapping) if row is not None else ChatRoomRow(transport, room, None, None)


def _ensure_room(conn: Connection, transport: str, room: str) -> None:
    rooms = t.chat_rooms.c
    if conn.execute(select(rooms.room).where(rooms.transport == transport, rooms.room == room)).first() is None:
        conn.execute(insert(t.chat_rooms).values(transport=transport, room=room))
