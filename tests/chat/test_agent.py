"""The chat agent behind the door, with the fake agent CLI: a session per room, a message at a time, reset, bounds.

A real project (git, SQLite, the orchestrator) on a real uvicorn with a chat transport in
memory; the chat profile runs gangline's fake CLI, which plays one scripted attempt per message
in the room's own directory and reports the session it was asked to resume. The real Claude
Code CLI answering from the people's tools is in ``tests/e2e/test_chat_agent_real_claude.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gangline.core.conversation import INSTRUCTIONS, launched
from gangline.core.errors import ConfigError
from gangline.core.events import RunOutcome
from gangline.core.profiles import AgentProfile, Role
from gangline.core.records import RunRow
from gangline.pipeline.restart import RESTARTED_CHAT
from gangline.store import Store
from kits.chat_kit import ROOM, MemoryTransport, chatting, memory_settings
from kits.mcp_kit import Sessions
from kits.pipeline_kit import Project, commit_file

OTHER_ROOM = "!other:example.org"


def make_project(tmp_path: Path, attempts: list[list[dict[str, Any]]], **chat: Any) -> Project:
    project = Project(tmp_path)
    project.agent("coder", [commit_file("a.txt", "1\n")])
    project.agent("helper", attempts, role="chat", **chat)
    project.configure()
    return project


def chat_runs(store: Store, room: str = ROOM) -> list[RunRow]:
    return [run for run in store.runs() if run.role is Role.CHAT and run.chat_room == room]


async def test_free_text_is_answered_by_the_rooms_session_and_costed_in_the_ledger(tmp_path: Path) -> None:
    project = make_project(tmp_path, [[{"say": "All quiet: nothing is running."}], [{"say": "Still quiet."}]])
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat):
        first = await chat.ask("how are things going?")
        second = await chat.ask("and now?")
    assert (first, second) == ("All quiet: nothing is running.", "Still quiet.")
    one, two = chat_runs(project.store)
    assert one.item_id is None and one.chat_transport == "memory" and one.outcome is RunOutcome.SUCCEEDED
    assert one.resumed_session is None and one.session_id is not None
    assert two.resumed_session == one.session_id == two.session_id  # one session: the conversation goes on
    assert project.store.chat_room("memory", ROOM).agent_session == one.session_id
    costs = {row.key: row for row in project.store.ledger("item")}
    assert costs["chat"].runs == 2 and costs["chat"].cost_usd > 0


async def test_each_room_has_its_own_session_and_reset_starts_the_room_over(tmp_path: Path) -> None:
    project = make_project(tmp_path, [[{"say": "first"}], [{"say": "second"}], [{"say": "third"}]])
    chat = MemoryTransport(memory_settings(rooms=(ROOM, OTHER_ROOM)))
    async with chatting(project, chat):
        assert await chat.ask("hello") == "first"
        assert await chat.ask("hello", room=OTHER_ROOM) == "first"  # its own directory, its own session
        reset = await chat.ask("reset")
        assert reset.startswith("Started over")
        assert await chat.ask("hello again") == "second"
        assert await chat.ask("hello again", room=OTHER_ROOM) == "second"
    here, there = chat_runs(project.store), chat_runs(project.store, OTHER_ROOM)
    assert here[0].session_id != there[0].session_id
    assert here[1].resumed_session is None  # reset: a new session
    assert there[1].resumed_session == there[0].session_id  # the other room was not reset
    assert [e.actor for e in project.store.events_after(0) if e.kind == "chat_reset"] == ["memory:@person:example.org"]


async def test_a_message_said_while_the_agent_answers_waits_its_turn(tmp_path: Path) -> None:
    gate = tmp_path / "go"
    attempts = [[{"wait_for_file": str(gate)}, {"say": "answer one"}], [{"say": "answer two"}]]
    project = make_project(tmp_path, attempts)
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat) as s:
        sessions = Sessions(s.app)
        first = chat.say("gangline first question")
        await sessions.next()
        second = chat.say("gangline second question")
        assert await chat.answer_to(second) == "I am still answering the last message here; I take this one next."
        gate.touch()
        assert await chat.answer_to(first) == "answer one"
        later = await chat.wait_sent(lambda s: s.message.reply_to == second and s.text == "answer two")
    order = [s.text for s in chat.sent]
    assert order.index("answer one") < order.index(later.text)
    assert len(chat_runs(project.store)) == 2  # never two at once: the database would refuse a second live run


async def test_an_answer_past_the_budget_is_stopped_and_the_room_is_told(tmp_path: Path) -> None:
    # 200,000 input tokens at the sonnet list price is $0.60, past the chat profile's default $0.50.
    attempts = [[{"usage": {"input_tokens": 200_000, "output_tokens": 0}}, {"hang": True}]]
    project = make_project(tmp_path, attempts)
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat):
        answer = await chat.ask("summarise everything ever done")
    assert answer.startswith("I stopped before answering: this answer would cost more than $0.50")
    (run,) = chat_runs(project.store)
    assert run.outcome is RunOutcome.STOPPED and run.reason is not None and "budget exceeded" in run.reason


async def test_reset_stops_the_answer_under_way(tmp_path: Path) -> None:
    project = make_project(tmp_path, [[{"hang": True}], [{"say": "fresh"}]])
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat) as s:
        sessions = Sessions(s.app)
        chat.say("gangline think about this for ever")
        await sessions.next()  # its agent is under way: its session has started
        reset = await chat.ask("reset")
        assert reset.endswith("I dropped the answer I was working on.")
        assert await chat.ask("hello") == "fresh"
    stopped, fresh = chat_runs(project.store)
    assert stopped.outcome is RunOutcome.STOPPED and fresh.resumed_session is None
    assert not any(s.text.startswith("I stopped") for s in chat.sent)  # the reset said it all


async def test_a_restart_mid_answer_tells_the_room_and_keeps_the_conversation(tmp_path: Path) -> None:
    project = make_project(tmp_path, [[{"say": "noted"}], [{"hang": True}], [{"say": "back again"}]])
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat) as s:
        assert await chat.ask("remember the number 7") == "noted"
        sessions = Sessions(s.app)
        chat.say("gangline what was the number?")
        cut, _ = await sessions.next()
    session = chat_runs(project.store)[0].session_id
    again = MemoryTransport(memory_settings())
    async with chatting(project, again):
        told = await again.wait_sent(lambda s: s.text == RESTARTED_CHAT)
        assert told.message.room == ROOM
        assert await again.ask("what was the number?") == "back again"
    assert project.store.get_run(cut).outcome is not None  # closed, and never answered twice
    assert chat_runs(project.store)[-1].resumed_session == session  # the same conversation


async def test_a_chat_agent_that_cannot_start_says_why_in_the_room(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [commit_file("a.txt", "1\n")])
    project.add_agent({"name": "helper", "role": "chat", "cli": "claude", "command": str(tmp_path / "no-such-cli")})
    project.configure()
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat):
        answer = await chat.ask("are you there?")
    assert answer.startswith("I could not start the chat agent:") and "no-such-cli" in answer


def test_the_chat_agent_is_told_what_it_is_and_the_projects_own_words_come_after() -> None:
    profile = AgentProfile(name="helper", role=Role.CHAT, system_prompt="Answer in French.")
    said = launched(profile).system_prompt
    assert said is not None and said.startswith(INSTRUCTIONS) and said.endswith("Answer in French.")
    assert (profile.max_turns, profile.max_budget_usd) == (10, 0.5)  # bounded although the table said nothing


@pytest.mark.parametrize(
    ("table", "key", "message"),
    [
        ({"cli": "codex"}, "agent[2]", "a chat profile runs Claude Code"),
        ({"prompt_template": "{{ item.title }}"}, "agent[2]", "give it a system_prompt instead"),
    ],
)
def test_a_chat_profile_that_cannot_work_is_refused_naming_it(
    tmp_path: Path, table: dict[str, Any], key: str, message: str
) -> None:
    project = Project(tmp_path)
    project.agent("coder", [commit_file("a.txt", "1\n")])
    project.add_agent({"name": "helper", "role": "chat", **table})
    with pytest.raises(ConfigError) as err:
        project.configure()
    assert str(err.value).startswith(f"{project.paths.config_file}: {key}") and message in str(err.value)


def test_two_chat_profiles_are_refused(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [commit_file("a.txt", "1\n")])
    project.add_agent({"name": "one", "role": "chat"})
    project.add_agent({"name": "two", "role": "chat"})
    with pytest.raises(ConfigError, match=r"agent\[3\]\.role: expected one \[\[agent\]\] with role = \"chat\""):
        project.configure()
