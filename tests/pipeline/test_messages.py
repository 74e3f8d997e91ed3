"""A person's message to an item's coder, through the one order every door calls (``Orders.say``).

Fake scenario agents on real repositories: a live run is stopped and its session resumed with
the message, no retry spent; an item in QA goes back to coding for it; a blocked one is
unblocked; in the backlog it comes with the first prompt; a merged item refuses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gangline.core.errors import NotListening
from gangline.core.events import RunOutcome
from gangline.core.messages import MESSAGE_INTRO, MessageIn
from gangline.core.stages import Hold, Stage
from gangline.pipeline.orders import Orders
from gangline.pipeline.views import Views
from kits.pipeline_kit import Project, commit_file


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@asynccontextmanager
async def serving(project: Project) -> AsyncIterator[Orders]:
    orch = project.orchestrator(tick_s=0.2)
    task = asyncio.create_task(orch.serve())
    try:
        yield Orders(orch, Views(project.store, orch.live, orch.clock))
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def until(holds: object, what: str, bound_s: float = 30) -> None:
    async with asyncio.timeout(bound_s):
        while not holds():  # type: ignore[operator]
            await asyncio.sleep(0.02)  # the orchestrator's tasks make it true; bounded
    assert holds(), what  # type: ignore[operator]


async def test_a_message_to_a_live_run_stops_it_and_resumes_the_same_session_with_it_without_a_retry(
    project: Project,
) -> None:
    go, working = project.scenarios / "go", project.scenarios / "working"
    project.agent("coder", [
        [{"run": f"touch {working}"}, {"wait_for_file": str(go), "timeout_s": 60}, *commit_file("a.txt", "a\n")],
        [{"say": "taking the message"}, *commit_file("a.txt", "a, empty case too\n")],
    ])  # fmt: skip
    project.configure()
    item = project.add("Handle input")
    async with serving(project) as orders:
        await until(working.exists, "the coder is at work in its session")
        said = await orders.say(item.id, MessageIn(text="Also handle the empty case."), "alice")
        assert said.run_id is None  # waiting for the coder's next run
        await until(lambda: project.stage(item.id) is Stage.DONE, "the item merged")
    first, second = project.store.runs(item.id)[:2]
    assert (first.outcome, first.reason) == (RunOutcome.STOPPED, "a person sent a message")
    assert second.resumed_session == first.session_id
    prompt = project.prompts(item.id)[1]
    assert prompt.startswith(MESSAGE_INTRO) and "alice says:\nAlso handle the empty case." in prompt
    assert "gangline restarted" not in prompt  # a stop for a message is no restart
    assert project.item(item.id).retries == 0
    assert [m.run_id for m in project.store.messages(item.id)] == [second.id]
    assert project.base_file("a.txt") == "a, empty case too"  # git show drops the last newline


async def test_a_message_to_an_item_in_human_qa_sends_it_back_to_its_coders_session_with_line_comments(
    project: Project,
) -> None:
    project.agent("coder", [[*commit_file("a.py", "x = 1\n")], [*commit_file("a.py", "x = 2\n")]])
    project.configure(qa_mode="human")
    item = project.add("Set x")
    await project.run_until_idle()
    assert project.stage(item.id) is Stage.QA
    async with serving(project) as orders:
        comment = {"path": "a.py", "line": 1, "text": "x should be 2"}
        await orders.say(item.id, MessageIn.model_validate({"text": "One change:", "comments": [comment]}), "bob")
        await until(lambda: len(project.store.runs(item.id)) == 2 and project.stage(item.id) is Stage.QA, "coded again")
    runs = project.store.runs(item.id)
    assert runs[1].resumed_session == runs[0].session_id
    assert (
        "bob says:\nOne change:\nComments on your diff (file:line in the new version):\n- a.py:1: x should be 2"
        in (project.prompts(item.id)[1])
    )
    assert project.item(item.id).retries == 0  # a person's message is no failed attempt


async def test_a_message_in_the_backlog_comes_with_the_first_prompt(project: Project) -> None:
    project.agent("coder", [[*commit_file("a.txt", "a\n")]])
    project.configure()
    item = project.add("Do it")
    orch = project.orchestrator()
    await Orders(orch, Views(project.store)).say(item.id, MessageIn(text="Use tabs."), "carol")
    await project.run_until_idle()
    prompt = project.prompts(item.id)[0]
    assert "# Do it" in prompt and prompt.endswith("carol says:\nUse tabs.")


async def test_a_message_unblocks_a_blocked_item_and_a_merged_one_refuses_it(project: Project) -> None:
    project.agent("coder", [[{"say": "nothing"}], [*commit_file("a.txt", "a\n")]])
    project.configure(max_retries=0)
    item = project.add("Try")
    await project.run_until_idle()
    assert project.item(item.id).state.hold is Hold.BLOCKED
    orders = Orders(project.orchestrator(), Views(project.store))
    await orders.say(item.id, MessageIn(text="Commit your work this time."), "dan")
    assert project.item(item.id).state.hold is None
    await project.run_until_idle()
    assert project.stage(item.id) is Stage.DONE
    assert "dan says:\nCommit your work this time." in project.prompts(item.id)[1]

    with pytest.raises(NotListening, match=r"item 1 is done: its work is merged; add a new item for more"):
        await orders.say(item.id, MessageIn(text="One more thing"), "dan")
    assert len(project.store.messages(item.id)) == 1  # the refused message was not kept
