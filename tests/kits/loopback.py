"""What every platform fake stands on: an aiohttp app on a free port of 127.0.0.1, and changes tests wait on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def on_loopback(app: web.Application, shutdown_timeout: float = 2.0) -> AsyncIterator[str]:
    """Serve ``app``; yields its base URL (``http://127.0.0.1:PORT``), and stops it when the block ends."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


class Changes:
    """What a fake's tests wait on: whoever changes the fake says so, whoever waits names what for, bounded."""

    def __init__(self) -> None:
        self._condition = asyncio.Condition()

    async def tell(self) -> None:
        async with self._condition:
            self._condition.notify_all()

    async def wait_for(self, ready: Callable[[], bool], timeout_s: float) -> None:
        """Until ``ready()`` holds, woken by each change; TimeoutError after ``timeout_s``."""
        async with asyncio.timeout(timeout_s), self._condition:
            await self._condition.wait_for(ready)
