"""Discord on loopback, for the Discord transport's tests: its REST API and its gateway, as hikari speaks to them.

One ``aiohttp.web`` server on 127.0.0.1 plays both halves of Discord. REST under ``/api/v10``:
``GET /gateway/bot`` (the gateway is this same server, ``ws://127.0.0.1:PORT/gateway``),
``GET /users/@me``, ``POST``/``PATCH /channels/{id}/messages[/{id}]``, ``PUT
/applications/{id}[/guilds/{id}]/commands``, ``POST /interactions/{id}/{token}/callback`` and the
interaction webhooks (``POST /webhooks/{app}/{token}``, ``PATCH .../messages/@original``). Every
call but the interaction ones needs ``Authorization: Bot <token>`` (401 otherwise); an unknown
channel is 404 (code 10003), a channel the bot may not see 403 (50001), more than 2000
characters 400 (50035); ``fail`` scripts the next answers to message sends (a 429 carries
``retry_after``, as Discord's does).

The gateway speaks v10 JSON: HELLO, IDENTIFY -> READY, HEARTBEAT -> HEARTBEAT_ACK, RESUME ->
INVALID_SESSION (a fresh session), dispatches with sequence numbers. With ``compress=zlib-stream``
in the URL's query (what hikari asks for unless zstd is installed) every payload goes as a BINARY
frame of one shared zlib stream ending in a sync flush, as Discord sends them; without it, as TEXT.

The person's side: ``say`` (MESSAGE_CREATE), ``slash`` and ``press`` (INTERACTION_CREATE over the
gateway), ``call_endpoint`` (the same interaction POSTed to gangline's HTTP endpoint, signed with
Ed25519 as Discord signs it). What gangline sent is kept in ``sent`` and ``callbacks``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import socket
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from aiohttp import WSMsgType, web
from nacl.signing import SigningKey

from kits.loopback import Changes, on_loopback

API = "/api/v10"
HEARTBEAT_MS = 1000  # short, so the tests see hikari's heartbeats answered
LIMIT = 2000
_SNOWFLAKES = itertools.count(1_290_000_000_000_000_001)


def snowflake() -> str:
    return str(next(_SNOWFLAKES))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def user(user_id: str, name: str, bot: bool = False) -> dict[str, Any]:
    return {"id": user_id, "username": name, "discriminator": "0", "global_name": name, "avatar": None, "bot": bot}


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Sent:
    """A message gangline's bot sent: to a channel, or as an interaction's response or followup."""

    id: str
    channel_id: str
    content: str
    reply_to: str | None  # message_reference.message_id, as Discord kept it
    components: list[dict[str, Any]]
    via: str  # "channel", "original" (a deferred slash command's response), "followup"
    interaction: str | None = None
    edits: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.edits[-1] if self.edits else self.content

    @property
    def buttons(self) -> list[str]:
        return [b["custom_id"] for row in self.components for b in row.get("components", ())]


@dataclass(frozen=True)
class Callback:
    """An interaction response (its ack) gangline made through ``/interactions/{id}/{token}/callback``."""

    interaction_id: str
    type: int


@dataclass
class _Interaction:
    id: str
    token: str
    channel_id: str
    original: Sent | None = None


class _Session:
    """One gateway connection: its compressor (one zlib stream for the connection's life) and sequence."""

    def __init__(self, ws: web.WebSocketResponse, zlib_stream: bool) -> None:
        self.ws = ws
        self.deflate = zlib.compressobj() if zlib_stream else None
        self.seq = 0
        self.ready = False
        self._lock = asyncio.Lock()  # compressed frames must go out in the order they were compressed

    async def send(self, op: int, d: Any, t: str | None = None) -> None:
        async with self._lock:
            seq = None
            if op == 0:
                self.seq += 1
                seq = self.seq
            raw = json.dumps({"op": op, "d": d, "s": seq, "t": t}).encode()
            if self.deflate is None:
                await self.ws.send_str(raw.decode())
            else:
                await self.ws.send_bytes(self.deflate.compress(raw) + self.deflate.flush(zlib.Z_SYNC_FLUSH))


class FakeDiscord:
    """Discord's REST API and gateway for one bot in one guild; the person's messages and clicks."""

    def __init__(self, bot_name: str = "gangline", signing_key: SigningKey | None = None) -> None:
        self.bot_id, self.application_id, self.guild_id = snowflake(), snowflake(), snowflake()
        self.bot = user(self.bot_id, bot_name, bot=True)
        self.token = f"{base64.b64encode(self.bot_id.encode()).decode().rstrip('=')}.GhXmQa.fake-discord-token"
        self.signing_key = signing_key
        self.channels: dict[str, str | None] = {}  # channel id -> its guild (None: a DM)
        self.forbidden: set[str] = set()
        self.sent: list[Sent] = []
        self.callbacks: list[Callback] = []
        self.commands: list[tuple[str, list[dict[str, Any]]]] = []  # (path, body) of each bulk overwrite
        self.identified: list[dict[str, Any]] = []  # IDENTIFY payloads (intents, ...)
        self.compressions: list[str | None] = []  # each connection's ``compress`` query
        self.heartbeats = 0
        self.requests: list[str] = []  # "METHOD path" of every REST call
        self.url = ""  # the REST base, .../api/v10
        self._fail: deque[int] = deque()
        self._interactions: dict[str, _Interaction] = {}
        self._sessions: list[_Session] = []
        self._changes = Changes()

    def channel(self, dm: bool = False) -> str:
        channel_id = snowflake()
        self.channels[channel_id] = None if dm else self.guild_id
        return channel_id

    def fail(self, *statuses: int) -> None:
        """The next message sends are answered with these statuses, one each."""
        self._fail.extend(statuses)

    # --- waiting ------------------------------------------------------------------------------

    async def _notify(self) -> None:
        await self._changes.tell()

    async def wait_for(self, ready: Callable[[], bool], timeout_s: float = 20.0) -> None:
        await self._changes.wait_for(ready, timeout_s)

    async def connected(self) -> None:
        """Until the bot has identified on the gateway (and so hears what is said)."""
        await self.wait_for(lambda: any(s.ready for s in self._sessions))

    async def wait_sent(self, matches: Callable[[Sent], bool], timeout_s: float = 20.0) -> Sent:
        await self.wait_for(lambda: any(matches(s) for s in self.sent), timeout_s)
        return next(s for s in self.sent if matches(s))

    async def answer_to(self, said: str, timeout_s: float = 20.0) -> Sent:
        """gangline's answer to a message (a reply to it) or an interaction (its response or followup)."""
        return await self.wait_sent(lambda s: said in (s.reply_to, s.interaction), timeout_s)

    # --- the person ---------------------------------------------------------------------------

    def message(self, channel_id: str, author: dict[str, Any], content: str, **extra: Any) -> dict[str, Any]:
        """A message object as Discord sends it (MESSAGE_CREATE, a component interaction's ``message``)."""
        payload = {"id": extra.pop("id", snowflake()), "channel_id": channel_id, "author": author,
                   "content": content, "timestamp": _now(), "edited_timestamp": None, "tts": False,
                   "mention_everyone": False, "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
                   "pinned": False, "type": 0, "flags": 0, "components": []}  # fmt: skip
        if self.channels.get(channel_id) is not None:
            payload["guild_id"] = self.channels[channel_id]
        return payload | extra

    async def say(self, channel_id: str, author: dict[str, Any], content: str, *, mention: bool = False,
                  reply_to: str | None = None, message_id: str | None = None) -> str:  # fmt: skip
        """The person writes; ``mention`` puts the bot's mention in front. The message's id."""
        if mention:
            content = f"<@{self.bot_id}> {content}"
        extra: dict[str, Any] = {"id": message_id or snowflake()}
        if mention or reply_to:
            extra["mentions"] = [self.bot]  # a reply to the bot pings it, as a mention does
        if reply_to:
            extra |= {"type": 19, "message_reference": {"type": 0, "message_id": reply_to, "channel_id": channel_id}}
        await self.dispatch("MESSAGE_CREATE", self.message(channel_id, author, content, **extra))
        return str(extra["id"])

    def interaction(self, kind: int, channel_id: str, person: dict[str, Any], data: dict[str, Any],
                    message: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        """An interaction object as Discord sends it (over the gateway or to the HTTP endpoint)."""
        iid, token = snowflake(), f"aW50ZXJhY3Rpb246{snowflake()}"
        guild = self.channels.get(channel_id)
        payload: dict[str, Any] = {
            "id": iid, "application_id": self.application_id, "type": kind, "token": token, "version": 1,
            "data": data, "channel_id": channel_id, "locale": "en-US", "app_permissions": "0", "entitlements": [],
            "attachment_size_limit": 8388608,
            "channel": {"id": channel_id, "type": 1 if guild is None else 0, "name": "general", "permissions": "0"},
        }  # fmt: skip
        if guild is None:
            payload |= {"user": person, "context": 1, "authorizing_integration_owners": {"0": self.bot_id}}
        else:
            member = {"user": person, "roles": [], "joined_at": _now(), "permissions": "0", "flags": 0}
            payload |= {"guild_id": guild, "member": member, "guild_locale": "en-US", "context": 0,
                        "authorizing_integration_owners": {"0": guild}}  # fmt: skip
        if message is not None:
            payload["message"] = message
        self._interactions[iid] = _Interaction(iid, token, channel_id)
        return payload

    def slash_payload(self, channel_id: str, person: dict[str, Any], command: str) -> dict[str, Any]:
        data = {"id": snowflake(), "name": "gangline", "type": 1,
                "options": [{"name": "command", "type": 3, "value": command}]}  # fmt: skip
        return self.interaction(2, channel_id, person, data)

    def press_payload(self, sent: Sent, person: dict[str, Any], custom_id: str) -> dict[str, Any]:
        message = self.message(sent.channel_id, self.bot, sent.text, id=sent.id, components=sent.components)
        data = {"custom_id": custom_id, "component_type": 2}
        return self.interaction(3, sent.channel_id, person, data, message)

    async def slash(self, channel_id: str, person: dict[str, Any], command: str) -> str:
        """``/gangline command:<command>``, over the gateway; the interaction's id."""
        payload = self.slash_payload(channel_id, person, command)
        await self.dispatch("INTERACTION_CREATE", payload)
        return str(payload["id"])

    async def press(self, sent: Sent, person: dict[str, Any], custom_id: str) -> str:
        """The person clicks a button on a message the bot sent; the interaction's id."""
        assert custom_id in sent.buttons, f"{custom_id} is not a button of {sent.buttons}"
        payload = self.press_payload(sent, person, custom_id)
        await self.dispatch("INTERACTION_CREATE", payload)
        return str(payload["id"])

    async def call_endpoint(self, url: str, body: bytes, *, stamp: str | None = None,
                            key: SigningKey | None = None, signed: bool = True) -> httpx.Response:  # fmt: skip
        """POST ``body`` to an interactions endpoint as Discord does: Ed25519 over timestamp + body."""
        stamp = stamp or str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": "Discord-Interactions/1.0"}
        signer = key or self.signing_key
        if signed and signer is not None:
            signature = signer.sign(stamp.encode() + body).signature.hex()
            headers |= {"X-Signature-Ed25519": signature, "X-Signature-Timestamp": stamp}
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(url, content=body, headers=headers)

    async def dispatch(self, name: str, data: dict[str, Any]) -> None:
        await self.connected()
        for session in [s for s in self._sessions if s.ready]:
            await session.send(0, data, name)

    # --- the gateway --------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        compress = request.query.get("compress")
        self.compressions.append(compress)
        session = _Session(ws, compress == "zlib-stream")
        self._sessions.append(session)
        try:
            await session.send(10, {"heartbeat_interval": HEARTBEAT_MS})
            async for frame in ws:
                if frame.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                    break
                await self._op(session, json.loads(frame.data))
        finally:
            self._sessions.remove(session)
            await self._notify()
        return ws

    async def _op(self, session: _Session, payload: dict[str, Any]) -> None:
        op, d = payload["op"], payload.get("d")
        if op == 1:
            self.heartbeats += 1
            await session.send(11, None)
        elif op == 2:
            if d["token"] != self.token:
                await session.ws.close(code=4004, message=b"Authentication failed.")
                return
            self.identified.append(d)
            me = self.bot | {"mfa_enabled": False, "flags": 0, "verified": True}
            application = {"id": self.application_id, "flags": 0}
            ready = {"v": 10, "user": me, "guilds": [], "session_id": snowflake(), "resume_gateway_url": self._ws_url(),
                     "shard": d.get("shard", [0, 1]), "application": application}  # fmt: skip
            await session.send(0, ready, "READY")
            session.ready = True
            await self._notify()
        elif op == 6:
            await session.send(9, False)  # no session survives here: identify afresh

    def _ws_url(self) -> str:
        return self.url.removesuffix(API).replace("http://", "ws://") + "/gateway"

    # --- REST ---------------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path.removeprefix(API)}")
        open_route = request.path.startswith((f"{API}/interactions/", f"{API}/webhooks/", "/gateway"))
        if not open_route and request.headers.get("Authorization") != f"Bot {self.token}":
            return _error(401, 0, "401: Unauthorized")
        response: web.StreamResponse = await handler(request)
        return response

    async def _gateway_bot(self, _request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}
        return web.json_response({"url": self._ws_url(), "shards": 1, "session_start_limit": limit})

    async def _me(self, _request: web.Request) -> web.Response:
        return web.json_response(self.bot | {"mfa_enabled": False, "flags": 0, "verified": True})

    async def _create(self, request: web.Request) -> web.Response:
        channel_id = request.match_info["channel"]
        if self._fail:
            return _scripted(self._fail.popleft())
        if channel_id not in self.channels:
            return _error(404, 10003, "Unknown Channel")
        if channel_id in self.forbidden:
            return _error(403, 50001, "Missing Access")
        body = await request.json()
        if len(body.get("content") or "") > LIMIT:
            return _error(400, 50035, "Invalid Form Body: content: Must be 2000 or fewer in length.")
        reference = (body.get("message_reference") or {}).get("message_id")
        sent = Sent(snowflake(), channel_id, body.get("content") or "", reference, _numbered(body.get("components")),
                    "channel")  # fmt: skip
        return await self._keep(sent)

    async def _keep(self, sent: Sent) -> web.Response:
        self.sent.append(sent)
        await self._notify()
        return web.json_response(self._bot_message(sent))

    def _bot_message(self, sent: Sent) -> dict[str, Any]:
        extra: dict[str, Any] = {"id": sent.id, "components": sent.components}
        if sent.reply_to:
            extra["message_reference"] = {"type": 0, "message_id": sent.reply_to, "channel_id": sent.channel_id}
        return self.message(sent.channel_id, self.bot, sent.text, **extra)

    async def _edit(self, request: web.Request) -> web.Response:
        found = next((s for s in self.sent if s.id == request.match_info["message"] and s.via == "channel"), None)
        if found is None:
            return _error(404, 10008, "Unknown Message")
        found.edits.append((await request.json())["content"])
        await self._notify()
        return web.json_response(self._bot_message(found))

    async def _commands(self, request: web.Request) -> web.Response:
        if request.match_info["app"] != self.application_id:
            return _error(403, 50001, "Missing Access")
        body = await request.json()
        self.commands.append((request.path.removeprefix(API), body))
        guild = request.match_info.get("guild")
        made = [c | {"id": snowflake(), "application_id": self.application_id, "version": snowflake(),
                     "default_member_permissions": None, "type": c.get("type", 1)}
                | ({"guild_id": guild} if guild else {}) for c in body]  # fmt: skip
        await self._notify()
        return web.json_response(made)

    async def _callback(self, request: web.Request) -> web.Response:
        found = self._interactions.get(request.match_info["interaction"])
        if found is None or found.token != request.match_info["token"]:
            return _error(404, 10062, "Unknown interaction")
        body = await request.json()
        self.callbacks.append(Callback(found.id, int(body["type"])))
        await self._notify()
        return web.json_response({"interaction": {"id": found.id, "type": 2}, "resource": {"type": body["type"]}})

    def _by_token(self, request: web.Request) -> _Interaction | None:
        if request.match_info["app"] != self.application_id:
            return None
        return next((i for i in self._interactions.values() if i.token == request.match_info["token"]), None)

    async def _original(self, request: web.Request) -> web.Response:
        found = self._by_token(request)
        if found is None:
            return _error(404, 10015, "Unknown Webhook")
        body = await request.json()
        if found.original is None:
            found.original = Sent(snowflake(), found.channel_id, body.get("content") or "", None, [], "original",
                                  found.id)  # fmt: skip
            self.sent.append(found.original)
        else:
            found.original.edits.append(body.get("content") or "")
        await self._notify()
        return web.json_response(self._bot_message(found.original))

    async def _followup(self, request: web.Request) -> web.Response:
        found = self._by_token(request)
        if found is None:
            return _error(404, 10015, "Unknown Webhook")
        body = await request.json()
        return await self._keep(Sent(snowflake(), found.channel_id, body.get("content") or "", None,
                                     _numbered(body.get("components")), "followup", found.id))  # fmt: skip

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get(f"{API}/gateway/bot", self._gateway_bot)
        app.router.add_get(f"{API}/users/@me", self._me)
        app.router.add_post(API + "/channels/{channel}/messages", self._create)
        app.router.add_patch(API + "/channels/{channel}/messages/{message}", self._edit)
        app.router.add_put(API + "/applications/{app}/commands", self._commands)
        app.router.add_put(API + "/applications/{app}/guilds/{guild}/commands", self._commands)
        app.router.add_post(API + "/interactions/{interaction}/{token}/callback", self._callback)
        app.router.add_patch(API + "/webhooks/{app}/{token}/messages/@original", self._original)
        app.router.add_post(API + "/webhooks/{app}/{token}", self._followup)
        return app

    async def close_gateway(self) -> None:
        for session in list(self._sessions):
            await session.ws.close(code=1001, message=b"going away")


def _numbered(components: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The components as Discord keeps them: each with its numeric ``id``, in order, where the sender gave none."""
    ids = itertools.count(1)

    def number(component: dict[str, Any]) -> dict[str, Any]:
        numbered = component | {"id": component.get("id") or next(ids)}
        if "components" in component:
            numbered["components"] = [number(c) for c in component["components"]]
        return numbered

    return [number(c) for c in components or ()]


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"message": message, "code": code}, status=status)


def _scripted(status: int) -> web.Response:
    if status == 429:
        headers = {"X-RateLimit-Scope": "shared", "Retry-After": "65"}
        body = {"message": "You are being rate limited.", "retry_after": 64.5, "global": False}
        return web.json_response(body, status=429, headers=headers)
    return _error(status, 0, {500: "Internal Server Error", 502: "Bad Gateway"}.get(status, "refused"))


@asynccontextmanager
async def discord(bot_name: str = "gangline", signing_key: SigningKey | None = None) -> AsyncIterator[FakeDiscord]:
    """A fake Discord on a free port of 127.0.0.1 until the block ends."""
    fake = FakeDiscord(bot_name, signing_key)
    async with on_loopback(fake.app(), shutdown_timeout=1.0) as url:
        fake.url = f"{url}{API}"
        try:
            yield fake
        finally:
            with contextlib.suppress(Exception):
                await fake.close_gateway()
