"""Typed configuration: agent profiles and runner settings, validated at the edge."""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gangline.errors import ConfigError


class Role(enum.StrEnum):
    CODER = "coder"
    QA = "qa"
    MERGEMASTER = "mergemaster"


class CliKind(enum.StrEnum):
    CLAUDE = "claude"
    FAKE = "fake"


class QaMode(enum.StrEnum):
    """Who reviews an item's work before it is merged."""

    SERVER = "server"  # the gates passing is enough
    AGENT = "agent"  # a QA agent checks the diff against each acceptance criterion
    HUMAN = "human"  # a person approves or rejects


class PermissionMode(enum.StrEnum):
    DEFAULT = "default"
    ACCEPT_EDITS = "acceptEdits"
    AUTO = "auto"
    DONT_ASK = "dontAsk"
    PLAN = "plan"
    BYPASS = "bypassPermissions"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentProfile(_Strict):
    """How to launch one kind of agent (an ``[[agent]]`` table of ``.gangline/project.toml``).

    ``command`` is the CLI binary (a name on PATH or a path); ``None`` means the CLI's usual name.
    ``env`` holds extra variables for the CLI (``ANTHROPIC_BASE_URL``, API keys, ...); their
    values are secrets by default and are never written to a log, only their names.
    ``prompt_template`` is Jinja2 source (strict: an unknown variable is an error); ``None``
    means the built-in template for the profile's role.
    """

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    role: Role = Role.CODER
    cli: CliKind = CliKind.CLAUDE
    command: str | None = None
    model: str | None = None
    max_turns: int | None = Field(default=None, gt=0)
    max_budget_usd: float | None = Field(default=None, gt=0)
    permission_mode: PermissionMode = PermissionMode.ACCEPT_EDITS
    permission_prompt_tool: str | None = None
    allowed_tools: tuple[str, ...] = ()
    disallowed_tools: tuple[str, ...] = ()
    system_prompt: str | None = None
    prompt_template: str | None = None
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict, repr=False)


class RunnerSettings(_Strict):
    """Limits every run is held to."""

    inactivity_timeout_s: float = Field(default=300.0, gt=0)
    max_run_s: float | None = Field(default=None, gt=0)
    max_line_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    kill_grace_s: float = Field(default=5.0, ge=0)
    drain_timeout_s: float = Field(default=5.0, gt=0)
    subscriber_queue: int = Field(default=10_000, ge=1)


def parse_model(model: type[BaseModel], data: dict[str, object], where: str) -> BaseModel:
    """Validate ``data`` as ``model`` and turn the first problem into a ConfigError naming it."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(part) for part in first["loc"]) or "(root)"
        raise ConfigError(f"{where}.{loc}", first["msg"]) from None
