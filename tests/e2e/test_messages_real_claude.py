"""A person's message to the real Claude Code CLI coding an item, against the fake model API: to a live run and
to a finished one. The model receives each message (the fake's request log shows it) in the same session.

The live run sits in a model request the fake holds open; the message stops it and resumes its
session with the message as the prompt. The finished run's item waits in human QA; the message
sends it back to the coder, whose session is resumed again.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gangline.core.events import RunOutcome
from gangline.core.messages import MessageIn
from gangline.core.stages import Stage
from gangline.pipeline.orders import Orders
from gangline.pipeline.views import Views
from kits.claude_cli import offline_env, require_claude
from kits.fakeapi import FakeAnthropic, hang, text_turn, tool_turn
from kits.pipeline_kit import Project

pytestmark = pytest.mark.real_cli

COMMIT = "printf 'def parse(s):\\n    return s.split()\\n' > parse.py && git add parse.py && git commit -q -m 'parse'"
LIVE = "Also handle the empty string: parse('') must return []."
FINISHED = "Name the function split_words instead."


async def until(holds: object, what: str, bound_s: float = 60) -> None:
    async with asyncio.timeout(bound_s):
        while not holds():  # type: ignore[operator]
            await asyncio.sleep(0.05)  # the CLI and the pipeline make it true; bounded
    assert holds(), what  # type: ignore[operator]


def said_to_model(request: dict[str, object]) -> str:
    return json.dumps(request["body"]["messages"])  # type: ignore[index]


async def test_messages_to_a_live_and_a_finished_run_reach_the_model_in_the_same_session(tmp_path: Path) -> None:
    project = Project(tmp_path)
    script = [
        tool_turn("Bash", {"command": COMMIT, "description": "Write and commit parse.py"}),
        text_turn("never sent", errors=[hang()]),  # held open: the run is live when the message comes
        # Resuming a session whose last request got no answer, Claude Code puts an assistant message of its
        # own there ("No response requested."), so the resumed run's request is the next turn.
        text_turn("Handled the empty string too."),
        text_turn("Renamed it."),
    ]
    with FakeAnthropic(script) as api:
        project.add_agent({
            "name": "coder", "cli": "claude", "command": require_claude(), "model": "claude-sonnet-4-5",
            "allowed_tools": ["Bash"], "max_turns": 5, "max_budget_usd": 1.0,
            "env": offline_env(api.base_url, tmp_path / "home"),
        })  # fmt: skip
        project.configure(qa_mode="human")
        item = project.add("Parse words")
        orch = project.orchestrator(tick_s=0.2)
        orders = Orders(orch, Views(project.store))
        serving = asyncio.create_task(orch.serve())
        try:
            await until(lambda: len(api.main_requests()) >= 2, "the second model request (held open)")
            await orders.say(item.id, MessageIn(text=LIVE), "alice")
            await until(lambda: project.stage(item.id) is Stage.QA, "coded, in human QA")
            await orders.say(item.id, MessageIn(text=FINISHED), "bob")
            await until(lambda: len(project.store.runs(item.id)) == 3 and project.stage(item.id) is Stage.QA,
                        "coded again after the message")  # fmt: skip
        finally:
            serving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await serving
        requests = api.main_requests()
    first, second, third = project.store.runs(item.id)
    assert (first.outcome, first.reason) == (RunOutcome.STOPPED, "a person sent a message")
    assert second.outcome is third.outcome is RunOutcome.SUCCEEDED
    assert first.session_id and second.resumed_session == first.session_id
    assert third.resumed_session == second.session_id
    live_asks = [r for r in requests if LIVE in said_to_model(r)]
    finished_asks = [r for r in requests if FINISHED in said_to_model(r)]
    assert live_asks and finished_asks
    # Resumed, not restarted: the model sees the earlier turns (the commit) with each message.
    assert all("git commit -q -m 'parse'" in said_to_model(r) for r in live_asks + finished_asks)
    assert LIVE in said_to_model(finished_asks[0])  # the whole conversation, in one session
    assert project.item(item.id).retries == 0
