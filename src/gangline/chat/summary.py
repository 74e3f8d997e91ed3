"""The daily cost summary: at ``daily_summary`` (HH:MM in the project's time zone), the day's cost to each room.

It goes through the outbox like any notice, to the rooms whose ``notify`` is empty or lists
``daily_cost``. A summary due while gangline was stopped is not sent late: the next is tomorrow's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

from gangline.chat import replies
from gangline.chat.transport import Transport
from gangline.core.notices import NoticeKind
from gangline.core.timers import next_at
from gangline.core.types import Clock
from gangline.pipeline.orders import Orders
from gangline.project.chatconfig import RoomSettings


class DailySummary:
    def __init__(self, transport: Transport, orders: Callable[[], Orders], wake: Callable[[], None],
                 clock: Clock = time.time) -> None:  # fmt: skip
        self.settings = transport.settings
        self.transport = transport
        self.orders = orders
        self.wake = wake
        self.clock = clock

    async def run(self) -> None:
        if self.settings.daily_summary is None:
            return
        hour, minute = (int(part) for part in self.settings.daily_summary.split(":"))
        while True:
            at = next_at(hour, minute, self.clock(), self.orders().config.zone())
            await asyncio.sleep(max(0.0, at - self.clock()))
            self.send(at)

    def send(self, at: float) -> str:
        """Put the summary of the day ``at`` falls in into the outbox of every room that wants it; its text."""
        zone = self.orders().config.zone()
        midnight = datetime.fromtimestamp(at, zone).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        text = "Daily cost: " + replies.costs(self.orders().views.costs("item", since=midnight), midnight, zone)
        store = self.orders().orchestrator.store
        for room in self._rooms():
            store.queue_reply(self.settings.key, room.id, text, reply_to=None)
        self.wake()
        return text

    def _rooms(self) -> list[RoomSettings]:
        rooms = list(self.settings.rooms) or [RoomSettings(id=self.settings.key)]  # a webhook is one room
        notify = getattr(self.settings, "notify", ())  # a webhook's filter is its table's
        return [r for r in rooms if not (r.notify or notify) or NoticeKind.DAILY_COST in (r.notify or notify)]
