"""Slack on loopback, for the Slack transport's tests: the Web API methods gangline calls and a Socket Mode WebSocket.

A real HTTP server (``aiohttp.web`` on 127.0.0.1, a free port) that slack_sdk's ``AsyncWebClient``
reaches through its ``base_url``. It answers ``auth.test``, ``apps.connections.open`` (a WebSocket
URL on the same server), ``chat.postMessage`` and ``chat.update`` in Slack's shapes (``{"ok": true,
...}``, or ``{"ok": false, "error": "..."}``), checks the bearer token each method wants as Slack
does, refuses a post to a channel the bot is not in (``channel_not_found``) and, while
``rate_limited``, answers posts 429 ``ratelimited`` with ``Retry-After``. Every post and update is
kept (``posted``), every post attempt counted, so a test waits on what gangline said.

The test plays Slack pushing to the app: ``deliver`` sends an envelope (``events_api``,
``interactive``, ``slash_commands``, after the ``hello`` every connection gets) down the socket and
every ack is kept by envelope id; ``refresh`` asks the app to reconnect (``disconnect``), ``drop``
closes its connection unannounced. What is delivered while no connection is open waits for the
next, and what a connection took but never acked is delivered again on the next, as Slack retries.

The payload builders (``message``, ``callback``, ``click``, ``slash``) are Slack's documented
shapes; the Events API tests POST the same payloads, signed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from kits.loopback import Changes, on_loopback

BOT_TOKEN = "xoxb-0000-test-bot-token"
APP_TOKEN = "xapp-1-test-app-token"
BOT_USER = "U0GANGBOT"
BOT_ID = "B0GANGBOT"
BOT_NAME = "gangline"
TEAM = "T0FAKE"


@dataclass
class Posted:
    """One message the bot posted, and the texts ``chat.update`` gave it since."""

    channel: str
    ts: str
    text: str
    thread_ts: str | None
    blocks: list[dict[str, Any]]
    edits: list[str] = field(default_factory=list)

    @property
    def current(self) -> str:
        return self.edits[-1] if self.edits else self.text

    def button(self, action_id: str) -> dict[str, Any]:
        """The button of this message's blocks with ``action_id``."""
        elements = [e for block in self.blocks if block["type"] == "actions" for e in block["elements"]]
        return next(e for e in elements if e["action_id"] == action_id)


class FakeSlack:
    def __init__(self, channels: Collection[str]) -> None:
        self.channels = set(channels)  # where the bot is a member: a post elsewhere is channel_not_found
        self.url = ""  # the Web API's base URL, ending in /api/
        self.posted: list[Posted] = []
        self.post_attempts = 0  # chat.postMessage calls, refused ones included
        self.acks: dict[str, dict[str, Any]] = {}
        self.connections = 0
        self.rate_limited = False
        self._envelopes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._sockets: set[web.WebSocketResponse] = set()
        self._changes = Changes()
        self._counter = itertools.count(1)

    def next_ts(self) -> str:
        """A message timestamp as Slack writes them, later than every one before."""
        n = next(self._counter)
        return f"{1700000000 + n}.{n:06d}"

    # --- the Web API -------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        args: dict[str, Any] = await request.json() if request.content_type == "application/json" else {}
        if method == "apps.connections.open":
            if token != APP_TOKEN:
                return _error("invalid_auth")
            return _ok(url=f"{self.url.replace('http', 'ws', 1).removesuffix('/api/')}/link/?ticket={self.next_ts()}")
        if token != BOT_TOKEN:
            return _error("invalid_auth")
        if method == "auth.test":
            return _ok(url="https://fake.slack.com/", team="Fake", user=BOT_NAME, team_id=TEAM, user_id=BOT_USER,
                       bot_id=BOT_ID)  # fmt: skip
        if method == "chat.postMessage":
            return await self._post(args)
        if method == "chat.update":
            return await self._update(args)
        return _error("unknown_method")

    async def _post(self, args: dict[str, Any]) -> web.Response:
        self.post_attempts += 1
        await self._notify()
        if self.rate_limited:
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"})
        channel = args.get("channel")
        if channel not in self.channels:
            return _error("channel_not_found")
        posted = Posted(channel, self.next_ts(), args.get("text", ""), args.get("thread_ts"), args.get("blocks", []))
        self.posted.append(posted)
        await self._notify()
        shown = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": posted.text, "ts": posted.ts}
        return _ok(channel=channel, ts=posted.ts, message=shown)

    async def _update(self, args: dict[str, Any]) -> web.Response:
        found = [p for p in self.posted if p.channel == args.get("channel") and p.ts == args.get("ts")]
        if not found:
            return _error("message_not_found")
        found[0].edits.append(args.get("text", ""))
        await self._notify()
        return _ok(channel=found[0].channel, ts=found[0].ts, text=found[0].current)

    # --- Socket Mode -------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()  # answers the client's pings by itself
        await socket.prepare(request)
        self._sockets.add(socket)
        self.connections += 1
        unacked: dict[str, dict[str, Any]] = {}
        await socket.send_json({"type": "hello", "num_connections": 1, "debug_info": {"host": "fake"}})
        try:
            async with asyncio.TaskGroup() as tg:
                pushing = tg.create_task(self._push(socket, unacked))
                async for frame in socket:
                    if frame.type is WSMsgType.TEXT:
                        ack = json.loads(frame.data)
                        self.acks[ack["envelope_id"]] = ack
                        unacked.pop(ack["envelope_id"], None)
                        await self._notify()
                pushing.cancel()
        finally:
            self._sockets.discard(socket)
            for envelope in unacked.values():  # Slack tries again, on the next connection, what was not acked
                self.deliver(envelope["type"], envelope["payload"], envelope["retry_attempt"] + 1)
        return socket

    async def _push(self, socket: web.WebSocketResponse, unacked: dict[str, dict[str, Any]]) -> None:
        while True:
            envelope = await self._envelopes.get()
            if "envelope_id" in envelope:
                unacked[envelope["envelope_id"]] = envelope
            await socket.send_json(envelope)

    def deliver(self, kind: str, payload: dict[str, Any], retry_attempt: int = 0) -> str:
        """Push an envelope of ``kind`` to the app (now, or once it connects); its envelope id."""
        envelope_id = f"env-{next(self._counter)}"
        self._envelopes.put_nowait({"envelope_id": envelope_id, "type": kind, "payload": payload,
                                    "accepts_response_payload": kind != "events_api", "retry_attempt": retry_attempt,
                                    "retry_reason": "timeout" if retry_attempt else ""})  # fmt: skip
        return envelope_id

    def refresh(self) -> None:
        """Ask the app to connect again, as Slack does every few hours (a ``disconnect`` envelope)."""
        self._envelopes.put_nowait({"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "x"}})

    async def drop(self) -> None:
        """Close every open connection from Slack's side, without a word (a network failure, a Slack restart)."""
        for socket in list(self._sockets):
            await socket.close()

    def say(self, channel: str, user: str, text: str, *, direct: bool = False, mention: bool = False) -> str:
        """A person's message as a ``message`` event (and an ``app_mention`` too when it names the bot); its ts."""
        ts = self.next_ts()
        kinds = ("message", "app_mention") if mention else ("message",)
        for kind in kinds:
            event = message(channel, user, text, ts, kind=kind, channel_type="im" if direct else "channel")
            self.deliver("events_api", callback(event, f"Ev{next(self._counter):08d}"))
        return ts

    # --- waiting -----------------------------------------------------------------------------

    async def _notify(self) -> None:
        await self._changes.tell()

    async def wait_for(self, ready: Callable[[], bool], timeout_s: float = 20.0) -> None:
        await self._changes.wait_for(ready, timeout_s)

    async def wait_posted(self, matches: Callable[[Posted], bool], timeout_s: float = 20.0) -> Posted:
        """The first message the bot posted (or updated) that ``matches``, waiting for it (bounded)."""
        await self.wait_for(lambda: any(matches(p) for p in self.posted), timeout_s)
        return next(p for p in self.posted if matches(p))

    async def answer_to(self, ts: str, timeout_s: float = 20.0) -> Posted:
        """The bot's answer in the thread of the message ``ts``."""
        return await self.wait_posted(lambda p: p.thread_ts == ts, timeout_s)

    def answers_to(self, ts: str) -> list[Posted]:
        return [p for p in self.posted if p.thread_ts == ts]

    async def wait_acked(self, *envelope_ids: str, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        await self.wait_for(lambda: all(e in self.acks for e in envelope_ids), timeout_s)
        return [self.acks[e] for e in envelope_ids]


def _ok(**fields: Any) -> web.Response:
    return web.json_response({"ok": True, **fields})


def _error(code: str) -> web.Response:
    return web.json_response({"ok": False, "error": code})  # Slack says no with a 200


# --- Slack's payloads ---------------------------------------------------------------------------


def message(channel: str, user: str, text: str, ts: str, *, kind: str = "message", channel_type: str = "channel",
            thread_ts: str | None = None, **extra: Any) -> dict[str, Any]:  # fmt: skip
    """A ``message`` (or ``app_mention``) event."""
    event = {"type": kind, "channel": channel, "user": user, "text": text, "ts": ts, "event_ts": ts,
             "channel_type": channel_type, "team": TEAM, **extra}  # fmt: skip
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    if kind == "app_mention":
        event.pop("channel_type")  # app_mention events carry none
    return event


def callback(event: dict[str, Any], event_id: str) -> dict[str, Any]:
    """The Events API's wrapper around one event."""
    return {"token": "deprecated", "team_id": TEAM, "api_app_id": "A0GANG", "event": event, "type": "event_callback",
            "event_id": event_id, "event_time": int(float(event["ts"])), "authorizations": [
                {"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}]}  # fmt: skip


def click(notice: Posted, action_id: str, user: str, action_ts: str) -> dict[str, Any]:
    """A ``block_actions`` payload: ``user`` pressed the button ``action_id`` of ``notice``."""
    button = notice.button(action_id)
    action = {"type": "button", "action_id": action_id, "block_id": f"b-{action_id}", "text": button["text"],
              "value": button["value"], "action_ts": action_ts}  # fmt: skip
    return {"type": "block_actions", "user": {"id": user, "username": user.lower(), "team_id": TEAM},
            "api_app_id": "A0GANG", "trigger_id": f"trig-{action_ts}", "team": {"id": TEAM},
            "container": {"type": "message", "message_ts": notice.ts, "channel_id": notice.channel},
            "channel": {"id": notice.channel, "name": "gangline"},
            "message": {"type": "message", "ts": notice.ts, "text": notice.text, "bot_id": BOT_ID},
            "actions": [action]}  # fmt: skip


def slash(channel: str, user: str, text: str, trigger: str) -> dict[str, str]:
    """A slash command's fields (a form in the Events API, an object in Socket Mode)."""
    fields = {"token": "deprecated", "team_id": TEAM, "channel_id": channel, "channel_name": "gangline"}
    fields |= {"user_id": user, "user_name": user.lower(), "command": "/gangline", "text": text}
    return fields | {"api_app_id": "A0GANG", "response_url": "https://hooks.slack.invalid/1", "trigger_id": trigger}


@asynccontextmanager
async def fake_slack(channels: Collection[str]) -> AsyncIterator[FakeSlack]:
    """Slack on a free port of 127.0.0.1 until the block ends (its ``url`` is the Web API's base URL)."""
    slack = FakeSlack(channels)
    app = web.Application()
    app.router.add_post("/api/{method}", slack._api)
    app.router.add_get("/link/", slack._socket)
    async with on_loopback(app) as url:
        slack.url = f"{url}/api/"
        try:
            yield slack
        finally:
            with contextlib.suppress(ConnectionError):
                await slack.drop()
