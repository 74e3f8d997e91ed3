"""gangline on Matrix against a real homeserver (Synapse on loopback), a real Matrix client playing the person.

The person talks to gangline's bot in a plain and in an end-to-end encrypted room: commands and
their answers, pipeline notices, a permission request answered by replying to its notice, a
person who may not give orders, and gangline restarted mid-conversation.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gangline.chat.serving import chat_door
from gangline.cli.checks import Check, run_checks
from gangline.core.stages import Hold
from gangline.server.app import create_app
from gangline.server.serving import serving
from kits.matrix_person import Message, Person
from kits.mcp_kit import Served
from kits.pipeline_kit import FAST, Project, commit_file
from kits.synapse import Account, Synapse, fresh

LATER = 32503680000.0
TOKEN_ENV = "GANGLINE_TEST_MATRIX_TOKEN"


@dataclass
class Room:
    """A room the person made, with gangline's bot invited, and the project whose chat it is."""

    id: str
    person: Person
    bot: Account
    project: Project
    synapse: Synapse

    @property
    def name(self) -> str:
        return self.bot.user_id.split(":")[0].removeprefix("@")

    def from_bot(self, message: Message) -> bool:
        return message.sender == self.bot.user_id

    async def ask(self, text: str) -> Message:
        """Say ``text`` naming the bot; its answer, which replies to what was said."""
        said = await self.person.say(self.id, f"{self.name}: {text}")
        return await self.person.wait_for(self.id, lambda m: self.from_bot(m) and _replies_to(m) == said)

    def answers_to(self, event_id: str) -> list[Message]:
        return [m for m in self.person.messages(self.id) if self.from_bot(m) and _replies_to(m) == event_id]

    def configure(self, **chat: object) -> None:
        table = {
            "transport": "matrix",
            "homeserver": self.synapse.url,
            "user": self.bot.user_id,
            "token_env": TOKEN_ENV,
            "rooms": [self.id],
            "allow": [self.person.user_id],
            "window_s": 0.2,
        }
        table |= chat
        lines = "".join(f"{key} = {_toml(value)}\n" for key, value in table.items())
        self.project.configure(tables=f"[[chat]]\n{lines}")

    @asynccontextmanager
    async def gangline(self) -> AsyncIterator[Served]:
        """The project served, with its Matrix account beside the pipeline."""
        project = self.project
        assert project.config is not None
        door = chat_door(project.config, project.paths, {TOKEN_ENV: self.bot.access_token})
        assert door is not None
        app = create_app(project.paths, project.config, project.store, {}, settings=FAST, doors=[door])
        async with serving(app) as url:
            yield Served(app, url)


def _replies_to(message: Message) -> str | None:
    return (message.content.get("m.relates_to") or {}).get("m.in_reply_to", {}).get("event_id")


def _toml(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else f'"{value}"' if isinstance(value, str) else str(value)


async def _room(synapse: Synapse, tmp_path: Path, stack: AsyncExitStack, *, encrypted: bool) -> Room:
    bot = synapse.register(fresh("gangline"))
    person = await stack.enter_async_context(Person.login(synapse, synapse.register(fresh("ann")), tmp_path / "ann"))
    room_id = await person.create_room("gangline", encrypted=encrypted, invite=[bot.user_id])
    project = Project(tmp_path)
    project.agent("coder", [commit_file("a.txt", "1\n")])
    room = Room(room_id, person, bot, project, synapse)
    room.configure()
    return room


@pytest.fixture(params=[False, True], ids=["plain", "encrypted"])
async def room(request: pytest.FixtureRequest, synapse: Synapse, tmp_path: Path) -> AsyncIterator[Room]:
    async with AsyncExitStack() as stack:
        yield await _room(synapse, tmp_path, stack, encrypted=request.param)


def waiting(project: Project, title: str) -> int:
    item = project.add(title)
    return project.store.schedule_start(item.id, LATER, "setup").id


async def test_commands_are_answered_and_notices_told_in_the_room(room: Room) -> None:
    item = waiting(room.project, "Add a login page")
    async with room.gangline():
        await room.person.wait_joined(room.id, room.bot.user_id)
        status = await room.ask("status")
        blocked = await room.ask(f"block {item}")
        notice = await room.person.wait_for(room.id, lambda m: room.from_bot(m) and "is blocked" in m.body)
    encrypted = room.person.client.rooms[room.id].encrypted
    assert status.body.startswith("backlog 1 · coding 0") and status.msgtype == "m.notice"
    assert blocked.body.startswith("blocked #1 Add a login page: now #1 backlog · blocked")
    assert notice.body == f"#1 is blocked: blocked by matrix:{room.person.user_id}" and _replies_to(notice) is None
    assert room.project.item(item).state.hold is Hold.BLOCKED
    assert room.project.store.events_after(0)[-1].actor == f"matrix:{room.person.user_id}"
    assert {status.encrypted, blocked.encrypted, notice.encrypted} == {encrypted}
    if encrypted:  # the homeserver never saw what the bot said
        events = room.synapse.room_events(room.bot, room.id)
        said = [e["type"] for e in events if e["sender"] == room.bot.user_id and "state_key" not in e]
        assert len(said) == 3 and set(said) == {"m.room.encrypted"}


async def test_a_permission_request_is_answered_by_replying_to_its_notice(room: Room) -> None:
    item = waiting(room.project, "Deploy")
    async with room.gangline() as served, asyncio.TaskGroup() as tg:
        await room.person.wait_joined(room.id, room.bot.user_id)
        asking = tg.create_task(
            served.permissions.ask("1-coder-1", item, None, "Bash", {"command": "make deploy"}, None)
        )
        notice = await room.person.wait_for(room.id, lambda m: room.from_bot(m) and "asks to use Bash" in m.body)
        reply = {"msgtype": "m.text", "body": f"> <{room.bot.user_id}> {notice.body}\n\nallow",
                 "m.relates_to": {"m.in_reply_to": {"event_id": notice.event_id}}}  # fmt: skip
        said = await room.person.send(room.id, reply)
        answer = await room.person.wait_for(room.id, lambda m: room.from_bot(m) and _replies_to(m) == said)
    assert answer.body == "allow: #1's Bash" and asking.result().behavior == "allow"


async def test_a_person_not_allowed_gets_one_line_and_nothing_changes(synapse: Synapse, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        room = await _room(synapse, tmp_path, stack, encrypted=False)
        stranger_account = synapse.register(fresh("mallory"))
        stranger = await stack.enter_async_context(Person.login(synapse, stranger_account, tmp_path / "mallory"))
        await room.person.invite(room.id, stranger.user_id)
        await stranger.join(room.id)
        item = waiting(room.project, "Add a login page")
        before = room.project.store.last_event_id()
        async with room.gangline():
            await stranger.wait_joined(room.id, room.bot.user_id)
            said = await stranger.say(room.id, f"{room.name}: block {item}")
            answer = await stranger.wait_for(room.id, lambda m: m.sender == room.bot.user_id and _replies_to(m) == said)
    assert answer.body.startswith(f"{stranger.user_id} may not give gangline orders here")
    assert room.project.item(item).state.hold is None and room.project.store.last_event_id() == before


async def test_after_a_restart_what_was_said_meanwhile_is_answered_and_nothing_twice(
    synapse: Synapse, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        room = await _room(synapse, tmp_path, stack, encrypted=True)
        async with room.gangline():
            await room.person.wait_joined(room.id, room.bot.user_id)
            first = await room.ask("status")
        meanwhile = await room.person.say(room.id, f"{room.name}: ls")  # gangline is down
        async with room.gangline():
            answered = await room.person.wait_for(room.id, lambda m: room.from_bot(m) and _replies_to(m) == meanwhile)
            await room.ask("help")  # every earlier message has been heard by now
        status_asked = _replies_to(first)
    assert answered.body == "Nothing is waiting: every item is done." and answered.encrypted
    assert status_asked is not None and len(room.answers_to(status_asked)) == 1 and len(room.answers_to(meanwhile)) == 1


async def test_htop_is_one_message_edited_in_place(room: Room) -> None:
    async with room.gangline():
        await room.person.wait_joined(room.id, room.bot.user_id)
        started = await room.ask("htop")
        view = await room.person.wait_for(room.id, lambda m: room.from_bot(m) and m.body.startswith("htop: no agent"))
        edit = await room.person.wait_for(room.id, lambda m: room.from_bot(m) and m.replaces == view.event_id)
        stopped = await room.ask("htop stop")
    assert started.body.startswith("htop: one message, updated every 3 s")
    assert edit.body == "htop: no agent is running." and stopped.body == "htop stopped."


async def test_the_rest_api_and_chat_see_one_board(room: Room) -> None:
    waiting(room.project, "Add a login page")
    async with room.gangline() as served, httpx.AsyncClient(base_url=served.url) as rest:
        await room.person.wait_joined(room.id, room.bot.user_id)
        listed = await room.ask("ls")
        items = (await rest.get("/api/items")).json()
    assert listed.body.startswith(f"#{items[0]['id']} backlog · scheduled until 3000-01-01")


def test_doctor_says_whom_the_token_signs_in_and_names_a_bad_one(synapse: Synapse, tmp_path: Path) -> None:
    bot = synapse.register(fresh("gangline"))
    project = Project(tmp_path)
    project.agent("coder", [commit_file("a.txt", "1\n")])
    table = (f'[[chat]]\ntransport = "matrix"\nhomeserver = "{synapse.url}"\nuser = "{bot.user_id}"\n'
             f'token_env = "{TOKEN_ENV}"\nallow = ["@ann:localhost"]\n'
             f'[[chat]]\nname = "down"\ntransport = "matrix"\nhomeserver = "http://127.0.0.1:9"\n'
             f'user = "{bot.user_id}"\ntoken_env = "{TOKEN_ENV}"\n')  # fmt: skip
    project.configure(tables=table)
    right = by_name(run_checks(project.root, {**os.environ, TOKEN_ENV: bot.access_token}, port=0))
    wrong = by_name(run_checks(project.root, {**os.environ, TOKEN_ENV: "syt_not_a_token"}, port=0))
    unset = by_name(run_checks(project.root, {k: v for k, v in os.environ.items() if k != TOKEN_ENV}, port=0))
    assert right["chat matrix (matrix)"].ok
    assert right["chat matrix (matrix)"].detail == f"signed in as {bot.user_id} on {synapse.url}"
    assert (
        not right["chat down (matrix)"].ok and "cannot reach http://127.0.0.1:9" in right["chat down (matrix)"].detail
    )
    refused = wrong["chat matrix (matrix)"]
    assert not refused.ok and refused.detail.startswith(f"{synapse.url} does not accept the bot's token")
    assert unset["chat matrix (matrix)"].detail == (
        f"chat[1].token_env: expected the environment variable {TOKEN_ENV} to hold the bot's token, but it is not set"
    )


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}
