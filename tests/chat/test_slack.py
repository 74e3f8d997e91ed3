"""gangline on Slack: slack_sdk against Slack's Web API and Socket Mode faked on loopback, and the Events API signed.

Every test serves a real project (real git, real SQLite, the orchestrator) on a real uvicorn with
the Slack transport its ``[[chat]]`` table builds (``make_transport`` and ``door_of``: what
``chat_door`` does, kept apart so a test can read where the Events API listens). slack_sdk's own
client talks to ``kits.fake_slack``, which plays Slack: it pushes a person's messages, clicks and
slash commands as Socket Mode envelopes and keeps what gangline posts. In events mode the test
POSTs to the transport's server as Slack would, signed with slack_sdk's ``SignatureVerifier``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import select

from gangline.chat.serving import check_accounts, door_of, make_transport
from gangline.chat.slack import EVENTS_PATH, SlackTransport
from gangline.core.errors import ConfigError
from gangline.core.items import Item
from gangline.core.records import OutboxRow
from gangline.core.stages import Hold
from gangline.server.app import create_app
from gangline.server.serving import serving
from gangline.store import schema
from kits.fake_slack import (
    APP_TOKEN,
    BOT_ID,
    BOT_TOKEN,
    BOT_USER,
    FakeSlack,
    callback,
    click,
    fake_slack,
    message,
    slash,
)
from kits.mcp_kit import Served
from kits.pipeline_kit import FAST, Project, commit_file

LATER = 32503680000.0  # the year 3000: an item scheduled then never starts by itself
CHANNEL = "C0GANGLINE"
DM = "D0ANN"
GONE = "C0ARCHIVED"  # a room in the table the bot is not in
PERSON = "U0ANN"
STRANGER = "U0MALLORY"
MENTION = f"<@{BOT_USER}>"
BOT_ENV, APP_ENV, SECRET_ENV = "GANGLINE_TEST_SLACK_BOT", "GANGLINE_TEST_SLACK_APP", "GANGLINE_TEST_SLACK_SECRET"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ENV = {BOT_ENV: BOT_TOKEN, APP_ENV: APP_TOKEN, SECRET_ENV: SECRET}


def slack_table(slack: FakeSlack, **fields: object) -> str:
    table: dict[str, object] = {"transport": "slack", "bot_token_env": BOT_ENV, "app_token_env": APP_ENV}
    table |= {"api_url": slack.url, "rooms": [CHANNEL], "allow": [PERSON], "window_s": 0.2} | fields
    return "[[chat]]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in table.items())


def events_table(slack: FakeSlack, **fields: object) -> str:
    return slack_table(slack, mode="events", signing_secret_env=SECRET_ENV, listen="127.0.0.1:0", **fields)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(tmp_path)
    project.agent("coder", [commit_file("a.txt", "1\n")])
    return project


def waiting(project: Project, title: str) -> Item:
    """A backlog item the pipeline leaves alone (it is scheduled for the year 3000)."""
    item = project.add(title)
    return project.store.schedule_start(item.id, LATER, "setup")


@asynccontextmanager
async def slack_account(project: Project, table: str) -> AsyncIterator[tuple[Served, SlackTransport]]:
    """The project served with the Slack account ``table`` describes beside the pipeline, and its transport."""
    config = project.configure(tables=table)
    transport = make_transport(config.chats[0], 1, project.paths, ENV)
    assert isinstance(transport, SlackTransport)
    app = create_app(project.paths, config, project.store, dict(os.environ), settings=FAST,
                     doors=[door_of([transport])])  # fmt: skip
    async with serving(app) as url:
        yield Served(app, url), transport


@asynccontextmanager
async def on_slack(project: Project, table: str) -> AsyncIterator[Served]:
    async with slack_account(project, table) as (served, _transport):
        yield served


@asynccontextmanager
async def events_api(project: Project, table: str) -> AsyncIterator[tuple[Served, httpx.AsyncClient]]:
    """Served in events mode, with a client at the transport's own server (where Slack would POST)."""
    async with slack_account(project, table) as (served, transport):
        assert transport.inbound is not None
        async with asyncio.timeout(10):
            await transport.inbound.listening.wait()
        async with httpx.AsyncClient(base_url=transport.inbound.url) as slack:
            yield served, slack


def signed(body: bytes, secret: str = SECRET, at: float | None = None, form: bool = False) -> dict[str, str]:
    """The headers Slack sends with ``body``: its timestamp and the v0 signature over both."""
    stamp = str(int(time.time() if at is None else at))
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    kind = "application/x-www-form-urlencoded" if form else "application/json"
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature, "Content-Type": kind}


def not_quite_signed(how: str, body: bytes) -> dict[str, str]:
    """Headers for ``body`` that Slack did not send, or sent long ago."""
    if how == "forged":
        return signed(body, secret="another secret")
    if how == "another body":
        return signed(body.replace(b"unblock", b"start"))
    if how == "restamped":  # a genuine signature, a timestamp changed
        return signed(body) | {"X-Slack-Request-Timestamp": str(int(time.time()) - 60)}
    if how == "stale":  # a genuine request replayed over 5 minutes later
        return signed(body, at=time.time() - 301)
    return {"Content-Type": "application/json"}


def event_body(slack: FakeSlack, text: str, user: str = PERSON) -> tuple[str, bytes]:
    """A person's message in the channel as an Events API body; its ts."""
    ts = slack.next_ts()
    return ts, json.dumps(callback(message(CHANNEL, user, text, ts), f"Ev{ts}")).encode()


def outbox(project: Project) -> list[OutboxRow]:
    box = schema.chat_outbox.c
    with project.store.engine.connect() as conn:
        return [OutboxRow(**row._mapping) for row in conn.execute(select(schema.chat_outbox).order_by(box.id))]


def test_a_missing_token_is_a_configuration_error_naming_its_key(project: Project) -> None:
    never = FakeSlack([])
    never.url = "http://127.0.0.1:9/api/"  # nothing is called: the table is refused before
    config = project.configure(tables=slack_table(never))
    with pytest.raises(ConfigError) as missing:
        make_transport(config.chats[0], 1, project.paths, {BOT_ENV: BOT_TOKEN})
    assert str(missing.value).startswith(f"chat[1].app_token_env: expected the environment variable {APP_ENV} to hold")


# --- Socket Mode ------------------------------------------------------------------------------


async def test_a_command_is_answered_in_the_thread_of_the_message_that_gave_it(project: Project) -> None:
    item = waiting(project, "Add a login page")
    async with fake_slack([CHANNEL, DM]) as slack, on_slack(project, slack_table(slack)):
        asked = slack.say(CHANNEL, PERSON, f"{MENTION} block {item.id}", mention=True)  # a message and an app_mention
        blocked = await slack.answer_to(asked)
        unnamed = slack.say(CHANNEL, PERSON, "status")
        echo = slack.next_ts()  # the bot's own message, as Slack echoes it
        own = message(CHANNEL, BOT_USER, f"{MENTION} status", echo, bot_id=BOT_ID)
        slack.deliver("events_api", callback(own, "Ev0ECHO"))
        slack.say(DM, PERSON, "status", direct=True)
        status = await slack.wait_posted(lambda p: p.channel == DM)
        await slack.wait_for(lambda: len(slack.acks) == 5)  # every envelope acked
    assert blocked.channel == CHANNEL
    assert blocked.text.startswith("blocked #1 Add a login page: now #1 backlog · blocked")
    assert status.thread_ts is None and status.text.startswith("backlog 1 · coding 0")  # a chat: no thread
    assert slack.answers_to(asked) == [blocked] and slack.answers_to(unnamed) == [] and slack.answers_to(echo) == []
    assert project.item(item.id).state.hold is Hold.BLOCKED
    assert project.store.events_after(0)[-1].actor == f"slack:{PERSON}"
    assert slack.connections == 1


async def test_a_notice_waits_out_a_busy_slack_and_a_room_the_bot_is_not_in_is_set_aside(project: Project) -> None:
    item = waiting(project, "Add a login page")
    async with fake_slack([CHANNEL]) as slack:
        slack.rate_limited = True
        async with on_slack(project, slack_table(slack, rooms=[CHANNEL, GONE])) as served:
            async with httpx.AsyncClient(base_url=served.url) as rest:
                blocked = await rest.post(f"/api/items/{item.id}/block", json={"reason": "waits for the key"})
                blocked.raise_for_status()
            await slack.wait_for(lambda: slack.post_attempts >= 2)  # 429: tried, and again after a pause
            slack.rate_limited = False
            notice = await slack.wait_posted(lambda p: "is blocked" in p.text)
            await slack.answer_to(slack.say(CHANNEL, PERSON, f"{MENTION} help"))  # the outbox is sent in order
    assert (notice.channel, notice.text, notice.thread_ts) == (CHANNEL, "#1 is blocked: waits for the key", None)
    assert [p.text for p in slack.posted if p.thread_ts is None] == [notice.text]
    refused = next(row for row in outbox(project) if row.room == GONE)
    assert refused.message_id is None and refused.failure is not None and "channel_not_found" in refused.failure


async def test_a_permission_request_is_answered_by_pressing_its_button_or_replying_in_its_thread(
    project: Project,
) -> None:
    item = waiting(project, "Deploy")
    async with (
        fake_slack([CHANNEL]) as slack,
        on_slack(project, slack_table(slack)) as served,
        asyncio.TaskGroup() as tg,
    ):
        asking = tg.create_task(
            served.permissions.ask("1-coder-1", item.id, None, "Bash", {"command": "make deploy"}, None)
        )
        notice = await slack.wait_posted(lambda p: bool(p.blocks))
        [request] = served.permissions.pending()
        pressed = slack.deliver("interactive", click(notice, "gangline-allow", PERSON, slack.next_ts()))
        answer = await slack.answer_to(notice.ts)
        [ack] = await slack.wait_acked(pressed)
        denying = tg.create_task(
            served.permissions.ask("1-coder-1", item.id, None, "Bash", {"command": "rm -rf x"}, None)
        )
        second = await slack.wait_posted(lambda p: bool(p.blocks) and p is not notice)
        await slack.answer_to(slack.say(CHANNEL, PERSON, f"{MENTION} help"))  # the notice is marked sent by now
        reply = message(CHANNEL, PERSON, "deny not on a Friday", slack.next_ts(), thread_ts=second.ts)
        slack.deliver("events_api", callback(reply, "Ev0REPLY"))  # no mention: a reply to gangline is for it
        denied = await slack.answer_to(second.ts)
    assert notice.text == "#1's agent asks to use Bash: answer allow, deny or always allow"
    values = [notice.button(f"gangline-{word}")["value"] for word in ("allow", "deny", "always")]
    assert values == [f"allow {request.id}", f"deny {request.id}", f"always {request.id}"]
    assert answer.text == "allow: #1's Bash" and asking.result().behavior == "allow"
    assert ack == {"envelope_id": pressed}
    assert denied.text == "deny: #1's Bash" and denying.result().message == "not on a Friday"
    answered = [e for e in project.store.events_after(0) if e.kind == "permission_answered"]
    assert [e.actor for e in answered] == [f"slack:{PERSON}"] * 2


async def test_a_person_not_allowed_gets_one_line_and_nothing_changes(project: Project) -> None:
    item = waiting(project, "Add a login page")
    before = project.store.last_event_id()
    async with fake_slack([CHANNEL]) as slack, on_slack(project, slack_table(slack)):
        said = slack.say(CHANNEL, STRANGER, f"{MENTION} block {item.id}", mention=True)
        answer = await slack.answer_to(said)
        await slack.answer_to(slack.say(CHANNEL, PERSON, f"{MENTION} help"))  # heard after the stranger
    assert answer.text.startswith(f"{STRANGER} may not give gangline orders here: ")
    assert len(slack.answers_to(said)) == 1
    assert project.item(item.id).state.hold is None and project.store.last_event_id() == before


async def test_an_event_slack_delivers_again_is_answered_once(project: Project) -> None:
    async with fake_slack([CHANNEL]) as slack, on_slack(project, slack_table(slack)):
        ts = slack.next_ts()
        payload = callback(message(CHANNEL, PERSON, f"{MENTION} status", ts), "Ev0REDELIVERED")
        first = slack.deliver("events_api", payload)
        again = slack.deliver("events_api", payload, retry_attempt=1)  # Slack's retry: no ack came in time
        await slack.answer_to(slack.say(CHANNEL, PERSON, f"{MENTION} help"))
        await slack.wait_acked(first, again)
    assert len(slack.answers_to(ts)) == 1


async def test_a_connection_slack_refreshes_or_drops_is_opened_again_and_nothing_is_lost(project: Project) -> None:
    async with fake_slack([CHANNEL]) as slack, on_slack(project, slack_table(slack)):
        await slack.answer_to(slack.say(CHANNEL, PERSON, f"{MENTION} help"))
        slack.refresh()
        refreshed = await slack.answer_to(slack.say(CHANNEL, PERSON, f"{MENTION} status"))
        await slack.drop()
        dropped = await slack.answer_to(slack.say(CHANNEL, PERSON, f"{MENTION} status"))
    assert refreshed.text.startswith("backlog 0") and dropped.text.startswith("backlog 0")
    assert slack.connections == 3


async def test_a_flood_from_one_person_is_refused_once_and_then_ignored(project: Project) -> None:
    async with (
        fake_slack([CHANNEL]) as slack,
        on_slack(project, slack_table(slack, per_minute=3, allow=[PERSON, "U0BOB"])),
    ):
        flood = [slack.say(CHANNEL, PERSON, f"{MENTION} help") for _ in range(6)]
        refusal = await slack.answer_to(flood[3])
        await slack.answer_to(slack.say(CHANNEL, "U0BOB", f"{MENTION} status"))  # heard after the whole flood
    assert refusal.text == f"{PERSON}: too many messages (at most 3 a minute); I ignore the rest of this minute's"
    assert [ts for ts in flood if slack.answers_to(ts)] == flood[:4]


async def test_htop_is_one_message_kept_up_to_date_with_chat_update(project: Project) -> None:
    async with fake_slack([CHANNEL]) as slack, on_slack(project, slack_table(slack)):
        started = await slack.answer_to(slack.say(CHANNEL, PERSON, f"{MENTION} htop"))
        view = await slack.wait_posted(lambda p: p.text.startswith("htop: no agent") and bool(p.edits))
        stopped = await slack.answer_to(slack.say(CHANNEL, PERSON, f"{MENTION} htop stop"))
    assert started.text.startswith("htop: one message, updated every 3 s")
    assert view.current == "htop: no agent is running." and view.thread_ts is None
    assert stopped.text == "htop stopped."


async def test_a_slash_command_over_socket_mode_is_acked_at_once_and_answered_in_its_channel(project: Project) -> None:
    async with fake_slack([CHANNEL]) as slack, on_slack(project, slack_table(slack)):
        typed = slack.deliver("slash_commands", slash(CHANNEL, PERSON, "status", "trig-1"))
        answer = await slack.wait_posted(lambda p: p.text.startswith("backlog 0"))
        [ack] = await slack.wait_acked(typed)
    assert ack == {"envelope_id": typed, "payload": {"response_type": "in_channel"}}
    assert (answer.channel, answer.thread_ts) == (CHANNEL, None)


# --- the Events API ---------------------------------------------------------------------------


async def test_the_events_api_takes_only_requests_signed_by_slack_in_the_last_five_minutes(project: Project) -> None:
    item = waiting(project, "Add a login page")
    async with fake_slack([CHANNEL]) as slack, events_api(project, events_table(slack)) as (_served, post):
        genuine_ts, genuine = event_body(slack, f"{MENTION} block {item.id}")
        accepted = await post.post(EVENTS_PATH, content=genuine, headers=signed(genuine))
        retried = await post.post(EVENTS_PATH, content=genuine, headers=signed(genuine) | {"X-Slack-Retry-Num": "1"})
        await slack.answer_to(genuine_ts)
        after = project.store.last_event_id()
        refused: dict[str, tuple[str, int]] = {}
        for how in ("forged", "another body", "restamped", "stale", "unsigned"):
            ts, body = event_body(slack, f"{MENTION} unblock {item.id}")
            headers = not_quite_signed(how, body)
            refused[how] = (ts, (await post.post(EVENTS_PATH, content=body, headers=headers)).status_code)
        last_ts, last = event_body(slack, f"{MENTION} help")
        await post.post(EVENTS_PATH, content=last, headers=signed(last))
        await slack.answer_to(last_ts)  # heard after anything the refused requests could have brought
    assert (accepted.status_code, retried.status_code) == (200, 200) and len(slack.answers_to(genuine_ts)) == 1
    assert {how: status for how, (_ts, status) in refused.items()} == dict.fromkeys(refused, 401)
    assert [ts for ts, _status in refused.values() if slack.answers_to(ts)] == []
    assert project.item(item.id).state.hold is Hold.BLOCKED and project.store.last_event_id() == after


async def test_url_verification_is_answered_with_its_challenge(project: Project) -> None:
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    body = json.dumps({"token": "deprecated", "challenge": challenge, "type": "url_verification"}).encode()
    async with fake_slack([CHANNEL]) as slack, events_api(project, events_table(slack)) as (_served, post):
        answered = await post.post(EVENTS_PATH, content=body, headers=signed(body))
        unsigned = await post.post(EVENTS_PATH, content=body, headers={"Content-Type": "application/json"})
    assert (answered.status_code, answered.text) == (200, challenge)
    assert unsigned.status_code == 401 and challenge not in unsigned.text


async def test_a_malformed_payload_is_a_400_and_changes_nothing(project: Project) -> None:
    item = waiting(project, "Add a login page")
    no_channel = slash(CHANNEL, PERSON, f"block {item.id}", "trig-9")
    del no_channel["channel_id"]
    nobody_nowhere = {"type": "message", "text": f"{MENTION} block {item.id}", "ts": "1.2"}  # no channel, no user
    bodies = [
        (b"{not json", False),
        (b'["a list"]', False),
        (json.dumps({"type": "event_callback", "event_id": "Ev1"}).encode(), False),  # no event
        (json.dumps(callback(nobody_nowhere, "Ev2")).encode(), False),
        (json.dumps({"type": "url_verification"}).encode(), False),  # no challenge
        (urlencode({"text": f"block {item.id}"}).encode(), True),  # neither an interaction nor a command
        (urlencode({"payload": "{not json"}).encode(), True),
        (urlencode(no_channel).encode(), True),
    ]
    async with fake_slack([CHANNEL]) as slack, events_api(project, events_table(slack)) as (_served, post):
        before = project.store.last_event_id()
        statuses = [
            (await post.post(EVENTS_PATH, content=body, headers=signed(body, form=form))).status_code
            for body, form in bodies
        ]
        garbled = await post.post(EVENTS_PATH, content=b"\xff\xfe", headers=signed(b""))  # not UTF-8: not Slack's
        last_ts, last = event_body(slack, f"{MENTION} help")
        await post.post(EVENTS_PATH, content=last, headers=signed(last))
        await slack.answer_to(last_ts)
    assert statuses == [400] * len(bodies) and garbled.status_code == 401
    assert project.item(item.id).state.hold is None and project.store.last_event_id() == before
    assert [row.reply_to for row in outbox(project)] == [f"{CHANNEL}:{last_ts}"]  # only the last one was answered


async def test_a_slash_command_is_acked_at_once_and_answered_in_its_channel(project: Project) -> None:
    waiting(project, "Add a login page")
    body = urlencode(slash(CHANNEL, PERSON, "status", "trig-2")).encode()
    async with fake_slack([CHANNEL]) as slack, events_api(project, events_table(slack)) as (_served, post):
        acked = await post.post(EVENTS_PATH, content=body, headers=signed(body, form=True))
        answer = await slack.wait_posted(lambda p: p.text.startswith("backlog 1 · coding 0"))
    assert acked.status_code == 200 and acked.json() == {"response_type": "in_channel"}
    assert (answer.channel, answer.thread_ts) == (CHANNEL, None)


async def test_doctor_says_whom_the_bot_token_signs_in_and_names_a_bad_one(project: Project) -> None:
    async with fake_slack([CHANNEL]) as slack:
        config = project.configure(tables=slack_table(slack))
        right = await check_accounts(config, project.paths, ENV)
        wrong = await check_accounts(config, project.paths, {**ENV, BOT_ENV: "xoxb-not-the-token"})
    assert right[0].ok and right[0].detail.startswith("signed in as ") and f"({BOT_USER})" in right[0].detail
    assert not wrong[0].ok and "Slack refused to check the bot token" in wrong[0].detail
