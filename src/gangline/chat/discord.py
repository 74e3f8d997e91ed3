"""Discord, on hikari: the gateway brings messages and interactions, REST sends; a slash command, buttons, webhooks.

Messages come over hikari's gateway (``GatewayBot``): DMs, messages that mention the bot or reply
to a message, and every message in a configured room go to the door (none from a bot, its own
included, or a webhook), which decides what is for the bot. Without the privileged
message-content intent Discord gives a bot the text of DMs, mentions and replies only
(``message_content = true`` asks for all, for ambient rooms); a message without text is dropped.

With ``application_id`` set, ``/gangline command:<text>`` is registered at start (a bulk
overwrite: gangline owns the application's commands; in ``guild_id`` only when set). An
interaction (that command, or a click on a permission request's Allow / Deny / Always allow) is
acknowledged at once (deferred) and handed to the door as a direct message with its id; while its
token lives (15 minutes) the answer edits a command's deferred response or follows a click up,
after that (or a restart) it is a plain message in the channel.

With ``public_key`` set, ``POST /discord/interactions`` on ``listen`` takes interactions over HTTP
too: the Ed25519 signature over timestamp + raw body is checked before anything is read (401,
as Discord requires), a timestamp more than 5 minutes off is refused (401), PING gets PONG and
a body that is no interaction 400. The ack is the HTTP answer; the door hears it after.

Sends use hikari's REST client (``RESTApp``), apart from the gateway, so the outbox drains while
the gateway reconnects; over 2000 characters a message goes as several, split at line ends. 429
(a wait over ``MAX_RATE_LIMIT_S``), 5xx, 401 and no answer are down; any other 4xx is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import hikari
from hikari.impl import HTTPSettings, HTTPTimeoutSettings
from hikari.impl.rest import RESTClientImpl
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gangline.chat.inbound import Inbound, body
from gangline.chat.transport import Hear, MessageRefused, Outgoing, Said, TransportDown, secret_from
from gangline.core.errors import ConfigError
from gangline.project.chatconfig import DiscordSettings
from gangline.project.paths import ProjectPaths

log = logging.getLogger(__name__)

COMMAND = "gangline"
OPTION = "command"
PATH = "/discord/interactions"
LIMIT = 2000  # characters in one Discord message
START_S = 30.0  # the gateway's handshake (HELLO, IDENTIFY, READY) comes within this
CLOSE_S = 5.0
TIMEOUT_S = 15.0  # one REST call
MAX_RATE_LIMIT_S = 5.0  # hikari waits out a shorter 429 itself; a longer one is the courier's to back off from
TOKEN_S = 14 * 60.0  # an interaction's token answers it for 15 minutes: a margin for the send itself
STALE_S = 300  # a signed interaction stamped further off than this is refused: a replay
_BUTTONS: tuple[tuple[str, str, hikari.components.InteractiveButtonTypesT], ...] = (
    ("allow", "Allow", hikari.ButtonStyle.SUCCESS),
    ("deny", "Deny", hikari.ButtonStyle.DANGER),
    ("always", "Always allow", hikari.ButtonStyle.PRIMARY),
)
_INTENTS = hikari.Intents.GUILDS | hikari.Intents.GUILD_MESSAGES | hikari.Intents.DM_MESSAGES
_WHAT = "a Discord bot token"
_HTTP = HTTPSettings(timeouts=HTTPTimeoutSettings(total=TIMEOUT_S))
_Ack = hikari.ResponseType  # how an interaction is acknowledged: deferred, a message or an update to come


@dataclass(frozen=True)
class _Pending:
    """An interaction gangline acknowledged: its token answers it until ``until`` (monotonic)."""

    application_id: int
    token: str
    command: bool  # a command's deferred response is edited into the answer; a click's answer follows up
    until: float


class DiscordTransport:
    """One Discord bot: listens on the gateway (and the interactions endpoint) and sends through REST."""

    listens = True
    edits = True

    def __init__(self, settings: DiscordSettings, where: str, paths: ProjectPaths, env: Mapping[str, str]) -> None:
        self.settings = settings
        self._token = secret_from(env, settings.token_env, f"{where}.token_env", _WHAT)
        try:
            self._bot_id = str(hikari.applications.get_token_id(self._token))
        except ValueError:
            raise ConfigError(f"{where}.token_env", f"expected {settings.token_env} to hold {_WHAT}, "
                                                    "which starts with the bot's id in base64") from None  # fmt: skip
        self._rooms = {room.id for room in settings.rooms}
        self._verify = VerifyKey(bytes.fromhex(settings.public_key)) if settings.public_key else None
        self._name: str | None = None
        self._app: hikari.RESTApp | None = None
        self._rest: RESTClientImpl | None = None
        self._starting = asyncio.Lock()
        self._registered = False
        self._heard: asyncio.Queue[Said] = asyncio.Queue()
        self._pending: dict[str, _Pending] = {}

    @property
    def names(self) -> tuple[str, ...]:
        mentions = (f"<@{self._bot_id}>", f"<@!{self._bot_id}>")
        return (*mentions, self._name) if self._name else mentions

    async def _client(self) -> RESTClientImpl:
        async with self._starting:
            if self._rest is None:
                app = hikari.RESTApp(http_settings=_HTTP, max_rate_limit=MAX_RATE_LIMIT_S, max_retries=0,
                                     url=self.settings.api_url)  # fmt: skip
                await app.start()
                self._rest = app.acquire(self._token, hikari.TokenType.BOT)
                self._rest.start()
                self._app = app
            return self._rest

    # --- listening -------------------------------------------------------------------------

    async def listen(self, hear: Hear) -> None:
        rest = await self._client()
        await self._sign_in(rest)
        await self._register(rest)
        content = hikari.Intents.MESSAGE_CONTENT if self.settings.message_content else hikari.Intents.NONE
        bot = hikari.GatewayBot(self._token, banner=None, logs=None, suppress_optimization_warning=True,
                                intents=_INTENTS | content, http_settings=_HTTP, max_retries=0,
                                rest_url=self.settings.api_url)  # fmt: skip
        bot.subscribe(hikari.MessageCreateEvent, self._on_message)
        bot.subscribe(hikari.InteractionCreateEvent, self._on_interaction)
        try:
            async with asyncio.TaskGroup() as tg:
                if self._verify is not None:  # listening before the gateway is up: "ready" means both
                    inbound = Inbound(self.settings.listen, [Route(PATH, self._interaction_posted, methods=["POST"])])
                    tg.create_task(_serve(inbound))
                    await inbound.listening.wait()  # bounded by Inbound.run, which fails the group if it cannot bind
                await _start(bot)
                tg.create_task(_watch(bot))
                while True:
                    await self._hand(hear, await self._heard.get())
        except* TransportDown as down:
            raise down.exceptions[0] from None
        finally:
            with contextlib.suppress(TimeoutError, hikari.HikariError):
                async with asyncio.timeout(CLOSE_S):
                    if bot.is_alive:
                        await bot.close()

    async def _sign_in(self, rest: RESTClientImpl) -> hikari.OwnUser:
        try:
            me = await rest.fetch_my_user()
        except hikari.HTTPError as err:  # a token Discord refuses is down, too: the outbox waits until it is right
            raise TransportDown(f"{self.settings.api_url} did not let the bot sign in: {err}") from err
        self._name = me.username
        return me

    async def _register(self, rest: RESTClientImpl) -> None:
        if self.settings.application_id is None or self._registered:
            return
        option = hikari.CommandOption(type=hikari.OptionType.STRING, name=OPTION, is_required=True,
                                      description="What to tell gangline: status, ls, allow 3, help ...")  # fmt: skip
        command = rest.slash_command_builder(COMMAND, "Give gangline an order").add_option(option)
        guild = int(self.settings.guild_id) if self.settings.guild_id else hikari.UNDEFINED
        try:
            await rest.set_application_commands(int(self.settings.application_id), [command], guild=guild)
        except hikari.ClientHTTPResponseError as err:
            if err.status in (401, 429):
                raise TransportDown(f"cannot register /{COMMAND}: {err}") from err
            log.error("Discord refused the slash command; messages still work", extra={"action": "chat_register",
                      "transport": self.settings.key, "error": str(err)})  # fmt: skip
        except hikari.HTTPError as err:
            raise TransportDown(f"cannot register /{COMMAND}: {err}") from err
        self._registered = True

    async def _hand(self, hear: Hear, said: Said) -> None:
        try:
            await hear(said)
        except Exception:  # one message's failure must not stop the next
            log.exception("chat message failed", extra={"action": "chat_failed", "transport": self.settings.key,
                          "room": said.room, "message_id": said.message_id})  # fmt: skip

    async def _on_message(self, event: hikari.MessageCreateEvent) -> None:
        message = event.message
        if message.author.is_bot or message.webhook_id is not None or not message.content:
            return  # its own echoes, other bots (no loops), and what it may not read
        if message.type not in (hikari.MessageType.DEFAULT, hikari.MessageType.REPLY):
            return
        reference = message.message_reference
        reply_to = str(reference.id) if reference is not None and reference.id is not None else None
        mentioned = any(mention in message.content for mention in self.names[:2])
        if not (mentioned or reply_to or message.guild_id is None or str(message.channel_id) in self._rooms):
            return  # a channel gangline was not given, where nobody named it
        self._heard.put_nowait(Said(str(message.channel_id), str(message.author.id), message.content,
                                    str(message.id), reply_to, direct=message.guild_id is None))  # fmt: skip

    async def _on_interaction(self, event: hikari.InteractionCreateEvent) -> None:
        found = _said_of(event.interaction)
        if found is None:
            return
        said, ack = found
        interaction = event.interaction
        try:
            rest = await self._client()
            async with asyncio.timeout(TIMEOUT_S):
                await rest.create_interaction_response(interaction.id, interaction.token, ack)
        except (hikari.HTTPError, TimeoutError) as err:  # too late or not reached: the answer goes to the channel
            log.warning("could not acknowledge a Discord interaction", extra={"action": "chat_ack",
                        "transport": self.settings.key, "message_id": said.message_id, "error": str(err)})  # fmt: skip
        else:
            self._remember(interaction, ack)
        self._heard.put_nowait(said)

    def _remember(self, interaction: hikari.PartialInteraction, ack: hikari.ResponseType) -> None:
        now = time.monotonic()
        self._pending = {k: p for k, p in self._pending.items() if p.until > now}
        command = ack is hikari.ResponseType.DEFERRED_MESSAGE_CREATE
        self._pending[str(interaction.id)] = _Pending(interaction.application_id, interaction.token, command,
                                                      now + TOKEN_S)  # fmt: skip

    # --- the interactions endpoint ---------------------------------------------------------

    async def _interaction_posted(self, request: Request) -> Response:
        raw = await body(request)
        if not self._genuine(request.headers, raw):
            return PlainTextResponse("invalid request signature", 401)
        try:
            payload = json.loads(raw)
        except ValueError:
            return PlainTextResponse("the body is no JSON", 400)
        if isinstance(payload, dict) and payload.get("type") == 1:
            return JSONResponse({"type": 1})  # PONG
        found = _interaction_of(payload, await self._client())
        if found is None:
            return PlainTextResponse("no interaction gangline takes", 400)
        said, ack, interaction = found
        self._remember(interaction, ack)
        self._heard.put_nowait(said)  # heard once this answer (the ack) is on its way
        return JSONResponse({"type": int(ack)})

    def _genuine(self, headers: Mapping[str, str], raw: bytes) -> bool:
        signature, stamp = headers.get("X-Signature-Ed25519", ""), headers.get("X-Signature-Timestamp", "")
        assert self._verify is not None  # the endpoint runs only with a public key
        try:
            self._verify.verify(stamp.encode() + raw, bytes.fromhex(signature))
        except (BadSignatureError, ValueError):
            return False
        return stamp.isdigit() and abs(time.time() - int(stamp)) <= STALE_S

    # --- sending ---------------------------------------------------------------------------

    async def send(self, message: Outgoing) -> str:
        rest = await self._client()
        pending = self._pending.get(message.reply_to or "")
        components = [_buttons(rest, message.request_id)] if message.request_id else hikari.UNDEFINED
        first, *more = _pieces(message.text)
        try:
            sent = await _respond(rest, pending, first, components) if pending is not None else None
            if sent is None:  # no interaction to answer, or its token lapsed: a message in the channel
                pending = None
                reply = int(message.reply_to) if message.reply_to and message.reply_to.isdigit() else hikari.UNDEFINED
                # An interaction id is no message: with reply_must_exist off Discord drops such a reference.
                sent = await rest.create_message(_channel(message.room), first, components=components, reply=reply,
                                                 reply_must_exist=False, mentions_reply=True)  # fmt: skip
            for piece in more:
                if pending is not None:
                    await rest.execute_webhook(pending.application_id, pending.token, piece)
                else:
                    await rest.create_message(_channel(message.room), piece)
        except hikari.HTTPError as err:
            raise _failure(err, message.room) from err
        return str(sent.id)

    async def edit(self, room: str, message_id: str, text: str) -> None:
        rest = await self._client()
        clipped = text if len(text) <= LIMIT else text[: LIMIT - 1] + "…"
        try:
            await rest.edit_message(_channel(room), _channel(message_id), clipped)
        except hikari.HTTPError as err:
            raise _failure(err, room) from err

    async def check(self) -> str:
        try:
            me = await self._sign_in(await self._client())
        except TransportDown as err:
            if isinstance(err.__cause__, hikari.UnauthorizedError):
                raise MessageRefused(f"{self.settings.api_url} does not accept the bot's token") from err
            raise
        return f"signed in as {me.username} ({me.id}) on {self.settings.api_url}"

    async def close(self) -> None:
        if self._rest is not None and self._app is not None:
            await self._rest.close()
            await self._app.close()
        self._rest = self._app = None


async def _serve(inbound: Inbound) -> None:
    try:
        await inbound.run()
    except OSError as err:
        raise TransportDown(str(err)) from err


async def _start(bot: hikari.GatewayBot) -> None:
    try:
        async with asyncio.timeout(START_S):
            await bot.start(check_for_updates=False)
    except (hikari.HikariError, RuntimeError, TimeoutError) as err:
        raise TransportDown(f"cannot connect to Discord's gateway: {err!r}") from err


async def _watch(bot: hikari.GatewayBot) -> None:
    """hikari reconnects the gateway itself; when it gives up (a close it cannot resume from), listen ends."""
    try:
        await bot.join()
    except hikari.GatewayServerClosedConnectionError as err:
        if err.code == hikari.errors.ShardCloseCode.DISALLOWED_INTENT:
            raise TransportDown("Discord refused the message-content intent: enable it for the bot in the "
                                "developer portal, or set message_content = false") from err  # fmt: skip
        raise TransportDown(f"Discord closed the gateway: {err}") from err
    except (hikari.HikariError, RuntimeError) as err:
        raise TransportDown(f"the gateway failed: {err!r}") from err
    raise TransportDown("the gateway closed")


async def _respond(rest: RESTClientImpl, pending: _Pending, text: str, components: Any) -> hikari.Message | None:
    """The answer as the interaction's response: a command's deferred one edited, a click's followup; None if lapsed."""
    if pending.until <= time.monotonic():
        return None
    try:
        if pending.command:
            return await rest.edit_interaction_response(pending.application_id, pending.token, text,
                                                        components=components)  # fmt: skip
        return await rest.execute_webhook(pending.application_id, pending.token, text, components=components)
    except hikari.NotFoundError:  # the token lapsed, or the ack never landed
        return None


def _interaction_of(payload: Any, rest: RESTClientImpl) -> tuple[Said, _Ack, hikari.PartialInteraction] | None:
    """What an interaction POSTed to the endpoint says, its ack and itself; None for a body that is no such thing."""
    try:
        interaction = rest.entity_factory.deserialize_interaction(payload)
    except (KeyError, TypeError, ValueError, AttributeError, AssertionError, hikari.HikariError):
        return None  # signed by Discord, yet not an interaction as documented: nothing to do with it
    found = _said_of(interaction)
    return None if found is None else (*found, interaction)


def _said_of(interaction: hikari.PartialInteraction) -> tuple[Said, _Ack] | None:
    """An interaction gangline takes as what a person said, and how to acknowledge it; None for any other."""
    if isinstance(interaction, hikari.CommandInteraction) and interaction.command_name == COMMAND:
        text = next((str(o.value) for o in interaction.options if o.name == OPTION), "")
        ack = hikari.ResponseType.DEFERRED_MESSAGE_CREATE
    elif isinstance(interaction, hikari.ComponentInteraction):
        answer, _, request = interaction.custom_id.partition(":")
        if answer not in {b[0] for b in _BUTTONS} or not request:
            return None
        text, ack = f"{answer} {request}", hikari.ResponseType.DEFERRED_MESSAGE_UPDATE
    else:
        return None
    return Said(str(interaction.channel.id), str(interaction.user.id), text, str(interaction.id), direct=True), ack


def _buttons(rest: RESTClientImpl, request_id: str) -> hikari.api.MessageActionRowBuilder:
    row = rest.build_message_action_row()
    for answer, label, style in _BUTTONS:
        row.add_interactive_button(style, f"{answer}:{request_id}", label=label)
    return row


def _pieces(text: str) -> list[str]:
    """Discord takes 2000 characters a message: a longer text goes as several, split at a line end where it can."""
    pieces, rest = [], text
    while len(rest) > LIMIT:
        cut = rest.rfind("\n", 0, LIMIT)
        cut = cut if cut > 0 else LIMIT
        pieces.append(rest[:cut])
        rest = rest[cut:].lstrip("\n")
    return [*pieces, rest]


def _channel(value: str) -> int:
    if not value.isdigit():
        raise MessageRefused(f"{value!r} is no Discord id (a channel or message id is a number)")
    return int(value)


def _failure(err: hikari.HTTPError, room: str) -> TransportDown | MessageRefused:
    if isinstance(err, hikari.RateLimitTooLongError):
        return TransportDown(f"Discord rate-limits messages to {room} for {err.retry_after:.0f} s")
    if isinstance(err, hikari.ClientHTTPResponseError) and err.status not in (401, 408, 429):
        return MessageRefused(f"Discord refused a message to {room}: {err.status} {err.message}")
    return TransportDown(f"Discord did not take a message to {room}: {err}")
