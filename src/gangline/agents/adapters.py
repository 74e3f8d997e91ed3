"""Agent CLI adapters behind one protocol: how to launch a CLI and how to read its lines."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gangline.agents.codex import CodexDecoder
from gangline.agents.decoding import ClaudeDecoder, LineDecoder
from gangline.agents.gemini import GeminiDecoder
from gangline.core.errors import AgentNotFoundError, ConfigError
from gangline.core.events import Usage
from gangline.core.profiles import AgentProfile, CliKind, Role, Sandbox
from gangline.pipeline.grants import write_private

# Set by a parent Claude Code session; inherited, they make the child think it is nested.
_DROPPED_ENV = ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT")


MCP_TOKEN_VAR = "GANGLINE_MCP_TOKEN"  # how Codex gets the run's MCP token: by variable name, never in argv


@dataclass(frozen=True)
class McpAccess:
    """gangline's MCP server as one run reaches it: its URL, the run's token, where config may go."""

    url: str
    token: str
    config_file: Path  # a private file outside the worktree the adapter may write (Gemini's settings)
    claude_config: Path | None = None  # the worktree's .gangline-mcp.json, written for Claude Code
    permission_tool: str | None = None


@dataclass(frozen=True)
class FlagCheck:
    """A flag gangline relies on, and the ``--help`` that should list it (``gangline doctor``)."""

    help_args: tuple[str, ...]
    flag: str


class AgentAdapter(Protocol):
    kind: CliKind
    binary: str  # the CLI's usual name on PATH
    install: str  # how a person installs it

    def command(self, profile: AgentProfile, prompt: str, resume_session_id: str | None) -> list[str]:
        """The full argv, binary first. Raises AgentNotFoundError if it cannot run."""
        ...

    def environment(self, profile: AgentProfile, base_env: Mapping[str, str]) -> dict[str, str]:
        """Raises ConfigError when the profile names a key variable that is not set."""
        ...

    def decoder(self, profile: AgentProfile, session_usage: Usage | None) -> LineDecoder:
        """A new decoder for one run's lines; ``session_usage`` is what the resumed session already counted."""
        ...

    def with_mcp(self, profile: AgentProfile, access: McpAccess) -> AgentProfile:
        """The profile launched with gangline's MCP server and the run's token."""
        ...

    def flags(self, profile: AgentProfile) -> list[FlagCheck]: ...


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


def clean_environment(
    profile: AgentProfile, base_env: Mapping[str, str], base_url_var: str | None = None, key_var: str | None = None
) -> dict[str, str]:
    """The CLI's environment; a profile's ``provider`` sets ``base_url_var`` and copies its key into ``key_var``."""
    env = {k: v for k, v in base_env.items() if k not in _DROPPED_ENV}
    env["NO_COLOR"] = "1"
    env.update(profile.env)
    provider = profile.provider
    if provider is not None and base_url_var is not None:
        env[base_url_var] = provider.base_url
    if provider is not None and provider.key_env is not None:
        if provider.key_env not in env:
            message = f"expected the environment variable {provider.key_env} (the API key) to be set, but it is not"
            raise ConfigError(f"agent {profile.name!r} provider.key_env", message)
        if key_var is not None:
            env[key_var] = env[provider.key_env]
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


def _toml(value: str) -> str:
    # A TOML basic string: JSON's string escapes are valid TOML (and non-ASCII stays as is).
    return json.dumps(value, ensure_ascii=False)


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
        return clean_environment(profile, base_env, "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY")

    def decoder(self, profile: AgentProfile, session_usage: Usage | None) -> LineDecoder:
        return ClaudeDecoder()

    def with_mcp(self, profile: AgentProfile, access: McpAccess) -> AgentProfile:
        if access.claude_config is None or access.permission_tool is None:
            raise ValueError("Claude Code gets its MCP server from a config file in the worktree")
        return with_mcp(profile, access.claude_config, access.permission_tool)

    def flags(self, profile: AgentProfile) -> list[FlagCheck]:
        wanted = list(_CLAUDE_ALWAYS)
        wanted += [flag for field, flag in _CLAUDE_BY_FIELD.items() if getattr(profile, field)]
        # --max-turns is accepted but not listed in --help.
        return [FlagCheck(("--help",), flag) for flag in wanted]


class FakeAdapter(ClaudeAdapter):
    """The fake CLI shipped in this package (``gangline.fake.cli``), which speaks stream-json.

    Its behaviour (transcript, rate, exit code, hang, ...) comes from ``profile.extra_args``.
    """

    kind = CliKind.FAKE
    binary = "gangline-fake-agent"
    install = "it ships with gangline"

    def with_mcp(self, profile: AgentProfile, access: McpAccess) -> AgentProfile:
        return profile  # the fake CLI speaks no MCP

    def flags(self, profile: AgentProfile) -> list[FlagCheck]:
        return []

    def command(self, profile: AgentProfile, prompt: str, resume_session_id: str | None) -> list[str]:
        if profile.command:
            argv = [resolve_binary(profile, profile.command)]
        else:
            argv = [resolve_binary(profile, sys.executable), "-m", "gangline.fake.cli"]
        if resume_session_id:
            argv += ["--resume", resume_session_id]
        argv += ["-p", _safe_prompt(prompt)]
        return argv + list(profile.extra_args)


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
        argv += ["-c", f"sandbox_mode={_toml(sandbox.value)}", "-c", f"approval_policy={_toml(profile.approval)}"]
        if profile.model:
            argv += ["-c", f"model={_toml(profile.model)}"]
        provider = profile.provider
        if provider is not None:
            key = f"model_providers.{provider.name}"
            settings = {"name": provider.name, "base_url": provider.base_url, "wire_api": provider.wire_api}
            if provider.key_env:
                settings["env_key"] = provider.key_env
            argv += ["-c", f"model_provider={_toml(provider.name)}"]
            for setting, value in settings.items():
                argv += ["-c", f"{key}.{setting}={_toml(value)}"]
        return [*argv, *profile.extra_args, _safe_prompt(prompt)]

    def environment(self, profile: AgentProfile, base_env: Mapping[str, str]) -> dict[str, str]:
        return clean_environment(profile, base_env)  # Codex reads the key from provider.key_env itself

    def decoder(self, profile: AgentProfile, session_usage: Usage | None) -> LineDecoder:
        return CodexDecoder(profile.model, session_usage)

    def with_mcp(self, profile: AgentProfile, access: McpAccess) -> AgentProfile:
        server = "mcp_servers.gangline"
        token_var = f"{server}.bearer_token_env_var={_toml(MCP_TOKEN_VAR)}"
        extra = ("-c", f"{server}.url={_toml(access.url)}", "-c", token_var)
        env = {**profile.env, MCP_TOKEN_VAR: access.token}
        return profile.model_copy(update={"extra_args": (*extra, *profile.extra_args), "env": env})

    def flags(self, profile: AgentProfile) -> list[FlagCheck]:
        exec_flags = ("--json", "--skip-git-repo-check", "--config")
        checks = [FlagCheck(("exec", "--help"), flag) for flag in exec_flags]
        return checks + [FlagCheck(("exec", "resume", "--help"), flag) for flag in exec_flags]


class GeminiAdapter:
    """The Gemini CLI in headless mode (``-p``) with stream-json output; ``--resume <session>`` continues one."""

    kind = CliKind.GEMINI
    binary = "gemini"
    install = "npm install -g @google/gemini-cli"

    def command(self, profile: AgentProfile, prompt: str, resume_session_id: str | None) -> list[str]:
        argv = [resolve_binary(profile, profile.command or self.binary)]
        if resume_session_id:
            argv += ["--resume", resume_session_id]
        argv += ["-p", _safe_prompt(prompt), "--output-format", "stream-json"]
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

    def flags(self, profile: AgentProfile) -> list[FlagCheck]:
        wanted = ["--prompt", "--output-format", "--approval-mode", "--skip-trust", "--resume"]
        wanted += ["--allowed-mcp-server-names"] + (["--model"] if profile.model else [])
        return [FlagCheck(("--help",), flag) for flag in wanted]


ADAPTERS: dict[CliKind, AgentAdapter] = {
    CliKind.CLAUDE: ClaudeAdapter(),
    CliKind.CODEX: CodexAdapter(),
    CliKind.GEMINI: GeminiAdapter(),
    CliKind.FAKE: FakeAdapter(),
}
