"""A build node's calls to its server, over HTTP: join, hello, lease, renew, upload, finish.

A node may be given several servers (one drives the pipeline, others stand by on the same
database): a call that cannot connect, or that a standby answers 503, goes to the next, and the
first that answers is used from then on. Transient failures are retried with a bounded backoff;
a refusal (a lapsed lease: 409, an unknown credential: 401) is raised at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import httpx

from gangline.core.errors import GanglineError, Unavailable
from gangline.core.nodes import LeaseLost, NodeRefused
from gangline.core.nodewire import (
    DRAINING_HEADER,
    EPOCH_HEADER,
    FinishIn,
    JoinIn,
    JoinOut,
    LeaseIn,
    LeaseOut,
    NodeHello,
    NodeOut,
    RenewIn,
    RenewOut,
    UploadOut,
)

log = logging.getLogger(__name__)

_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 4.0)


class NodeClient:
    """One node's connection to its servers; ``credential`` is set once it has joined."""

    def __init__(self, servers: Sequence[str], credential: str | None = None, *, attempts: int = 6) -> None:
        if not servers:
            raise GanglineError("a node needs a server: --server URL")
        self.servers = [url.rstrip("/") for url in servers]
        self.credential = credential
        self.attempts = attempts
        self._current = 0
        self.draining = False  # the server said so on the last empty lease
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0))

    @property
    def server(self) -> str:
        return self.servers[self._current]

    async def aclose(self) -> None:
        await self._http.aclose()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential}"} if self.credential else {}

    # --- the protocol --------------------------------------------------------------------

    async def join(self, given: JoinIn) -> JoinOut:
        return JoinOut.model_validate((await self._call("POST", "/node/join", json=given.model_dump())).json())

    async def hello(self, given: NodeHello) -> NodeOut:
        return NodeOut.model_validate((await self._call("POST", "/node/hello", json=given.model_dump())).json())

    async def lease(self, busy: dict[str, int], wait_s: float) -> LeaseOut | None:
        answer = await self._call("POST", "/node/lease", json=LeaseIn(busy=busy, wait_s=wait_s).model_dump())
        self.draining = answer.headers.get(DRAINING_HEADER) == "1"
        return LeaseOut.model_validate(answer.json()) if answer.status_code == 200 else None

    async def renew(self, run_id: str, epoch: int) -> RenewOut:
        answer = await self._call("POST", f"/node/runs/{run_id}/renew", json=RenewIn(epoch=epoch).model_dump())
        return RenewOut.model_validate(answer.json())

    async def upload(self, run_id: str, epoch: int, lines: bytes) -> UploadOut:
        headers = {EPOCH_HEADER: str(epoch), "Content-Type": "application/x-ndjson"}
        answer = await self._call("POST", f"/node/runs/{run_id}/events", content=lines, headers=headers)
        return UploadOut.model_validate(answer.json())

    async def finish(self, run_id: str, end: FinishIn) -> None:
        await self._call("POST", f"/node/runs/{run_id}/finish", json=end.model_dump(mode="json"))

    # --- transport -----------------------------------------------------------------------

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call, on the server that answers; retried (bounded) while none does."""
        headers = {**self.headers(), **kwargs.pop("headers", {})}
        last = "no server answered"
        for attempt in range(self.attempts):
            for _ in self.servers:
                try:
                    answer = await self._http.request(method, self.server + path, headers=headers, **kwargs)
                except httpx.TransportError as err:
                    last = f"{self.server}: {type(err).__name__}: {err}"
                else:
                    if answer.status_code != 503:
                        return _checked(answer, path)
                    last = f"{self.server}: {_message(answer)}"
                self._current = (self._current + 1) % len(self.servers)
            if attempt + 1 < self.attempts:
                await asyncio.sleep(_BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)])
        raise Unavailable(f"no server answered {path}: {last}")


def _checked(answer: httpx.Response, path: str) -> httpx.Response:
    if answer.status_code < 400:
        return answer
    message = _message(answer)
    if answer.status_code == 401:
        raise NodeRefused(message)
    if answer.status_code == 409 and "/runs/" in path:
        run_id = path.split("/")[3]
        raise LeaseLost(run_id, 0, message)
    raise GanglineError(f"the server refused {path} (HTTP {answer.status_code}): {message}")


def _message(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:300] or f"HTTP {answer.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("message")) if isinstance(error, dict) else str(body)[:300]
