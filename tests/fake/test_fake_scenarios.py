"""The fake agent's scripted scenarios, driven through the real runner in real git repositories."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gangline.agents.bus import Bus, Subscription
from gangline.agents.runner import Runner, RunRequest
from gangline.core.errors import ConfigError
from gangline.core.events import (
    AssistantText,
    Event,
    MessageDelta,
    MessageStarted,
    RateLimit,
    Result,
    RunOutcome,
    SessionStarted,
    TextDelta,
    ToolResult,
    ToolUse,
    Usage,
)
from gangline.core.profiles import AgentProfile
from gangline.fake.cli import shipped_scenario
from gangline.fake.scenario import load_scenario
from kits.helpers import FAST, RunFn, events_of, fake_profile

ITEM_ENV = {
    "GANGLINE_ITEM_ID": "7",
    "GANGLINE_ITEM_SLUG": "add-notes",
    "GANGLINE_RUN_ID": "r-1",
    "GANGLINE_ROLE": "coder",
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "test")
    git(path, "config", "user.email", "test@example.invalid")
    (path / "README.md").write_text("# test\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial commit")
    return path


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def scenario(tmp_path: Path, *attempts: list[dict[str, Any]], name: str = "scenario.json") -> Path:
    path = tmp_path / "scenarios" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"attempts": list(attempts)}))
    return path


def played(path: Path, *extra: str) -> AgentProfile:
    return fake_profile("--scenario", str(path), *extra)


def item_env() -> dict[str, str]:
    return dict(os.environ, **ITEM_ENV)


async def first_event(sub: Subscription, wanted: Callable[[Event], bool]) -> Event:
    async def scan() -> Event:
        async for record in sub:
            if wanted(record.event):
                return record.event
        raise AssertionError("the run ended before the awaited event")

    return await asyncio.wait_for(scan(), 10)


# --- acting on the worktree ---------------------------------------------------------------


async def test_a_scenario_that_writes_and_commits_leaves_its_commit_and_reports_every_step(
    run_agent: RunFn, tmp_path: Path, worktree: Path
) -> None:
    path = scenario(
        tmp_path,
        [
            {"say": "I'll write notes for item {item_id}."},
            {"write": "notes/{item_slug}.md", "text": "# Item {item_id}\n"},
            {"append": "notes/{item_slug}.md", "text": "role {role}, attempt {attempt}\n"},
            {"run": "cat notes/{item_slug}.md"},
            {"commit": "Add notes for item {item_id}"},
            {"cost": 0.25},
            {"say": "Done."},
        ],
    )
    summary = await run_agent(played(path), cwd=worktree, env=item_env())
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason
    assert git(worktree, "log", "-1", "--format=%s|%an <%ae>") == "Add notes for item 7|fake agent <fake@agent.invalid>"
    assert (worktree / "notes/add-notes.md").read_text() == "# Item 7\nrole coder, attempt 1\n"
    assert git(worktree, "status", "--porcelain") == ""
    assert events_of(summary, SessionStarted)[0].cwd == str(worktree)
    said = [e.text for e in events_of(summary, AssistantText)]
    assert said == ["I'll write notes for item 7.", "Done."]
    assert "".join(e.text for e in events_of(summary, TextDelta)) == "".join(said)
    assert [e.name for e in events_of(summary, ToolUse)] == ["Write", "Write", "Bash", "Bash"]
    results = events_of(summary, ToolResult)
    assert [r.is_error for r in results] == [False] * 4
    assert results[2].content == "# Item 7\nrole coder, attempt 1"
    (result,) = events_of(summary, Result)
    assert result.result == "Done." and result.cost_usd == summary.cost_usd == 0.25


async def test_each_invocation_plays_the_next_attempt_and_the_last_attempt_repeats(
    run_agent: RunFn, tmp_path: Path, worktree: Path
) -> None:
    path = scenario(
        tmp_path,
        [{"say": "attempt {attempt}: giving up"}, {"exit": 3}],
        [{"say": "attempt {attempt}: fixed"}],
    )
    first = await run_agent(played(path), cwd=worktree)
    assert first.outcome is RunOutcome.CRASHED and first.exit_code == 3
    assert [e.text for e in events_of(first, AssistantText)] == ["attempt 1: giving up"]
    outcomes = [await run_agent(played(path), cwd=worktree) for _ in range(2)]
    assert [s.outcome for s in outcomes] == [RunOutcome.SUCCEEDED] * 2
    assert [events_of(s, Result)[0].result for s in outcomes] == ["attempt 2: fixed", "attempt 3: fixed"]


async def test_the_attempt_counter_is_kept_per_working_directory(run_agent: RunFn, tmp_path: Path) -> None:
    path = scenario(tmp_path, [{"exit": 4}], [{"say": "second"}])
    coder, qa = make_repo(tmp_path / "coder"), make_repo(tmp_path / "qa")
    assert (await run_agent(played(path), cwd=coder)).exit_code == 4
    assert (await run_agent(played(path), cwd=qa)).exit_code == 4  # a fresh directory starts at attempt 1
    assert (await run_agent(played(path), cwd=coder)).outcome is RunOutcome.SUCCEEDED


async def test_a_symlink_cannot_carry_a_write_outside_the_worktree(
    run_agent: RunFn, tmp_path: Path, worktree: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (worktree / "escape").symlink_to(outside)
    summary = await run_agent(played(scenario(tmp_path, [{"write": "escape/x.txt", "text": "no"}])), cwd=worktree)
    (result,) = events_of(summary, ToolResult)
    assert result.is_error and "outside the working directory" in result.content
    assert list(outside.iterdir()) == []


async def test_a_failing_command_is_an_error_tool_result_and_the_agent_goes_on(
    run_agent: RunFn, tmp_path: Path
) -> None:
    summary = await run_agent(played(scenario(tmp_path, [{"run": "echo broken >&2; exit 5"}, {"say": "ok"}])))
    (result,) = events_of(summary, ToolResult)
    assert result.is_error and result.content == "Exit code 5\nbroken"
    assert summary.outcome is RunOutcome.SUCCEEDED


# --- how runs end -------------------------------------------------------------------------


async def test_a_hard_rate_limit_parks_the_run_until_its_reset_time(run_agent: RunFn, tmp_path: Path) -> None:
    before = time.time()
    summary = await run_agent(played(scenario(tmp_path, [{"say": "working"}, {"rate_limit": {"resets_in_s": 120}}])))
    after = time.time()
    assert summary.outcome is RunOutcome.RATE_LIMITED and summary.exit_code == 1
    assert summary.resets_at is not None and int(before + 120) <= summary.resets_at <= after + 120
    (limit,) = events_of(summary, RateLimit)
    assert limit.hard_block and limit.status == "rejected" and limit.limit_type == "five_hour"
    assert events_of(summary, AssistantText)[-1].error == "rate_limit"
    (result,) = events_of(summary, Result)
    assert result.is_error and result.api_error_status == 429


@pytest.mark.parametrize(("signal_name", "exit_code"), [("SIGKILL", -9), ("SIGSEGV", -11)])
async def test_a_crash_after_a_commit_is_crashed_and_the_commit_survives(
    run_agent: RunFn, tmp_path: Path, worktree: Path, signal_name: str, exit_code: int
) -> None:
    path = scenario(tmp_path, [{"write": "a.txt", "text": "a\n"}, {"commit": "Add a"}, {"crash": signal_name}])
    summary = await run_agent(played(path), cwd=worktree)
    assert summary.outcome is RunOutcome.CRASHED and summary.exit_code == exit_code
    assert events_of(summary, Result) == []
    assert git(worktree, "log", "-1", "--format=%s") == "Add a"
    assert sorted(p.name for p in worktree.iterdir()) == [".git", "README.md", "a.txt"]  # and no core dump


async def test_final_json_is_the_result_text_exactly(run_agent: RunFn, tmp_path: Path) -> None:
    verdict = {"verdict": "pass", "criteria": [{"index": 0, "ok": True}], "summary": "item {item_id} is {{fine}}"}
    summary = await run_agent(played(scenario(tmp_path, [{"final_json": verdict}, {"say": "bye"}])), env=item_env())
    (result,) = events_of(summary, Result)
    expected = {**verdict, "summary": "item 7 is {fine}"}
    assert result.result == json.dumps(expected) and json.loads(result.result) == expected


async def test_a_result_override_ends_the_run_like_a_budget_stop(run_agent: RunFn, tmp_path: Path) -> None:
    stop = {"subtype": "error_max_budget_usd", "is_error": True, "errors": ["Reached maximum budget ($0.5)"]}
    summary = await run_agent(played(scenario(tmp_path, [{"say": "spending"}, {"result": stop}])))
    assert summary.outcome is RunOutcome.FAILED and summary.exit_code == 1
    assert summary.reason == "error_max_budget_usd: Reached maximum budget ($0.5)"
    assert events_of(summary, Result)[0].result is None


async def test_a_usage_step_reports_its_tokens_while_the_run_goes_on(run_agent: RunFn, tmp_path: Path) -> None:
    usage = {"input_tokens": 1000, "output_tokens": 500}
    summary = await run_agent(played(scenario(tmp_path, [{"usage": usage, "model": "claude-haiku-4-5"}])))
    assert [e.model for e in events_of(summary, MessageStarted)] == ["claude-haiku-4-5"]
    assert events_of(summary, MessageDelta)[0].usage == Usage(input_tokens=1000, output_tokens=500)
    (result,) = events_of(summary, Result)
    assert result.usage == Usage(input_tokens=1000, output_tokens=500)
    assert result.cost_usd == pytest.approx(1000 * 1e-6 + 500 * 5e-6)


async def test_wait_for_file_holds_the_agent_until_the_file_appears(tmp_path: Path, worktree: Path) -> None:
    release = tmp_path / "release"
    path = scenario(tmp_path, [{"say": "waiting"}, {"wait_for_file": str(release)}, {"say": "released"}])
    runner = Runner(FAST, tmp_path / "runs", dict(os.environ))
    bus = Bus()
    sub = bus.subscribe()
    task = asyncio.create_task(runner.run(RunRequest("held", played(path), "p", worktree), bus))
    await first_event(sub, lambda e: isinstance(e, AssistantText) and e.text == "waiting")
    assert runner.running() == ["held"] and not task.done()
    release.touch()
    await first_event(sub, lambda e: isinstance(e, Result))
    summary = await asyncio.wait_for(task, 10)
    assert summary.outcome is RunOutcome.SUCCEEDED
    assert events_of(summary, Result)[0].result == "released"


async def test_a_wait_that_times_out_exits_9(run_agent: RunFn, tmp_path: Path) -> None:
    summary = await run_agent(played(scenario(tmp_path, [{"wait_for_file": "never", "timeout_s": 0.1}])))
    assert summary.outcome is RunOutcome.CRASHED and summary.exit_code == 9
    assert "did not appear within 0.1s" in summary.reason


async def test_a_hanging_agent_runs_until_it_is_stopped(tmp_path: Path) -> None:
    runner = Runner(FAST, tmp_path / "runs", dict(os.environ))
    bus = Bus()
    sub = bus.subscribe()
    path = scenario(tmp_path, [{"say": "thinking forever"}, {"hang": True}])
    task = asyncio.create_task(runner.run(RunRequest("hung", played(path), "p", tmp_path), bus))
    await first_event(sub, lambda e: isinstance(e, AssistantText))
    runner.stop_nowait("hung", "a person pressed stop")
    summary = await asyncio.wait_for(task, 10)
    assert summary.outcome is RunOutcome.STOPPED


# --- invalid scenarios --------------------------------------------------------------------


async def test_an_invalid_scenario_exits_2_naming_the_file_and_the_step(run_agent: RunFn, tmp_path: Path) -> None:
    path = scenario(tmp_path, [{"say": "fine"}, {"dance": "badly"}], name="broken.json")
    summary = await run_agent(played(path))
    assert summary.outcome is RunOutcome.REFUSED and summary.exit_code == 2
    assert f"{path}: attempts[0][1]" in summary.reason
    assert "expected exactly one of say, write" in summary.reason and "found 'dance'" in summary.reason


@pytest.mark.parametrize(
    ("document", "where", "says"),
    [
        ("not json", "", "not JSON"),
        ('{"attempts": []}', ": attempts", "non-empty list"),
        ('{"attempts": [[]], "extra": 1}', "", 'one key, "attempts"'),
        (
            '{"attempts": [[{"say": 1}]]}',
            ": attempts[0][0] (say)",
            "Expected `str`, got `int` - at `attempts[0][0].say`",
        ),
        ('{"attempts": [[{"say": "a", "run": "b"}]]}', ": attempts[0][0]", "found 'say', 'run'"),
        ('{"attempts": [[{"say": "a", "loud": true}]]}', ": attempts[0][0] (say)", "unknown field `loud`"),
        ('{"attempts": [[], ["oops"]]}', ": attempts[1][0]", "expected a step object, got str"),
        ('{"attempts": [[{"write": "../x", "text": ""}]]}', ": attempts[0][0] (write)", "relative path inside"),
        ('{"attempts": [[{"write": "/etc/x", "text": ""}]]}', ": attempts[0][0] (write)", "relative path inside"),
        ('{"attempts": [[{"say": "{nope}"}]]}', ": attempts[0][0] (say)", "bad placeholder 'nope'"),
        ('{"attempts": [[{"say": "{"}]]}', ": attempts[0][0] (say)", "bad placeholder"),
        ('{"attempts": [[{"crash": "SIGFOO"}]]}', ": attempts[0][0] (crash)", "Invalid enum value 'SIGFOO'"),
        ('{"attempts": [[{"cost": -1}]]}', ": attempts[0][0] (cost)", "Expected `float` >= 0"),
        ('{"attempts": [[{"exit": 1}, {"say": "late"}]]}', ": attempts[0][1]", "never runs: the 'exit' step"),
        ('{"attempts": [[{"result": {"subtype": "x"}}]]}', ": attempts[0][0] (result)", "missing required field"),
    ],
)
def test_scenario_errors_name_the_file_and_the_step(tmp_path: Path, document: str, where: str, says: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(document)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert err.value.field == f"{path}{where}"
    assert says in str(err.value)


# --- the scenarios shipped for the demo ---------------------------------------------------


def shipped(name: str, tmp_path: Path) -> AgentProfile:
    # Counters go to a temporary directory, not beside the package's own files.
    return played(shipped_scenario(name), "--scenario-state", str(tmp_path / "state" / name))


async def test_the_shipped_coder_scenario_commits_notes_for_the_item(
    run_agent: RunFn, tmp_path: Path, worktree: Path
) -> None:
    summary = await run_agent(shipped("coder.json", tmp_path), cwd=worktree, env=item_env())
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason
    assert git(worktree, "log", "-1", "--format=%s") == "Add notes for item 7"
    assert git(worktree, "show", "--name-only", "--format=", "HEAD") == "notes/add-notes.md"


async def test_the_shipped_qa_scenario_passes_with_no_criteria(run_agent: RunFn, tmp_path: Path) -> None:
    summary = await run_agent(shipped("qa.json", tmp_path), env=item_env())
    verdict = json.loads(events_of(summary, Result)[0].result)
    assert verdict["verdict"] == "pass" and verdict["criteria"] == [] and verdict["summary"]


async def test_the_shipped_mergemaster_takes_the_feature_side_of_a_squash_conflict(
    run_agent: RunFn, tmp_path: Path, worktree: Path
) -> None:
    (worktree / "shared.txt").write_text("base\n")
    (worktree / "gone.txt").write_text("base\n")
    git(worktree, "add", "-A")
    git(worktree, "commit", "-q", "-m", "base")
    git(worktree, "checkout", "-q", "-b", "feature")
    (worktree / "shared.txt").write_text("feature\n")
    (worktree / "new file.txt").write_text("new\n")
    git(worktree, "rm", "-q", "gone.txt")
    git(worktree, "add", "-A")
    git(worktree, "commit", "-q", "-m", "feature work")
    git(worktree, "checkout", "-q", "main")
    (worktree / "shared.txt").write_text("main\n")
    (worktree / "gone.txt").write_text("main edit\n")
    git(worktree, "commit", "-q", "-am", "main work")
    merge = subprocess.run(["git", "merge", "--squash", "feature"], cwd=worktree, capture_output=True)
    assert merge.returncode == 1 and git(worktree, "diff", "--name-only", "--diff-filter=U") == "gone.txt\nshared.txt"

    summary = await run_agent(shipped("mergemaster.json", tmp_path), cwd=worktree, env=item_env())
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason
    assert json.loads(events_of(summary, Result)[0].result)["resolved"] is True
    assert git(worktree, "status", "--porcelain") == ""
    assert git(worktree, "log", "-1", "--format=%s") == "Merge item 7 (add-notes)"
    assert (worktree / "shared.txt").read_text() == "feature\n"
    assert not (worktree / "gone.txt").exists() and (worktree / "new file.txt").read_text() == "new\n"
