"""In-process fan-out of run records to subscribers with bounded queues.

Publishing never waits: a subscriber whose queue would overflow is cut off, receives a
``Gap`` record as its last item and can replay the rest from the durable run log
(``follow`` does exactly that). The bus belongs to one event loop and is not thread-safe.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable

from gangline.core.events import Gap, Record

GAP_RECORD_ID = 0  # gap markers are never logged; log ids start at 1


class Subscription:
    """An async iterator of records; ends after ``Gap`` or when the bus closes."""

    __slots__ = ("_queue", "_waiter", "closed", "cut_off", "delivered_id", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self._queue: deque[Record] = deque()
        self.maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.cut_off = False
        self.delivered_id = 0  # id of the last record handed to this subscriber's queue

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Record:
        if not await self._wait_nonempty():
            raise StopAsyncIteration
        return self._queue.popleft()

    async def _wait_nonempty(self) -> bool:
        """Wait until a record is queued (True) or the stream has ended (False)."""
        while not self._queue:
            if self.closed:
                return False
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return True

    async def next_batch(self) -> list[Record]:
        """Everything queued, waiting for at least one record; ``[]`` once the stream ended.

        Consumers that can take records in bulk (a stream writer, a counter) should use
        this: one wake-up per published batch instead of one per record.
        """
        if not await self._wait_nonempty():
            return []
        batch = list(self._queue)
        self._queue.clear()
        return batch

    def qsize(self) -> int:
        return len(self._queue)

    def _offer(self, records: list[Record]) -> bool:
        """Queue what fits; False when this subscriber had to be cut off."""
        room = self.maxsize - len(self._queue)
        if room >= len(records):
            self._queue.extend(records)
            self.delivered_id = records[-1].id
            self._wake()
            return True
        if room > 0:
            self._queue.extend(records[:room])
            self.delivered_id = records[room - 1].id
        first_dropped = records[max(room, 0)]
        gap = Gap(after_id=self.delivered_id, dropped_from_id=first_dropped.id)
        self._queue.append(Record(GAP_RECORD_ID, first_dropped.ts, gap))
        self.cut_off = self.closed = True
        self._wake()
        return False

    def _close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Bus:
    """Broadcast records to every current subscriber without ever blocking the publisher."""

    def __init__(self, default_maxsize: int = 10_000) -> None:
        self._subs: list[Subscription] = []
        self._default_maxsize = default_maxsize
        self._closed = False
        self.published = 0
        self.cut_offs = 0

    def subscribe(self, maxsize: int | None = None) -> Subscription:
        sub = Subscription(maxsize or self._default_maxsize)
        if self._closed:
            sub._close()
        else:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        sub._close()

    def publish_nowait(self, records: list[Record]) -> None:
        if not records:
            return
        self.published += len(records)
        dropped = [sub for sub in self._subs if not sub._offer(records)]
        for sub in dropped:
            self._subs.remove(sub)
            self.cut_offs += 1

    def close(self) -> None:
        """End every subscription once its queue is drained; later subscribers end at once."""
        self._closed = True
        for sub in self._subs:
            sub._close()
        self._subs.clear()

    def statistics(self) -> dict[str, int]:
        return {
            "subscribers": len(self._subs),
            "published": self.published,
            "cut_offs": self.cut_offs,
            "max_queued": max((s.qsize() for s in self._subs), default=0),
        }


async def follow(
    bus: Bus, replay: Callable[[int], Iterable[Record]], after_id: int = 0, maxsize: int | None = None
) -> AsyncIterator[Record]:
    """Every record after ``after_id``, exactly once and in order: from the log, then live.

    Subscribing before reading the log closes the race: the log is written before a record
    is published, so whatever the replay misses arrives on the new subscription, and ids
    already replayed are skipped. A gap restarts the same dance from the last id seen.
    """
    last = after_id
    while True:
        sub = bus.subscribe(maxsize)
        for record in replay(last):
            if record.id > last:
                last = record.id
                yield record
        gap = False
        async for record in sub:
            if isinstance(record.event, Gap):
                gap = True
                break
            if record.id > last:
                last = record.id
                yield record
        bus.unsubscribe(sub)
        if not gap:
            return
