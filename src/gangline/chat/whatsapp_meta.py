"""WhatsApp through Meta's Cloud API: sending with pywa, and the webhook's handshake, signature and payload.

pywa (``pywa_async``) sends through an ``httpx.AsyncClient`` of ours; pywa fixes the Graph API's
host on the client it is given, so the client's transport sends to ``api_url`` instead when one
is set. The webhook is read here rather than by pywa's server: Meta batches entries, changes and
messages in one request, and the whole request is checked (``X-Hub-Signature-256``: HMAC-SHA256
of the raw body with the app secret; then its shape) before any of it is handed over. Meta signs
no timestamp: a replayed request is a message delivered again, which the door takes up once.
A person is their phone number in E.164 (``+4915112345678``), or the business-scoped user id
(``US.123…``) of one who hides it behind a username.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from pydantic import BaseModel, Field, ValidationError
from pywa_async.client import WhatsApp
from pywa_async.errors import AuthorizationError, ThrottlingError, WhatsAppError
from pywa_async.types.callback import Button
from pywa_async.types.templates import TemplateLanguage
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from gangline.chat.inbound import body
from gangline.chat.transport import MessageHeld, MessageRefused, Said, TransportDown, secret_from
from gangline.core.errors import ConfigError
from gangline.project.chatconfig import WhatsAppSettings

log = logging.getLogger(__name__)

TIMEOUT_S = 15.0
TEXT_CHARS = 4096
BUTTON_TEXT_CHARS = 1024  # an interactive message's body; a longer request goes as text, answered in words
GRAPH_API = "https://graph.facebook.com"
REENGAGEMENT = 131047  # "more than 24 hours have passed since the customer last replied"
_TRANSIENT = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056, 133016})
_ANSWERS = {"allow": "Allow", "deny": "Deny", "always": "Always allow"}
# A reaction (a thumbs-up on a notice), a change of number, a message WhatsApp cannot show: nothing to answer.
_UNSAID = frozenset({"reaction", "system", "unsupported"})
_USER_ID = re.compile(r"[A-Z]{2}\.(ENT\.)?\d+")  # a business-scoped user id: US.13491208655302741918

Heard = Callable[[Said, float | None], Awaitable[None]]
Lapsed = Callable[[str, str | None], Awaitable[None]]


# --- the webhook's payload, as far as gangline reads it (Meta adds fields: the rest is ignored) -----------------


class _Contact(BaseModel):
    wa_id: str | None = None  # the phone number without "+"; absent for a person who hides it
    user_id: str | None = None  # the business-scoped user id (2026 payloads)


class _Reply(BaseModel):
    id: str
    title: str = ""


class _Interactive(BaseModel):
    type: str
    button_reply: _Reply | None = None
    list_reply: _Reply | None = None


class _Text(BaseModel):
    body: str


class _QuickReply(BaseModel):  # a template's quick-reply button
    text: str


class _Context(BaseModel):
    id: str | None = None  # the message this one replies to


class _Message(BaseModel):
    id: str = Field(min_length=1)  # wamid.…
    sender: str | None = Field(default=None, alias="from")
    from_user_id: str | None = None
    group_id: str | None = None
    type: str = ""
    timestamp: int | None = None
    text: _Text | None = None
    interactive: _Interactive | None = None
    button: _QuickReply | None = None
    context: _Context | None = None


class _Error(BaseModel):
    code: int


class _Status(BaseModel):
    id: str  # the message of gangline's it is about (a wamid)
    status: str
    recipient_id: str | None = None
    errors: list[_Error] = []


class _Metadata(BaseModel):
    phone_number_id: str


class _Value(BaseModel):
    metadata: _Metadata
    contacts: list[_Contact] = []
    messages: list[_Message] = []
    statuses: list[_Status] = []


class _Change(BaseModel):
    field: str
    value: dict[str, Any]


class _Entry(BaseModel):
    changes: list[_Change]


class _Update(BaseModel):
    object: str
    entry: list[_Entry]


def signed(secret: str, raw: bytes, header: str | None) -> bool:
    """Whether ``header`` (X-Hub-Signature-256) is ``sha256=`` and the HMAC-SHA256 of ``raw`` with ``secret``."""
    if header is None or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.encode("latin-1", "replace"))


def read_update(raw: bytes, phone_number_id: str) -> tuple[list[tuple[Said, float | None]], list[tuple[str, str]]]:
    """The messages to this number (each with when it was written), and the rooms whose window WhatsApp says closed
    with the message of gangline's that did not go because of it.

    ValueError (pydantic's ValidationError is one) for a payload that is not Meta's.
    """
    update = _Update.model_validate_json(raw)
    heard: list[tuple[Said, float | None]] = []
    lapsed: list[tuple[str, str]] = []
    if update.object != "whatsapp_business_account":
        return heard, lapsed
    for change in (c for entry in update.entry for c in entry.changes if c.field == "messages"):
        value = _Value.model_validate(change.value)
        if value.metadata.phone_number_id != phone_number_id:
            continue  # another number of the same app
        heard += [(_said(m, value.contacts), m.timestamp) for m in value.messages if m.type not in _UNSAID]
        # Delivered and read are no messages; a send that failed for the window closes it for gangline too.
        lapsed += [(_room_of(s.recipient_id), s.id) for s in value.statuses if s.recipient_id and _lapsed(s)]
    return heard, lapsed


def _said(message: _Message, contacts: list[_Contact]) -> Said:
    contact = next((c for c in contacts if message.sender and message.sender in (c.wa_id, c.user_id)), None)
    if contact is None and len(contacts) == 1:
        contact = contacts[0]
    known = [message.sender, message.from_user_id] + ([contact.wa_id, contact.user_id] if contact else [])
    user = _person([found for found in known if found])
    text, clicked = _words(message)
    reply_to = None if clicked or message.context is None else message.context.id
    return Said(message.group_id or user, user, text, message.id, reply_to, direct=message.group_id is None)


def _person(known: list[str]) -> str:
    """Who wrote: their phone number (E.164) when WhatsApp tells it, else their business-scoped user id."""
    for found in known:
        if not found.removeprefix("+").isdigit() and not _USER_ID.fullmatch(found):
            raise ValueError(f"neither a phone number nor a user id: {found!r}")
    phone = next((found.removeprefix("+") for found in known if found.removeprefix("+").isdigit()), None)
    if phone is not None:
        return f"+{phone}"
    if known:
        return known[0]
    raise ValueError("a message from nobody")


def _lapsed(status: _Status) -> bool:
    return status.status == "failed" and any(e.code == REENGAGEMENT for e in status.errors)


def _room_of(recipient: str) -> str:
    return f"+{recipient}" if recipient.isdigit() else recipient


def _words(message: _Message) -> tuple[str, bool]:
    """What the person said, and whether it was a press of one of gangline's buttons."""
    if message.text is not None:
        return message.text.body, False
    if message.interactive is not None:
        reply = message.interactive.button_reply or message.interactive.list_reply
        if reply is not None:
            word, _, request = reply.id.partition(":")
            if word in _ANSWERS and request:
                return f"{word} {request}", True
            return reply.title, False
    if message.button is not None:
        return message.button.text, False
    return "", False  # a picture, a sticker: no words, but an answer all the same ("Yes? Say help ...")


# --- the provider ----------------------------------------------------------------------------------------------


class _Rehost(httpx.AsyncBaseTransport):
    """Sends each request to ``base`` (scheme, host, port, path prefix) instead of the host pywa names."""

    def __init__(self, base: str) -> None:
        self._base = httpx.URL(base)
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        base = self._base
        request.url = request.url.copy_with(scheme=base.scheme, host=base.host, port=base.port,
                                            path=base.path.rstrip("/") + request.url.path)  # fmt: skip
        request.headers["Host"] = base.netloc.decode("ascii")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class MetaProvider:
    """One phone number of a WhatsApp Business Account, through the Cloud API."""

    def __init__(self, settings: WhatsAppSettings, where: str, env: Mapping[str, str]) -> None:
        assert settings.phone_number_id and settings.token_env and settings.app_secret_env and settings.verify_token_env
        token = secret_from(env, settings.token_env, f"{where}.token_env", "the WhatsApp Cloud API's access token")
        self._app_secret = secret_from(env, settings.app_secret_env, f"{where}.app_secret_env", "the Meta app's secret")
        self._verify_token = secret_from(env, settings.verify_token_env, f"{where}.verify_token_env",
                                         "the webhook's verify token")  # fmt: skip
        self._language = _language(settings, where)
        self.settings = settings
        rehost = None if settings.api_base == GRAPH_API else _Rehost(settings.api_base)
        self._http = httpx.AsyncClient(transport=rehost, timeout=TIMEOUT_S, follow_redirects=False)
        self._wa = WhatsApp(phone_id=settings.phone_number_id, token=token, session=self._http)

    def routes(self, path: str, heard: Heard, lapsed: Lapsed) -> list[BaseRoute]:
        async def verify(request: Request) -> Response:
            """Meta's subscription handshake: the challenge back to whoever knows the verify token."""
            asked = request.query_params
            token = asked.get("hub.verify_token", "").encode("latin-1", "replace")
            if asked.get("hub.mode") == "subscribe" and hmac.compare_digest(token, self._verify_token.encode()):
                return PlainTextResponse(asked.get("hub.challenge", ""))
            return PlainTextResponse("forbidden", status_code=403)

        async def update(request: Request) -> Response:
            raw = await body(request)
            if not signed(self._app_secret, raw, request.headers.get("X-Hub-Signature-256")):
                return PlainTextResponse("unauthorized", status_code=401)
            try:
                said, closed = read_update(raw, self.settings.phone_number_id or "")
            except (ValueError, ValidationError) as err:
                log.warning("a malformed WhatsApp webhook", extra={"action": "chat_malformed",
                            "transport": self.settings.key, "error": str(err)[:500]})  # fmt: skip
                return PlainTextResponse("malformed", status_code=400)
            for room, undelivered in closed:
                await lapsed(room, undelivered)
            return await _hand_over(said, heard, self.settings.key)

        return [Route(path, verify, methods=["GET"]), Route(path, update, methods=["POST"])]

    async def send(self, room: str, text: str, reply_to: str | None, request_id: str | None) -> str:
        try:
            if request_id is not None and len(text) <= BUTTON_TEXT_CHARS:
                buttons = [Button(title, f"{word}:{request_id}") for word, title in _ANSWERS.items()]
                sent = await self._wa.send_message(_to(room), text, buttons=buttons, reply_to_message_id=reply_to)
            else:
                sent = await self._wa.send_message(_to(room), _cut(text, TEXT_CHARS), reply_to_message_id=reply_to)
        except (httpx.HTTPError, WhatsAppError) as err:
            raise _sorted(err, room) from err
        return str(sent.id)

    async def send_template(self, room: str, text: str) -> str:
        assert self.settings.template is not None  # the transport sends a template only when one is set
        try:
            body_text = {"type": "BODY", "parameters": [{"type": "text", "text": text}]}  # {{1}}
            sent = await self._wa.send_template(_to(room), self.settings.template, self._language, params=[body_text])
        except (httpx.HTTPError, WhatsAppError) as err:
            raise _sorted(err, room) from err
        return str(sent.id)

    async def check(self) -> str:
        try:
            number = await self._wa.get_business_phone_number()  # read-only
        except (httpx.HTTPError, WhatsAppError) as err:
            if isinstance(err, AuthorizationError) or getattr(err, "status_code", None) == 401:
                raise MessageRefused(f"{self.settings.api_base} does not accept the access token: {err}") from err
            raise _sorted(err, self.settings.phone_number_id or "") from err
        return f"the Cloud API answers for {number.display_phone_number} ({number.verified_name})"

    async def close(self) -> None:
        await self._http.aclose()


async def _hand_over(said: list[tuple[Said, float | None]], heard: Heard, key: str) -> Response:
    try:
        for message, written_at in said:
            await heard(message, written_at)
    except Exception:  # a failure here is gangline's: Meta delivers the request again, the door takes each up once
        log.exception("a WhatsApp message failed", extra={"action": "chat_failed", "transport": key})
        return PlainTextResponse("failed", status_code=500)
    return PlainTextResponse("ok")


def _language(settings: WhatsAppSettings, where: str) -> TemplateLanguage:
    try:
        return TemplateLanguage(settings.template_language)
    except ValueError:
        known = f"expected a language WhatsApp templates know, such as en or en_US, got {settings.template_language!r}"
        raise ConfigError(f"{where}.template_language", known) from None


def _to(room: str) -> str:
    """The recipient as the Cloud API takes it: a phone number without "+", a user id or a group id as they are."""
    return room.removeprefix("+") if room.removeprefix("+").isdigit() else room


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sorted(err: httpx.HTTPError | WhatsAppError, room: str) -> Exception:
    """Whether a failed send may work later (TransportDown), after the person writes (MessageHeld), or never."""
    if isinstance(err, httpx.HTTPError):
        return TransportDown(f"{room}: cannot reach WhatsApp: {err!r}")
    why = f"{room}: WhatsApp answered {err.status_code} (error {err.code}): {err.message}"
    if err.code == REENGAGEMENT:
        return MessageHeld(why)
    status = err.status_code or 0
    # A token that expired is down, not refused: the outbox keeps everything until a person puts it right.
    if status >= 500 or status == 429 or err.is_transient or err.code in _TRANSIENT:
        return TransportDown(why)
    if isinstance(err, ThrottlingError | AuthorizationError):
        return TransportDown(why)
    return MessageRefused(why)
