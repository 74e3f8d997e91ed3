"""Parse one line of Claude Code ``stream-json`` output into typed events (pure: no I/O).

The contract is in SPEC.md ("Parsing"). Keys are read by name and unknown keys are ignored,
because the CLI adds keys and reorders them between versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gangline.agents.adapter import FlagCheck, McpAccess, clean_environment, resolve_binary, safe_prompt
from gangline.agents.decoding import (
    DEFAULT_RATE_LIMIT_BACKOFF_S,
    Handler,
    LineDecoder,
    Parsed,
    ToolCalls,
    exit_code_in,
    parse_json_line,
)
from gangline.core.events import (
    ApiRetry,
    AssistantText,
    AssistantThinking,
    BlockStarted,
    CommandExecution,
    Event,
    FileChange,
    FileEdit,
    McpServer,
    MessageDelta,
    MessageStarted,
    RateLimit,
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
from gangline.core.profiles import AgentProfile, CliKind


def parse_line(line: bytes, now: float) -> Parsed:
    """Events for one line, plus the raw JSON to store beside them.

    ``now`` (epoch seconds) dates a hard rate limit that gives no reset time.
    """
    return parse_json_line(line, now, _HANDLERS)


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


# --- the decoder and the adapter ---------------------------------------------------------------


# Claude Code's tools that run a command or write a file, and the kind of change each makes.
_CLAUDE_COMMANDS = frozenset({"Bash"})
_CLAUDE_FILE_TOOLS = {"Write": "write", "Edit": "update", "MultiEdit": "update", "NotebookEdit": "update"}


class ClaudeDecoder:
    """``parse_line``, plus a ``command`` or ``file_change`` event after the result of such a tool."""

    def __init__(self) -> None:
        self.calls = ToolCalls()

    def __call__(self, line: bytes, now: float) -> Parsed:
        parsed = parse_line(line, now)
        events, raw = parsed
        # The hot path: almost every line is one delta. Type checks by identity, no generator.
        if len(events) == 1 and type(events[0]) is not ToolUse and type(events[0]) is not ToolResult:
            return parsed
        if not any(type(e) is ToolUse or type(e) is ToolResult for e in events):
            return parsed
        out: list[Event] = []
        for event in events:
            out.append(event)
            if isinstance(event, ToolUse):
                self.calls.opened(event)
            elif isinstance(event, ToolResult) and (call := self.calls.closed(event.tool_use_id)):
                out.extend(_claude_effect(event, *call))
        return tuple(out), raw


def _claude_effect(result: ToolResult, name: str, args: dict[str, Any]) -> list[Event]:
    status = "failed" if result.is_error else "completed"
    if name in _CLAUDE_COMMANDS and isinstance(args.get("command"), str):
        # Claude Code says only success or error; an error's output usually starts "Exit code N".
        code = exit_code_in(result.content) if result.is_error else 0
        return [CommandExecution(result.tool_use_id, args["command"], code, status)]
    kind = _CLAUDE_FILE_TOOLS.get(name)
    path = args.get("file_path") or args.get("notebook_path")
    if kind and isinstance(path, str) and not result.is_error:
        return [FileChange(result.tool_use_id, [FileEdit(path, kind)], status)]
    return []


def with_mcp(profile: AgentProfile, config_file: Path, permission_tool: str) -> AgentProfile:
    """The profile launched with gangline's MCP server (from ``config_file``) and its permission prompt tool.

    ``--strict-mcp-config``: only gangline's server, never one from the person's own Claude
    settings. A profile that names its own ``permission_prompt_tool`` keeps it. The fake CLI
    speaks no MCP, so its profiles are returned unchanged. The options go first among the extra
    arguments: ``--mcp-config`` is variadic, and the flag after it ends its list.
    """
    if profile.cli is not CliKind.CLAUDE:
        return profile
    extra = ("--mcp-config", str(config_file), "--strict-mcp-config", *profile.extra_args)
    return profile.model_copy(
        update={"extra_args": extra, "permission_prompt_tool": profile.permission_prompt_tool or permission_tool}
    )


# Flags gangline passes to every Claude Code run, then those a profile's settings add.
_CLAUDE_ALWAYS = (
    "--print",
    "--output-format",
    "--verbose",
    "--include-partial-messages",
    "--permission-mode",
    "--resume",
    "--mcp-config",  # these three under `gangline serve`
    "--strict-mcp-config",
    "--permission-prompt-tool",
)
_CLAUDE_BY_FIELD = {
    "model": "--model",
    "max_budget_usd": "--max-budget-usd",
    "allowed_tools": "--allowedTools",
    "disallowed_tools": "--disallowedTools",
    "system_prompt": "--append-system-prompt",
}


class ClaudeAdapter:
    """The real Claude Code CLI in ``-p`` mode with stream-json output (REAL_CLI contract)."""

    kind = CliKind.CLAUDE
    binary = "claude"
    install = "npm install -g @anthropic-ai/claude-code"

    def command(self, profile: AgentProfile, prompt: str, resume_session_id: str | None) -> list[str]:
        argv = [resolve_binary(profile, profile.command or self.binary)]
        if resume_session_id:
            argv += ["--resume", resume_session_id]
        argv += ["-p", safe_prompt(prompt)]
        argv += ["--output-format", "stream-json", "--verbose", "--include-partial-messages"]
        argv += ["--permission-mode", profile.permission_mode.value]
        if profile.permission_prompt_tool:
            argv += ["--permission-prompt-tool", profile.permission_prompt_tool]
        if profile.model:
            argv += ["--model", profile.model]
        if profile.max_turns is not None:
            argv += ["--max-turns", str(profile.max_turns)]
        if profile.max_budget_usd is not None:
            argv += ["--max-budget-usd", f"{profile.max_budget_usd:g}"]
        # One comma-joined value each: these options are variadic and would swallow the
        # arguments that follow them.
        if profile.allowed_tools:
            argv += ["--allowedTools", ",".join(profile.allowed_tools)]
        if profile.disallowed_tools:
            argv += ["--disallowedTools", ",".join(profile.disallowed_tools)]
        if profile.system_prompt:
            argv += ["--append-system-prompt", profile.system_prompt]
        return argv + list(profile.extra_args)

    def environment(self, profile: AgentProfile, base_env: Mapping[str, str]) -> dict[str, str]:
        return clean_environment(profile, base_env, "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY")

    def decoder(self, profile: AgentProfile, session_usage: Usage | None) -> LineDecoder:
        return ClaudeDecoder()

    def with_mcp(self, profile: AgentProfile, access: McpAccess) -> AgentProfile:
        if access.claude_config is None or access.permission_tool is None:
            raise ValueError("Claude Code gets its MCP server from a config file in the worktree")
        return with_mcp(profile, access.claude_config, access.permission_tool)

    def state_dirs(self, profile: AgentProfile) -> tuple[Path, ...]:
        return ()

    def flags(self, profile: AgentProfile) -> list[FlagCheck]:
        wanted = list(_CLAUDE_ALWAYS)
        wanted += [flag for field, flag in _CLAUDE_BY_FIELD.items() if getattr(profile, field)]
        # --max-turns is accepted but not listed in --help.
        return [FlagCheck(("--help",), flag) for flag in wanted]
