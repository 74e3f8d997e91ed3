"""The real Gemini CLI (pinned in package-lock.json) run by gangline's runner in a real PTY, against the
scripted fake of the Gemini API on loopback (`fake_gemini.py`). Nothing here is mocked."""

from __future__ import annotations

from pathlib import Path

import pytest

from gangline.core.budget import Price
from gangline.core.events import (
    AssistantText,
    CommandExecution,
    FileChange,
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
from gangline.core.profiles import AgentProfile, CliKind
from kits.agent_clis import GEMINI_KEY, GEMINI_MODEL, gemini_env, require_gemini
from kits.fake_gemini import FakeGemini, http_error, text_turn, tool_turn
from kits.helpers import RunFn, events_of

pytestmark = pytest.mark.real_cli

BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


def gemini(api: FakeGemini, home: Path, approval: str = "yolo") -> AgentProfile:
    env = gemini_env(api.base_url, home, max_attempts=1)  # one request per turn: an API error ends the run
    return AgentProfile(
        name="gemini", cli=CliKind.GEMINI, command=require_gemini(), model=GEMINI_MODEL, approval_mode=approval, env=env
    )


async def test_a_plain_answer_streams_text_and_reports_usage_priced_from_the_table(
    run_agent: RunFn, repo: Path
) -> None:
    text = "Hello from the fake Gemini API, streamed in several chunks."
    tokens = {"input_tokens": 1500, "output_tokens": 30, "cache_read_input_tokens": 500, "reasoning_tokens": 12}
    price = Price(input=1.0, output=4.0, cache_write=1.0, cache_read=0.25)
    with FakeGemini([text_turn(text, **tokens)]) as api:
        summary = await run_agent(gemini(api, repo.parent / "home"), cwd=repo, env=BASE_ENV, price=price)
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason
    (session,) = events_of(summary, SessionStarted)
    assert summary.session_id == session.session_id and session.model == GEMINI_MODEL
    assert len(events_of(summary, TextDelta)) > 1 and "".join(d.text for d in events_of(summary, TextDelta)) == text
    (started,) = events_of(summary, MessageStarted)
    (complete,) = events_of(summary, AssistantText)
    assert complete.text == text and complete.message_id == started.message_id
    assert summary.result_text == text
    assert summary.usage == Usage(
        input_tokens=1000, output_tokens=42, cache_read_input_tokens=500, reasoning_output_tokens=12
    )
    assert summary.cost_usd == pytest.approx((1000 * 1.0 + 42 * 4.0 + 500 * 0.25) / 1e6)
    assert GEMINI_KEY not in summary.log_path.read_text()


async def test_a_file_written_through_write_file_lands_and_is_reported_as_a_file_change(
    run_agent: RunFn, repo: Path
) -> None:
    script = [tool_turn("write_file", {"file_path": "{cwd}/hello.txt", "content": "hello world\n"}), text_turn("Done.")]
    with FakeGemini(script) as api:
        profile = gemini(api, repo.parent / "home", approval="auto_edit")
        summary = await run_agent(profile, cwd=repo, env=BASE_ENV, prompt="create hello.txt")
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason
    assert (repo / "hello.txt").read_text() == "hello world\n"
    (use,) = events_of(summary, ToolUse)
    (result,) = events_of(summary, ToolResult)
    assert use.name == "write_file" and result.tool_use_id == use.tool_use_id and not result.is_error
    (change,) = events_of(summary, FileChange)
    assert [(c.path, c.kind) for c in change.changes] == [(str(repo / "hello.txt"), "write")]


async def test_a_shell_command_runs_in_yolo_mode_and_is_reported_as_a_command(run_agent: RunFn, repo: Path) -> None:
    command_line = "echo ran > ran.txt; echo done; exit 3"
    script = [tool_turn("run_shell_command", {"command": command_line, "description": "x"}), text_turn("ok")]
    with FakeGemini(script) as api:
        summary = await run_agent(gemini(api, repo.parent / "home"), cwd=repo, env=BASE_ENV)
        sent_back = str(api.main_requests()[-1]["body"]["contents"][-1])
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason
    assert (repo / "ran.txt").read_text() == "ran\n"
    (use,) = events_of(summary, ToolUse)
    (result,) = events_of(summary, ToolResult)
    assert result.content == "done"
    (command,) = events_of(summary, CommandExecution)
    # Gemini CLI tells its model the exit status but prints none in stream-json: gangline says it is unknown.
    assert (command.tool_use_id, command.command, command.exit_code) == (use.tool_use_id, command_line, None)
    assert "Exit Code: 3" in sent_back


async def test_a_follow_up_resumes_the_session_with_its_history(run_agent: RunFn, repo: Path) -> None:
    home = repo.parent / "home"
    with FakeGemini([text_turn("I will remember BANANA."), text_turn("The word was BANANA.")]) as api:
        first = await run_agent(gemini(api, home), cwd=repo, env=BASE_ENV, prompt="remember the word BANANA")
        assert first.outcome is RunOutcome.SUCCEEDED, first.reason
        second = await run_agent(
            gemini(api, home), cwd=repo, env=BASE_ENV, prompt="what was the word?", resume=first.session_id
        )
        history = str(api.main_requests()[-1]["body"]["contents"])
    assert second.outcome is RunOutcome.SUCCEEDED, second.reason
    assert second.session_id == first.session_id
    assert "remember the word BANANA" in history and "I will remember BANANA." in history
    assert second.result_text == "The word was BANANA."


async def test_an_api_error_fails_the_run_with_the_message_and_status(run_agent: RunFn, repo: Path) -> None:
    with FakeGemini([text_turn("never", errors=[http_error(400, "the request was refused")])]) as api:
        summary = await run_agent(gemini(api, repo.parent / "home"), cwd=repo, env=BASE_ENV)
    assert summary.outcome is RunOutcome.FAILED
    (result,) = events_of(summary, Result)
    assert result.is_error and result.api_error_status == 400 and "the request was refused" in result.errors[0]
    assert summary.exit_code == 400 % 256 and not events_of(summary, RateLimit)


async def test_a_429_parks_the_run_as_rate_limited(run_agent: RunFn, repo: Path) -> None:
    with FakeGemini([text_turn("never", errors=[http_error(429)])]) as api:
        summary = await run_agent(gemini(api, repo.parent / "home"), cwd=repo, env=BASE_ENV)
    assert summary.outcome is RunOutcome.RATE_LIMITED, summary.reason
    (limit,) = events_of(summary, RateLimit)
    assert limit.hard_block and limit.reset_assumed and summary.resets_at == limit.resets_at
