"""gangline on Discord: hikari's gateway and REST client against a loopback Discord, a person playing in it.

Every end-to-end test serves a real project (real git, real SQLite, the orchestrator) on a real
uvicorn with the chat door its ``[[chat]]`` table builds; hikari, unchanged, talks to
``kits.fake_discord`` through its own ``rest_url`` (REST, and the gateway URL ``/gateway/bot``
names, zlib-stream compressed as hikari asks). The person writes, mentions the bot, sends DMs,
runs ``/gangline`` and presses buttons over the gateway, and calls the HTTP interactions
endpoint signed with a key pair made here.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey

from gangline.chat.discord import DiscordTransport
from gangline.chat.serving import chat_door, check_accounts
from gangline.chat.transport import MessageRefused, Outgoing, TransportDown
from gangline.core.items import Item
from gangline.core.stages import Hold
from gangline.project.chatconfig import DiscordSettings
from gangline.server.app import create_app
from gangline.server.serving import serving
from kits.fake_discord import FakeDiscord, discord, free_port, user
from kits.mcp_kit import Served
from kits.pipeline_kit import FAST, Project, commit_file

LATER = 32503680000.0  # the year 3000: an item scheduled then never starts by itself
TOKEN_ENV = "GANGLINE_TEST_DISCORD_TOKEN"
PERSON = user("1100000000000000001", "ann")
STRANGER = user("1100000000000000002", "mallory")
UNPRIVILEGED = 1 | 1 << 9 | 1 << 12  # GUILDS, GUILD_MESSAGES, DIRECT_MESSAGES: no MESSAGE_CONTENT (1 << 15)


class Discord:
    """A fake Discord, a guild channel and a DM with the person, and a project whose chat it is."""

    def __init__(self, fake: FakeDiscord, root: Path, endpoint: bool = False, **table: Any) -> None:
        self.fake = fake
        self.room, self.dm = fake.channel(), fake.channel(dm=True)
        self.port = free_port()
        self.project = Project(root)
        self.project.agent("coder", [commit_file("a.txt", "1\n")])
        chat = {"transport": "discord", "token_env": TOKEN_ENV, "api_url": fake.url, "rooms": [self.room],
                "allow": [PERSON["id"]], "window_s": 0.2, "application_id": fake.application_id}  # fmt: skip
        if endpoint:
            assert fake.signing_key is not None
            chat |= {"public_key": fake.signing_key.verify_key.encode().hex(), "listen": f"127.0.0.1:{self.port}"}
        lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in (chat | table).items())
        self.project.configure(tables=f"[[chat]]\n{lines}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/discord/interactions"

    def waiting(self, title: str) -> Item:
        """A backlog item the pipeline leaves alone (it is scheduled for the year 3000)."""
        return self.project.store.schedule_start(self.project.add(title).id, LATER, "setup")

    @asynccontextmanager
    async def gangline(self) -> AsyncIterator[Served]:
        """The project served with its Discord account beside it, once the bot is on the gateway (its endpoint
        listens by then)."""
        project = self.project
        assert project.config is not None
        door = chat_door(project.config, project.paths, {TOKEN_ENV: self.fake.token})
        assert door is not None
        app = create_app(project.paths, project.config, project.store, dict(os.environ), settings=FAST, doors=[door])
        async with serving(app) as url:
            await self.fake.connected()
            yield Served(app, url)

    async def ask(self, text: str, author: dict[str, Any] = PERSON) -> str:
        said = await self.fake.say(self.room, author, text, mention=True)
        return (await self.fake.answer_to(said)).text


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with discord(signing_key=SigningKey.generate()) as fake:
        yield fake


async def test_a_command_mentioning_the_bot_is_answered_as_a_reply_to_it(fake: FakeDiscord, tmp_path: Path) -> None:
    chat = Discord(fake, tmp_path)
    item = chat.waiting("Add a login page")
    async with chat.gangline():
        said = await fake.say(chat.room, PERSON, "status", mention=True)
        status = await fake.answer_to(said)
        blocked = await chat.ask(f"block {item.id}")
        alias = await fake.say(chat.room, PERSON, f"<@!{fake.bot_id}> help")  # the older nickname mention
        helped = await fake.answer_to(alias)
    assert (status.reply_to, status.channel_id, status.via) == (said, chat.room, "channel")
    assert status.text.startswith("backlog 1 · coding 0")
    assert blocked.startswith("blocked #1 Add a login page: now #1 backlog · blocked")
    assert chat.project.item(item.id).state.hold is Hold.BLOCKED
    assert chat.project.store.events_after(0)[-1].actor == f"discord:{PERSON['id']}"
    assert "allow [N|REQUEST]" in helped.text
    # What hikari did to get there: the slash command registered, the gateway as Discord's.
    [(path, [command])] = fake.commands
    assert path == f"/applications/{fake.application_id}/commands" and command["name"] == "gangline"
    assert [(o["name"], o["type"], o["required"]) for o in command["options"]] == [("command", 3, True)]
    assert fake.compressions == ["zlib-stream"] and fake.identified[0]["intents"] == UNPRIVILEGED
    assert fake.heartbeats >= 1 and {"GET /users/@me", "GET /gateway/bot"} <= set(fake.requests)


async def test_a_direct_message_is_for_the_bot_and_elsewhere_only_a_mention_is(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    chat = Discord(fake, tmp_path)
    chat.waiting("Add a login page")
    elsewhere = fake.channel()  # a channel of the guild that is not in rooms
    async with chat.gangline():
        unnamed = await fake.say(chat.room, PERSON, "ls")  # in a room that is not ambient: not for the bot
        named = await fake.say(elsewhere, PERSON, "gangline ls")  # elsewhere only a mention counts
        said = await fake.say(chat.dm, PERSON, "ls")
        answer = await fake.answer_to(said)
        mentioned = await fake.answer_to(await fake.say(elsewhere, PERSON, "ls", mention=True))
    assert (answer.channel_id, answer.reply_to) == (chat.dm, said)
    assert answer.text.startswith("#1 backlog · scheduled until 3000-01-01")
    assert mentioned.channel_id == elsewhere and mentioned.text == answer.text
    assert not [s for s in fake.sent if s.reply_to in (unnamed, named)]


async def test_a_notice_goes_to_the_configured_channel(fake: FakeDiscord, tmp_path: Path) -> None:
    chat = Discord(fake, tmp_path)
    item = chat.waiting("Add a login page")
    async with chat.gangline() as served, httpx.AsyncClient(base_url=served.url) as rest:
        (await rest.post(f"/api/items/{item.id}/block", json={"reason": "waits for the key"})).raise_for_status()
        notice = await fake.wait_sent(lambda s: "is blocked" in s.text)
    assert (notice.text, notice.channel_id, notice.reply_to) == ("#1 is blocked: waits for the key", chat.room, None)


async def test_a_permission_request_is_answered_by_pressing_its_button(fake: FakeDiscord, tmp_path: Path) -> None:
    chat = Discord(fake, tmp_path)
    item = chat.waiting("Deploy")
    async with chat.gangline() as served, asyncio.TaskGroup() as tg:
        asking = tg.create_task(
            served.permissions.ask("1-coder-1", item.id, None, "Bash", {"command": "make deploy"}, None)
        )
        notice = await fake.wait_sent(lambda s: bool(s.buttons))
        request = notice.buttons[0].partition(":")[2]
        pressed = await fake.press(notice, PERSON, f"allow:{request}")
        answer = await fake.answer_to(pressed)
        denying = tg.create_task(
            served.permissions.ask("1-coder-1", item.id, None, "Bash", {"command": "rm -rf x"}, None)
        )
        second = await fake.wait_sent(lambda s: bool(s.buttons) and s is not notice)
        replied = await fake.say(chat.room, PERSON, "deny not on a Friday", reply_to=second.id)  # words work too
        denied = await fake.answer_to(replied)
    assert notice.text == "#1's agent asks to use Bash: answer allow, deny or always allow"
    assert notice.buttons == [f"allow:{request}", f"deny:{request}", f"always:{request}"]
    assert [(c.interaction_id, c.type) for c in fake.callbacks] == [(pressed, 6)]  # a deferred update, at once
    assert (answer.text, answer.via, answer.channel_id) == ("allow: #1's Bash", "followup", chat.room)
    assert asking.result().behavior == "allow"
    assert denied.text == "deny: #1's Bash" and denying.result().message == "not on a Friday"


async def test_a_slash_command_is_acknowledged_and_answered_in_its_response(fake: FakeDiscord, tmp_path: Path) -> None:
    chat = Discord(fake, tmp_path, guild_id=fake.guild_id)
    chat.waiting("Add a login page")
    async with chat.gangline():
        asked = await fake.slash(chat.room, PERSON, "status")
        answer = await fake.answer_to(asked)
    assert [(c.interaction_id, c.type) for c in fake.callbacks] == [(asked, 5)]  # deferred: "gangline is thinking"
    assert answer.via == "original" and answer.text.startswith("backlog 1 · coding 0")
    assert [path for path, _ in fake.commands] == [
        f"/applications/{fake.application_id}/guilds/{fake.guild_id}/commands"
    ]


async def test_a_person_not_allowed_gets_one_line_and_nothing_changes(fake: FakeDiscord, tmp_path: Path) -> None:
    chat = Discord(fake, tmp_path)
    item = chat.waiting("Add a login page")
    before = chat.project.store.last_event_id()
    async with chat.gangline():
        answer = await chat.ask(f"block {item.id}", author=STRANGER)
        await chat.ask("help")
    assert answer.startswith(f"{STRANGER['id']} may not give gangline orders here: ")
    assert chat.project.item(item.id).state.hold is None and chat.project.store.last_event_id() == before


async def test_a_message_delivered_twice_is_answered_once(fake: FakeDiscord, tmp_path: Path) -> None:
    chat = Discord(fake, tmp_path)
    async with chat.gangline():
        first = await fake.say(chat.room, PERSON, "status", mention=True)
        await fake.say(chat.room, PERSON, "status", mention=True, message_id=first)  # the gateway's replay
        await chat.ask("help")
    assert len([s for s in fake.sent if s.reply_to == first]) == 1


async def test_a_flood_from_one_person_is_refused_once_and_then_ignored(fake: FakeDiscord, tmp_path: Path) -> None:
    chat = Discord(fake, tmp_path, per_minute=3)
    async with chat.gangline():
        flood = [await fake.say(chat.room, PERSON, "help", mention=True) for _ in range(6)]
        refusal = await fake.answer_to(flood[3])
        await chat.ask("help", author=STRANGER)  # heard after the whole flood
    assert refusal.text == f"{PERSON['id']}: too many messages (at most 3 a minute); I ignore the rest of this minute's"
    assert [s.reply_to for s in fake.sent if s.reply_to in flood] == flood[:4]


def command_body(fake: FakeDiscord, chat: Discord, text: str) -> bytes:
    return json.dumps(fake.slash_payload(chat.room, PERSON, text)).encode()


async def test_the_interactions_endpoint_takes_only_what_discord_signed_lately(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    chat = Discord(fake, tmp_path, endpoint=True)
    item = chat.waiting("Add a login page")
    before = chat.project.store.last_event_id()
    order = f"block {item.id}"
    async with chat.gangline():
        forged = await fake.call_endpoint(chat.endpoint, command_body(fake, chat, order), key=SigningKey.generate())
        unsigned = await fake.call_endpoint(chat.endpoint, command_body(fake, chat, order), signed=False)
        stale = await fake.call_endpoint(
            chat.endpoint, command_body(fake, chat, order), stamp=str(int(time.time()) - 301)
        )
        ping = await fake.call_endpoint(chat.endpoint, b'{"type": 1, "id": "1", "application_id": "2", "version": 1}')
        await chat.ask("help")  # anything the refused ones set going would be answered before this
    assert [r.status_code for r in (forged, unsigned, stale)] == [401, 401, 401]
    assert (ping.status_code, ping.json()) == (200, {"type": 1})
    assert chat.project.item(item.id).state.hold is None and chat.project.store.last_event_id() == before
    assert not [s for s in fake.sent if s.via != "channel"] and fake.callbacks == []


async def test_a_slash_command_through_the_endpoint_is_acked_in_the_answer(fake: FakeDiscord, tmp_path: Path) -> None:
    chat = Discord(fake, tmp_path, endpoint=True)
    item = chat.waiting("Add a login page")
    before = chat.project.store.last_event_id()
    async with chat.gangline():
        bodies = (b"{not json", b'{"type": 2, "data": {"name": "gangline"}}', b"[1, 2]", b'{"type": 3}')
        malformed = [await fake.call_endpoint(chat.endpoint, body) for body in bodies]
        unchanged = chat.project.store.last_event_id()
        payload = fake.slash_payload(chat.room, PERSON, f"block {item.id}")
        acked = await fake.call_endpoint(chat.endpoint, json.dumps(payload).encode())
        answer = await fake.answer_to(payload["id"])
    assert [r.status_code for r in malformed] == [400, 400, 400, 400] and unchanged == before
    assert (acked.status_code, acked.json()) == (200, {"type": 5})  # the ack is the HTTP answer: no callback
    assert fake.callbacks == [] and answer.via == "original"
    assert (
        answer.text.startswith("blocked #1 Add a login page") and chat.project.item(item.id).state.hold is Hold.BLOCKED
    )


def settings(fake: FakeDiscord, **fields: Any) -> DiscordSettings:
    return DiscordSettings.model_validate(
        {"transport": "discord", "token_env": TOKEN_ENV, "api_url": fake.url} | fields
    )


async def test_what_discord_refuses_is_refused_and_what_it_cannot_take_now_is_down(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    room, hidden = fake.channel(), fake.channel()
    fake.forbidden.add(hidden)
    paths = Project(tmp_path).paths
    transport = DiscordTransport(settings(fake), "chat[1]", paths, {TOKEN_ENV: fake.token})
    try:
        fake.fail(429, 503)
        with pytest.raises(TransportDown, match=r"rate-limits messages to \d+ for 64 s"):
            await transport.send(Outgoing(room, "one"))
        with pytest.raises(TransportDown, match="503"):
            await transport.send(Outgoing(room, "one"))
        with pytest.raises(MessageRefused, match="404 Unknown Channel"):
            await transport.send(Outgoing("4242424242", "one"))
        with pytest.raises(MessageRefused, match="403 Missing Access"):
            await transport.send(Outgoing(hidden, "one"))
        long = "\n".join(f"line {n:04} " + "x" * 90 for n in range(45))  # 4500 characters
        first = await transport.send(Outgoing(room, long, reply_to="1234567"))
        await transport.edit(room, first, "edited")
    finally:
        await transport.close()
    pieces = [s for s in fake.sent if s.channel_id == room]
    assert [len(p.content) <= 2000 for p in pieces] == [True, True, True] and pieces[0].id == first
    assert "\n".join(p.content for p in pieces) == long and pieces[0].reply_to == "1234567"
    assert pieces[0].text == "edited"
    gone = DiscordTransport(settings(fake, api_url="http://127.0.0.1:9/api/v10"), "chat[1]", paths,
                            {TOKEN_ENV: fake.token})  # fmt: skip
    try:
        with pytest.raises(TransportDown):
            await gone.send(Outgoing(room, "one"))
    finally:
        await gone.close()


async def test_doctor_says_whom_the_token_signs_in_and_names_a_bad_one(fake: FakeDiscord, tmp_path: Path) -> None:
    chat = Discord(fake, tmp_path)
    assert chat.project.config is not None
    [right] = await check_accounts(chat.project.config, chat.project.paths, {TOKEN_ENV: fake.token})
    [wrong] = await check_accounts(
        chat.project.config, chat.project.paths, {TOKEN_ENV: fake.token.split(".")[0] + ".wrong.token"}
    )
    [unset] = await check_accounts(chat.project.config, chat.project.paths, {})
    [garbled] = await check_accounts(chat.project.config, chat.project.paths, {TOKEN_ENV: "not a token"})
    assert right.ok and right.detail == f"signed in as gangline ({fake.bot_id}) on {fake.url}"
    assert not wrong.ok and wrong.detail == f"{fake.url} does not accept the bot's token"
    assert unset.detail == (
        f"chat[1].token_env: expected the environment variable {TOKEN_ENV} to hold a Discord bot token, "
        "but it is not set"
    )
    assert garbled.detail == (
        f"chat[1].token_env: expected {TOKEN_ENV} to hold a Discord bot token, which starts with the bot's id in base64"
    )
    assert fake.sent == [] and fake.commands == []


async def test_a_dropped_gateway_is_joined_again_as_before_and_what_comes_after_is_answered(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    chat = Discord(fake, tmp_path, message_content=True)
    async with chat.gangline():
        await fake.close_gateway()  # Discord going away: hikari resumes, is told to identify afresh, and does
        await fake.wait_for(lambda: len(fake.identified) == 2, timeout_s=30)
        answer = await chat.ask("status")
    assert answer.startswith("backlog 0 · coding 0") and set(fake.compressions) == {"zlib-stream"}
    assert [i["intents"] for i in fake.identified] == [UNPRIVILEGED | 1 << 15] * 2  # MESSAGE_CONTENT asked for
