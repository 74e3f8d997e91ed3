"""Typed configuration: agent profiles and runner settings, validated at the edge."""

from __future__ import annotations

import enum
import json
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from gangline.core.errors import ConfigError


class Role(enum.StrEnum):
    CODER = "coder"
    QA = "qa"
    MERGEMASTER = "mergemaster"
    CHAT = "chat"  # answers what people say in chat; never given an item


PIPELINE_ROLES = (Role.CODER, Role.QA, Role.MERGEMASTER)  # the roles the scheduler gives items to

# A chat agent answers a message at a time; left unbounded, one question could spend without limit.
CHAT_MAX_TURNS = 10
CHAT_MAX_BUDGET_USD = 0.5


class CliKind(enum.StrEnum):
    CLAUDE = "claude"
    CODEX = "codex"
    GEMINI = "gemini"
    FAKE = "fake"


class SandboxMode(enum.StrEnum):
    """Whether gangline runs agents and gates in its sandbox (``sandbox`` in project.toml)."""

    AUTO = "auto"  # where bubblewrap can make one; otherwise without, and doctor says so
    REQUIRED = "required"  # never start an agent or a gate without it
    OFF = "off"


class Sandbox(enum.StrEnum):
    """Codex's sandbox for the commands its agent runs."""

    READ_ONLY = "read-only"
    WORKSPACE_WRITE = "workspace-write"  # the worktree (and /tmp) only, no network
    FULL_ACCESS = "danger-full-access"


# What each CLI calls its approval setting's values; the first is gangline's default for it.
# Nobody answers a prompt in a headless run, so the defaults never ask: Codex's "never" runs
# what its sandbox allows; Gemini's "yolo" is the only mode in which it may run shell commands
# (and so git) without a terminal.
APPROVAL_MODES: dict[CliKind, tuple[str, ...]] = {
    CliKind.CODEX: ("never", "on-request", "on-failure", "untrusted"),
    CliKind.GEMINI: ("yolo", "auto_edit", "default", "plan"),
}


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


# Settings only Claude Code has: the other CLIs have no such flag, and a setting that would be
# silently ignored is an error instead.
_CLAUDE_ONLY = (
    "permission_mode",
    "permission_prompt_tool",
    "allowed_tools",
    "disallowed_tools",
    "max_turns",
    "system_prompt",
)


def exact_scalar(model: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    """Refuse what pydantic would quietly convert: ``"3"`` or ``true`` for a number, ``1`` or ``"yes"`` for a flag.

    A setting written with the wrong type is a mistake in the file; guessing hides it.
    """
    field = model.model_fields.get(info.field_name or "")
    if field is None:
        return value
    kinds = set(get_args(field.annotation)) if get_origin(field.annotation) in (Union, types.UnionType) else set()
    kinds = kinds or {field.annotation}
    if bool in kinds:
        ok = isinstance(value, bool)
    elif int in kinds:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif float in kinds:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        return value
    if not ok and not (value is None and type(None) in kinds):
        noun = "true or false" if bool in kinds else "an integer" if int in kinds else "a number"
        raise ValueError(f"expected {noun}, got {json.dumps(value, default=str)}")
    return value


class StrictModel(BaseModel):
    # No inf or nan: a timeout or a price must be a real number (TOML can spell both).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _exact(cls, value: Any, info: ValidationInfo) -> Any:
        return exact_scalar(cls, value, info)


class Provider(StrictModel):
    """Where the CLI sends its model requests instead of its vendor's default API.

    ``key_env`` names the environment variable that holds the API key (never the key itself).
    ``wire_api`` is Codex's: which OpenAI API the endpoint speaks.
    """

    base_url: str = Field(min_length=1, pattern=r"^https?://")
    key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    name: str = Field(default="gangline", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    wire_api: str = Field(default="responses", pattern=r"^(responses|chat)$")


class AgentProfile(StrictModel):
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
    sandbox: Sandbox | None = None  # codex only; None: read-only for QA, else danger-full-access
    approval_mode: str | None = None  # codex and gemini: one of APPROVAL_MODES[cli]
    provider: Provider | None = None
    fallback: str | None = Field(default=None, min_length=1, max_length=64)  # a profile to use while rate-limited
    # Labels a build node must have to run this profile's agents (``gpu``, ``macos``); then only nodes run them.
    node_labels: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")], ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _chat_is_bounded(cls, data: Any) -> Any:
        """A chat profile left without bounds gets CHAT_MAX_TURNS and CHAT_MAX_BUDGET_USD."""
        if not isinstance(data, dict) or data.get("role") != Role.CHAT.value:
            return data
        bounded = {"max_budget_usd": CHAT_MAX_BUDGET_USD, **data}
        if data.get("cli", CliKind.CLAUDE.value) == CliKind.CLAUDE.value:
            bounded.setdefault("max_turns", CHAT_MAX_TURNS)
        return bounded

    @model_validator(mode="after")
    def _settings_fit_the_cli(self) -> AgentProfile:
        modes = APPROVAL_MODES.get(self.cli)
        if self.approval_mode is not None:
            if modes is None:
                raise ValueError(f'approval_mode is for cli = "codex" or "gemini", not {self.cli.value!r}')
            if self.approval_mode not in modes:
                raise ValueError(f"expected approval_mode to be one of {', '.join(modes)} for {self.cli.value}")
        if modes is not None:
            for field in _CLAUDE_ONLY:
                if getattr(self, field) != type(self).model_fields[field].default:
                    other = "approval_mode and sandbox" if self.cli is CliKind.CODEX else "approval_mode"
                    raise ValueError(f"{field} is a Claude Code setting; a {self.cli.value} profile has {other}")
        if self.sandbox is not None and self.cli is not CliKind.CODEX:
            raise ValueError(f'sandbox is for cli = "codex", not {self.cli.value!r}')
        if self.fallback == self.name:
            raise ValueError("fallback names the profile itself")
        if self.role is Role.CHAT and self.cli not in (CliKind.CLAUDE, CliKind.FAKE):
            raise ValueError(f'a chat profile runs Claude Code (cli = "claude"), not {self.cli.value!r}')
        if self.node_labels and self.role not in (Role.CODER, Role.QA):
            raise ValueError(f"node_labels is for coder and QA profiles (build nodes run those), not {self.role.value}")
        if self.role is Role.CHAT and self.prompt_template is not None:
            raise ValueError("a chat profile's prompt is what the person said: give it a system_prompt instead")
        return self

    @property
    def approval(self) -> str:
        """The approval mode the CLI is launched with (codex and gemini)."""
        return self.approval_mode or APPROVAL_MODES[self.cli][0]


class RunnerSettings(StrictModel):
    """Limits every run is held to."""

    inactivity_timeout_s: float = Field(default=300.0, gt=0)
    max_run_s: float | None = Field(default=None, gt=0)
    max_line_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_log_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024 * 1024)  # one run's log; past it the run fails
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
