"""A webhook receiver on loopback, for the webhook transport's tests: it keeps every request and answers as told.

It is a real HTTP server (``aiohttp.web`` on 127.0.0.1, a free port): gangline's courier POSTs
to it as it would to any receiver. ``answer`` decides each request's status from what came and
how many came before it (a receiver that is down for a while, one that refuses one message);
every request is kept, answered or not, with its raw body and headers, so a test can check a
signature over exactly the bytes that were sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from kits.loopback import Changes, on_loopback

PATH = "/hooks/gangline"


@dataclass(frozen=True)
class Received:
    """One request as it reached the receiver, and what the receiver answered."""

    headers: CIMultiDict[str]  # case-insensitive, as HTTP headers are
    body: bytes  # the raw bytes: what a signature covers
    status: int = 0

    @property
    def json(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.body)
        return found

    @property
    def text(self) -> str:
        text: str = self.json["text"]
        return text

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


Answer = Callable[[Received, int], int | tuple[int, str]]  # (the request, how many came before it) -> status


class WebhookReceiver:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.received: list[Received] = []
        self.url = ""
        self._changes = Changes()

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.received if r.accepted]

    async def _hook(self, request: web.Request) -> web.Response:
        came = Received(request.headers.copy(), await request.read())
        answer = self.answer(came, len(self.received))
        status, text = answer if isinstance(answer, tuple) else (answer, "")
        self.received.append(Received(came.headers, came.body, status))
        await self._changes.tell()
        return web.Response(status=status, text=text)

    async def wait_for(self, ready: Callable[[WebhookReceiver], bool], timeout_s: float = 15.0) -> None:
        """Until ``ready(self)`` holds, woken by each request; TimeoutError after ``timeout_s``."""
        await self._changes.wait_for(lambda: ready(self), timeout_s)

    async def wait_accepted(self, count: int, timeout_s: float = 15.0) -> list[Received]:
        """The first ``count`` requests answered 2xx, once that many have been."""
        await self.wait_for(lambda r: len(r.accepted) >= count, timeout_s)
        return self.accepted[:count]


@asynccontextmanager
async def receiving(answer: Answer = lambda _request, _before: 200) -> AsyncIterator[WebhookReceiver]:
    """A receiver listening on a free port of 127.0.0.1 (its ``url``) until the block ends."""
    receiver = WebhookReceiver(answer)
    app = web.Application()
    app.router.add_post(PATH, receiver._hook)
    async with on_loopback(app) as url:
        receiver.url = f"{url}{PATH}"
        yield receiver
