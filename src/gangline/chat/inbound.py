"""A chat platform's webhooks: an HTTP server of the transport's own, apart from the person's API.

Platforms that call gangline (Slack's Events API, Discord's interactions, WhatsApp) reach it on
the transport's ``listen`` address. Each request is proven by the platform's signature, never by
the person's credential, so it is served apart from gangline's API: no route here can give what
only the person's credential gives, and no bug here opens the API. Handlers read the body through
``body()``, which refuses more than ``MAX_BODY`` bytes (413).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator, Sequence

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # a platform's event is a few KiB
START_S = 10.0


async def body(request: Request) -> bytes:
    """The raw body (signatures are over the exact bytes), at most MAX_BODY."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPException(413, f"a body over {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the process's signals are gangline's main server's to handle, not this one's


class Inbound:
    """Serves ``routes`` on ``listen`` (host:port) until cancelled; ``url`` once it listens."""

    def __init__(self, listen: str, routes: Sequence[BaseRoute]) -> None:
        host, _, port = listen.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.app = Starlette(routes=list(routes))
        self.listening = asyncio.Event()
        self.url = ""

    async def run(self) -> None:
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", access_log=False,
                                lifespan="off")  # fmt: skip
        server = _Server(config)
        task = asyncio.ensure_future(server.serve())
        try:
            async with asyncio.timeout(START_S):
                while not server.started and not task.done():
                    await asyncio.sleep(0.01)  # uvicorn has no event for "listening"
            if task.done():  # uvicorn exits (SystemExit) when it cannot bind
                with contextlib.suppress(SystemExit):
                    task.result()
                raise OSError(f"cannot listen on {self.host}:{self.port}: the address is in use or not available")
            bound = server.servers[0].sockets[0].getsockname()
            shown = f"[{bound[0]}]" if server.servers[0].sockets[0].family == socket.AF_INET6 else bound[0]
            self.url = f"http://{shown}:{bound[1]}"
            self.listening.set()
            # Not ``await task``: cancelling us would cancel uvicorn mid-serve and leak its socket;
            # the ``finally`` below stops it the way it stops.
            await asyncio.wait({task})
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, SystemExit):
                await asyncio.wait_for(task, START_S)
