"""Parse one line of Claude Code ``stream-json`` output into typed events (pure: no I/O).

The contract is in SPEC.md ("Parsing"). Keys are read by name and unknown keys are ignored,
because the CLI adds keys and reorders them between versions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from gangline.agents.framing import HEAD_BYTES
from gangline.core.events import (
    ApiRetry,
    AssistantText,
    AssistantThinking,
    BlockStarted,
    Event,
    Malformed,
    McpServer,
    MessageDelta,
    MessageStarted,
    NonObjectJson,
    RateLimit,
    RawOutput,
    Result,
    SessionStarted,
    StreamMarker,
    SystemNotice,
    TextDelta,
    ThinkingDelta,
    ToolInputDelta,
    ToolResult,
    ToolUse,
    UnknownEvent,
    Usage,
    UserText,
)

DEFAULT_RATE_LIMIT_BACKOFF_S = 300.0  # when a hard block carries no reset time

# CSI, OSC (BEL- or ST-terminated), charset selection, other two-byte escapes, then C0
# controls other than tab. The CLI writes a terminal-reset sequence of all of these on exit.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[()][0-9A-Za-z]"
    r"|\x1b[@-Z\\-_=>78]|[\x00-\x08\x0b-\x1f\x7f]"
)

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode

Parsed = tuple[tuple[Event, ...], "msgspec.Raw | None"]


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


Handler = Callable[[dict[str, Any], float], tuple[Event, ...]]


def parse_line(line: bytes, now: float) -> Parsed:
    """Events for one line, plus the raw JSON to store beside them.

    ``now`` (epoch seconds) dates a hard rate limit that gives no reset time.
    """
    return parse_json_line(line, now, _HANDLERS)


def parse_json_line(line: bytes, now: float, handlers: Mapping[str, Handler]) -> Parsed:
    """The rules every CLI's JSON lines share: a handler per ``type``; anything else is kept, never lost."""
    try:
        obj = _decode(line)
    except msgspec.DecodeError:
        return _not_json(line)
    except RecursionError:  # msgspec's nesting limit; the line is kept, not the run's reader lost
        return _not_json(line, reason="line is JSON nested too deeply to read")
    raw = msgspec.Raw(line)
    if type(obj) is not dict:
        return (NonObjectJson(json_type=type(obj).__name__),), raw
    kind = obj.get("type")
    handler = handlers.get(kind) if type(kind) is str else None
    if handler is None:
        return (UnknownEvent(type=kind if type(kind) is str else None),), raw
    try:
        return handler(obj, now), raw
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as err:
        # A known type with a shape we did not expect: keep it, say why.
        return (UnknownEvent(type=kind, reason=f"unexpected shape: {err!r}"),), raw


def _not_json(line: bytes, reason: str = "line looks like JSON but does not parse") -> Parsed:
    text = line.decode("utf-8", "replace").rstrip("\r")
    raw = msgspec.Raw(_encode(text))
    if text.lstrip().startswith(("{", "[")):
        head = text[:HEAD_BYTES]
        return (Malformed(reason=reason, size=len(line), head=head),), raw
    return (RawOutput(text=strip_ansi(text)),), raw


# --- handlers, one per top-level ``type`` --------------------------------------------------


def _system(o: dict[str, Any], now: float) -> tuple[Event, ...]:
    sub = o.get("subtype")
    if sub == "init":
        servers = [McpServer(name=s["name"], status=s["status"]) for s in o.get("mcp_servers") or ()]
        return (
            SessionStarted(
                session_id=o["session_id"],
                model=o.get("model"),
                cli_version=o.get("claude_code_version"),
                cwd=o.get("cwd"),
                permission_mode=o.get("permissionMode"),
                tools=list(o.get("tools") or ()),
                mcp_servers=servers,
            ),
        )
    if sub == "api_retry":
        return (
            ApiRetry(
                attempt=o["attempt"],
                max_retries=o.get("max_retries"),
                retry_delay_ms=o.get("retry_delay_ms"),
                error_status=o.get("error_status"),
                error=o.get("error"),
            ),
        )
    detail = o.get("status") or o.get("content") or o.get("description") or o.get("kind")
    return (SystemNotice(subtype=str(sub), detail=detail if isinstance(detail, str) else None),)


def _stream_event(o: dict[str, Any], now: float) -> tuple[Event, ...]:
    ev = o["event"]
    et = ev["type"]
    parent = o.get("parent_tool_use_id")
    if et == "content_block_delta":
        delta = ev["delta"]
        dt = delta["type"]
        if dt == "text_delta":
            return (TextDelta(delta["text"], ev.get("index", 0), parent),)
        if dt == "thinking_delta":
            return (ThinkingDelta(delta["thinking"], ev.get("index", 0), parent),)
        if dt == "input_json_delta":
            return (ToolInputDelta(delta["partial_json"], ev.get("index", 0), parent),)
        return (StreamMarker(event=str(dt), index=ev.get("index")),)
    if et == "content_block_start":
        block = ev["content_block"]
        return (BlockStarted(ev["index"], block["type"], block.get("name"), block.get("id"), parent),)
    if et == "message_start":
        msg = ev["message"]
        return (MessageStarted(message_id=msg.get("id"), model=msg.get("model")),)
    if et == "message_delta":
        usage = ev.get("usage")
        return (MessageDelta(stop_reason=ev["delta"].get("stop_reason"), usage=_usage(usage) if usage else None),)
    return (StreamMarker(event=str(et), index=ev.get("index")),)


def _assistant(o: dict[str, Any], now: float) -> tuple[Event, ...]:
    msg = o["message"]
    mid = msg.get("id")
    parent = o.get("parent_tool_use_id")
    error = o.get("error")
    out: list[Event] = []
    for block in msg.get("content") or ():
        bt = block.get("type")
        if bt == "text":
            out.append(AssistantText(text=block["text"], message_id=mid, error=error, parent_tool_use_id=parent))
        elif bt == "thinking":
            out.append(AssistantThinking(text=block.get("thinking", ""), message_id=mid))
        elif bt == "tool_use":
            out.append(
                ToolUse(
                    tool_use_id=block["id"],
                    name=block["name"],
                    input=block.get("input") or {},
                    parent_tool_use_id=parent,
                )
            )
        else:
            out.append(UnknownEvent(type=f"assistant/{bt}"))
    return tuple(out) or (StreamMarker(event="assistant/empty"),)


def _user(o: dict[str, Any], now: float) -> tuple[Event, ...]:
    content = o["message"]["content"]
    parent = o.get("parent_tool_use_id")
    if isinstance(content, str):
        return (UserText(text=content, parent_tool_use_id=parent),)
    out: list[Event] = []
    for block in content:
        bt = block.get("type")
        if bt == "tool_result":
            out.append(
                ToolResult(
                    tool_use_id=block["tool_use_id"],
                    content=_flatten(block.get("content")),
                    is_error=bool(block.get("is_error")),
                    parent_tool_use_id=parent,
                )
            )
        elif bt == "text":
            out.append(UserText(text=block["text"], parent_tool_use_id=parent))
        else:
            out.append(UnknownEvent(type=f"user/{bt}"))
    return tuple(out) or (StreamMarker(event="user/empty"),)


def _rate_limit(o: dict[str, Any], now: float) -> tuple[Event, ...]:
    info = o.get("rate_limit_info") or {}
    status = str(info.get("status") or "unknown")
    hard = status not in ("allowed", "allowed_warning")
    resets_at = info.get("resetsAt")
    assumed = False
    if not isinstance(resets_at, (int, float)):
        resets_at = now + DEFAULT_RATE_LIMIT_BACKOFF_S if hard else None
        assumed = hard
    return (
        RateLimit(
            status=status,
            hard_block=hard,
            resets_at=float(resets_at) if resets_at is not None else None,
            reset_assumed=assumed,
            limit_type=info.get("rateLimitType"),
            utilization=info.get("utilization"),
        ),
    )


def _result(o: dict[str, Any], now: float) -> tuple[Event, ...]:
    denials = o.get("permission_denials") or ()
    return (
        Result(
            subtype=str(o.get("subtype")),
            is_error=bool(o.get("is_error")),
            result=o.get("result") if isinstance(o.get("result"), str) else None,
            num_turns=o.get("num_turns"),
            duration_ms=o.get("duration_ms"),
            cost_usd=o.get("total_cost_usd"),
            usage=_result_usage(o),
            stop_reason=o.get("stop_reason"),
            terminal_reason=o.get("terminal_reason"),
            api_error_status=o.get("api_error_status"),
            errors=[str(e) for e in o.get("errors") or ()],
            permission_denials=len(denials),
            session_id=o.get("session_id"),
        ),
    )


def _usage(u: dict[str, Any]) -> Usage:
    return Usage(
        input_tokens=u.get("input_tokens") or 0,
        output_tokens=u.get("output_tokens") or 0,
        cache_creation_input_tokens=u.get("cache_creation_input_tokens") or 0,
        cache_read_input_tokens=u.get("cache_read_input_tokens") or 0,
    )


def _result_usage(o: dict[str, Any]) -> Usage | None:
    # After a mid-stream failure the CLI's ``usage`` can read zero while ``modelUsage``
    # (per model, summed over the whole process) is right, so prefer the latter.
    per_model = o.get("modelUsage")
    if isinstance(per_model, dict) and per_model:
        models = per_model.values()
        return Usage(
            input_tokens=sum(m.get("inputTokens") or 0 for m in models),
            output_tokens=sum(m.get("outputTokens") or 0 for m in models),
            cache_creation_input_tokens=sum(m.get("cacheCreationInputTokens") or 0 for m in models),
            cache_read_input_tokens=sum(m.get("cacheReadInputTokens") or 0 for m in models),
        )
    usage = o.get("usage")
    return _usage(usage) if isinstance(usage, dict) else None


def _flatten(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        else:
            parts.append(f"[{block.get('type', 'block') if isinstance(block, dict) else 'value'}]")
    return "\n".join(parts)


_HANDLERS: dict[str, Handler] = {
    "system": _system,
    "stream_event": _stream_event,
    "assistant": _assistant,
    "user": _user,
    "rate_limit_event": _rate_limit,
    "result": _result,
}
