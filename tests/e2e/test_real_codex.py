"""The real Codex CLI (pinned in package-lock.json) run by gangline's runner in a real PTY, against the
scripted fake of the OpenAI Responses API on loopback (`fake_openai.py`). Nothing here is mocked."""

from __future__ import annotations

from pathlib import Path

import pytest

from gangline.core.budget import Price
from gangline.core.events import (
    AssistantText,
    CommandExecution,
    FileChange,
    RateLimit,
    Result,
    RunOutcome,
    SessionStarted,
    ToolResult,
    ToolUse,
    Usage,
)
from gangline.core.profiles import AgentProfile, CliKind, Provider
from kits.agent_clis import CODEX_KEY, CODEX_KEY_VAR, CODEX_MODEL, codex_env, require_codex
from kits.fake_openai import FakeResponses, custom_tool_turn, http_error, text_turn, tool_turn
from kits.helpers import RunFn, events_of

pytestmark = pytest.mark.real_cli

BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
# No retries inside Codex: an API error ends the run at once, so each test takes seconds.
NO_RETRIES = ("-c", "model_providers.fake.request_max_retries=0", "-c", "model_providers.fake.stream_max_retries=0")
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hello world\n*** End Patch\n"


def codex(api: FakeResponses, home: Path) -> AgentProfile:
    provider = Provider(base_url=f"{api.base_url}/v1", key_env=CODEX_KEY_VAR, name="fake")
    return AgentProfile(
        name="codex",
        cli=CliKind.CODEX,
        command=require_codex(),
        model=CODEX_MODEL,
        provider=provider,
        env=codex_env(home),
        extra_args=(*NO_RETRIES, "-c", "analytics.enabled=false"),
    )


async def test_a_plain_answer_gives_a_session_the_text_and_usage_priced_from_the_table(
    run_agent: RunFn, repo: Path
) -> None:
    tokens = {"input_tokens": 1200, "output_tokens": 40, "cache_read_input_tokens": 200, "reasoning_tokens": 10}
    price = Price(input=2.0, output=10.0, cache_write=2.0, cache_read=0.5)
    with FakeResponses([text_turn("Hello from the fake Responses API.", **tokens)]) as api:
        summary = await run_agent(codex(api, repo.parent / "home"), cwd=repo, env=BASE_ENV, price=price)
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason
    (session,) = events_of(summary, SessionStarted)
    assert summary.session_id == session.session_id and session.model == CODEX_MODEL
    assert [t.text for t in events_of(summary, AssistantText)] == ["Hello from the fake Responses API."]
    assert summary.result_text == "Hello from the fake Responses API."
    assert summary.usage == Usage(
        input_tokens=1000, output_tokens=40, cache_read_input_tokens=200, reasoning_output_tokens=10
    )
    assert summary.cost_usd == pytest.approx((1000 * 2.0 + 40 * 10.0 + 200 * 0.5) / 1e6)
    log = summary.log_path.read_text()
    assert CODEX_KEY not in log and CODEX_KEY_VAR in log  # the key's name is logged, never its value


async def test_a_file_written_through_apply_patch_lands_and_is_reported_as_a_file_change(
    run_agent: RunFn, repo: Path
) -> None:
    with FakeResponses([custom_tool_turn("apply_patch", PATCH), text_turn("Written.")]) as api:
        summary = await run_agent(codex(api, repo.parent / "home"), cwd=repo, env=BASE_ENV, prompt="create hello.txt")
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason
    assert (repo / "hello.txt").read_text() == "hello world\n"
    (change,) = events_of(summary, FileChange)
    assert [(Path(c.path).name, c.kind) for c in change.changes] == [("hello.txt", "add")]
    assert change.status == "completed"


async def test_a_command_run_reports_its_exit_code_as_a_tool_call_and_a_command(run_agent: RunFn, repo: Path) -> None:
    script = [tool_turn("exec_command", {"cmd": "echo checking; exit 3"}), text_turn("It failed with 3.")]
    with FakeResponses(script) as api:
        summary = await run_agent(codex(api, repo.parent / "home"), cwd=repo, env=BASE_ENV)
        sent_back = [i for i in api.main_requests()[-1]["body"]["input"] if i.get("type") == "function_call_output"]
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason
    (use,) = events_of(summary, ToolUse)
    assert use.name == "shell" and "echo checking; exit 3" in use.input["command"]
    (result,) = events_of(summary, ToolResult)
    assert result.tool_use_id == use.tool_use_id and result.is_error and "checking" in result.content
    (command,) = events_of(summary, CommandExecution)
    assert (command.tool_use_id, command.exit_code) == (use.tool_use_id, 3)
    assert sent_back and "checking" in str(sent_back[0]["output"])  # the model saw the command's output


async def test_a_follow_up_resumes_the_thread_and_counts_only_its_own_tokens(run_agent: RunFn, repo: Path) -> None:
    home = repo.parent / "home"
    script = [
        text_turn("I will remember BANANA.", input_tokens=100),
        text_turn("The word was BANANA.", input_tokens=900),
    ]
    with FakeResponses(script) as api:
        first = await run_agent(codex(api, home), cwd=repo, env=BASE_ENV, prompt="remember the word BANANA")
        assert first.outcome is RunOutcome.SUCCEEDED and first.usage is not None, first.reason
        second = await run_agent(
            codex(api, home),
            cwd=repo,
            env=BASE_ENV,
            prompt="what was the word?",
            resume=first.session_id,
            session_usage=first.usage,
        )
        history = str(api.main_requests()[-1]["body"]["input"])
    assert second.outcome is RunOutcome.SUCCEEDED, second.reason
    assert second.session_id == first.session_id
    assert "remember the word BANANA" in history and "I will remember BANANA." in history
    assert second.result_text == "The word was BANANA."
    # Codex reports the thread's total (1000 input tokens); the follow-up is counted for its own 900.
    assert first.usage.input_tokens == 100 and second.usage is not None and second.usage.input_tokens == 900


async def test_an_api_error_fails_the_run_with_the_message_and_status(run_agent: RunFn, repo: Path) -> None:
    with FakeResponses([text_turn("never", errors=[http_error(400, "the request was refused")])]) as api:
        summary = await run_agent(codex(api, repo.parent / "home"), cwd=repo, env=BASE_ENV)
    assert summary.outcome is RunOutcome.FAILED
    (result,) = events_of(summary, Result)
    assert result.is_error and "the request was refused" in result.errors[0]
    assert "the request was refused" in summary.reason and not events_of(summary, RateLimit)


async def test_a_429_that_codex_gives_up_on_parks_the_run_as_rate_limited(run_agent: RunFn, repo: Path) -> None:
    with FakeResponses([text_turn("never", errors=[http_error(429)])]) as api:
        summary = await run_agent(codex(api, repo.parent / "home"), cwd=repo, env=BASE_ENV)
    assert summary.outcome is RunOutcome.RATE_LIMITED, summary.reason
    (limit,) = events_of(summary, RateLimit)
    assert limit.hard_block and limit.reset_assumed and summary.resets_at == limit.resets_at
