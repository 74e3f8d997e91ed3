"""Decode ``gemini -p … --output-format stream-json`` lines (Gemini CLI) into gangline's events.

One decoder per run. Gemini streams assistant text as deltas with no message ids and ends a run
with one ``result``; the decoder numbers each stretch of text between tool calls as a message
(``message_started`` … ``assistant_text``), joins tool results to their calls, and keeps the
last stretch as the run's result text. The mapping table is in SPEC.md ("One event model").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gangline.agents.adapter import FlagCheck, McpAccess, clean_environment, resolve_binary, safe_prompt, write_private
from gangline.agents.decoding import (
    Handler,
    LineDecoder,
    Parsed,
    ToolCalls,
    exit_code_in,
    http_status_in,
    parse_json_line,
    rate_limit_in,
)
from gangline.core.events import (
    AgentError,
    AssistantText,
    CommandExecution,
    Event,
    FileChange,
    FileEdit,
    MessageStarted,
    Result,
    SessionStarted,
    TextDelta,
    ToolResult,
    ToolUse,
    Usage,
    UserText,
)
from gangline.core.profiles import AgentProfile, CliKind

_COMMAND_TOOLS = frozenset({"run_shell_command"})
_FILE_TOOLS = {"write_file": "write", "replace": "update"}


class GeminiDecoder:
    def __init__(self) -> None:
        self.session_id: str | None = None
        self.calls = ToolCalls()
        self._messages = 0
        self._open: str | None = None  # the id of the message whose deltas are streaming
        self._text: list[str] = []
        self.last_text: str | None = None
        self.handlers: dict[str, Handler] = {
            "init": self._init,
            "message": self._message,
            "tool_use": self._tool_use,
            "tool_result": self._tool_result,
            "error": self._error,
            "result": self._result,
        }

    def __call__(self, line: bytes, now: float) -> Parsed:
        return parse_json_line(line, now, self.handlers)

    def _init(self, o: dict[str, Any], now: float) -> tuple[Event, ...]:
        self.session_id = str(o["session_id"])
        return (SessionStarted(session_id=self.session_id, model=o.get("model")),)

    def _message(self, o: dict[str, Any], now: float) -> tuple[Event, ...]:
        text = str(o.get("content") or "")
        if o.get("role") != "assistant":
            return (*self._close(), UserText(text=text))
        if not o.get("delta"):
            return (*self._close(), AssistantText(text=text, message_id=self._next_id()))
        out: list[Event] = []
        if self._open is None:
            self._open = self._next_id()
            out.append(MessageStarted(message_id=self._open))
        self._text.append(text)
        out.append(TextDelta(text=text))
        return tuple(out)

    def _tool_use(self, o: dict[str, Any], now: float) -> tuple[Event, ...]:
        params = o.get("parameters")
        use = ToolUse(
            tool_use_id=str(o["tool_id"]), name=str(o["tool_name"]), input=params if isinstance(params, dict) else {}
        )
        self.calls.opened(use)
        return (*self._close(), use)

    def _tool_result(self, o: dict[str, Any], now: float) -> tuple[Event, ...]:
        tid = str(o["tool_id"])
        error = o.get("error")
        failed = o.get("status") != "success"
        content = o.get("output")
        if failed and isinstance(error, dict) and error.get("message"):
            content = error["message"] if not content else f"{content}\n{error['message']}"
        result = ToolResult(tool_use_id=tid, content=str(content or ""), is_error=failed)
        call = self.calls.closed(tid)
        return (*self._close(), result, *(_effect(result, *call) if call else ()))

    def _error(self, o: dict[str, Any], now: float) -> tuple[Event, ...]:
        return (AgentError(message=str(o.get("message") or ""), fatal=o.get("severity") == "error"),)

    def _result(self, o: dict[str, Any], now: float) -> tuple[Event, ...]:
        closing = self._close()
        ok = o.get("status") == "success"
        error = _table(o.get("error"))
        message = str(error.get("message") or "") if not ok else ""
        stats = _table(o.get("stats"))
        result = Result(
            subtype="success" if ok else f"error_{error.get('type') or 'unknown'}",
            is_error=not ok,
            result=self.last_text,
            duration_ms=stats.get("duration_ms"),
            usage=gemini_usage(stats) if stats else None,
            api_error_status=http_status_in(message),
            errors=[message] if message else [],
            session_id=self.session_id,
        )
        limit = rate_limit_in(message, now) if not ok else None
        return (*closing, *((limit,) if limit else ()), result)

    def _next_id(self) -> str:
        self._messages += 1
        return f"{self.session_id or 'gemini'}-{self._messages}"

    def _close(self) -> tuple[Event, ...]:
        """End the streaming message, if one is open, with its complete text."""
        if self._open is None:
            return ()
        text = "".join(self._text)
        event = AssistantText(text=text, message_id=self._open)
        self._open, self._text, self.last_text = None, [], text
        return (event,)


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _effect(result: ToolResult, name: str, args: dict[str, Any]) -> list[Event]:
    status = "failed" if result.is_error else "completed"
    if name in _COMMAND_TOOLS and isinstance(args.get("command"), str):
        # Gemini CLI's stream-json reports no exit status (0.61.0: "success" even for `exit 3`);
        # only an output that states one gives it.
        return [CommandExecution(result.tool_use_id, args["command"], exit_code_in(result.content), status)]
    kind = _FILE_TOOLS.get(name)
    path = args.get("file_path")
    if kind and isinstance(path, str) and not result.is_error:
        return [FileChange(result.tool_use_id, [FileEdit(path, kind)], status)]
    return []


def gemini_usage(stats: dict[str, Any]) -> Usage:
    """Gemini's ``input_tokens`` include the cached ones; what the total holds beyond input and output is thought."""
    prompt = int(stats.get("input_tokens") or 0)
    cached = int(stats.get("cached") or 0)
    output = int(stats.get("output_tokens") or 0)
    total = int(stats.get("total_tokens") or 0)
    reasoning = max(0, total - prompt - output)
    return Usage(
        input_tokens=max(0, prompt - cached),
        output_tokens=output + reasoning,
        cache_read_input_tokens=cached,
        reasoning_output_tokens=reasoning,
    )


# --- the adapter ----------------------------------------------------------------------------------


class GeminiAdapter:
    """The Gemini CLI in headless mode (``-p``) with stream-json output; ``--resume <session>`` continues one."""

    kind = CliKind.GEMINI
    binary = "gemini"
    install = "npm install -g @google/gemini-cli"

    def command(self, profile: AgentProfile, prompt: str, resume_session_id: str | None) -> list[str]:
        argv = [resolve_binary(profile, profile.command or self.binary)]
        if resume_session_id:
            argv += ["--resume", resume_session_id]
        argv += ["-p", safe_prompt(prompt), "--output-format", "stream-json"]
        # --skip-trust: a worktree is a folder the CLI has never seen, and nobody is there to trust it.
        argv += ["--skip-trust", "--approval-mode", profile.approval]
        if profile.model:
            argv += ["--model", profile.model]
        return argv + list(profile.extra_args)

    def environment(self, profile: AgentProfile, base_env: Mapping[str, str]) -> dict[str, str]:
        return clean_environment(profile, base_env, "GOOGLE_GEMINI_BASE_URL", "GEMINI_API_KEY")

    def decoder(self, profile: AgentProfile, session_usage: Usage | None) -> LineDecoder:
        return GeminiDecoder()

    def with_mcp(self, profile: AgentProfile, access: McpAccess) -> AgentProfile:
        # System settings take precedence over the person's and the workspace's; the file is private
        # to the run and outside the worktree, so the token never lands in the repository.
        server = {"httpUrl": access.url, "headers": {"Authorization": f"Bearer {access.token}"}, "trust": True}
        write_private(access.config_file, json.dumps({"mcpServers": {"gangline": server}}))
        env = {**profile.env, "GEMINI_CLI_SYSTEM_SETTINGS_PATH": str(access.config_file)}
        extra = ("--allowed-mcp-server-names", "gangline", *profile.extra_args)
        return profile.model_copy(update={"extra_args": extra, "env": env})

    def state_dirs(self, profile: AgentProfile) -> tuple[Path, ...]:
        return ()

    def flags(self, profile: AgentProfile) -> list[FlagCheck]:
        wanted = ["--prompt", "--output-format", "--approval-mode", "--skip-trust", "--resume"]
        wanted += ["--allowed-mcp-server-names"] + (["--model"] if profile.model else [])
        return [FlagCheck(("--help",), flag) for flag in wanted]
