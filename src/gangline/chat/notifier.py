"""Pipeline events to chat: the notifier puts each room's notices in the outbox, the courier sends the outbox.

The notifier reads the event log from each room's cursor (``chat_rooms.notified_through``), turns
news into notices (``core.notices``), coalesces them per room and writes each message to the
outbox in the same transaction that moves the cursor past it. The courier sends what the outbox
holds, oldest first, keyed by the row's id, and marks it sent; a transport that is down is
retried with backoff, in order. A server killed anywhere in between resumes from the cursor and
the outbox: nothing is lost, and a platform that takes a send key (Matrix) shows nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from gangline.chat.transport import MessageHeld, MessageRefused, Outgoing, Transport, TransportDown
from gangline.core.notices import Coalescer, Notice, NoticeKind, message_of, notice_of
from gangline.core.records import EventRow
from gangline.pipeline.orchestrator import Orchestrator
from gangline.project.chatconfig import RoomSettings

log = logging.getLogger(__name__)

PAGE = 500  # event rows read at once
POLL_S = 1.0  # re-read the log at least this often: the CLI writes it from another process
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # a transport that is down is tried again after these
KEEP_S = 30 * 86400.0  # messages taken up and sent are remembered this long: no platform redelivers later
PRUNE_EVERY_S = 3600.0
# How often a room's cursor is saved while it only moves past events that are no news to it: a
# restart then reads those again (cheap, and they are still no news) instead of every event
# costing a write per room.
SAVE_CURSOR_S = 5.0


class RoomNotices:
    """One room's notices: its cursor in the event log and the notices held for coalescing."""

    def __init__(self, room: RoomSettings, cursor: int, window_s: float) -> None:
        self.room = room
        self.cursor = cursor  # every event up to here is in the outbox or no news to this room
        self.coalescer = Coalescer(window_s, frozenset(room.notify))
        self.saved_at = float("-inf")  # when the cursor was last saved without a message

    def offer(self, row: EventRow, notice: Notice | None, now: float) -> list[list[Notice]]:
        if row.id <= self.cursor or notice is None:
            return []
        return self.coalescer.add(notice, now)


class Notifier:
    """Follows the event log for one transport's rooms and fills the outbox; ``wake`` tells the courier."""

    def __init__(self, transport: Transport, orch: Orchestrator, wake: Callable[[], None]) -> None:
        self.key = transport.settings.key
        self.transport = transport
        self.orch = orch
        self.store = orch.store
        self.wake = wake
        self.rooms = [RoomNotices(room, self._cursor(room), transport.settings.window_s) for room in _rooms(transport)]

    def _cursor(self, room: RoomSettings) -> int:
        """Where the room's notices resume; a new room starts at the end of the log (no flood of old news)."""
        row = self.store.chat_room(self.key, room.id)
        if row.notified_through is not None:
            return row.notified_through
        last = self.store.last_event_id()
        self.store.queue_notice(self.key, room.id, None, last)
        return last

    async def run(self) -> None:
        if not self.rooms:
            return
        loop = asyncio.get_running_loop()
        last = min(r.cursor for r in self.rooms)
        version = self.orch.version
        while True:
            rows = self.store.events_after(last, limit=PAGE)
            now = loop.time()
            for row in rows:
                self._offer(row, now)
            last = rows[-1].id if rows else last
            self._flush(now, last)
            if len(rows) == PAGE:
                continue
            version = await self.orch.wait_changed(version, self._wait_s(loop.time()))

    def _offer(self, row: EventRow, now: float) -> None:
        notice = notice_of(row)
        for room in self.rooms:
            for message in room.offer(row, notice, now):
                self._queue(room, message)

    def _flush(self, now: float, last: int) -> None:
        for room in self.rooms:
            for message in room.coalescer.due(now):
                self._queue(room, message)
            if room.coalescer.next_due is None and last > room.cursor:
                room.cursor = last  # past events that were no news to this room
                if now - room.saved_at >= SAVE_CURSOR_S:
                    self.store.queue_notice(self.key, room.room.id, None, last)
                    room.saved_at = now

    def _queue(self, room: RoomNotices, message: list[Notice]) -> None:
        through = max(n.event_id for n in message)
        asking = next((n.request_id for n in message if n.kind is NoticeKind.PERMISSION), None)
        self.store.queue_notice(self.key, room.room.id, message_of(message), through, request_id=asking)
        room.cursor = max(room.cursor, through)
        self.wake()

    def _wait_s(self, now: float) -> float:
        due = [d for r in self.rooms if (d := r.coalescer.next_due) is not None]
        return max(0.0, min([POLL_S, *(d - now for d in due)]))


def _rooms(transport: Transport) -> list[RoomSettings]:
    settings = transport.settings
    if transport.listens or settings.rooms:
        return list(settings.rooms)
    # A transport that only sends (a webhook) is one room: its own address.
    return [RoomSettings(id=settings.key, notify=getattr(settings, "notify", ()))]


class Courier:
    """Sends one transport's outbox in order; retries a transport that is down with backoff."""

    def __init__(self, transport: Transport, orch: Orchestrator) -> None:
        self.key = transport.settings.key
        self.transport = transport
        self.store = orch.store
        self.orch = orch
        self._wake = asyncio.Event()
        self.failures = 0  # sends in a row that found the transport down

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        # What the pipeline's recovery puts in the outbox (a chat agent's answer cut short) goes out too.
        await self.orch.recovered()
        pruned_at = 0.0
        while True:
            self._wake.clear()
            if time.time() - pruned_at > PRUNE_EVERY_S:
                self.store.prune_chat(time.time() - KEEP_S)
                pruned_at = time.time()
            if await self.send_all():
                self.failures = 0
                await self._wake.wait()
                continue
            self.failures += 1
            pause = BACKOFF_S[min(self.failures, len(BACKOFF_S)) - 1]
            log.warning("chat transport down; retrying", extra={"action": "chat_retry", "transport": self.key,
                                                                "retry_in_s": pause})  # fmt: skip
            await asyncio.sleep(pause)  # a new message does not cut it short: the transport is down

    async def send_all(self) -> bool:
        """Send everything unsent, oldest first; False when the transport went down part way.

        A room whose message is held keeps it and everything after it, in order, for the next pass.
        """
        held: set[str] = set()
        while rows := self.store.unsent(self.key, limit=PAGE, skip_rooms=held):
            for row in rows:
                if row.room in held:
                    continue
                try:
                    message_id = await self.transport.send(Outgoing.of(row))
                except TransportDown as err:
                    about = {"action": "chat_down", "transport": self.key, "error": str(err)}
                    log.warning("chat send failed: %s", err, extra=about)
                    return False
                except MessageHeld as err:
                    log.info("chat message held: %s", err, extra={"action": "chat_held", "transport": self.key,
                                                                  "room": row.room})  # fmt: skip
                    held.add(row.room)
                    continue
                except MessageRefused as err:
                    about = {"action": "chat_refused_send", "transport": self.key, "room": row.room, "error": str(err)}
                    log.error("chat message refused: %s", err, extra=about)
                    self.store.mark_sent(row.id, None, failure=str(err)[:2000])
                    continue
                self.store.mark_sent(row.id, message_id)
        return True
