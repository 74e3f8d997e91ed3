"""A loopback WhatsApp for the WhatsApp transport's tests: Meta's Graph API, Twilio's Messages API, and the person.

``FakeWhatsApp`` is one HTTP server on 127.0.0.1 answering both APIs as the platforms do (the
official clients, pywa and twilio, talk to it through their base-URL settings): ``POST
/v{version}/{phone_number_id}/messages`` answers ``{"messages": [{"id": "wamid…"}]}``, ``POST
/2010-04-01/Accounts/{sid}/Messages.json`` a message resource with its ``SM…`` sid; each checks
the credential and keeps what was sent (``Sent``). ``GET /{version}/{phone_number_id}`` and ``GET
/2010-04-01/Accounts/{sid}.json`` answer doctor's read-only checks. ``fail_next`` makes the next sends fail with
the platform's own error shapes (``meta_error``, ``twilio_error``).

``MetaPerson`` and ``TwilioPerson`` play a person's phone: they POST to gangline's webhook what
the platform would, signed as the platform signs (Meta: ``X-Hub-Signature-256``, HMAC-SHA256 of
the body with the app secret; Twilio: ``X-Twilio-Signature``, computed by the twilio library's
``RequestValidator`` over the public URL and the form), or wrongly signed when a test says so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from aiohttp import web
from twilio.request_validator import RequestValidator

from kits.loopback import Changes, on_loopback

GRAPH_TOKEN = "EAAGtest-the-cloud-api-token"
APP_SECRET = "5d41402abc4b2a76b9719d911017c592"
VERIFY_TOKEN = "the-verify-token-both-ends-hold"
PHONE_NUMBER_ID = "106540352242922"
BUSINESS_NUMBER = "15550001111"  # Meta's display number of the business
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "0f6c5e2b9a8d7c6b5a4f3e2d1c0b9a88"
FROM_NUMBER = "+15550002222"  # the Twilio WhatsApp sender
PUBLIC_URL = "https://gangline.example.org/hooks"  # where Twilio is told gangline is; its signatures cover it
PATH = "/whatsapp"

Failure = tuple[int, dict[str, Any]]  # (HTTP status, JSON body)


def meta_error(code: int, message: str, status: int = 400, *, transient: bool | None = None) -> Failure:
    error: dict[str, Any] = {"message": f"(#{code}) {message}", "type": "OAuthException", "code": code,
                             "error_data": {"messaging_product": "whatsapp", "details": message},
                             "fbtrace_id": "AbCdEfGhIjK"}  # fmt: skip
    if transient is not None:
        error["is_transient"] = transient
    return status, {"error": error}


def twilio_error(status: int, code: int, message: str) -> Failure:
    return status, {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    "status": status}  # fmt: skip


REENGAGEMENT = meta_error(131047, "Re-engagement message")
META_DOWN = meta_error(1, "An unknown error occurred", 500, transient=True)
META_BUSY = meta_error(130429, "Rate limit hit", 429)
META_UNDELIVERABLE = meta_error(131026, "Message Undeliverable")
TWILIO_OUTSIDE_WINDOW = twilio_error(400, 63016, "Failed to send freeform message because you are outside the "
                                                 "allowed window")  # fmt: skip
TWILIO_DOWN = twilio_error(503, 20500, "Service unavailable")
TWILIO_BUSY = twilio_error(429, 20429, "Too Many Requests")
TWILIO_BAD_NUMBER = twilio_error(400, 21211, "The 'To' number is not a valid phone number.")


@dataclass(frozen=True)
class Sent:
    """One message gangline sent through either API, as the platform took it."""

    provider: str  # "meta" or "twilio"
    id: str  # wamid.… or SM…
    to: str  # the person, E.164 with "+"
    kind: str  # "text", "interactive" (reply buttons) or "template"
    text: str  # the body; a template's one parameter
    buttons: tuple[tuple[str, str], ...] = ()  # (id, title)
    template: str | None = None  # Meta's template name, Twilio's Content SID
    reply_to: str | None = None  # the message it quotes (Meta's context)


class FakeWhatsApp:
    """Both APIs on one loopback server; ``sent`` holds every message taken, oldest first."""

    def __init__(self) -> None:
        self.url = ""
        self.sent: list[Sent] = []
        self.attempts = 0  # sends tried, failed ones included
        self.failing: list[Failure] = []
        self._changes = Changes()
        self._ids = itertools.count(1)

    def fail_next(self, *failures: Failure) -> None:
        """The next sends (either API) are answered with these, one each."""
        self.failing.extend(failures)

    async def wait_sent(self, matches: Callable[[Sent], bool], timeout_s: float = 15.0) -> Sent:
        """The first message sent that ``matches``, waiting for it (bounded)."""
        await self._changes.wait_for(lambda: any(matches(s) for s in self.sent), timeout_s)
        return next(s for s in self.sent if matches(s))

    async def wait_count(self, count: int, timeout_s: float = 15.0) -> list[Sent]:
        """The first ``count`` messages sent, once there are that many."""
        await self._changes.wait_for(lambda: len(self.sent) >= count, timeout_s)
        return self.sent[:count]

    def to(self, phone: str) -> list[Sent]:
        return [s for s in self.sent if s.to == phone]

    async def _answer(self, sent: Sent | None) -> Failure | None:
        self.attempts += 1
        failure = self.failing.pop(0) if self.failing else None
        if failure is None and sent is not None:
            self.sent.append(sent)
        await self._changes.tell()
        return failure

    async def _graph(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {GRAPH_TOKEN}":
            status, error = meta_error(190, "Invalid OAuth access token", 401)
            return web.json_response(error, status=status)
        if request.match_info["phone"] != PHONE_NUMBER_ID:
            status, error = meta_error(100, "Unsupported post request: no such phone number id")
            return web.json_response(error, status=status)
        payload = await request.json()
        wamid = f"wamid.HBgNgangline{next(self._ids):06d}"
        failure = await self._answer(_graph_sent(wamid, payload))
        if failure is not None:
            return web.json_response(failure[1], status=failure[0])
        to = payload["to"]
        return web.json_response({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                                  "messages": [{"id": wamid}]})  # fmt: skip

    async def _number(self, request: web.Request) -> web.Response:
        """GET /{version}/{phone_number_id}: the business number (read-only; doctor's check)."""
        if request.headers.get("Authorization") != f"Bearer {GRAPH_TOKEN}":
            status, error = meta_error(190, "Invalid OAuth access token", 401)
            return web.json_response(error, status=status)
        return web.json_response({"id": request.match_info["phone"], "verified_name": "Gangline Test",
                                  "display_phone_number": "+1 555-000-1111", "quality_rating": "GREEN",
                                  "code_verification_status": "NOT_VERIFIED"})  # fmt: skip

    async def _account(self, request: web.Request) -> web.Response:
        """GET /2010-04-01/Accounts/{sid}.json: the account (read-only; doctor's check)."""
        if (refused := _twilio_refusal(request)) is not None:
            return refused
        return web.json_response({"sid": ACCOUNT_SID, "friendly_name": "Gangline Test", "status": "active",
                                  "type": "Full"})  # fmt: skip

    async def _twilio(self, request: web.Request) -> web.Response:
        if (refused := _twilio_refusal(request)) is not None:
            return refused
        form = await request.post()
        fields = {key: str(value) for key, value in form.items()}
        sid = f"SM{next(self._ids):032x}"
        failure = await self._answer(_twilio_sent(sid, fields))
        if failure is not None:
            return web.json_response(failure[1], status=failure[0])
        return web.json_response({"sid": sid, "account_sid": ACCOUNT_SID, "status": "queued", "to": fields["To"],
                                  "from": fields["From"], "body": fields.get("Body", ""), "num_segments": "1",
                                  "api_version": "2010-04-01"}, status=201)  # fmt: skip


def _twilio_refusal(request: web.Request) -> web.Response | None:
    expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    if request.headers.get("Authorization") == f"Basic {expected}" and request.match_info["sid"] == ACCOUNT_SID:
        return None
    status, error = twilio_error(401, 20003, "Authenticate")
    return web.json_response(error, status=status)


def _graph_sent(wamid: str, payload: dict[str, Any]) -> Sent:
    kind, to = payload["type"], f"+{payload['to']}"
    reply_to = (payload.get("context") or {}).get("message_id")
    if kind == "text":
        return Sent("meta", wamid, to, kind, payload["text"]["body"], reply_to=reply_to)
    if kind == "interactive":
        interactive = payload["interactive"]
        buttons = tuple((b["reply"]["id"], b["reply"]["title"]) for b in interactive["action"]["buttons"])
        return Sent("meta", wamid, to, kind, interactive["body"]["text"], buttons, reply_to=reply_to)
    template = payload["template"]
    [body] = [c for c in template["components"] if c["type"].upper() == "BODY"]
    [parameter] = body["parameters"]
    return Sent("meta", wamid, to, kind, parameter["text"], template=template["name"], reply_to=reply_to)


def _twilio_sent(sid: str, fields: dict[str, str]) -> Sent:
    to = fields["To"].removeprefix("whatsapp:")
    if "ContentSid" in fields:
        text = json.loads(fields["ContentVariables"])["1"]
        return Sent("twilio", sid, to, "template", text, template=fields["ContentSid"])
    return Sent("twilio", sid, to, "text", fields["Body"])


@asynccontextmanager
async def fake_whatsapp() -> AsyncIterator[FakeWhatsApp]:
    """Both APIs on a free port of 127.0.0.1 (``url``) until the block ends."""
    fake = FakeWhatsApp()
    app = web.Application()
    app.router.add_post("/{version}/{phone}/messages", fake._graph)
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", fake._twilio)
    app.router.add_get("/2010-04-01/Accounts/{sid}.json", fake._account)
    app.router.add_get("/{version}/{phone}", fake._number)
    async with on_loopback(app) as fake.url:
        yield fake


# --- the person -------------------------------------------------------------------------------------------------


class _Phone:
    """What both persons share: gangline's webhook, and the platform's fake that keeps what gangline sent them."""

    def __init__(self, fake: FakeWhatsApp, address: Callable[[], str], phone: str) -> None:
        self.fake = fake
        self.address = address  # where gangline's webhook listens (host:port), known once it does
        self.phone = phone
        self.delivered: dict[str, tuple[bytes, dict[str, str]]] = {}  # message id -> (body, headers) as POSTed
        self._ids = itertools.count(1)

    @property
    def hook(self) -> str:
        return f"http://{self.address()}{PATH}"

    async def _post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(timeout=15) as client:
            return await client.post(self.hook, content=body, headers=headers)

    async def redeliver(self, message_id: str) -> httpx.Response:
        """The platform delivers a message again, byte for byte (it had no answer in time, or it replays)."""
        return await self._post(*self.delivered[message_id])

    async def _sent(self, body: bytes, headers: dict[str, str], message_id: str) -> str:
        self.delivered[message_id] = (body, headers)
        answer = await self._post(body, headers)
        assert answer.status_code == 200, answer.text
        return message_id


class MetaPerson(_Phone):
    """A person on WhatsApp, as Meta's webhook tells gangline of them (2026 payloads: ``user_id`` beside ``wa_id``)."""

    @property
    def wa_id(self) -> str:
        return self.phone.removeprefix("+")

    def update(self, value: dict[str, Any]) -> bytes:
        return meta_update(value)

    def message(self, wamid: str, content: dict[str, Any], reply_to: str | None = None) -> bytes:
        contact = {"profile": {"name": "Ann"}, "wa_id": self.wa_id, "user_id": f"US.{int(self.wa_id) % 10**19}"}
        message = {"from": self.wa_id, "id": wamid, "timestamp": str(int(time.time()))} | content
        if reply_to is not None:
            message["context"] = {"from": BUSINESS_NUMBER, "id": reply_to}
        return self.update({"contacts": [contact], "messages": [message]})

    def text(self, text: str, reply_to: str | None = None) -> tuple[str, bytes]:
        wamid = f"wamid.{self.wa_id}x{next(self._ids):04d}"
        return wamid, self.message(wamid, {"type": "text", "text": {"body": text}}, reply_to)

    async def post(self, body: bytes, signature: str | None = "right") -> httpx.Response:
        """POST ``body`` signed rightly ("right"), with ``signature`` as the header, or with none (None)."""
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = meta_signature(APP_SECRET, body) if signature == "right" else signature
        return await self._post(body, headers)

    async def post_signed(self, body: bytes) -> httpx.Response:
        """POST ``body`` as it is, rightly signed."""
        return await self.post(body)

    async def say(self, text: str, reply_to: str | None = None) -> str:
        wamid, body = self.text(text, reply_to)
        return await self._sent(body, _meta_headers(body), wamid)

    async def press(self, notice: Sent, title: str) -> str:
        """Press one of a message's reply buttons; the id of the press."""
        [button_id] = [i for i, t in notice.buttons if t == title]
        wamid = f"wamid.{self.wa_id}x{next(self._ids):04d}"
        pressed = {"type": "button_reply", "button_reply": {"id": button_id, "title": title}}
        reply = {"type": "interactive", "interactive": pressed}
        body = self.message(wamid, reply, reply_to=notice.id)
        return await self._sent(body, _meta_headers(body), wamid)

    async def react(self, sent: Sent, emoji: str) -> str:
        """React to a message of gangline's (a message of type "reaction", nothing to answer)."""
        wamid = f"wamid.{self.wa_id}x{next(self._ids):04d}"
        body = self.message(wamid, {"type": "reaction", "reaction": {"message_id": sent.id, "emoji": emoji}})
        return await self._sent(body, _meta_headers(body), wamid)

    async def status(self, sent: Sent, status: str, error: int | None = None) -> httpx.Response:
        """The phone reports a message of gangline's delivered, read or failed (``error``: Meta's code)."""
        report: dict[str, Any] = {"id": sent.id, "status": status, "timestamp": str(int(time.time())),
                                  "recipient_id": self.wa_id, "recipient_user_id": "US.1"}  # fmt: skip
        if error is not None:
            report["errors"] = [{"code": error, "title": "Re-engagement message"}]
        return await self.post(self.update({"statuses": [report]}))

    async def ask(self, text: str) -> Sent:
        """Say ``text``; gangline's answer, which quotes it."""
        said = await self.say(text)
        return await self.fake.wait_sent(lambda s: s.reply_to == said)

    async def verify(self, params: dict[str, str]) -> httpx.Response:
        """Meta's subscription handshake (hub.mode, hub.verify_token, hub.challenge)."""
        async with httpx.AsyncClient(timeout=15) as client:
            return await client.get(self.hook, params=params)


class TwilioPerson(_Phone):
    """A person on WhatsApp, as Twilio's webhook tells gangline of them: a signed form."""

    def form(self, text: str, sid: str, reply_to: str | None = None) -> dict[str, str]:
        form = {"SmsMessageSid": sid, "NumMedia": "0", "ProfileName": "Ann", "MessageType": "text", "SmsSid": sid,
                "WaId": self.phone.removeprefix("+"), "SmsStatus": "received", "Body": text,
                "To": f"whatsapp:{FROM_NUMBER}", "NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": sid,
                "AccountSid": ACCOUNT_SID, "From": f"whatsapp:{self.phone}", "ApiVersion": "2010-04-01"}  # fmt: skip
        if reply_to is not None:
            form |= {"OriginalRepliedMessageSender": f"whatsapp:{FROM_NUMBER}", "OriginalRepliedMessageSid": reply_to}
        return form

    def new_sid(self) -> str:
        return f"SM{int(self.phone.removeprefix('+')):020x}{next(self._ids):012x}"

    async def post(self, form: dict[str, str], signature: str | None = "right", *, url: str = PUBLIC_URL + PATH,
                   token: str = AUTH_TOKEN) -> httpx.Response:  # fmt: skip
        """POST ``form`` signed rightly for ``url`` with ``token`` ("right"), with ``signature``, or with none."""
        body = urlencode(form).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature is not None:
            right = RequestValidator(token).compute_signature(url, form)
            headers["X-Twilio-Signature"] = right if signature == "right" else signature
        return await self._post(body, headers)

    async def post_signed(self, body: bytes) -> httpx.Response:
        """POST ``body`` as it is, rightly signed over whatever fields it reads as."""
        fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
        signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + PATH, fields)
        return await self._post(body, {"Content-Type": "application/x-www-form-urlencoded",
                                       "X-Twilio-Signature": signature})  # fmt: skip

    async def say(self, text: str, reply_to: str | None = None) -> str:
        sid = self.new_sid()
        form = self.form(text, sid, reply_to)
        signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + PATH, form)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
        return await self._sent(urlencode(form).encode(), headers, sid)

    async def status(self, sent: Sent, status: str, error: int | None = None) -> httpx.Response:
        """Twilio's status callback for a message of gangline's (From is gangline's number; ``error``: ErrorCode)."""
        form = {"MessageSid": sent.id, "MessageStatus": status, "SmsStatus": status, "AccountSid": ACCOUNT_SID,
                "From": f"whatsapp:{FROM_NUMBER}", "To": f"whatsapp:{self.phone}"}  # fmt: skip
        if error is not None:
            form["ErrorCode"] = str(error)
        return await self.post(form)

    async def ask(self, text: str) -> Sent:
        """Say ``text``; the next message gangline sends this person (Twilio's messages quote nothing)."""
        before = len(self.fake.to(self.phone))
        await self.say(text)
        await self.fake.wait_sent(lambda _s: len(self.fake.to(self.phone)) > before)
        return self.fake.to(self.phone)[before]


def meta_update(value: dict[str, Any]) -> bytes:
    """A webhook body of Meta's: one entry, one change of the field "messages" to this number, with ``value``."""
    metadata = {"display_phone_number": BUSINESS_NUMBER, "phone_number_id": PHONE_NUMBER_ID}
    change = {"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": metadata} | value}
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "102290129340398", "changes": [change]}]}).encode()  # fmt: skip


def meta_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _meta_headers(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(APP_SECRET, body)}
