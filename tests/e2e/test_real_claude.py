"""End to end with the real Claude Code CLI (pinned in package-lock.json) in a real PTY,
against the scripted fake model API on loopback. Nothing here is mocked."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gangline.agents.processes import group_members
from gangline.core.events import ApiRetry, RateLimit, Result, RunOutcome, SessionStarted, TextDelta, ToolResult, ToolUse
from gangline.core.profiles import AgentProfile, CliKind, RunnerSettings
from kits.claude_cli import PINNED_VERSION, offline_env, require_claude
from kits.fakeapi import FakeAnthropic, cut_after, hang, http_error, text_turn, tool_turn
from kits.helpers import RunFn, events_of

pytestmark = pytest.mark.real_cli


def claude(api: FakeAnthropic, home: Path, *, oauth: bool = False, retries: int = 2) -> AgentProfile:
    env = offline_env(api.base_url, home, oauth=oauth, retries=retries)
    return AgentProfile(name="claude", cli=CliKind.CLAUDE, command=require_claude(), model="claude-sonnet-4-5", env=env)


BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "CLAUDECODE": "1"}


async def test_plain_answer_streams_text_and_reports_usage_and_cost(run_agent: RunFn, repo: Path) -> None:
    with FakeAnthropic([text_turn("Hello from the fake API.", input_tokens=1200, output_tokens=12)]) as api:
        summary = await run_agent(claude(api, repo.parent / "home"), cwd=repo, env=BASE_ENV, prompt="say hello")
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason
    (session,) = events_of(summary, SessionStarted)
    assert session.cli_version == PINNED_VERSION and session.model == "claude-sonnet-4-5"
    assert summary.session_id == session.session_id
    assert "".join(d.text for d in events_of(summary, TextDelta)) == "Hello from the fake API."
    assert summary.usage is not None and (summary.usage.input_tokens, summary.usage.output_tokens) == (1200, 12)
    assert summary.cost_usd == pytest.approx(1200 * 3e-6 + 12 * 15e-6)
    assert "sk-fake-secret-value" not in summary.log_path.read_text()


async def test_a_write_tool_call_really_creates_the_file(run_agent: RunFn, repo: Path) -> None:
    script = [tool_turn("Write", {"file_path": "{cwd}/hello.txt", "content": "hello world\n"}), text_turn("Written.")]
    with FakeAnthropic(script) as api:
        summary = await run_agent(claude(api, repo.parent / "home"), cwd=repo, env=BASE_ENV, prompt="create hello.txt")
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason
    assert (repo / "hello.txt").read_text() == "hello world\n"
    (use,) = events_of(summary, ToolUse)
    assert use.name == "Write" and use.input["file_path"] == str(repo / "hello.txt")
    (result,) = events_of(summary, ToolResult)
    assert result.tool_use_id == use.tool_use_id and not result.is_error


async def test_a_resumed_session_continues_the_same_conversation(run_agent: RunFn, repo: Path) -> None:
    home = repo.parent / "home"
    with FakeAnthropic([text_turn("I will remember BANANA."), text_turn("The word was BANANA.")]) as api:
        first = await run_agent(claude(api, home), cwd=repo, env=BASE_ENV, prompt="remember the word BANANA")
        second = await run_agent(
            claude(api, home), cwd=repo, env=BASE_ENV, prompt="what was the word?", resume=first.session_id
        )
        history = api.main_requests()[-1]["body"]["messages"]
    assert first.outcome is second.outcome is RunOutcome.SUCCEEDED, second.reason
    assert second.session_id == first.session_id
    assert "remember the word BANANA" in str(history[0]) and "I will remember BANANA." in str(history[1])
    assert "".join(d.text for d in events_of(second, TextDelta)) == "The word was BANANA."


async def test_a_429_with_rate_limit_headers_is_retried_and_reported(run_agent: RunFn, repo: Path) -> None:
    headers = {"retry-after": "1", "anthropic-ratelimit-requests-remaining": "0"}
    with FakeAnthropic([text_turn("after the 429", errors=[http_error(429, headers=headers)])]) as api:
        summary = await run_agent(claude(api, repo.parent / "home"), cwd=repo, env=BASE_ENV)
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason
    (retry,) = events_of(summary, ApiRetry)
    assert (retry.error_status, retry.error) == (429, "rate_limit")
    assert retry.retry_delay_ms is not None and retry.retry_delay_ms >= 1000  # retry-after honoured


async def test_a_subscription_rate_limit_rejection_parks_the_run_until_the_reset(run_agent: RunFn, repo: Path) -> None:
    reset = int(time.time()) + 3600
    headers = {
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-reset": str(reset),
        "anthropic-ratelimit-unified-representative-claim": "five_hour",
    }
    with FakeAnthropic([text_turn("never", errors=[http_error(429, headers=headers)])]) as api:
        summary = await run_agent(claude(api, repo.parent / "home", oauth=True), cwd=repo, env=BASE_ENV)
    assert summary.outcome is RunOutcome.RATE_LIMITED, summary.reason
    assert summary.resets_at == reset
    (limit,) = events_of(summary, RateLimit)
    assert limit.hard_block and limit.limit_type == "five_hour" and not limit.reset_assumed


@pytest.mark.parametrize(("status", "kind"), [(529, "overloaded"), (500, "server_error")])
async def test_a_transient_server_error_is_retried_by_the_cli(
    run_agent: RunFn, repo: Path, status: int, kind: str
) -> None:
    with FakeAnthropic([text_turn("recovered", errors=[http_error(status)])]) as api:
        summary = await run_agent(claude(api, repo.parent / "home"), cwd=repo, env=BASE_ENV)
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason
    assert [(r.error_status, r.error) for r in events_of(summary, ApiRetry)] == [(status, kind)]


async def test_a_persistent_529_fails_the_run_with_the_api_status(run_agent: RunFn, repo: Path) -> None:
    with FakeAnthropic([text_turn("never", errors=[http_error(529)] * 3)]) as api:
        summary = await run_agent(claude(api, repo.parent / "home", retries=0), cwd=repo, env=BASE_ENV)
    assert summary.outcome is RunOutcome.FAILED
    assert "API status 529" in summary.reason
    (result,) = events_of(summary, Result)
    assert result.is_error and summary.exit_code == 1


async def test_a_stream_cut_mid_way_is_retried_and_the_answer_arrives_whole(run_agent: RunFn, repo: Path) -> None:
    with FakeAnthropic([text_turn("the whole answer after a cut", errors=[cut_after(4)])]) as api:
        summary = await run_agent(claude(api, repo.parent / "home"), cwd=repo, env=BASE_ENV)
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason
    (retry,) = events_of(summary, ApiRetry)
    assert retry.error_status is None
    (result,) = events_of(summary, Result)
    assert result.result == "the whole answer after a cut"


async def test_an_api_that_hangs_trips_the_inactivity_timeout_and_the_group_dies(run_agent: RunFn, repo: Path) -> None:
    settings = RunnerSettings(inactivity_timeout_s=3, kill_grace_s=1, drain_timeout_s=2)
    with FakeAnthropic([text_turn("never", errors=[hang()])]) as api:
        summary = await run_agent(claude(api, repo.parent / "home"), settings=settings, cwd=repo, env=BASE_ENV)
        assert api.main_requests(), "the CLI never reached the API"
    assert summary.outcome is RunOutcome.STALLED
    assert "no output for 3s" in summary.reason
    assert summary.process is not None and group_members(summary.process.pgid) == []
