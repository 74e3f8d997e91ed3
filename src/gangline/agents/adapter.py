"""The protocol every agent CLI's adapter meets, and what launching any of them shares."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gangline.agents.decoding import LineDecoder
from gangline.core.errors import AgentNotFoundError, ConfigError
from gangline.core.events import Usage
from gangline.core.profiles import AgentProfile, CliKind

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

    def state_dirs(self, profile: AgentProfile) -> tuple[Path, ...]:
        """Directories beyond its home state the CLI writes and keeps across runs (shown writable in the sandbox)."""
        ...


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


def safe_prompt(prompt: str) -> str:
    # The prompt is a positional argument: one that starts with "-" would be read as a flag
    # (think "--dangerously-skip-permissions" in a work item's title). A leading space is not.
    return " " + prompt if prompt.startswith("-") else prompt


def toml_string(value: str) -> str:
    # A TOML basic string: JSON's string escapes are valid TOML (and non-ASCII stays as is).
    return json.dumps(value, ensure_ascii=False)


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a file only its owner can read (it holds a token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
