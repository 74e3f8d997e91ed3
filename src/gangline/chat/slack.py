"""Slack, on slack_sdk: Socket Mode or the Events API in, the Web API out; answers in threads, buttons for permissions.

Socket Mode (the default) needs no public URL: ``apps.connections.open`` (the app token) gives a
WebSocket on which Slack pushes envelopes; each is acked with its ``envelope_id`` as soon as it is
read (Slack wants that within 3 s), and what it brings is handed to the door by a worker of its
own, so a slow command never delays an ack. In events mode Slack POSTs to ``listen`` instead:
events, interactivity and slash commands all on ``/slack/events``, each checked against the
signing secret (``X-Slack-Signature``, v0) before it is read, and refused when its timestamp is
older than 5 minutes.

A person's message is known by ``<channel>:<ts>`` (``:<thread_ts>`` after it in a thread): the
same for Slack's retries of one event and for the ``message`` and ``app_mention`` events of one
message, so the door takes it up once; and the answer goes into that thread (in a direct
conversation, outside a thread, it simply follows). A press of a permission request's button is
``<channel>:click-<action_ts>:<notice ts>``, a slash command ``<channel>:slash-<trigger_id>``.
gangline's own messages are ``<channel>:<ts>``: what ``edit`` takes (``chat.update``), and what a
reply in a notice's thread names. Messages of bots, the bot's own included, are never orders.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, SectionBlock
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gangline.chat.inbound import Inbound, body
from gangline.chat.transport import Hear, MessageRefused, Outgoing, Said, TransportDown, secret_from
from gangline.project.chatconfig import SlackSettings
from gangline.project.paths import ProjectPaths

log = logging.getLogger(__name__)

CALL_S = 10.0  # one Web API call
CONNECT_S = 15.0  # opening the Socket Mode WebSocket
PING_S = 10.0  # a Socket Mode connection that does not answer a ping within half this is lost
EVENTS_PATH = "/slack/events"  # events mode: the Request URL of events, interactivity and slash commands
SECTION_MAX = 3000  # Slack's limit on a section block's text
# A slash command's ack: in_channel, without text, shows the person's command in the channel, so the
# answer that follows (a message of its own) answers something everyone saw.
SLASH_ACK = {"response_type": "in_channel"}
_TS = re.compile(r"\d+\.\d+")
_ANSWER = re.compile(r"(allow|deny|always) [0-9a-f]{16}")
_BUTTONS = (("allow", "Allow", "primary"), ("deny", "Deny", "danger"), ("always", "Always allow", None))
_SAID_SUBTYPES = (None, "thread_broadcast", "file_share")  # the rest are edits, joins, deletions, bots
_DOWN = frozenset({"ratelimited", "fatal_error", "internal_error", "service_unavailable", "request_timeout",
                   "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"})  # fmt: skip


class Malformed(Exception):
    """A payload without the fields its type must have."""


@dataclass(frozen=True)
class Bot:
    """Who the bot token is (``auth.test``): its messages are echoes, its mention names it."""

    user_id: str
    name: str


class SlackTransport:
    """One Slack app in one workspace: hears its channels, DMs, mentions, buttons and ``/gangline``; posts answers."""

    listens = True
    edits = True

    def __init__(self, settings: SlackSettings, where: str, paths: ProjectPaths, env: Mapping[str, str]) -> None:
        self.settings = settings
        token = secret_from(env, settings.bot_token_env, f"{where}.bot_token_env", "the bot's token (xoxb-...)")
        self.web = AsyncWebClient(token=token, base_url=settings.api_url, timeout=int(CALL_S))
        self._app_token: str | None = None
        self._verifier: SignatureVerifier | None = None
        self.inbound: Inbound | None = None  # events mode: the server Slack POSTs to
        if settings.mode == "socket":
            assert settings.app_token_env is not None  # the table requires it in this mode
            self._app_token = secret_from(env, settings.app_token_env, f"{where}.app_token_env",
                                          "the app-level token (xapp-...)")  # fmt: skip
        else:
            assert settings.signing_secret_env is not None
            secret = secret_from(env, settings.signing_secret_env, f"{where}.signing_secret_env",
                                 "the app's signing secret")  # fmt: skip
            self._verifier = SignatureVerifier(secret)
            self.inbound = Inbound(settings.listen, [Route(EVENTS_PATH, self._request, methods=["POST"])])
        self._rooms = frozenset(room.id for room in settings.rooms)
        self._bot: Bot | None = None
        self._heard: asyncio.Queue[Said] = asyncio.Queue()  # acked, not yet handed to the door

    @property
    def names(self) -> tuple[str, ...]:
        return (f"<@{self._bot.user_id}>", self._bot.name) if self._bot else ()

    # --- listening -------------------------------------------------------------------------

    async def listen(self, hear: Hear) -> None:
        answer = await self._call(self.web.auth_test(), "check the bot token")
        user, name = answer.get("user_id"), answer.get("user")
        if not isinstance(user, str) or not isinstance(name, str):
            raise TransportDown(f"auth.test named no bot user: {answer.data!r}"[:500])
        self._bot = Bot(user, name)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._serve() if self.inbound else self._socket())
                await self._hand_over(hear)
        except* TransportDown as lost:
            raise lost.exceptions[0] from None

    async def _serve(self) -> None:
        assert self.inbound is not None
        try:
            await self.inbound.run()
        except OSError as err:  # the address is taken: perhaps by a gangline that is still stopping
            raise TransportDown(f"cannot serve the Events API: {err}") from err

    async def _hand_over(self, hear: Hear) -> None:
        while True:
            said = await self._heard.get()
            try:
                await hear(said)
            except Exception:  # one message's failure must not stop the next
                about = self._about("chat_failed") | {"room": said.room, "message_id": said.message_id}
                log.exception("chat message failed", extra=about)

    async def _socket(self) -> None:
        assert self._app_token is not None
        async with aiohttp.ClientSession() as session:
            while True:  # Slack asks for a new connection now and then (a "disconnect" envelope)
                opened = await self._call(self.web.apps_connections_open(app_token=self._app_token), "open a socket")
                try:
                    async with asyncio.timeout(CONNECT_S):
                        socket = await session.ws_connect(str(opened.get("url")), heartbeat=PING_S)
                    async with socket:
                        await self._read(socket)
                except (aiohttp.ClientError, OSError, TimeoutError) as err:
                    raise TransportDown(f"lost Slack's Socket Mode connection: {err!r}") from err

    async def _read(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        """Ack and take every envelope until Slack says to reconnect; TransportDown when the socket closes."""
        async for frame in socket:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                continue
            try:
                envelope = _object(json.loads(frame.data))
            except (ValueError, Malformed):
                log.warning("a Socket Mode frame that is no envelope", extra=self._about("slack_malformed"))
                continue
            kind = envelope.get("type")
            if kind == "disconnect":
                return
            envelope_id = envelope.get("envelope_id")
            if not isinstance(envelope_id, str):
                continue  # "hello": nothing to ack
            ack: dict[str, object] = {"envelope_id": envelope_id}
            await socket.send_json(ack | {"payload": SLASH_ACK} if kind == "slash_commands" else ack)
            try:
                self._take(str(kind), _object(envelope.get("payload")))
            except Malformed as err:
                log.warning("a Slack payload without what it must hold: %s", err, extra=self._about("slack_malformed"))
        raise TransportDown(f"Slack closed the Socket Mode connection ({socket.close_code})")

    async def _request(self, request: Request) -> Response:
        """Events mode: one event, interaction or slash command, checked before it is read; acked at once."""
        assert self._verifier is not None
        raw = await body(request)
        stamp, signature = request.headers.get("X-Slack-Request-Timestamp"), request.headers.get("X-Slack-Signature")
        if stamp is None or not stamp.isdigit() or not _verified(self._verifier, raw, stamp, signature):
            log.warning("a Slack request that is not signed, or signed long ago", extra=self._about("slack_unsigned"))
            return Response("not signed by Slack, or signed over 5 minutes ago", status_code=401)
        try:
            kind, payload = _payload(raw, request.headers.get("Content-Type", ""))
            if kind == "url_verification":
                return PlainTextResponse(_str(payload, "challenge"))
            self._take(kind, payload)
        except Malformed as err:
            log.warning("a Slack payload without what it must hold: %s", err, extra=self._about("slack_malformed"))
            return Response(f"malformed: {err}", status_code=400)
        return JSONResponse(SLASH_ACK) if kind == "slash_commands" else Response(status_code=200)

    def _take(self, kind: str, payload: dict[str, Any]) -> None:
        """Queue what a person said, if the payload is one (Socket Mode's envelope types name the kinds)."""
        assert self._bot is not None  # listen asked auth.test before anything could arrive
        said = None
        if kind == "events_api":
            said = _said_of_event(_object(payload.get("event")), self._rooms, self._bot)
        elif kind == "interactive":
            said = _said_of_click(payload)
        elif kind == "slash_commands":
            said = _said_of_command(payload)
        if said is not None:
            self._heard.put_nowait(said)

    def _about(self, action: str) -> dict[str, object]:
        return {"action": action, "transport": self.settings.key}

    # --- sending ---------------------------------------------------------------------------

    async def send(self, message: Outgoing) -> str:
        thread = _thread_of(message.reply_to) if message.reply_to else None
        blocks = _buttons(message.text, message.request_id) if message.request_id else None
        posting = self.web.chat_postMessage(
            channel=message.room, text=_escaped(message.text), thread_ts=thread, blocks=blocks,
            mrkdwn=False, unfurl_links=False, unfurl_media=False,
        )  # fmt: skip
        sent = await self._call(posting, f"post to {message.room}")
        return f"{sent['channel']}:{sent['ts']}"

    async def edit(self, room: str, message_id: str, text: str) -> None:
        ts = message_id.split(":")[1]
        await self._call(self.web.chat_update(channel=room, ts=ts, text=_escaped(text)), f"update {message_id}")

    async def _call(self, call: Awaitable[AsyncSlackResponse], doing: str) -> AsyncSlackResponse:
        """One Web API call; TransportDown when Slack is unreachable or busy, MessageRefused when it says no."""
        try:
            return await call
        except SlackApiError as err:
            data = err.response.data
            code = data.get("error") if isinstance(data, dict) else None
            why = f"Slack refused to {doing}: {code or err.response.status_code}"
            if code in _DOWN or err.response.status_code == 429 or err.response.status_code >= 500:
                raise TransportDown(why) from err
            raise MessageRefused(why) from err
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            raise TransportDown(f"cannot reach Slack to {doing}: {err!r}") from err

    async def check(self) -> str:
        answer = await self._call(self.web.auth_test(), "check the bot token")  # read-only
        who = f"{answer.get('user')} ({answer.get('user_id')})"
        return f"signed in as {who} in {answer.get('team')}; {self.settings.mode} mode"

    async def close(self) -> None:
        pass  # the Web API client opens a session per call; the socket and the server are listen's and end with it


def _verified(verifier: SignatureVerifier, raw: bytes, stamp: str, signature: str | None) -> bool:
    try:
        return verifier.is_valid(raw, stamp, signature)
    except UnicodeDecodeError:  # the verifier reads the body as text: one that is not UTF-8 is not Slack's
        return False


# --- Slack's payloads, parsed -------------------------------------------------------------


def _payload(raw: bytes, content_type: str) -> tuple[str, dict[str, Any]]:
    """An Events API request's kind (named as Socket Mode's envelope types) and its payload."""
    try:
        if content_type.startswith("application/json"):
            callback = _object(json.loads(raw))
            kind = callback.get("type")
            return ("events_api" if kind == "event_callback" else str(kind)), callback
        fields = dict(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True))
    except ValueError as err:  # not JSON, not UTF-8, not a form
        raise Malformed(f"an unreadable body: {err}") from None
    if "payload" in fields:  # interactivity: a form with the JSON in one field
        return "interactive", _payload(fields["payload"].encode(), "application/json")[1]
    if "command" in fields:
        return "slash_commands", fields
    raise Malformed("neither an event, an interaction nor a slash command")


def _said_of_event(event: dict[str, Any], rooms: frozenset[str], bot: Bot) -> Said | None:
    """A person's message in a room, a DM, or a mention of the bot; None for anything else (the bot's own)."""
    kind = event.get("type")
    if kind not in ("message", "app_mention") or event.get("subtype") not in _SAID_SUBTYPES or event.get("bot_id"):
        return None
    channel, user, ts = _str(event, "channel"), _str(event, "user"), _str(event, "ts")
    direct = event.get("channel_type") == "im"
    if user == bot.user_id or (kind == "message" and not direct and channel not in rooms):
        return None
    thread = _text(event, "thread_ts")
    in_thread = thread not in ("", ts)
    message_id = f"{channel}:{ts}:{thread}" if in_thread else f"{channel}:{ts}"
    text = _unescaped(_text(event, "text"))
    return Said(channel, user, text, message_id, f"{channel}:{thread}" if in_thread else None, direct)


def _said_of_click(payload: dict[str, Any]) -> Said | None:
    """A press of one of a permission request's buttons: its answer, said directly, in the notice's thread."""
    if payload.get("type") != "block_actions":
        return None
    user, channel = _str(_object(payload.get("user")), "id"), _str(_object(payload.get("channel")), "id")
    notice = _str(_object(payload.get("message")), "ts")
    actions = payload.get("actions")
    for action in actions if isinstance(actions, list) else []:
        value = action.get("value") if isinstance(action, dict) else None
        if isinstance(value, str) and _ANSWER.fullmatch(value) and str(action.get("action_id")).startswith("gangline-"):
            clicked = f"{channel}:click-{_str(action, 'action_ts')}:{notice}"
            return Said(channel, user, value, clicked, f"{channel}:{notice}", direct=True)
    return None


def _said_of_command(fields: dict[str, Any]) -> Said:
    """``/gangline <text>``: the text, said directly in the channel it was typed in."""
    channel, trigger = _str(fields, "channel_id"), _str(fields, "trigger_id")
    return Said(channel, _str(fields, "user_id"), _text(fields, "text"), f"{channel}:slash-{trigger}", direct=True)


def _object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"expected an object, got {type(value).__name__}")
    return value


def _text(found: Mapping[str, Any], key: str) -> str:
    value = found.get(key)
    return value if isinstance(value, str) else ""


def _str(found: Mapping[str, Any], key: str) -> str:
    value = found.get(key)
    if not isinstance(value, str) or not value:
        raise Malformed(f"expected {key!r} to be a string")
    return value


# --- what gangline posts ------------------------------------------------------------------


def _thread_of(message_id: str) -> str | None:
    """The thread an answer to ``message_id`` goes in: its thread, or itself in a channel.

    None (the answer stands on its own) for a slash command and for a message in a direct
    conversation that is not in a thread (Slack's ids for those start with D): a chat, not a channel.
    """
    parts = message_id.split(":")
    if len(parts) > 2:
        return parts[2]
    in_channel = len(parts) == 2 and _TS.fullmatch(parts[1]) is not None and not parts[0].startswith("D")
    return parts[1] if in_channel else None


def _buttons(text: str, request_id: str) -> list[Block]:
    """The notice's text and Allow / Deny / Always allow, each carrying the answer it gives."""
    buttons = [ButtonElement(text=label, action_id=f"gangline-{word}", value=f"{word} {request_id}", style=style)
               for word, label, style in _BUTTONS]  # fmt: skip
    section = SectionBlock(text={"type": "plain_text", "text": text[:SECTION_MAX]})
    return [section, ActionsBlock(block_id=f"gangline-{request_id}", elements=buttons)]


def _escaped(text: str) -> str:
    """Plain text as Slack wants it: & < > escaped, so an item title cannot ping @channel or fake a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _unescaped(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
