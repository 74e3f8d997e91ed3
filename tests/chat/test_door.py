"""Chat as a door, on a transport in memory and the real app: commands, who may speak, notices, the outbox.

Every test serves a real project (real git, real SQLite, the orchestrator with the fake agent)
on a real uvicorn with the chat door beside it; only the platform is in memory. Matrix itself is
in ``test_matrix.py``, on a real homeserver.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from gangline.chat.summary import DailySummary
from gangline.chat.transport import Said
from gangline.core.items import Item
from gangline.core.stages import Hold, Stage, Trigger
from gangline.core.timers import next_at
from gangline.server.state import state_of
from kits.chat_kit import PERSON, ROOM, MemoryTransport, chatting, memory_settings
from kits.helpers import git
from kits.mcp_kit import Served
from kits.pipeline_kit import Project, commit_file

LATER = 32503680000.0  # the year 3000: an item scheduled then never starts by itself
STRANGER = "@stranger:example.org"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(tmp_path)
    project.agent("coder", [commit_file("a.txt", "1\n")])
    project.configure(time_zone="Asia/Tokyo")
    return project


def waiting(project: Project, title: str, **fields: object) -> Item:
    """A backlog item the pipeline leaves alone (it is scheduled for the year 3000)."""
    item = project.add(title, **fields)
    return project.store.schedule_start(item.id, LATER, "setup")


async def test_status_ls_and_show_answer_in_the_room(project: Project) -> None:
    first = waiting(project, "Add a login page", criteria=["a user can log in"])
    waiting(project, "Fix the crash on empty input", kind="bug")
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat):
        status = await chat.ask("status")
        assert "backlog 2 · coding 0" in status and "timer: #1 start after 3000-01-01" in status
        listed = await chat.ask("ls")
        assert listed.splitlines()[0].startswith("#1 backlog · scheduled until 3000-01-01 09:00 JST — Add a login")
        shown = await chat.ask(f"show #{first.id}")
    assert shown.splitlines()[0] == "#1 Add a login page (story)"
    assert "☐ a user can log in" in shown and "you can: start" in shown


async def test_an_action_from_chat_is_carried_out_with_the_person_as_its_actor(project: Project) -> None:
    item = waiting(project, "Add a login page")
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat):
        answer = await chat.ask(f"block {item.id}")
    assert answer.startswith("blocked #1 Add a login page: now #1 backlog · blocked: blocked by memory:@person")
    assert project.item(item.id).state.hold is Hold.BLOCKED
    last = project.store.events_after(0)[-1]
    assert (last.kind, last.trigger, last.actor) == ("transition", "block", f"memory:{PERSON}")


async def test_a_refused_order_is_said_in_the_same_words_rest_uses(project: Project) -> None:
    item = waiting(project, "Add a login page")
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat) as served:
        answer = await chat.ask(f"approve {item.id}")
        async with httpx.AsyncClient(base_url=served.url) as rest:
            refused = (await rest.post(f"/api/items/{item.id}/approve")).json()["error"]["message"]
        missing = await chat.ask("show 99")
        async with httpx.AsyncClient(base_url=served.url) as rest:
            not_found = (await rest.get("/api/items/99")).json()["error"]["message"]
    assert answer == f"refused: {refused}" and "backlog" in refused
    assert missing == f"refused: {not_found}"
    assert project.item(item.id).stage is Stage.BACKLOG


async def test_a_command_said_wrong_gets_its_usage(project: Project) -> None:
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat):
        answer = await chat.ask("show three")
        helped = await chat.ask("help")
        free = await chat.ask("what are you up to?")
    assert answer == "refused: show: expected an item id such as 3 or #3, got 'three'; usage: show N"
    assert "timer N HH:MM | timer cancel N — " in helped and "allow [N|REQUEST]" in helped
    assert free.startswith("That is no command I know (say help)")


async def test_a_person_not_allowed_gets_one_line_and_nothing_changes(project: Project) -> None:
    item = waiting(project, "Add a login page")
    before = project.store.last_event_id()
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat):
        answer = await chat.ask(f"block {item.id}", user=STRANGER)
    assert answer.startswith(f"{STRANGER} may not give gangline orders here: ")
    assert "allow in the [[chat]] table 'memory' of .gangline/project.toml" in answer
    assert project.item(item.id).state.hold is None and project.store.last_event_id() == before


async def test_only_messages_naming_the_bot_are_answered_unless_the_room_is_ambient(project: Project) -> None:
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat):
        unnamed = chat.say("status")
        await chat.ask("help")  # answered after the one before it was heard
        assert not [s for s in chat.sent if s.message.reply_to == unnamed]
        assert await chat.answer_to(chat.say("@gangline:example.org: ambient on")) == (
            "I answer every message in this room now."
        )
        assert "backlog 0" in await chat.answer_to(chat.say("status"))
        assert "backlog 0" in await chat.answer_to(chat.say("status", room="!direct:example.org", direct=True))


async def test_a_flood_from_one_person_is_refused_once_and_then_ignored(project: Project) -> None:
    chat = MemoryTransport(memory_settings(per_minute=3, allow=(PERSON, "@other:example.org")))
    async with chatting(project, chat):
        flood = [chat.say("gangline help") for _ in range(6)]
        refusal = await chat.answer_to(flood[3])
        await chat.ask("status", user="@other:example.org")  # heard after the whole flood
    assert refusal == f"{PERSON}: too many messages (at most 3 a minute); I ignore the rest of this minute's"
    answered = [s.message.reply_to for s in chat.sent if s.message.reply_to in flood]
    assert answered == flood[:4]


async def test_a_person_not_allowed_cannot_make_the_bot_spam_refusals(project: Project) -> None:
    chat = MemoryTransport(memory_settings(per_minute=2))
    async with chatting(project, chat):
        flood = [chat.say("gangline status", user=STRANGER) for _ in range(5)]
        await chat.ask("help")  # heard after the whole flood
    answers = [s.text for s in chat.sent if s.message.reply_to in flood]
    assert len(answers) == 3 and all(a.startswith(f"{STRANGER} may not give gangline orders") for a in answers[:2])
    assert answers[2].startswith(f"{STRANGER}: too many messages (at most 2 a minute)")


async def test_a_message_delivered_twice_is_answered_once(project: Project) -> None:
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat):
        first = chat.say("gangline status")
        chat.deliver(Said(ROOM, PERSON, "gangline status", first))  # the platform's retry of the same message
        await chat.ask("help")
    assert len([s for s in chat.sent if s.message.reply_to == first]) == 1


async def test_a_timer_starts_an_item_at_that_time_in_the_projects_zone(project: Project) -> None:
    item = waiting(project, "Add a login page")
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat):
        before = time.time()
        answer = await chat.ask(f"timer {item.id} 09:30")
        at = project.item(item.id).start_after
        cancelled = await chat.ask(f"timer cancel {item.id}")
    tokyo = ZoneInfo("Asia/Tokyo")
    assert at in {next_at(9, 30, before, tokyo), next_at(9, 30, time.time(), tokyo)}
    assert answer.endswith(" 09:30 JST") and answer.startswith("#1 Add a login page starts at ")
    assert cancelled.startswith("#1 Add a login page: timer cancelled") and project.item(item.id).start_after is None


async def test_say_keeps_a_message_for_the_coder_and_a_merged_item_refuses_it(project: Project) -> None:
    item = waiting(project, "Add a login page")
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat):
        told = await chat.ask(f"say {item.id} keep the form short")
        empty = await chat.ask("say 9999 hello")
    assert told == f"Told #{item.id}'s coder; its next run takes it."
    [message] = project.store.messages(item.id)
    assert (message.text, message.actor, message.run_id) == ("keep the form short", "memory:@person:example.org", None)
    assert empty == "refused: item 9999 does not exist"


async def until(served: Served, ready: Callable[[], bool], timeout_s: float = 60) -> None:
    """Wait, woken by the orchestrator's changes, until ``ready()`` holds."""
    async with asyncio.timeout(timeout_s):
        seen = served.orch.version
        while not ready():
            seen = await served.orch.wait_changed(seen, 1.0)


async def test_a_permission_request_is_answered_from_chat_by_replying_to_its_notice(project: Project) -> None:
    item = waiting(project, "Deploy")
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat) as served, asyncio.TaskGroup() as tg:
        asking = tg.create_task(
            served.permissions.ask("1-coder-1", item.id, None, "Bash", {"command": "make deploy"}, None)
        )
        notice = await chat.wait_sent(lambda s: s.message.request_id is not None)
        answer = await chat.answer_to(chat.say("allow", reply_to=notice.id))
        denying = tg.create_task(
            served.permissions.ask("1-coder-1", item.id, None, "Bash", {"command": "rm -rf x"}, None)
        )
        await chat.wait_sent(lambda s: s.message.request_id is not None and s is not notice)
        denied = await chat.ask(f"deny #{item.id} not on a Friday")
    assert notice.text == "#1's agent asks to use Bash: answer allow, deny or always allow"
    assert answer == "allow: #1's Bash" and asking.result().behavior == "allow"
    assert denied == "deny: #1's Bash" and denying.result().message == "not on a Friday"
    answered = [e for e in project.store.events_after(0) if e.kind == "permission_answered"]
    assert [e.actor for e in answered] == [f"memory:{PERSON}"] * 2


async def test_notices_are_filtered_per_room_and_a_burst_is_one_message_a_window(project: Project) -> None:
    items = [waiting(project, title) for title in ("One", "Two", "Three", "Four")]
    chat = MemoryTransport(memory_settings(rooms=({"id": ROOM, "notify": ["blocked"]},), window_s=1.0))
    async with chatting(project, chat) as served, httpx.AsyncClient(base_url=served.url) as rest:
        for item in items:
            await rest.post(f"/api/items/{item.id}/block", json={"reason": "waits for the API key"})
            await rest.post(f"/api/items/{item.id}/unblock")  # no news: filtered out
        await chat.wait_sent(lambda s: "#4 is blocked" in s.text)
        await chat.ask("help")
    notices = [s.text for s in chat.sent if s.message.reply_to is None]
    lines = [line for text in notices for line in text.splitlines()]
    assert lines == [f"#{n} is blocked: waits for the API key" for n in (1, 2, 3, 4)]
    assert len(notices) <= 2  # the first at once (alone, or with what was read with it), the rest together


async def test_notices_wait_out_a_platform_that_is_down_and_a_restart_and_come_once_in_order(project: Project) -> None:
    first, second, third = waiting(project, "One"), waiting(project, "Two"), waiting(project, "Three")
    chat = MemoryTransport(memory_settings(window_s=0))
    chat.down = True
    async with chatting(project, chat) as served, httpx.AsyncClient(base_url=served.url) as rest:
        await rest.post(f"/api/items/{first.id}/block")
        await chat.wait_attempts(2)  # tried, and tried again after a pause
    # While gangline is down, someone blocks another item on the store directly (as the CLI would).
    project.store.hold(second.id, Trigger.BLOCK, "cli", "by hand")
    again = MemoryTransport(memory_settings(window_s=0))
    async with chatting(project, again) as served, httpx.AsyncClient(base_url=served.url) as rest:
        await again.wait_sent(lambda s: "#2 is blocked" in s.text)
        await rest.post(f"/api/items/{third.id}/block")
        await again.wait_sent(lambda s: "#3 is blocked" in s.text)
    assert chat.sent == []
    assert [s.text.split(":")[0] for s in again.sent] == ["#1 is blocked", "#2 is blocked", "#3 is blocked"]


async def test_a_failure_inside_a_chat_account_restarts_it_and_the_server_goes_on(project: Project) -> None:
    chat = MemoryTransport(memory_settings())
    chat.surprise = RuntimeError("a platform's surprise")
    async with chatting(project, chat) as served, httpx.AsyncClient(base_url=served.url) as rest:
        answer = await chat.ask("help")  # its first send fails; the account starts again and sends it
        health = (await rest.get("/health")).json()
    assert answer.startswith("status — ") and health["orchestrator"] is True
    assert chat.attempts == 2 and len([s for s in chat.sent if s.message.reply_to]) == 1


async def test_logs_cost_and_git_answer_from_a_finished_item(project: Project) -> None:
    project.add("Add a file")
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat) as served:
        await until(served, lambda: project.stage(1) is Stage.DONE)
        logs = await chat.ask("logs 1")
        cost = await chat.ask("cost")
        week = await chat.ask("cost week")
        summary = DailySummary(chat, state_of(served.app).orders, wake=lambda: None).send(time.time())
        base = await chat.ask("git")  # wakes the courier, which sends the summary first
        told = await chat.wait_sent(lambda s: s.text.startswith("Daily cost: "))
    assert logs.startswith("run 1-coder-1 (coder, succeeded), its last lines:") and "■ run succeeded" in logs
    spent = project.store.ledger("item")[0].cost_usd
    assert cost.startswith(f"${spent:.2f} since ") and " 00:00 JST, over 1 run(s)" in cost and "#1: " in cost
    assert week.startswith(f"${spent:.2f} since ")
    assert told.text == summary == f"Daily cost: {cost}" and told.message.room == ROOM
    tip = git(project.root, "rev-parse", "main")
    assert base.splitlines()[0].startswith(f"main at {tip[:10]} ") and "your checkout: on main, clean" in base


async def test_overview_tells_what_a_merged_item_changed_and_refuses_one_that_was_not(project: Project) -> None:
    project.add("Add a file")
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat) as served:
        await until(served, lambda: project.stage(1) is Stage.DONE)
        later = waiting(project, "Not yet")
        told = await chat.ask("overview #1")
        refused = await chat.ask(f"overview {later.id}")
        async with httpx.AsyncClient(base_url=served.url) as rest:
            not_merged = (await rest.get(f"/api/items/{later.id}/overview")).json()["error"]["message"]
    tip = git(project.root, "rev-parse", "main")
    lines = told.splitlines()
    assert lines[0].startswith(f"#1 Add a file (story): merged onto main as {tip[:12]} at ") and lines[0].endswith(
        " JST"
    )  # in the project's time zone
    assert lines[1:3] == ["  1 file(s), +1 -0", "    a.txt (+1 -0)"]
    assert "  Agent runs: 1 coder (" in told and "0 failed attempt(s) before the one merged; passed by" in told
    assert refused == f"refused: {not_merged}" and "is not merged" in not_merged


async def test_htop_shows_each_live_runs_processes_in_one_message_it_keeps_up_to_date(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [[{"sleep": 120}]])
    project.configure()
    project.add("Think for a long time")
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat) as served:
        await until(served, lambda: bool(project.store.runs(live_only=True)))
        started = await chat.ask("htop")
        view = await chat.wait_sent(lambda s: s.text.startswith("#1 coder coder: ") and len(s.edits) >= 1)
        stopped = await chat.ask("htop stop")
    assert started.startswith("htop: one message, updated every 3 s for 5 minutes")
    assert " process(es), CPU " in view.text and "MiB" in view.text
    assert stopped == "htop stopped."
