"""Agent CLI adapters behind one protocol: how to launch a CLI and how to read its lines."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from gangline.config import AgentProfile, CliKind
from gangline.errors import AgentNotFoundError
from gangline.parse import Parsed, parse_line

# Set by a parent Claude Code session; inherited, they make the child think it is nested.
_DROPPED_ENV = ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT")


class AgentAdapter(Protocol):
    kind: CliKind

    def command(self, profile: AgentProfile, prompt: str, resume_session_id: str | None) -> list[str]:
        """The full argv, binary first. Raises AgentNotFoundError if it cannot run."""
        ...

    def environment(self, profile: AgentProfile, base_env: Mapping[str, str]) -> dict[str, str]: ...

    def parse_line(self, line: bytes, now: float) -> Parsed: ...


def resolve_binary(profile: AgentProfile, binary: str) -> str:
    """An absolute path to an executable file, or AgentNotFoundError saying what is wrong."""
    found = shutil.which(binary) if os.sep not in binary else binary
    if found is None:
        raise AgentNotFoundError(profile.name, binary, "was not found on PATH")
    path = Path(found)
    if not path.exists():
        raise AgentNotFoundError(profile.name, binary, "does not exist")
    if not path.is_file() or not os.access(path, os.X_OK):
        raise AgentNotFoundError(profile.name, binary, "is not an executable file")
    return str(path.absolute())


def clean_environment(profile: AgentProfile, base_env: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in base_env.items() if k not in _DROPPED_ENV}
    env["NO_COLOR"] = "1"
    env.update(profile.env)
    return env


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


def _safe_prompt(prompt: str) -> str:
    # The prompt is a positional argument: one that starts with "-" would be read as a flag
    # (think "--dangerously-skip-permissions" in a work item's title). A leading space is not.
    return " " + prompt if prompt.startswith("-") else prompt


class ClaudeAdapter:
    """The real Claude Code CLI in ``-p`` mode with stream-json output (REAL_CLI contract)."""

    kind = CliKind.CLAUDE

    def command(self, profile: AgentProfile, prompt: str, resume_session_id: str | None) -> list[str]:
        argv = [resolve_binary(profile, profile.command or "claude")]
        if resume_session_id:
            argv += ["--resume", resume_session_id]
        argv += ["-p", _safe_prompt(prompt)]
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
        return clean_environment(profile, base_env)

    parse_line = staticmethod(parse_line)


class FakeAdapter(ClaudeAdapter):
    """The fake CLI shipped in this package (``gangline.fake_cli``), which speaks stream-json.

    Its behaviour (transcript, rate, exit code, hang, ...) comes from ``profile.extra_args``.
    """

    kind = CliKind.FAKE

    def command(self, profile: AgentProfile, prompt: str, resume_session_id: str | None) -> list[str]:
        if profile.command:
            argv = [resolve_binary(profile, profile.command)]
        else:
            argv = [resolve_binary(profile, sys.executable), "-m", "gangline.fake_cli"]
        if resume_session_id:
            argv += ["--resume", resume_session_id]
        argv += ["-p", _safe_prompt(prompt)]
        return argv + list(profile.extra_args)


ADAPTERS: dict[CliKind, AgentAdapter] = {CliKind.CLAUDE: ClaudeAdapter(), CliKind.FAKE: FakeAdapter()}
