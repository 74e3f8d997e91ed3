"""WhatsApp through Meta's Cloud API (pywa) and Twilio (the twilio library), each against a loopback platform.

Every end-to-end test serves a real project (real git, real SQLite, the orchestrator) on a real
uvicorn with the chat door its ``[[chat]]`` table builds (``make_transport``, as ``chat_door``
does); the official client sends to ``kits.fake_whatsapp``, and a person's phone POSTs signed webhooks to gangline's
listener as Meta or Twilio would. Neither platform signs a timestamp, so there is no stale
signature to refuse: a request replayed later is a message delivered again, answered once (the
redelivery tests). The 24-hour window starts closed for a person gangline has not heard from,
which is how the tests stand outside it; the window's clock is injectable for the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from gangline.chat.serving import chat_door, check_accounts, door_of, make_transport
from gangline.chat.transport import MessageHeld, MessageRefused, Outgoing, TransportDown
from gangline.chat.whatsapp import HELD_NOTE, TEMPLATE_NOTE, WhatsAppTransport
from gangline.chat.whatsapp_meta import REENGAGEMENT, read_update
from gangline.chat.whatsapp_twilio import OUTSIDE_WINDOW
from gangline.core.errors import ConfigError
from gangline.core.items import Item
from gangline.core.stages import Hold
from gangline.core.types import Clock
from gangline.project.chatconfig import WhatsAppSettings
from gangline.project.paths import ProjectPaths
from gangline.server.app import create_app
from gangline.server.serving import serving
from kits import fake_whatsapp as wa
from kits.fake_whatsapp import FakeWhatsApp, MetaPerson, TwilioPerson, fake_whatsapp, meta_signature
from kits.mcp_kit import Served
from kits.pipeline_kit import FAST, Project, commit_file

OUTSIDE = {"meta": REENGAGEMENT, "twilio": OUTSIDE_WINDOW}  # the error each gives for a closed window
LATER = 32503680000.0  # the year 3000: an item scheduled then never starts by itself
PERSON = "+4915112345678"
OTHER = "+447700900123"
STRANGER = "+4917099999999"
META_SECRETS = {"token_env": "GANGLINE_TEST_WA_TOKEN", "app_secret_env": "GANGLINE_TEST_WA_APP_SECRET",
                "verify_token_env": "GANGLINE_TEST_WA_VERIFY"}  # fmt: skip
ENV = {"GANGLINE_TEST_WA_TOKEN": wa.GRAPH_TOKEN, "GANGLINE_TEST_WA_APP_SECRET": wa.APP_SECRET,
       "GANGLINE_TEST_WA_VERIFY": wa.VERIFY_TOKEN, "GANGLINE_TEST_TWILIO_TOKEN": wa.AUTH_TOKEN}  # fmt: skip
META_TEMPLATE = "gangline_notice"
TWILIO_TEMPLATE = "HX" + "b" * 32
Person = MetaPerson | TwilioPerson


def table(provider: str, api: str, listen: str, **keys: object) -> dict[str, object]:
    found: dict[str, object] = {"transport": "whatsapp", "provider": provider, "public_url": wa.PUBLIC_URL,
                                "listen": listen, "api_url": api, "allow": [PERSON], "rooms": [PERSON],
                                "window_s": 0}  # fmt: skip
    if provider == "meta":
        found |= {"phone_number_id": wa.PHONE_NUMBER_ID} | META_SECRETS
    else:
        found |= {"account_sid": wa.ACCOUNT_SID, "auth_token_env": "GANGLINE_TEST_TWILIO_TOKEN",
                  "from_number": wa.FROM_NUMBER}  # fmt: skip
    return found | keys


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Chat:
    """A project whose [[chat]] table is a WhatsApp number on ``provider``, and the platform's fake."""

    provider: str
    project: Project
    fake: FakeWhatsApp
    listen: str = "127.0.0.1:0"  # as configured: any free port
    bound: str | None = None  # where the webhook listens once served (host:port)

    def address(self) -> str:
        assert self.bound is not None, "serve it first: nothing listens yet"
        return self.bound

    def configure(self, **keys: object) -> None:
        found = table(self.provider, self.fake.url, self.listen, **keys)
        self.project.configure(tables="[[chat]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in found.items()))

    def person(self, phone: str = PERSON) -> Person:
        return (MetaPerson if self.provider == "meta" else TwilioPerson)(self.fake, self.address, phone)

    def waiting(self, title: str) -> Item:
        """A backlog item the pipeline leaves alone (it is scheduled for the year 3000)."""
        return self.project.store.schedule_start(self.project.add(title).id, LATER, "setup")

    @asynccontextmanager
    async def served(self) -> AsyncIterator[Served]:
        project = self.project
        assert project.config is not None
        transport = make_transport(project.config.chats[0], 1, project.paths, ENV)
        assert isinstance(transport, WhatsAppTransport)
        app = create_app(project.paths, project.config, project.store, {}, settings=FAST, doors=[door_of([transport])])
        async with serving(app) as url:
            async with asyncio.timeout(15):
                await transport.inbound.listening.wait()  # the webhook is up: a person can write
            self.bound = transport.inbound.url.removeprefix("http://")
            try:
                yield Served(app, url)
            finally:
                self.bound = None


@pytest.fixture
async def fake() -> AsyncIterator[FakeWhatsApp]:
    async with fake_whatsapp() as fake:
        yield fake


def _chat(provider: str, root: Path, fake: FakeWhatsApp) -> Chat:
    project = Project(root)
    project.agent("coder", [commit_file("a.txt", "1\n")])
    chat = Chat(provider, project, fake)
    chat.configure()
    return chat


@pytest.fixture(params=["meta", "twilio"])
def chat(request: pytest.FixtureRequest, tmp_path: Path, fake: FakeWhatsApp) -> Chat:
    return _chat(request.param, tmp_path, fake)


@pytest.fixture
def meta(tmp_path: Path, fake: FakeWhatsApp) -> Chat:
    return _chat("meta", tmp_path, fake)


@pytest.fixture
def twilio(tmp_path: Path, fake: FakeWhatsApp) -> Chat:
    return _chat("twilio", tmp_path, fake)


class Logged(logging.Handler):
    """Records of one action as they are logged; ``came`` is set by the first."""

    def __init__(self, action: str) -> None:
        super().__init__(logging.INFO)
        self.action = action
        self.came = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "action", None) == self.action:
            self.came.set()


@contextmanager
def logged(name: str, action: str) -> Iterator[Logged]:
    logger, handler = logging.getLogger(name), Logged(action)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def block(served: Served, item: Item, reason: str) -> None:
    async with httpx.AsyncClient(base_url=served.url) as rest:
        (await rest.post(f"/api/items/{item.id}/block", json={"reason": reason})).raise_for_status()


# --- end to end ---------------------------------------------------------------------------------------------------


async def test_the_webhook_handshake_answers_the_challenge_only_to_whoever_holds_the_verify_token(meta: Chat) -> None:
    person = meta.person()
    async with meta.served():
        right = await person.verify({"hub.mode": "subscribe", "hub.verify_token": wa.VERIFY_TOKEN,
                                     "hub.challenge": "1158201444"})  # fmt: skip
        wrong = await person.verify({"hub.mode": "subscribe", "hub.verify_token": "guessed", "hub.challenge": "1"})
        unsubscribing = await person.verify({"hub.mode": "unsubscribe", "hub.verify_token": wa.VERIFY_TOKEN,
                                             "hub.challenge": "1"})  # fmt: skip
        bare = await person.verify({})
    assert (right.status_code, right.text) == (200, "1158201444")
    assert [r.status_code for r in (wrong, unsubscribing, bare)] == [403, 403, 403]


async def test_a_command_is_answered_and_carried_out_with_the_person_as_its_actor(chat: Chat) -> None:
    item = chat.waiting("Add a login page")
    person = chat.person()
    async with chat.served():
        status = await person.ask("status")
        blocked = await person.ask(f"block {item.id}")
    assert status.text.startswith("backlog 1 · coding 0") and status.kind == "text" and status.to == PERSON
    assert blocked.text.startswith("blocked #1 Add a login page: now #1 backlog · blocked")
    assert chat.project.item(item.id).state.hold is Hold.BLOCKED
    assert chat.project.store.events_after(0)[-1].actor == f"whatsapp:{PERSON}"


async def test_a_notice_reaches_the_person_while_the_window_is_open_and_receipts_and_reactions_are_no_orders(
    chat: Chat,
) -> None:
    item = chat.waiting("Add a login page")
    person = chat.person()
    async with chat.served() as served:
        await person.ask("help")  # the person wrote: the window is open
        await block(served, item, "waits for the key")
        notice = await chat.fake.wait_sent(lambda s: "is blocked" in s.text)
        receipts = [await person.status(notice, "delivered"), await person.status(notice, "read")]
        if isinstance(person, MetaPerson):
            await person.react(notice, "\N{THUMBS UP SIGN}")  # a message, but nothing to answer
        status = await person.ask("status")  # answered after the receipts were heard
    assert (notice.text, notice.kind, notice.reply_to) == ("#1 is blocked: waits for the key", "text", None)
    assert [r.status_code for r in receipts] == [200, 200]
    assert chat.fake.to(PERSON)[1:] == [notice, status]


async def test_a_permission_request_is_answered_with_a_button(meta: Chat) -> None:
    item = meta.waiting("Deploy")
    person = meta.person()
    async with meta.served() as served, asyncio.TaskGroup() as tg:
        await person.ask("help")
        asking = tg.create_task(served.permissions.ask("1-coder-1", item.id, None, "Bash", {"command": "x"}, None))
        notice = await meta.fake.wait_sent(lambda s: s.kind == "interactive")
        pressed = await person.press(notice, "Allow")
        answer = await meta.fake.wait_sent(lambda s: s.reply_to == pressed)
    [request_id] = {button_id.partition(":")[2] for button_id, _ in notice.buttons}
    assert notice.text == "#1's agent asks to use Bash: answer allow, deny or always allow"
    assert notice.buttons == (("allow:" + request_id, "Allow"), ("deny:" + request_id, "Deny"),
                              ("always:" + request_id, "Always allow"))  # fmt: skip
    assert answer.text == "allow: #1's Bash" and asking.result().behavior == "allow"
    answered = [e for e in meta.project.store.events_after(0) if e.kind == "permission_answered"]
    assert [e.actor for e in answered] == [f"whatsapp:{PERSON}"]


async def test_a_permission_request_is_answered_by_replying_allow_or_by_replying_to_its_notice(twilio: Chat) -> None:
    first, second = twilio.waiting("Deploy"), twilio.waiting("Migrate")
    person = twilio.person()
    async with twilio.served() as served, asyncio.TaskGroup() as tg:
        await person.ask("help")
        asking = tg.create_task(served.permissions.ask("1-coder-1", first.id, None, "Bash", {"command": "x"}, None))
        notice = await twilio.fake.wait_sent(lambda s: "asks to use" in s.text)
        allowed = await person.ask("allow")  # the only one waiting
        denying = tg.create_task(served.permissions.ask("2-coder-1", second.id, None, "Bash", {"command": "y"}, None))
        again = tg.create_task(served.permissions.ask("1-coder-1", first.id, None, "Bash", {"command": "z"}, None))
        await served.permissions.wait_requested(10, count=2)
        second_notice = await twilio.fake.wait_sent(lambda s: s.text.startswith("#2's agent asks"))
        await person.say("deny", reply_to=second_notice.id)  # a WhatsApp reply to the notice names the request
        denied = await twilio.fake.wait_sent(lambda s: s.text.startswith("deny: "))
        named = await person.ask("deny 1")  # or the person names the item
    assert notice.kind == "text" and notice.text.startswith("#1's agent asks to use Bash: answer allow, deny or always")
    assert "reply to this message or name it: allow " in notice.text
    assert allowed.text == "allow: #1's Bash" and asking.result().behavior == "allow"
    assert denied.text == "deny: #2's Bash" and denying.result().behavior == "deny"
    assert named.text == "deny: #1's Bash" and again.result().behavior == "deny"


async def test_a_person_not_allowed_gets_one_line_and_nothing_changes(chat: Chat) -> None:
    item = chat.waiting("Add a login page")
    before = chat.project.store.last_event_id()
    async with chat.served():
        answer = await chat.person(STRANGER).ask(f"block {item.id}")
    assert answer.text.startswith(f"{STRANGER} may not give gangline orders here: ") and answer.to == STRANGER
    assert chat.project.item(item.id).state.hold is None and chat.project.store.last_event_id() == before
    assert len(chat.fake.sent) == 1


async def test_meta_webhooks_are_heard_only_when_signed_with_the_app_secret(meta: Chat) -> None:
    item = meta.waiting("Add a login page")
    person = meta.person()
    assert isinstance(person, MetaPerson)
    async with meta.served():
        _, body = person.text(f"block {item.id}")
        right = meta_signature(wa.APP_SECRET, body)
        refused = [await person.post(body, signature=None),
                   await person.post(body, signature=meta_signature("another secret", body)),
                   await person.post(body, signature=right.removeprefix("sha256=")),
                   await person.post(body.replace(b"block", b"start"), signature=right)]  # fmt: skip
        unchanged = meta.project.item(item.id).state.hold is None and meta.fake.sent == []
        accepted = await person.post(body)
        answer = await meta.fake.wait_sent(lambda s: s.to == PERSON)
    assert [r.status_code for r in refused] == [401, 401, 401, 401] and unchanged
    assert accepted.status_code == 200 and answer.text.startswith("blocked #1")


async def test_twilio_webhooks_are_heard_only_when_signed_for_the_public_url_with_the_auth_token(twilio: Chat) -> None:
    item = twilio.waiting("Add a login page")
    person = twilio.person()
    assert isinstance(person, TwilioPerson)
    async with twilio.served():
        form = person.form(f"block {item.id}", person.new_sid())
        refused = [await person.post(form, signature=None),
                   await person.post(form, token="another token"),
                   await person.post(form, url=f"http://{twilio.address()}/whatsapp"),  # not the URL Twilio was given
                   await person.post(form | {"Body": "start 1"}, signature=_twilio_signature(form))]  # fmt: skip
        unchanged = twilio.project.item(item.id).state.hold is None and twilio.fake.sent == []
        accepted = await person.post(form)
        answer = await twilio.fake.wait_sent(lambda s: s.to == PERSON)
    assert [r.status_code for r in refused] == [401, 401, 401, 401] and unchanged
    assert accepted.status_code == 200 and accepted.headers["content-type"].startswith("text/xml")
    assert answer.text.startswith("blocked #1")


def _twilio_signature(form: dict[str, str]) -> str:
    return str(RequestValidator(wa.AUTH_TOKEN).compute_signature(wa.PUBLIC_URL + wa.PATH, form))


def malformed(person: Person, text: str) -> dict[str, bytes]:
    """Bodies that say ``text`` but are no message the platform would send, by what is wrong with them."""
    if isinstance(person, MetaPerson):
        update = json.loads(person.text(text)[1])
        del update["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        no_number = person.text(text)[1].replace(b'"from": "49', b'"from": "ann')
        return {"not JSON": b"{not json", "no list of entries": b'{"object": "whatsapp_business_account", "entry": 1}',
                "a message without an id": json.dumps(update).encode(),
                "a sender that is no number": no_number}  # fmt: skip
    unnamed = person.form(text, person.new_sid())
    del unnamed["MessageSid"]
    no_number = person.form(text, person.new_sid()) | {"From": "whatsapp:ann"}
    return {"no form": b"Body=x&&=", "a message without a sid": urlencode(unnamed).encode(),
            "a sender that is no number": urlencode(no_number).encode()}  # fmt: skip


async def test_a_malformed_payload_gets_400_and_changes_nothing(chat: Chat) -> None:
    item = chat.waiting("Add a login page")
    before = chat.project.store.last_event_id()
    person = chat.person()
    async with chat.served():
        answers = {wrong: (await person.post_signed(body)).status_code
                   for wrong, body in malformed(person, f"block {item.id}").items()}  # fmt: skip
        unchanged = chat.fake.sent == [] and chat.project.store.last_event_id() == before
        status = await person.ask("status")
    assert set(answers.values()) == {400}, answers
    assert unchanged and chat.project.item(item.id).state.hold is None and chat.fake.sent == [status]


async def test_a_message_delivered_again_is_answered_once(chat: Chat) -> None:
    person = chat.person()
    async with chat.served():
        first = await person.ask("status")
        again = await person.redeliver(next(iter(person.delivered)))
        helped = await person.ask("help")  # heard after the redelivery
    assert again.status_code == 200
    assert chat.fake.to(PERSON) == [first, helped]


async def test_a_flood_from_one_person_is_refused_once_and_then_ignored(chat: Chat) -> None:
    chat.configure(per_minute=3, allow=[PERSON, OTHER])
    person, other = chat.person(), chat.person(OTHER)
    async with chat.served():
        await person.ask("help")
        for _ in range(5):
            await person.say("help")  # each heard before its webhook is answered
        await other.ask("status")  # sent after every answer to the flood
    answers = [s.text for s in chat.fake.to(PERSON)]
    assert len(answers) == 4 and answers[:3] == [answers[0]] * 3
    assert answers[3] == f"{PERSON}: too many messages (at most 3 a minute); I ignore the rest of this minute's"


async def test_outside_the_window_a_notice_is_held_until_the_person_writes_and_then_says_it_was_held(
    chat: Chat,
) -> None:
    first, second = chat.waiting("One"), chat.waiting("Two")
    person = chat.person()
    with logged("gangline.chat.notifier", "chat_held") as held:
        async with chat.served() as served:
            await block(served, first, "waits for the key")  # nobody has written: the window is closed
            async with asyncio.timeout(15):
                await held.came.wait()
            nothing_yet = list(chat.fake.sent)
            said = await person.say("status")  # opens the window, and the door's answer wakes the courier
            notice, status = await chat.fake.wait_count(2)
            await block(served, second, "waits for the key")
            later = await chat.fake.wait_sent(lambda s: s.text.startswith("#2 is blocked"))
    assert nothing_yet == []
    assert notice.text == f"{HELD_NOTE}\n#1 is blocked: waits for the key" and notice.kind == "text"
    assert status.text.startswith("backlog 2 · coding 0") and HELD_NOTE not in status.text
    assert status.reply_to == (said if chat.provider == "meta" else None)
    assert later.text == "#2 is blocked: waits for the key"  # the window is open: nothing is held, nothing noted


async def test_outside_the_window_with_a_template_the_notice_goes_as_the_template_and_says_so(chat: Chat) -> None:
    template = META_TEMPLATE if chat.provider == "meta" else TWILIO_TEMPLATE
    chat.configure(template=template)
    item = chat.waiting("Add a login page")
    async with chat.served() as served:
        await block(served, item, "waits for the key\nand for the review")
        sent = await chat.fake.wait_sent(lambda s: s.to == PERSON)
    assert (sent.kind, sent.template) == ("template", template)
    assert sent.text == f"{TEMPLATE_NOTE} #1 is blocked: waits for the key · and for the review"


# --- the transport alone, against the fake ----------------------------------------------------------------------


def transport(provider: str, fake: FakeWhatsApp, root: Path, clock: Clock = time.time,
              **keys: object) -> WhatsAppTransport:  # fmt: skip
    settings = WhatsAppSettings.model_validate(table(provider, fake.url, "127.0.0.1:0", **keys))
    return WhatsAppTransport(settings, "chat[1]", ProjectPaths(root), ENV, clock=clock)


@pytest.mark.parametrize("provider", ["meta", "twilio"])
async def test_failed_sends_are_sorted_into_down_held_and_refused(provider: str, fake: FakeWhatsApp,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    chat = transport(provider, fake, tmp_path)
    chat.window.heard(PERSON, time.time())
    notice = Outgoing(PERSON, "#1 is blocked", key="out-1")
    down, busy, refused, closed = ((wa.META_DOWN, wa.META_BUSY, wa.META_UNDELIVERABLE, wa.REENGAGEMENT)
                                   if provider == "meta" else (wa.TWILIO_DOWN, wa.TWILIO_BUSY, wa.TWILIO_BAD_NUMBER,
                                                               wa.TWILIO_OUTSIDE_WINDOW))  # fmt: skip
    try:
        fake.fail_next(down, busy, refused, closed)
        with pytest.raises(TransportDown):
            await chat.send(notice)
        with pytest.raises(TransportDown):
            await chat.send(notice)
        with pytest.raises(MessageRefused):
            await chat.send(notice)
        with pytest.raises(MessageHeld):
            await chat.send(notice)  # the platform says the window closed: gangline believes it
        tried = fake.attempts
        with pytest.raises(MessageHeld):
            await chat.send(notice)  # and does not try again until the person writes
        unreachable = transport(provider, fake, tmp_path / "other", api_url=f"http://127.0.0.1:{free_port()}")
        unreachable.window.heard(PERSON, time.time())
        with pytest.raises(TransportDown):
            await unreachable.send(notice)
        await unreachable.close()
    finally:
        await chat.close()
    assert fake.attempts == tried == 4 and fake.sent == []


@pytest.mark.parametrize("provider", ["meta", "twilio"])
async def test_the_window_and_what_was_held_outlive_a_restart(
    provider: str, fake: FakeWhatsApp, tmp_path: Path
) -> None:
    wrote = 1_800_000_000.0
    chat = transport(provider, fake, tmp_path, clock=lambda: wrote + 3600)
    chat.window.heard(PERSON, wrote)
    later = transport(provider, fake, tmp_path, clock=lambda: wrote + 25 * 3600)  # a restart a day later
    try:
        with pytest.raises(MessageHeld):
            await later.send(Outgoing(PERSON, "#1 is blocked", key="out-1"))
        with pytest.raises(TransportDown):
            await later.send(Outgoing(PERSON, "htop: ..."))  # a live view is not kept for later
        again = transport(provider, fake, tmp_path, clock=lambda: wrote + 26 * 3600)  # and another
        again.window.heard(PERSON, wrote + 26 * 3600 - 5)  # the person writes
        sent = await again.send(Outgoing(PERSON, "#1 is blocked", key="out-1"))
        following = await again.send(Outgoing(PERSON, "#2 is blocked", key="out-2"))
        await again.close()
    finally:
        await chat.close()
        await later.close()
    assert chat.window.is_open(PERSON) and not later.window.is_open(PERSON)
    assert [(s.id, s.text) for s in fake.sent] == [(sent, f"{HELD_NOTE}\n#1 is blocked"), (following, "#2 is blocked")]


@pytest.mark.parametrize("provider", ["meta", "twilio"])
async def test_doctor_says_which_number_answers_and_names_a_secret_the_platform_refuses(
    provider: str, fake: FakeWhatsApp, tmp_path: Path
) -> None:
    chat = _chat(provider, tmp_path, fake)
    config, paths = chat.project.config, chat.project.paths
    assert config is not None
    secret = "GANGLINE_TEST_WA_TOKEN" if provider == "meta" else "GANGLINE_TEST_TWILIO_TOKEN"
    [right] = await check_accounts(config, paths, ENV)
    [wrong] = await check_accounts(config, paths, ENV | {secret: "not-the-secret"})
    chat.configure(api_url=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert chat.project.config is not None
    [gone] = await check_accounts(chat.project.config, paths, ENV)
    answers = {
        "meta": "the Cloud API answers for +1 555-000-1111 (Gangline Test)",
        "twilio": f"Twilio answers for the account Gangline Test (active); sending from whatsapp:{wa.FROM_NUMBER}",
    }
    assert right.ok and right.detail == (
        f"{answers[provider]}; its webhook is {wa.PUBLIC_URL}/whatsapp, served on {chat.listen}"
    )
    assert not wrong.ok and "does not accept the" in wrong.detail and wrong.fix.startswith("put the secret right")
    assert not gone.ok and "cannot reach" in gone.detail
    assert fake.sent == []


def test_a_person_who_hides_their_number_behind_a_username_is_their_business_scoped_user_id() -> None:
    user_id = "US.13491208655302741918"
    contact = {"profile": {"name": "Ann", "username": "ann.k"}, "user_id": user_id}  # no wa_id
    text = {"from": user_id, "id": "wamid.A1", "timestamp": "1767225600", "type": "text", "text": {"body": "status"}}
    reaction = {"from": user_id, "id": "wamid.A2", "timestamp": "1767225601", "type": "reaction",
                "reaction": {"message_id": "wamid.B1", "emoji": "\N{THUMBS UP SIGN}"}}  # fmt: skip
    failed = {"id": "wamid.B2", "status": "failed", "recipient_id": "4915112345678", "errors": [{"code": 131047}]}
    update = wa.meta_update({"contacts": [contact], "messages": [text, reaction], "statuses": [failed]})
    heard, lapsed = read_update(update, wa.PHONE_NUMBER_ID)
    [(said, written_at)] = heard
    assert (said.room, said.user, said.text, said.message_id, said.direct) == (user_id, user_id, "status", "wamid.A1",
                                                                                True)  # fmt: skip
    assert written_at == 1767225600 and lapsed == [(PERSON, "wamid.B2")]  # failed for the window: it closes
    assert read_update(update, "another number id") == ([], [])


def test_a_missing_secret_stops_serving_before_it_starts_naming_the_key(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [commit_file("a.txt", "1\n")])
    found = table("meta", "http://127.0.0.1:9", "127.0.0.1:0")
    project.configure(tables="[[chat]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in found.items()))
    assert project.config is not None
    with pytest.raises(ConfigError) as refused:
        chat_door(project.config, project.paths, {k: v for k, v in ENV.items() if k != "GANGLINE_TEST_WA_APP_SECRET"})
    assert str(refused.value) == (
        "chat[1].app_secret_env: expected the environment variable GANGLINE_TEST_WA_APP_SECRET to hold the Meta "
        "app's secret, but it is not set"
    )


async def test_htop_where_a_message_cannot_be_changed_is_one_snapshot_and_says_so(chat: Chat) -> None:
    person = chat.person()
    said = "htop: this platform cannot change a message once sent, so here is one snapshot."
    async with chat.served():
        await person.ask("help")  # the window is open
        await person.say("gangline htop")  # its answer and the snapshot may come in either order
        answer = await chat.fake.wait_sent(lambda s: s.text == said)
        snapshot = await chat.fake.wait_sent(lambda s: s.text == "htop: no agent is running.")
    assert answer.to == snapshot.to == PERSON


async def test_a_notice_the_platform_reports_undelivered_for_the_window_is_held_and_sent_when_the_person_writes(
    chat: Chat,
) -> None:
    item = chat.waiting("Add a login page")
    person = chat.person()
    async with chat.served() as served:
        await person.ask("help")  # the window is open, as far as gangline knows
        await block(served, item, "waits for the key")
        notice = await chat.fake.wait_sent(lambda s: "is blocked" in s.text)
        # WhatsApp takes the send, then reports it failed: the window had closed after all.
        await person.status(notice, "failed", error=OUTSIDE[chat.provider])
        await person.ask("status")  # the person writes: what was held goes now
        again = await chat.fake.wait_sent(lambda s: "is blocked" in s.text and s.id != notice.id)
    assert again.text == f"{HELD_NOTE}\n#1 is blocked: waits for the key"
