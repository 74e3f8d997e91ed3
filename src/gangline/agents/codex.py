"""Decode ``codex exec --json`` lines (Codex CLI) into gangline's events, one decoder per run.

The contract, and the table mapping each Codex event to gangline's, is in SPEC.md ("One event
model"). Keys are read by name; unknown keys are ignored and unknown types are kept as
``unknown`` with their raw line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gangline.agents.adapter import (
    MCP_TOKEN_VAR,
    FlagCheck,
    McpAccess,
    clean_environment,
    resolve_binary,
    safe_prompt,
    toml_string,
)
from gangline.agents.decoding import Handler, LineDecoder, Parsed, http_status_in, parse_json_line, rate_limit_in
from gangline.core.events import (
    AgentError,
    ApiRetry,
    AssistantText,
    AssistantThinking,
    CommandExecution,
    Event,
    FileChange,
    FileEdit,
    Result,
    SessionStarted,
    StreamMarker,
    TodoItem,
    TodoList,
    ToolResult,
    ToolUse,
    UnknownEvent,
    Usage,
)
from gangline.core.profiles import AgentProfile, CliKind, Role, Sandbox

# "Reconnecting... 2/5 (stream disconnected before completion: ...)": Codex retrying its API.
_RECONNECTING = re.compile(r"^Reconnecting\.*\s*(\d+)/(\d+)")
SHELL_TOOL = "shell"  # the tool name a command execution is shown under


class CodexDecoder:
    """Stateful for one run: the thread id (the session), and the last agent message (the result text)."""

    def __init__(self, model: str | None = None, session_usage: Usage | None = None) -> None:
        self.model = model
        # Codex's turn.completed counts the whole thread, earlier `exec` processes included; a
        # resumed run's own usage is that minus what its earlier runs were already counted for.
        self.session_usage = session_usage
        self.thread_id: str | None = None
        self.last_text: str | None = None
        self.handlers: dict[str, Handler] = {
            "thread.started": self._thread_started,
            "turn.started": _marker,
            "turn.completed": self._turn_completed,
            "turn.failed": self._turn_failed,
            "item.started": self._item,
            "item.updated": self._item,
            "item.completed": self._item,
            "error": self._error,
        }

    def __call__(self, line: bytes, now: float) -> Parsed:
        return parse_json_line(line, now, self.handlers)

    def _thread_started(self, o: dict[str, Any], now: float) -> tuple[Event, ...]:
        self.thread_id = str(o["thread_id"])
        return (SessionStarted(session_id=self.thread_id, model=self.model),)

    def _turn_completed(self, o: dict[str, Any], now: float) -> tuple[Event, ...]:
        usage = o.get("usage")
        return (
            Result(
                subtype="success",
                is_error=False,
                result=self.last_text,
                usage=codex_usage(usage, self.session_usage) if isinstance(usage, dict) else None,
                session_id=self.thread_id,
            ),
        )

    def _turn_failed(self, o: dict[str, Any], now: float) -> tuple[Event, ...]:
        error = o.get("error")
        message = str(error.get("message") if isinstance(error, dict) else error or "the turn failed")
        result = Result(
            subtype="error_turn_failed",
            is_error=True,
            result=self.last_text,
            api_error_status=http_status_in(message),
            errors=[message],
            session_id=self.thread_id,
        )
        limit = rate_limit_in(message, now)
        return (limit, result) if limit else (result,)

    def _error(self, o: dict[str, Any], now: float) -> tuple[Event, ...]:
        message = str(o.get("message") or "")
        retrying = _RECONNECTING.match(message)
        if retrying:
            return (
                ApiRetry(
                    attempt=int(retrying[1]),
                    max_retries=int(retrying[2]),
                    error_status=http_status_in(message[retrying.end() :]),
                    error=message,
                ),
            )
        return (AgentError(message=message, fatal=False),)

    def _item(self, o: dict[str, Any], now: float) -> tuple[Event, ...]:
        item = o["item"]
        phase = str(o["type"]).removeprefix("item.")  # started | updated | completed
        kind = item.get("type")
        iid = str(item.get("id") or "")
        if kind == "agent_message":
            if phase != "completed":
                return (StreamMarker(event=f"agent_message.{phase}"),)
            self.last_text = str(item.get("text") or "")
            return (AssistantText(text=self.last_text, message_id=iid),)
        if kind == "reasoning":
            if phase != "completed":
                return (StreamMarker(event=f"reasoning.{phase}"),)
            return (AssistantThinking(text=str(item.get("text") or ""), message_id=iid),)
        if kind == "command_execution":
            return _command(item, iid, phase)
        if kind == "file_change":
            if phase != "completed":
                return (StreamMarker(event=f"file_change.{phase}"),)
            changes = [FileEdit(str(c["path"]), str(c.get("kind") or "update")) for c in item.get("changes") or ()]
            return (FileChange(iid, changes, str(item.get("status") or "completed")),)
        if kind == "mcp_tool_call":
            return _mcp_call(item, iid, phase)
        if kind == "web_search":
            if phase == "started":
                return (ToolUse(tool_use_id=iid, name="web_search", input={"query": item.get("query")}),)
            return (ToolResult(tool_use_id=iid, content=str(item.get("query") or "")),)
        if kind == "todo_list":
            todos = [TodoItem(str(t.get("text") or ""), bool(t.get("completed"))) for t in item.get("items") or ()]
            return (TodoList(items=todos),)
        if kind == "error":
            return (AgentError(message=str(item.get("message") or ""), fatal=False),)
        return (UnknownEvent(type=f"item/{kind}"),)


def _marker(o: dict[str, Any], now: float) -> tuple[Event, ...]:
    return (StreamMarker(event=str(o["type"])),)


def _command(item: dict[str, Any], iid: str, phase: str) -> tuple[Event, ...]:
    command = str(item.get("command") or "")
    if phase == "started":
        return (ToolUse(tool_use_id=iid, name=SHELL_TOOL, input={"command": command}),)
    if phase != "completed":
        return (StreamMarker(event=f"command_execution.{phase}"),)
    code = item.get("exit_code")
    status = str(item.get("status") or "completed")
    exit_code = code if isinstance(code, int) else None
    failed = status != "completed" or (exit_code is not None and exit_code != 0)
    output = str(item.get("aggregated_output") or "")
    return (
        ToolResult(tool_use_id=iid, content=output, is_error=failed),
        CommandExecution(tool_use_id=iid, command=command, exit_code=exit_code, status=status),
    )


def _mcp_call(item: dict[str, Any], iid: str, phase: str) -> tuple[Event, ...]:
    if phase == "started":
        name = f"mcp__{item.get('server')}__{item.get('tool')}"
        args = item.get("arguments")
        return (ToolUse(tool_use_id=iid, name=name, input=args if isinstance(args, dict) else {"arguments": args}),)
    if phase != "completed":
        return (StreamMarker(event=f"mcp_tool_call.{phase}"),)
    error = item.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else error
        return (ToolResult(tool_use_id=iid, content=str(message), is_error=True),)
    result = item.get("result")
    content = result.get("content") if isinstance(result, dict) else result
    blocks = content if isinstance(content, list) else []
    texts = [str(c.get("text")) for c in blocks if isinstance(c, dict) and "text" in c]
    failed = str(item.get("status") or "completed") != "completed"
    return (ToolResult(tool_use_id=iid, content="\n".join(texts) if texts else str(content or ""), is_error=failed),)


def codex_usage(u: dict[str, Any], counted: Usage | None = None) -> Usage:
    """Codex counts cached tokens inside ``input_tokens`` and reasoning inside ``output_tokens``.

    ``counted`` is subtracted (never below zero): the part of the thread's total already counted.
    """
    cached = int(u.get("cached_input_tokens") or 0)
    written = int(u.get("cache_write_input_tokens") or 0)
    before = counted or Usage()
    return Usage(
        input_tokens=max(0, int(u.get("input_tokens") or 0) - cached - written - before.input_tokens),
        output_tokens=max(0, int(u.get("output_tokens") or 0) - before.output_tokens),
        cache_creation_input_tokens=max(0, written - before.cache_creation_input_tokens),
        cache_read_input_tokens=max(0, cached - before.cache_read_input_tokens),
        reasoning_output_tokens=max(0, int(u.get("reasoning_output_tokens") or 0) - before.reasoning_output_tokens),
    )


# --- the adapter ----------------------------------------------------------------------------------


def default_sandbox(role: Role) -> Sandbox:
    """Codex's sandbox when the profile names none: QA only reads; coders and mergemasters must commit.

    Every gangline run is in a linked worktree, whose git data lives in the main repository's
    .git; Codex's Linux sandbox mounts that read-only under workspace-write even when it is named
    a writable root (openai/codex#19786, still so in 0.169.0), so a coder there could not commit.
    """
    return Sandbox.READ_ONLY if role is Role.QA else Sandbox.FULL_ACCESS


class CodexAdapter:
    """The Codex CLI, one ``codex exec --json`` process per run; a follow-up is ``codex exec resume <thread>``.

    Settings go as ``-c key=value`` overrides (TOML values), so the person's own
    ``~/.codex/config.toml`` is read but never written.
    """

    kind = CliKind.CODEX
    binary = "codex"
    install = "npm install -g @openai/codex"

    def command(self, profile: AgentProfile, prompt: str, resume_session_id: str | None) -> list[str]:
        argv = [resolve_binary(profile, profile.command or self.binary), "exec"]
        if resume_session_id:
            argv += ["resume", resume_session_id]
        argv += ["--json", "--skip-git-repo-check"]
        # `exec resume` has no --sandbox flag; the config key works for both.
        sandbox = profile.sandbox or default_sandbox(profile.role)
        argv += [
            "-c",
            f"sandbox_mode={toml_string(sandbox.value)}",
            "-c",
            f"approval_policy={toml_string(profile.approval)}",
        ]
        if profile.model:
            argv += ["-c", f"model={toml_string(profile.model)}"]
        provider = profile.provider
        if provider is not None:
            key = f"model_providers.{provider.name}"
            settings = {"name": provider.name, "base_url": provider.base_url, "wire_api": provider.wire_api}
            if provider.key_env:
                settings["env_key"] = provider.key_env
            argv += ["-c", f"model_provider={toml_string(provider.name)}"]
            for setting, value in settings.items():
                argv += ["-c", f"{key}.{setting}={toml_string(value)}"]
        return [*argv, *profile.extra_args, safe_prompt(prompt)]

    def environment(self, profile: AgentProfile, base_env: Mapping[str, str]) -> dict[str, str]:
        return clean_environment(profile, base_env)  # Codex reads the key from provider.key_env itself

    def decoder(self, profile: AgentProfile, session_usage: Usage | None) -> LineDecoder:
        return CodexDecoder(profile.model, session_usage)

    def with_mcp(self, profile: AgentProfile, access: McpAccess) -> AgentProfile:
        server = "mcp_servers.gangline"
        token_var = f"{server}.bearer_token_env_var={toml_string(MCP_TOKEN_VAR)}"
        extra = ("-c", f"{server}.url={toml_string(access.url)}", "-c", token_var)
        env = {**profile.env, MCP_TOKEN_VAR: access.token}
        return profile.model_copy(update={"extra_args": (*extra, *profile.extra_args), "env": env})

    def state_dirs(self, profile: AgentProfile) -> tuple[Path, ...]:
        return ()

    def flags(self, profile: AgentProfile) -> list[FlagCheck]:
        exec_flags = ("--json", "--skip-git-repo-check", "--config")
        checks = [FlagCheck(("exec", "--help"), flag) for flag in exec_flags]
        return checks + [FlagCheck(("exec", "resume", "--help"), flag) for flag in exec_flags]
