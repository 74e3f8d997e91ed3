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

from gangline.agents.usage import ProcessUsage, tree_usage
from gangline.chat.transport import MessageRefused, Outgoing, Transport, TransportDown
from gangline.core.text import plain
from gangline.core.wire import RunOut
from gangline.pipeline.orders import Orders

log = logging.getLogger(__name__)

EVERY_S = 3.0
LASTS_S = 300.0
TOP_PROCESSES = 5


def render(runs: list[RunOut], trees: dict[str, list[ProcessUsage]], before: dict[int, float], every_s: float) -> str:
    """The view's text: per live run, its processes' total and the busiest few."""
    if not runs:
        return "htop: no agent is running."
    lines = []
    for run in runs:
        tree = trees.get(run.id, [])
        cpu = {u.pid: max(0.0, u.cpu_s - before.get(u.pid, u.cpu_s)) / every_s * 100 for u in tree}
        memory = sum(u.rss_bytes for u in tree)
        lines.append(f"{run.about} {run.role.value} {run.profile}: {len(tree)} process(es), "
                     f"CPU {sum(cpu.values()):.0f}%, memory {memory / 2**20:.0f} MiB")  # fmt: skip
        for usage in sorted(tree, key=lambda u: (-cpu[u.pid], -u.rss_bytes))[:TOP_PROCESSES]:
            lines.append(
                f"  {usage.pid} {plain(usage.name)} CPU {cpu[usage.pid]:.0f}% {usage.rss_bytes / 2**20:.0f} MiB"
            )
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
        before: dict[int, float] = {}
        message_id: str | None = None
        # A live view is not worth keeping through an outage, nor worth more than a log line if refused.
        with contextlib.suppress(TransportDown, MessageRefused):
            while True:
                runs = self.orders().views.runs(live=True)
                trees = {run.id: tree_usage(run.pid) for run in runs if run.pid is not None}
                text = render(runs, trees, before, self.every_s)
                before = {u.pid: u.cpu_s for tree in trees.values() for u in tree}
                if loop.time() >= ends:
                    text += f"\n(ended after {self.lasts_s / 60:g} minutes: say htop to watch again)"
                if message_id is None:
                    message_id = await self.transport.send(Outgoing(room, text))
                else:
                    await self.transport.edit(room, message_id, text)
                if loop.time() >= ends or not self.transport.edits:
                    return
                await asyncio.sleep(self.every_s)
