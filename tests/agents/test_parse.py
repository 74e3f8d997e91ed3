"""The stream-json parser, on recorded real transcripts and on hand-made edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from gangline.agents.claude import parse_line
from gangline.core.events import (
    ApiRetry,
    AssistantText,
    Malformed,
    NonObjectJson,
    RateLimit,
    RawOutput,
    Result,
    SessionStarted,
    TextDelta,
    ThinkingDelta,
    ToolInputDelta,
    ToolResult,
    ToolUse,
    UnknownEvent,
)
from kits.helpers import TRANSCRIPTS

NOW = 1_800_000_000.0
SHARED = Path(__file__).resolve().parents[3] / "shared" / "reference" / "claude-stream-json"
# Our own recordings of the pinned CLI, plus the reference captures when they are beside the
# repository (``x_*`` are Codex and Gemini, not Claude Code).
RECORDED = sorted(TRANSCRIPTS.glob("*.jsonl")) + [
    p for p in sorted(SHARED.glob("*.jsonl")) if not p.name.startswith("x_")
]


def one(obj: object | bytes) -> object:
    line = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    events, _raw = parse_line(line, NOW)
    assert len(events) == 1
    return events[0]


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.name)
def test_every_line_of_a_real_claude_transcript_parses_to_known_events_with_raw_kept(path: Path) -> None:
    kinds = []
    for line in path.read_bytes().splitlines():
        events, raw = parse_line(line, NOW)
        assert raw is not None and json.loads(bytes(raw)) == json.loads(line)
        for event in events:
            assert not isinstance(event, (UnknownEvent, Malformed, RawOutput)), event
            kinds.append(type(event))
    assert kinds[0] in (SessionStarted, Result)  # a failed --resume prints only a result
    if "SIGTERM" not in path.name:  # SIGTERM ends the CLI before it prints a result
        assert kinds[-1] is Result


def test_init_becomes_session_started() -> None:
    ev = one(
        {
            "type": "system",
            "subtype": "init",
            "session_id": "s1",
            "model": "m",
            "tools": ["Bash"],
            "claude_code_version": "2.1.330",
            "cwd": "/w",
            "permissionMode": "acceptEdits",
            "mcp_servers": [{"name": "perm", "status": "connected"}],
            "new_key": 1,
        }
    )
    assert isinstance(ev, SessionStarted)
    assert (ev.session_id, ev.model, ev.cli_version, ev.tools) == ("s1", "m", "2.1.330", ["Bash"])
    assert ev.mcp_servers[0].name == "perm"


@pytest.mark.parametrize(
    ("delta", "kind", "field", "value"),
    [
        ({"type": "text_delta", "text": "hi"}, TextDelta, "text", "hi"),
        ({"type": "thinking_delta", "thinking": "hmm"}, ThinkingDelta, "text", "hmm"),
        ({"type": "input_json_delta", "partial_json": '{"a'}, ToolInputDelta, "partial_json", '{"a'),
    ],
)
def test_stream_deltas_become_typed_deltas(delta: dict, kind: type, field: str, value: str) -> None:
    ev = one({"type": "stream_event", "event": {"type": "content_block_delta", "index": 2, "delta": delta}})
    assert isinstance(ev, kind)
    assert getattr(ev, field) == value and ev.index == 2


def test_assistant_tool_use_and_user_tool_result() -> None:
    use = one(
        {
            "type": "assistant",
            "message": {
                "id": "m1",
                "content": [{"type": "tool_use", "id": "t1", "name": "Write", "input": {"file_path": "a"}}],
            },
        }
    )
    assert isinstance(use, ToolUse) and use.name == "Write" and use.input == {"file_path": "a"}
    res = one(
        {
            "type": "user",
            "message": {
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "is_error": True,
                        "content": [{"type": "text", "text": "no"}],
                    }
                ]
            },
        }
    )
    assert isinstance(res, ToolResult) and res.is_error and res.content == "no"


def test_synthetic_api_error_message_keeps_its_error_kind() -> None:
    ev = one(
        {
            "type": "assistant",
            "error": "rate_limit",
            "message": {
                "id": "m",
                "model": "<synthetic>",
                "content": [{"type": "text", "text": "API Error: Request rejected (429)"}],
            },
        }
    )
    assert isinstance(ev, AssistantText) and ev.error == "rate_limit"


def test_rate_limit_warning_is_not_a_block() -> None:
    ev = one(
        {
            "type": "rate_limit_event",
            "rate_limit_info": {
                "status": "allowed_warning",
                "resetsAt": 1795500000,
                "rateLimitType": "five_hour",
                "utilization": 0.91,
            },
        }
    )
    assert isinstance(ev, RateLimit)
    assert not ev.hard_block and ev.resets_at == 1795500000 and ev.utilization == 0.91


def test_rate_limit_rejection_is_a_hard_block_with_its_reset_time() -> None:
    ev = one({"type": "rate_limit_event", "rate_limit_info": {"status": "rejected", "resetsAt": 1795500000}})
    assert isinstance(ev, RateLimit) and ev.hard_block and ev.resets_at == 1795500000 and not ev.reset_assumed


def test_hard_block_without_reset_time_assumes_five_minutes_from_now() -> None:
    ev = one({"type": "rate_limit_event", "rate_limit_info": {"status": "rejected"}})
    assert isinstance(ev, RateLimit) and ev.resets_at == NOW + 300 and ev.reset_assumed


def test_api_retry_is_typed() -> None:
    ev = one(
        {
            "type": "system",
            "subtype": "api_retry",
            "attempt": 1,
            "max_retries": 2,
            "retry_delay_ms": 500,
            "error_status": 529,
            "error": "overloaded",
        }
    )
    assert isinstance(ev, ApiRetry) and ev.error_status == 529 and ev.error == "overloaded"


def test_result_prefers_per_model_usage_which_survives_a_mid_stream_retry() -> None:
    ev = one(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "num_turns": 1,
            "total_cost_usd": 0.5,
            "terminal_reason": "completed",
            "usage": {"input_tokens": 0, "output_tokens": 0},
            "modelUsage": {"a": {"inputTokens": 10, "outputTokens": 2}, "b": {"inputTokens": 5, "outputTokens": 1}},
            "permission_denials": [{"tool_name": "Bash"}],
            "errors": [],
        }
    )
    assert isinstance(ev, Result)
    assert ev.usage is not None and (ev.usage.input_tokens, ev.usage.output_tokens) == (15, 3)
    assert ev.cost_usd == 0.5 and ev.permission_denials == 1 and ev.terminal_reason == "completed"


def test_a_line_that_is_not_json_is_raw_output_without_ansi_escapes() -> None:
    events, raw = parse_line(b"\x1b[31mred\x1b[0m text\r", NOW)
    assert events == (RawOutput(text="red text"),)
    assert msgspec.json.decode(bytes(raw)) == "\x1b[31mred\x1b[0m text"  # the original is kept


def test_the_terminal_reset_the_cli_prints_on_exit_strips_to_nothing() -> None:
    reset = b"\x1b[?1006l\x1b[?1003l\x1b(B\x0f\x1b[>4m\x1b[<u\x1b[?25h\x1b7\x1b[r\x1b8\x1b]0;\x07\x1b[?25h"
    assert one(reset) == RawOutput(text="")


def test_non_utf8_bytes_are_kept_as_replacement_characters() -> None:
    ev = one(b"caf\xe9 \xff\xfe")
    assert isinstance(ev, RawOutput) and ev.text == "caf\ufffd \ufffd\ufffd"


def test_json_that_is_not_an_object_is_kept_and_typed() -> None:
    events, raw = parse_line(b"[1, 2]", NOW)
    assert events == (NonObjectJson(json_type="list"),) and bytes(raw) == b"[1, 2]"


def test_unknown_type_is_kept_and_typed() -> None:
    assert one({"type": "brand_new", "x": 1}) == UnknownEvent(type="brand_new")
    assert one({"no_type": True}) == UnknownEvent(type=None)


def test_a_known_type_with_an_unexpected_shape_is_kept_with_the_reason() -> None:
    ev = one({"type": "stream_event", "event": "not an object"})
    assert isinstance(ev, UnknownEvent) and ev.type == "stream_event" and "unexpected shape" in (ev.reason or "")


def test_a_corrupt_json_line_is_malformed_not_raw_output() -> None:
    ev = one(b'{"type":"assistant","message":{"id":')
    assert isinstance(ev, Malformed) and ev.head.startswith('{"type"')
