"""``htop`` in chat: one message per room showing each live run's process tree, edited in place until it ends.

A view samples every ``EVERY_S`` seconds (CPU as a share of one core over the interval), stops
by itself after ``LASTS_S``, and ``htop stop`` (or a new ``htop`` in the room) ends it. The views
are tasks of the account, ended with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from gangline.chat.transport import MessageRefused, Outgoing, Transport, TransportDown
from gangline.core.text import plain
from gangline.core.top import TopOut
from gangline.pipeline.orders import Orders

log = logging.getLogger(__name__)

EVERY_S = 3.0
LASTS_S = 300.0
TOP_PROCESSES = 5


def render(reading: TopOut) -> str:
    """The view's text: per live run, its processes' total and the busiest few."""
    if not reading.runs:
        return "htop: no agent is running."
    lines = []
    for row in reading.runs:
        run = row.run
        lines.append(f"{run.about} {run.role.value} {run.profile}: {len(row.processes)} process(es), "
                     f"CPU {row.cpu_percent:.0f}%, memory {row.rss_bytes / 2**20:.0f} MiB")  # fmt: skip
        if row.note:
            lines.append(f"  ({row.note})")
        for process in sorted(row.processes, key=lambda p: (-p.cpu_percent, -p.rss_bytes))[:TOP_PROCESSES]:
            lines.append(f"  {process.pid} {plain(process.name)} CPU {process.cpu_percent:.0f}% "
                         f"{process.rss_bytes / 2**20:.0f} MiB")  # fmt: skip
    return "\n".join(lines)


class Htop:
    """The live views of one transport, one per room."""

    def __init__(self, transport: Transport, orders: Callable[[], Orders], every_s: float = EVERY_S,
                 lasts_s: float = LASTS_S) -> None:  # fmt: skip
        self.transport = transport
        self.orders = orders
        self.every_s = every_s
        self.lasts_s = lasts_s
        self._views: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None

    async def run(self) -> None:
        """Own the views' tasks until cancelled."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            await asyncio.Event().wait()

    def start(self, room: str) -> str:
        self.stop(room)
        if self._group is None:
            return "htop is not available yet; try again in a moment."
        self._views[room] = self._group.create_task(self._view(room), name=f"htop {room}")
        if not self.transport.edits:
            return "htop: this platform cannot change a message once sent, so here is one snapshot."
        minutes = self.lasts_s / 60
        return f"htop: one message, updated every {self.every_s:g} s for {minutes:g} minutes (htop stop ends it)."

    def stop(self, room: str) -> bool:
        task = self._views.pop(room, None)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    async def _view(self, room: str) -> None:
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.lasts_s
        message_id: str | None = None
        # A live view is not worth keeping through an outage, nor worth more than a log line if refused.
        with contextlib.suppress(TransportDown, MessageRefused):
            while True:
                text = render(await self.orders().views.top.sample(self.every_s))
                if loop.time() >= ends:
                    text += f"\n(ended after {self.lasts_s / 60:g} minutes: say htop to watch again)"
                if message_id is None:
                    message_id = await self.transport.send(Outgoing(room, text))
                else:
                    await self.transport.edit(room, message_id, text)
                if loop.time() >= ends or not self.transport.edits:
                    return
                await asyncio.sleep(self.every_s)
