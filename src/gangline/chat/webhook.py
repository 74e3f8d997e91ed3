"""An outgoing webhook: every notice POSTed as JSON to one URL, signed, for anything gangline has no transport for.

The body is ``{"transport", "room", "text", "key", "request_id", "sent_at"}``. With a secret
(``secret_env``) each request carries ``X-Gangline-Timestamp`` and ``X-Gangline-Signature-256:
sha256=<hex>``, an HMAC-SHA256 of ``"<timestamp>.<body>"``: a receiver checks both and refuses an
old timestamp, so a captured request cannot be replayed later. ``Idempotency-Key`` is the
message's outbox key: a request repeated after a crash or a timeout can be recognised.
A 2xx answer is delivery; 408, 425, 429 and 5xx (or no answer) mean try again; any other answer
(a 4xx, or a redirect, which is not followed: the notice goes where it was configured to or
nowhere) is a refusal for good. It only sends: nobody can give orders through it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Mapping

import httpx

from gangline.chat.transport import Hear, MessageRefused, Outgoing, TransportDown, secret_from
from gangline.project.chatconfig import WebhookSettings
from gangline.project.paths import ProjectPaths

TIMEOUT_S = 10.0
_RETRY_STATUSES = frozenset({408, 425, 429})


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The value of ``X-Gangline-Signature-256`` for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class WebhookTransport:
    listens = False
    edits = False
    names: tuple[str, ...] = ()

    def __init__(self, settings: WebhookSettings, where: str, paths: ProjectPaths, env: Mapping[str, str]) -> None:
        self.settings = settings
        self._secret = None
        if settings.secret_env is not None:
            self._secret = secret_from(env, settings.secret_env, f"{where}.secret_env", "the webhook's signing secret")
        self._client = httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False)

    async def listen(self, hear: Hear) -> None:
        raise NotImplementedError("a webhook only sends")  # never called: ``listens`` is False

    async def send(self, message: Outgoing) -> str:
        body = json.dumps({"transport": self.settings.key, "room": message.room, "text": message.text,
                           "key": message.key, "request_id": message.request_id,
                           "sent_at": time.time()}).encode()  # fmt: skip
        headers = {"Content-Type": "application/json", "User-Agent": "gangline"}
        if message.key:
            headers["Idempotency-Key"] = message.key
        if self._secret is not None:
            stamp = str(int(time.time()))
            headers |= {"X-Gangline-Timestamp": stamp, "X-Gangline-Signature-256": signature(self._secret, stamp, body)}
        try:
            answer = await self._client.post(self.settings.url, content=body, headers=headers)
        except httpx.HTTPError as err:
            raise TransportDown(f"{self.settings.url}: {err!r}") from err
        if answer.is_success:
            return message.key or answer.headers.get("X-Request-Id", "")
        why = f"{self.settings.url} answered {answer.status_code}: {answer.text[:200]}"
        if answer.status_code >= 500 or answer.status_code in _RETRY_STATUSES:
            raise TransportDown(why)
        raise MessageRefused(why)

    async def edit(self, room: str, message_id: str, text: str) -> None:
        await self.send(Outgoing(room, text))  # a webhook cannot change what it sent: it sends again

    async def check(self) -> str:
        # A test POST would be a notice nobody sent: only that something listens where the URL points.
        url = httpx.URL(self.settings.url)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            async with asyncio.timeout(TIMEOUT_S):
                _, writer = await asyncio.open_connection(url.host, port)
        except (OSError, TimeoutError) as err:
            raise TransportDown(f"nothing answers at {url.host}:{port}: {err!r}") from err
        writer.close()
        await writer.wait_closed()
        signed = "signed" if self._secret else "unsigned"
        return f"{url.host}:{port} accepts connections; notices go {signed}"

    async def close(self) -> None:
        await self._client.aclose()
