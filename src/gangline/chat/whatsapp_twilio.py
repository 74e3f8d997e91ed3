"""WhatsApp through Twilio: sending with the twilio library, and the webhook's signature and form.

The library's ``Client`` sends through an HTTP client of ours on httpx (its seam for one):
nothing blocks the event loop and every request is bounded. (Its own ``AsyncTwilioHttpClient``
hands aiohttp a ``BasicAuth``, deprecated since aiohttp 3.14, and does not apply its timeout.)
The webhook is a form signed in ``X-Twilio-Signature`` over the URL Twilio called
(``public_url`` + the path) and the form's fields, checked with the library's
``RequestValidator``. Twilio signs no timestamp: a replayed request is a message delivered
again, which the door takes up once (by its ``MessageSid``). Plain WhatsApp messages through
Twilio carry no buttons: a permission request asks the person to reply allow, deny or always.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from gangline.chat.inbound import body
from gangline.chat.transport import MessageHeld, MessageRefused, Said, TransportDown, secret_from
from gangline.project.chatconfig import WhatsAppSettings

log = logging.getLogger(__name__)

TIMEOUT_S = 15.0
BODY_CHARS = 1600  # Twilio's limit on a message body
OUTSIDE_WINDOW = 63016  # "Failed to send freeform message because you are outside the allowed window"
_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'  # received; nothing to say in reply here

Heard = Callable[[Said, float | None], Awaitable[None]]
Lapsed = Callable[[str, str | None], Awaitable[None]]


class _HttpxClient(AsyncHttpClient):  # type: ignore[misc]  # twilio ships no type information
    """The twilio library's HTTP, on httpx: async, bounded, redirects not followed."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("twilio.http_client"), is_async=True, timeout=TIMEOUT_S)
        self._http = httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False)

    async def request(self, method: str, uri: str, params: dict[str, object] | None = None,
                      data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                      auth: tuple[str, str] | None = None, timeout: float | None = None,
                      allow_redirects: bool = False) -> Any:  # fmt: skip
        answer = await self._http.request(method, uri, params=params, data=data, headers=headers, auth=auth,  # type: ignore[arg-type]
                                          timeout=timeout or TIMEOUT_S, follow_redirects=allow_redirects)  # fmt: skip
        return TwilioResponse(answer.status_code, answer.text, answer.headers)

    async def close(self) -> None:
        await self._http.aclose()


def read_form(raw: bytes) -> ImmutableMultiDict[str, str]:
    """The webhook's fields; ValueError for a body that is no form."""
    return ImmutableMultiDict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw)))


def read_message(form: ImmutableMultiDict[str, str], ours: str) -> tuple[Said | None, tuple[str, str] | None]:
    """The message a person sent to ``ours`` (whatsapp:+…), or the room whose window Twilio says closed with the
    message of gangline's that did not go; ValueError for a form that is no message."""
    sid, sender, to = form.get("MessageSid"), form.get("From"), form.get("To")
    if not sid or not sender or not to:
        raise ValueError("expected MessageSid, From and To")
    if sender == ours:  # a status callback of gangline's own message: delivered, read, failed
        failed = form.get("MessageStatus") in ("failed", "undelivered") and form.get("ErrorCode") == str(OUTSIDE_WINDOW)
        return None, (to.removeprefix("whatsapp:"), sid) if failed else None
    if to != ours or not sender.startswith("whatsapp:"):
        return None, None  # another number's, or an SMS to this one: not this transport's
    person = sender.removeprefix("whatsapp:")
    if not person.startswith("+") or not person[1:].isdigit():
        raise ValueError(f"a sender that is no phone number: {sender!r}")
    # A reply to one of gangline's messages names it (WhatsApp's "reply"), so "allow" answers that request.
    reply_to = form.get("OriginalRepliedMessageSid") or None
    return Said(person, person, form.get("Body", ""), sid, reply_to, direct=True), None


class TwilioProvider:
    """One WhatsApp sender of a Twilio account."""

    def __init__(self, settings: WhatsAppSettings, where: str, env: Mapping[str, str]) -> None:
        assert settings.account_sid and settings.auth_token_env and settings.from_number
        token = secret_from(env, settings.auth_token_env, f"{where}.auth_token_env", "the Twilio account's auth token")
        self.settings = settings
        self._ours = f"whatsapp:{settings.from_number}"
        self._validator = RequestValidator(token)
        self._http = _HttpxClient()
        self._client = Client(settings.account_sid, token, http_client=self._http)
        self._client.api.base_url = settings.api_base

    def routes(self, path: str, heard: Heard, lapsed: Lapsed) -> list[BaseRoute]:
        async def update(request: Request) -> Response:
            raw = await body(request)
            signature = request.headers.get("X-Twilio-Signature")
            if not signature:
                return PlainTextResponse("unauthorized", status_code=401)
            try:
                form = read_form(raw)
            except ValueError:
                return PlainTextResponse("malformed", status_code=400)
            # Twilio signs the URL it called, which a proxy in between may rewrite: the one configured is signed.
            called = self.settings.public_url.rstrip("/") + request.url.path
            called += f"?{request.url.query}" if request.url.query else ""
            if not self._validator.validate(called, form, signature):
                return PlainTextResponse("unauthorized", status_code=401)
            try:
                said, closed = read_message(form, self._ours)
            except ValueError as err:
                log.warning("a malformed Twilio webhook", extra={"action": "chat_malformed",
                            "transport": self.settings.key, "error": str(err)[:500]})  # fmt: skip
                return PlainTextResponse("malformed", status_code=400)
            if closed is not None:
                await lapsed(*closed)
            if said is not None:
                try:
                    await heard(said, None)
                except Exception:  # gangline's: Twilio's fallback URL, if set, may deliver it again, taken up once
                    log.exception("a WhatsApp message failed", extra={"action": "chat_failed",
                                  "transport": self.settings.key, "message_id": said.message_id})  # fmt: skip
                    return PlainTextResponse("failed", status_code=500)
            return Response(_TWIML, media_type="text/xml")

        return [Route(path, update, methods=["POST"])]

    async def send(self, room: str, text: str, reply_to: str | None, request_id: str | None) -> str:
        if request_id is not None:
            text += f"\n(reply allow, deny or always; with more than one waiting, reply to this message or name it: " \
                    f"allow {request_id})"  # fmt: skip
        return await self._create(room, body=text if len(text) <= BODY_CHARS else text[: BODY_CHARS - 1] + "…")

    async def send_template(self, room: str, text: str) -> str:
        # A Content template of one variable, {{1}}: the text.
        return await self._create(room, content_sid=self.settings.template, content_variables=json.dumps({"1": text}))

    async def _create(self, room: str, **content: object) -> str:
        try:
            sent = await self._client.api.account.messages.create_async(from_=self._ours, to=f"whatsapp:{room}",
                                                                        **content)  # fmt: skip
        except httpx.HTTPError as err:
            raise TransportDown(f"{room}: cannot reach Twilio: {err!r}") from err
        except TwilioRestException as err:
            raise _sorted(err, room) from err
        return str(sent.sid)

    async def check(self) -> str:
        try:
            account = await self._client.api.account.fetch_async()  # read-only
        except httpx.HTTPError as err:
            raise TransportDown(f"cannot reach Twilio: {err!r}") from err
        except TwilioRestException as err:
            if err.status == 401:
                raise MessageRefused(f"Twilio does not accept the account's auth token: {err.msg}") from err
            raise _sorted(err, self.settings.account_sid or "") from err
        return f"Twilio answers for the account {account.friendly_name} ({account.status}); sending from {self._ours}"

    async def close(self) -> None:
        await self._http.close()


def _sorted(err: TwilioRestException, room: str) -> Exception:
    """Whether a failed send may work later (TransportDown), after the person writes (MessageHeld), or never."""
    why = f"{room}: Twilio answered {err.status} (error {err.code}): {err.msg}"
    if err.code == OUTSIDE_WINDOW:
        return MessageHeld(why)
    # Credentials Twilio refuses are down, not refused: the outbox keeps everything until a person puts them right.
    if err.status >= 500 or err.status in (401, 429):
        return TransportDown(why)
    return MessageRefused(why)
