"""What an item's kind means, and the actions that end an item: fake scenario agents on real repositories.

A spike's result is its written report, held for a person after QA and closed without a merge;
a bug's coder is asked for a failing test first; a refactor's QA checks that behaviour did not
change. ``close``, ``abandon`` and ``supersede`` end an item; ``auto_start = false`` is a triage gate.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gangline.core.errors import ConfigError
from gangline.core.messages import MessageIn
from gangline.core.orders import ItemAction
from gangline.core.stages import Hold, IllegalTransition, Stage
from gangline.pipeline.orders import Orders
from gangline.pipeline.views import Views
from kits.pipeline_kit import Project, commit_file, git

FINDINGS = "Findings: the parser is the bottleneck. Options: cache it, or rewrite it. I recommend the cache."


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def orders_of(project: Project) -> Orders:
    return Orders(project.orchestrator(), Views(project.store))


def verdict(result: str) -> list[dict[str, object]]:
    return [{"final_json": {"verdict": result, "criteria": [{"index": 1, "passed": result == "pass"}],
                            "summary": f"the report {'answers' if result == 'pass' else 'misses'} it"}}]  # fmt: skip


async def test_a_spike_reports_waits_for_a_person_and_is_closed_without_a_merge(project: Project) -> None:
    project.agent("coder", [[{"say": FINDINGS}]])
    project.configure(gates=[("never", "false")])  # a spike has no code: its gates are never asked
    item = project.add("Why is it slow", kind="spike", criteria=[{"text": "names the bottleneck"}])
    await project.run_until_idle()
    held = project.item(item.id)
    assert (held.stage, held.state.hold) == (Stage.QA, Hold.REVIEW_HOLD)
    assert held.report == FINDINGS and "its report waits for a person" in (held.state.hold_reason or "")
    assert project.store.gate_results(item.id) == []
    first = project.prompts(item.id)[0]
    assert "## A spike" in first and "`submit_report`" in first and "`false`" not in first  # no gates to pass

    orders = orders_of(project)
    with pytest.raises(IllegalTransition, match="a spike is not merged: close it once its report is read"):
        await orders.act(item.id, ItemAction.APPROVE, None, "ann")
    closed = await orders.act(item.id, ItemAction.CLOSE, None, "ann")
    assert (closed.stage, closed.hold, closed.report) == (Stage.DONE, None, FINDINGS)
    assert project.base_log() == ["initial"]  # nothing merged
    assert not (project.paths.worktrees_dir / f"{item.id}-why-is-it-slow").exists()
    events = [(e.kind, e.trigger, e.reason) for e in project.store.events_after() if e.item_id == item.id]
    assert ("transition", "reported", FINDINGS) in events and ("transition", "close", "closed by ann") in events


async def test_a_spike_without_a_report_is_retried_and_a_qa_agent_judges_the_report(project: Project) -> None:
    project.agent("coder", [[{"say": ""}], [{"say": FINDINGS}], [{"say": FINDINGS + " With numbers."}]])
    project.agent("reviewer", [verdict("fail"), verdict("pass")], role="qa")
    project.configure(qa_mode="agent")
    item = project.add("Why is it slow", kind="spike", criteria=[{"text": "names the bottleneck"}])
    await project.run_until_idle()
    done = project.item(item.id)
    assert (done.stage, done.state.hold) == (Stage.QA, Hold.REVIEW_HOLD)
    assert done.report == FINDINGS + " With numbers."  # the rejected report was replaced
    prompts = project.prompts(item.id)
    assert "A spike's result is a written report, and you gave none" in prompts[1]
    assert "----- BEGIN REPORT -----\n" + FINDINGS in prompts[2]  # QA read the report, not a diff
    assert "QA rejected the work: the report misses it" in prompts[3]
    assert done.state.hold_reason is not None and done.state.hold_reason.startswith("QA passed (the report answers")


async def test_a_bugs_coder_is_asked_for_a_failing_test_first_and_a_refactors_qa_for_unchanged_behaviour(
    project: Project,
) -> None:
    project.agent("coder", [commit_file("{item_slug}.txt", "a\n")])
    project.agent("reviewer", [verdict("pass")], role="qa")
    project.configure(qa_mode="agent")
    bug = project.add("Crash on empty input", kind="bug", criteria=[{"text": "no crash"}])
    await project.run_until_idle()
    refactor = project.add("Split the parser", kind="refactor", criteria=[{"text": "smaller functions"}])
    await project.run_until_idle()
    coder, qa = project.prompts(bug.id)[:2]
    assert "First write a test that reproduces the bug and fails, and commit it" in coder
    assert "check that a test reproduces the bug" in qa
    coder, qa = project.prompts(refactor.id)[:2]
    assert "Change the structure, not the behaviour" in coder
    assert "check that behaviour did not change" in qa


async def test_abandon_and_supersede_archive_an_item_keep_its_branch_and_name_the_successor(project: Project) -> None:
    project.agent("coder", [[*commit_file("a.txt", "a\n"), {"write": "scratch.txt", "text": "left"}]])
    project.configure(max_retries=0)
    first, second, third = project.add("Old way"), project.add("New way"), project.add("Not needed")
    orders = orders_of(project)
    await orders.act(second.id, ItemAction.FREEZE, None, "bo")
    await orders.act(third.id, ItemAction.FREEZE, None, "bo")
    await project.run_until_idle()
    assert project.item(first.id).state.hold is Hold.BLOCKED  # it left scratch.txt uncommitted

    gone = await orders.act(first.id, ItemAction.SUPERSEDE, "a simpler design", "bo", by=second.id)
    assert (gone.stage, gone.hold) == (Stage.ARCHIVED, None)
    assert git(project.root, "branch", "--list", "gangline/1-old-way") != ""  # its commits are kept
    kept = [e.reason for e in project.store.events_after() if e.item_id == first.id and e.kind == "worktree_kept"]
    assert kept and "scratch.txt" in kept[0]  # the uncommitted file was not thrown away
    said = [e.reason for e in project.store.events_after() if e.item_id == first.id and e.trigger == "supersede"]
    assert said == ["superseded by #2: a simpler design"]

    await orders.act(third.id, ItemAction.UNFREEZE, None, "bo")
    abandoned = await orders.act(third.id, ItemAction.ABANDON, None, "bo")
    assert abandoned.stage is Stage.ARCHIVED
    for by, words in ((None, "expected the id of the item"), (second.id, "cannot supersede itself"),
                      (99, "item 99 does not exist")):  # fmt: skip
        with pytest.raises(ConfigError, match=words):
            await orders.act(second.id, ItemAction.SUPERSEDE, None, "bo", by=by)
    with pytest.raises(IllegalTransition, match="only a spike is closed without a merge"):
        await orders.act(second.id, ItemAction.CLOSE, None, "bo")


async def test_without_auto_start_new_items_wait_for_a_person(project: Project) -> None:
    project.agent("coder", [commit_file("a.txt", "a\n")])
    project.configure(auto_start=False)
    waiting, started = project.add("Triage me"), project.add("Go")
    await orders_of(project).act(started.id, ItemAction.START, None, "cy")
    await project.run_until_idle()
    assert project.stage(waiting.id) is Stage.BACKLOG
    assert project.stage(started.id) is Stage.DONE


async def test_telling_a_held_spikes_coder_what_is_missing_brings_a_new_report(project: Project) -> None:
    project.agent("coder", [[{"say": FINDINGS}], [{"say": FINDINGS + " Measured: 80% of the time."}]])
    project.configure()
    item = project.add("Why is it slow", kind="spike")
    await project.run_until_idle()
    assert project.item(item.id).state.hold is Hold.REVIEW_HOLD
    await orders_of(project).say(item.id, MessageIn(text="How much of the time is the parser?"), "ann")
    await project.run_until_idle()
    again = project.item(item.id)
    assert (again.stage, again.state.hold) == (Stage.QA, Hold.REVIEW_HOLD)
    assert again.report == FINDINGS + " Measured: 80% of the time." and again.retries == 0
    assert "How much of the time is the parser?" in project.prompts(item.id)[1]
