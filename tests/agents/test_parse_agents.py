"""Codex and Gemini lines (shapes as the pinned CLIs print them) into gangline's one event model, and the
per-run joins every decoder adds: a tool result that was a command or a file change, a cost from a price."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gangline.agents.claude import ClaudeDecoder
from gangline.agents.codex import CodexDecoder
from gangline.agents.decoding import DEFAULT_RATE_LIMIT_BACKOFF_S, LineDecoder, priced
from gangline.agents.gemini import GeminiDecoder
from gangline.core.budget import Price
from gangline.core.events import (
    AgentError,
    ApiRetry,
    AssistantText,
    AssistantThinking,
    CommandExecution,
    Event,
    FileChange,
    FileEdit,
    MessageStarted,
    RateLimit,
    Result,
    SessionStarted,
    TextDelta,
    TodoItem,
    TodoList,
    ToolResult,
    ToolUse,
    UnknownEvent,
    Usage,
    UserText,
)

NOW = 1_800_000_000.0


def feed(decoder: LineDecoder, *objects: dict[str, Any]) -> list[Event]:
    events: list[Event] = []
    for obj in objects:
        line = json.dumps(obj).encode()
        parsed, raw = decoder(line, NOW)
        assert raw is not None and bytes(raw) == line  # the raw line is kept with every parsed line
        events += parsed
    return events


def item(phase: str, **fields: Any) -> dict[str, Any]:
    return {"type": f"item.{phase}", "item": fields}


# --- Codex ---------------------------------------------------------------------------------------


def test_a_codex_turn_gives_a_session_messages_reasoning_and_a_result_with_net_usage() -> None:
    events = feed(
        CodexDecoder("gpt-5.5"),
        {"type": "thread.started", "thread_id": "th-1"},
        {"type": "turn.started"},
        item("completed", id="item_0", type="reasoning", text="Think first."),
        item("completed", id="item_1", type="agent_message", text="All done."),
        {
            "type": "turn.completed",
            "usage": {
                "input_tokens": 1200,
                "cached_input_tokens": 200,
                "cache_write_input_tokens": 0,
                "output_tokens": 50,
                "reasoning_output_tokens": 8,
            },
        },
    )
    session, _marker, thinking, text, result = events
    assert session == SessionStarted(session_id="th-1", model="gpt-5.5")
    assert thinking == AssistantThinking(text="Think first.", message_id="item_0")
    assert text == AssistantText(text="All done.", message_id="item_1")
    assert isinstance(result, Result) and not result.is_error and result.session_id == "th-1"
    assert result.result == "All done." and result.cost_usd is None  # Codex reports tokens only
    assert result.usage == Usage(
        input_tokens=1000, output_tokens=50, cache_read_input_tokens=200, reasoning_output_tokens=8
    )


def test_a_resumed_codex_thread_is_counted_net_of_what_its_earlier_runs_were_counted_for() -> None:
    counted = Usage(input_tokens=100, output_tokens=20)
    usage = {"input_tokens": 1100, "cached_input_tokens": 0, "output_tokens": 60, "reasoning_output_tokens": 0}
    (result,) = feed(CodexDecoder(None, counted), {"type": "turn.completed", "usage": usage})
    assert isinstance(result, Result) and result.usage == Usage(input_tokens=1000, output_tokens=40)


def test_a_codex_command_is_a_tool_call_its_result_and_a_command_with_the_exit_code() -> None:
    command = "/bin/bash -lc 'make test'"
    events = feed(
        CodexDecoder(),
        item("started", id="c1", type="command_execution", command=command, exit_code=None, status="in_progress"),
        item("completed", id="c1", type="command_execution", command=command, aggregated_output="1 failed\n",
             exit_code=2, status="failed"),
    )  # fmt: skip
    assert events == [
        ToolUse(tool_use_id="c1", name="shell", input={"command": command}),
        ToolResult(tool_use_id="c1", content="1 failed\n", is_error=True),
        CommandExecution(tool_use_id="c1", command=command, exit_code=2, status="failed"),
    ]


def test_codex_file_changes_mcp_calls_plans_searches_and_errors_map_to_their_events() -> None:
    events = feed(
        CodexDecoder(),
        item("completed", id="f1", type="file_change", status="completed",
             changes=[{"path": "/w/a.py", "kind": "add"}, {"path": "/w/b.py", "kind": "update"}]),
        item("started", id="m1", type="mcp_tool_call", server="gangline", tool="run_gates", arguments={"x": 1},
             status="in_progress"),
        item("completed", id="m1", type="mcp_tool_call", server="gangline", tool="run_gates", status="completed",
             result={"content": [{"type": "text", "text": "gates passed"}]}),
        item("updated", id="t1", type="todo_list", items=[{"text": "write", "completed": True},
                                                           {"text": "test", "completed": False}]),
        item("started", id="w1", type="web_search", query="msgspec"),
        item("completed", id="e1", type="error", message="model metadata not found"),
    )  # fmt: skip
    assert events == [
        FileChange(tool_use_id="f1", changes=[FileEdit("/w/a.py", "add"), FileEdit("/w/b.py", "update")]),
        ToolUse(tool_use_id="m1", name="mcp__gangline__run_gates", input={"x": 1}),
        ToolResult(tool_use_id="m1", content="gates passed"),
        TodoList(items=[TodoItem("write", True), TodoItem("test", False)]),
        ToolUse(tool_use_id="w1", name="web_search", input={"query": "msgspec"}),
        AgentError(message="model metadata not found"),
    ]


def test_codex_reconnecting_is_an_api_retry_and_a_final_429_a_hard_rate_limit() -> None:
    message = "exceeded retry limit, last status: 429 Too Many Requests"
    events = feed(
        CodexDecoder(),
        {"type": "thread.started", "thread_id": "th"},
        {"type": "error", "message": f"Reconnecting... 2/5 ({message})"},
        {"type": "error", "message": message},
        {"type": "turn.failed", "error": {"message": message}},
    )
    _session, retry, warning, limit, result = events
    assert retry == ApiRetry(attempt=2, max_retries=5, error_status=429, error=f"Reconnecting... 2/5 ({message})")
    assert warning == AgentError(message=message)
    assert limit == RateLimit(
        status="rejected", hard_block=True, resets_at=NOW + DEFAULT_RATE_LIMIT_BACKOFF_S, reset_assumed=True
    )
    assert isinstance(result, Result) and result.is_error and result.errors == [message]
    assert result.api_error_status == 429 and result.session_id == "th"


def test_a_codex_quota_or_server_error_fails_the_turn_without_a_rate_limit() -> None:
    for message in ("Quota exceeded. Check your plan and billing details.", "unexpected status 500 Internal"):
        events = feed(CodexDecoder(), {"type": "turn.failed", "error": {"message": message}})
        assert [type(e) for e in events] == [Result], message


def test_unknown_codex_events_and_items_are_kept_as_unknown_with_their_raw_line() -> None:
    events = feed(CodexDecoder(), {"type": "thread.renamed", "name": "x"}, item("completed", id="z", type="hologram"))
    assert events == [UnknownEvent(type="thread.renamed"), UnknownEvent(type="item/hologram")]
    (odd,) = feed(CodexDecoder(), {"type": "thread.started"})  # no thread_id
    assert isinstance(odd, UnknownEvent) and odd.type == "thread.started" and "thread_id" in str(odd.reason)


# --- Gemini --------------------------------------------------------------------------------------


def test_gemini_deltas_between_tool_calls_are_numbered_messages_and_the_last_is_the_result_text() -> None:
    events = feed(
        GeminiDecoder(),
        {"type": "init", "session_id": "s-1", "model": "gemini-2.5-flash"},
        {"type": "message", "role": "user", "content": "go"},
        {"type": "message", "role": "assistant", "content": "Let me ", "delta": True},
        {"type": "message", "role": "assistant", "content": "look.", "delta": True},
        {"type": "tool_use", "tool_name": "read_file", "tool_id": "r1", "parameters": {"file_path": "/w/a"}},
        {"type": "tool_result", "tool_id": "r1", "status": "success", "output": "text"},
        {"type": "message", "role": "assistant", "content": "Done.", "delta": True},
        {"type": "result", "status": "success", "stats": {"total_tokens": 1300, "input_tokens": 1000,
                                                           "output_tokens": 50, "cached": 400, "duration_ms": 900}},
    )  # fmt: skip
    assert events[:3] == [
        SessionStarted(session_id="s-1", model="gemini-2.5-flash"),
        UserText(text="go"),
        MessageStarted(message_id="s-1-1"),
    ]
    assert events[3:9] == [
        TextDelta(text="Let me "),
        TextDelta(text="look."),
        AssistantText(text="Let me look.", message_id="s-1-1"),
        ToolUse(tool_use_id="r1", name="read_file", input={"file_path": "/w/a"}),
        ToolResult(tool_use_id="r1", content="text"),
        MessageStarted(message_id="s-1-2"),
    ]
    *_, closing, result = events
    assert closing == AssistantText(text="Done.", message_id="s-1-2")
    assert isinstance(result, Result) and result.result == "Done." and result.duration_ms == 900
    # 1300 total - 1000 prompt - 50 output: 250 tokens of thought, counted as output
    assert result.usage == Usage(
        input_tokens=600, output_tokens=300, cache_read_input_tokens=400, reasoning_output_tokens=250
    )


def test_gemini_tool_results_join_their_calls_as_commands_and_file_changes() -> None:
    events = feed(
        GeminiDecoder(),
        {"type": "tool_use", "tool_name": "run_shell_command", "tool_id": "c1", "parameters": {"command": "ls"}},
        {"type": "tool_result", "tool_id": "c1", "status": "success", "output": "a b"},
        {"type": "tool_use", "tool_name": "replace", "tool_id": "e1", "parameters": {"file_path": "/w/a"}},
        {"type": "tool_result", "tool_id": "e1", "status": "error",
         "error": {"type": "edit_no_occurrence_found", "message": "no match"}},
    )  # fmt: skip
    assert events == [
        ToolUse(tool_use_id="c1", name="run_shell_command", input={"command": "ls"}),
        ToolResult(tool_use_id="c1", content="a b"),
        CommandExecution(tool_use_id="c1", command="ls", exit_code=None),  # Gemini prints no exit status
        ToolUse(tool_use_id="e1", name="replace", input={"file_path": "/w/a"}),
        ToolResult(tool_use_id="e1", content="no match", is_error=True),  # a failed edit changed nothing
    ]


def test_a_gemini_429_result_is_a_hard_rate_limit_and_a_400_a_failed_result() -> None:
    limited = "[API Error: fake 429 (RESOURCE_EXHAUSTED)]\nPlease wait and try again later."
    refused = '[API Error: {"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}]'
    decoder = GeminiDecoder()
    limit, first = feed(
        decoder, {"type": "result", "status": "error", "error": {"type": "unknown", "message": limited}}
    )
    assert isinstance(limit, RateLimit) and limit.hard_block and limit.reset_assumed
    assert isinstance(first, Result) and first.is_error and first.subtype == "error_unknown"
    (second,) = feed(decoder, {"type": "result", "status": "error", "error": {"type": "unknown", "message": refused}})
    assert isinstance(second, Result) and second.api_error_status == 400 and second.errors == [refused]
    (warning,) = feed(decoder, {"type": "error", "severity": "warning", "message": "loop detected"})
    assert warning == AgentError(message="loop detected", fatal=False)


# --- every decoder -------------------------------------------------------------------------------


def test_claude_bash_and_write_results_also_say_command_and_file_change() -> None:
    def assistant(block: dict[str, Any]) -> dict[str, Any]:
        return {"type": "assistant", "message": {"id": "m", "content": [block]}}

    def user(block: dict[str, Any]) -> dict[str, Any]:
        return {"type": "user", "message": {"content": [block]}}

    events = feed(
        ClaudeDecoder(),
        assistant({"type": "tool_use", "id": "b1", "name": "Bash", "input": {"command": "false"}}),
        user({"type": "tool_result", "tool_use_id": "b1", "content": "Exit code 1", "is_error": True}),
        assistant({"type": "tool_use", "id": "w1", "name": "Write", "input": {"file_path": "/w/x", "content": ""}}),
        user({"type": "tool_result", "tool_use_id": "w1", "content": "File created"}),
    )
    assert events[2] == CommandExecution(tool_use_id="b1", command="false", exit_code=1, status="failed")
    assert events[5] == FileChange(tool_use_id="w1", changes=[FileEdit("/w/x", "write")])


def test_a_price_costs_a_result_that_has_tokens_only_and_leaves_a_cli_reported_cost_alone() -> None:
    decode = priced(CodexDecoder(), Price(input=2.0, output=10.0, cache_write=2.0, cache_read=0.5))
    usage = {"input_tokens": 1_000_000, "cached_input_tokens": 0, "output_tokens": 100_000}
    (result,) = feed(decode, {"type": "turn.completed", "usage": usage})
    assert isinstance(result, Result) and result.cost_usd == pytest.approx(2.0 + 1.0)
    claude = priced(ClaudeDecoder(), Price(1, 1, 1, 1))
    (own,) = feed(claude, {"type": "result", "subtype": "success", "total_cost_usd": 0.25, "usage": {}})
    assert isinstance(own, Result) and own.cost_usd == 0.25
