"""The chat agent end to end: the real Claude Code CLI answers free text in a room from the people's MCP tools.

A real project on a real uvicorn with the chat door on a transport in memory; the chat profile
runs the pinned Claude Code CLI against the scripted fake model API. The fake's request log is
the proof: what the model was sent back from gangline's tools is the project's own data, the
second question carries the first exchange (one session), and a change the agent asks for waits
for a person in the room.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gangline.core.conversation import INSTRUCTIONS
from gangline.core.profiles import Role
from gangline.core.records import RunRow
from gangline.core.stages import Stage
from kits.chat_kit import PERSON, MemoryTransport, chatting, memory_settings
from kits.claude_cli import offline_env, require_claude
from kits.fakeapi import FakeAnthropic, Turn, text_turn, tool_turn
from kits.pipeline_kit import Project, commit_file

pytestmark = pytest.mark.real_cli

LATER = 32503680000.0  # the year 3000: the item waits in the backlog until someone starts it
ANSWER_S = 90.0  # a real CLI per message: start, MCP handshake, the turns


def make_project(tmp_path: Path, api: FakeAnthropic) -> Project:
    project = Project(tmp_path)
    project.agent("coder", [commit_file("login.txt", "login\n")])
    env = offline_env(api.base_url, tmp_path / "home")
    project.add_agent({"name": "helper", "role": "chat", "command": require_claude(), "model": "claude-sonnet-4-5",
                       "env": env})  # fmt: skip
    project.configure()
    item = project.add("Add a login page", criteria=["a user can log in"])
    project.store.schedule_start(item.id, LATER, "setup")
    return project


def chat_runs(project: Project) -> list[RunRow]:
    return [run for run in project.store.runs() if run.role is Role.CHAT]


def tool_results(request: dict[str, Any]) -> list[str]:
    """The text of every tool result the CLI sent the model in one request."""
    found = []
    for message in request["body"]["messages"]:
        content = message["content"] if isinstance(message["content"], list) else []
        for block in content:
            if block.get("type") == "tool_result":
                inner = block["content"]
                found.append(inner if isinstance(inner, str) else json.dumps(inner))
    return found


def said_by_person(request: dict[str, Any]) -> list[str]:
    """The person's words as the model received them, in order."""
    found = []
    for message in request["body"]["messages"]:
        if message["role"] != "user":
            continue
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        found += [b["text"] for b in blocks if b.get("type") == "text" and "says:" in b["text"]]
    return found


def system_text(request: dict[str, Any]) -> str:
    system = request["body"].get("system") or []
    return system if isinstance(system, str) else "\n".join(block.get("text", "") for block in system)


async def test_a_question_is_answered_from_the_peoples_tools_in_one_session_per_room(tmp_path: Path) -> None:
    script: list[Turn] = [
        tool_turn("mcp__gangline__list_items", {}),
        text_turn("One item waits: #1 Add a login page."),
        text_turn("Still that one, nothing new."),
    ]
    with FakeAnthropic(script) as api:
        project = make_project(tmp_path, api)
        chat = MemoryTransport(memory_settings())
        async with chatting(project, chat):
            first = await chat.answer_to(chat.say("gangline what is waiting?"), ANSWER_S)
            second = await chat.answer_to(chat.say("gangline anything new since?"), ANSWER_S)
        requests = api.main_requests()
    assert (first, second) == ("One item waits: #1 Add a login page.", "Still that one, nothing new.")
    # What gangline's list_items gave the model is the project's own item, through the people's tool.
    (listed,) = tool_results(requests[1])
    assert "Add a login page" in listed and '"stage": "backlog"' in listed.replace('":"', '": "')
    assert INSTRUCTIONS.splitlines()[0] in system_text(requests[0])
    # The second question went to the same session: the model saw the first exchange with it.
    assert said_by_person(requests[2]) == [f"{PERSON} says:\nwhat is waiting?", f"{PERSON} says:\nanything new since?"]
    one, two = chat_runs(project)
    assert one.item_id is None and two.resumed_session == one.session_id is not None
    assert one.cost_usd > 0 and {row.key for row in project.store.ledger("item")} == {"chat"}
    permission_events = [e.kind for e in project.store.events_after(0) if e.kind.startswith("permission")]
    assert permission_events == []  # reading is allowed without asking anyone


async def test_a_change_it_wants_to_make_is_asked_in_the_room_and_done_once_a_person_allows_it(tmp_path: Path) -> None:
    script: list[Turn] = [tool_turn("mcp__gangline__start_item", {"item_id": 1}), text_turn("Started #1.")]
    with FakeAnthropic(script) as api:
        project = make_project(tmp_path, api)
        chat = MemoryTransport(memory_settings())
        async with chatting(project, chat):
            asked = chat.say("gangline please start the login page")
            notice = await chat.wait_sent(lambda s: s.message.request_id is not None, ANSWER_S)
            assert project.stage(1) is Stage.BACKLOG  # nothing changed before a person said so
            assert (await chat.answer_to(chat.say("allow", reply_to=notice.id))).startswith("allow:")
            answer = await chat.answer_to(asked, ANSWER_S)
    assert notice.text == "The chat agent asks to use mcp__gangline__start_item: answer allow, deny or always allow"
    assert answer == "Started #1."
    started = [e for e in project.store.events_after(0) if e.kind == "transition" and e.trigger == "start"]
    (run,) = chat_runs(project)
    assert [e.actor for e in started] == [f"agent:{run.id}"]  # the agent did it, with the person's leave
    answered = [e for e in project.store.events_after(0) if e.kind == "permission_answered"]
    assert [e.actor for e in answered] == [f"memory:{PERSON}"]
