"""The project's settings, ``.gangline/project.toml``, read once into one typed object."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, ByteSize, ConfigDict, Field, ValidationError, field_validator, model_validator

from gangline.core.budget import Price
from gangline.core.databases import check_url, has_password
from gangline.core.errors import ConfigError
from gangline.core.hooks import NODE_HOOK_POINTS, Component, HookPoint, HookSettings, HookStep, steps
from gangline.core.nodes import LEASE_S
from gangline.core.profiles import AgentProfile, CliKind, QaMode, Role, SandboxMode
from gangline.core.profiles import StrictModel as _Strict
from gangline.core.prompts import validate_template
from gangline.core.rules import parse_rule
from gangline.project.chatconfig import AnyChat
from gangline.project.database import DATABASE_VAR
from gangline.project.paths import ProjectPaths, shown
from gangline.project.toml_errors import KeyedError, describe


class GateSpec(_Strict):
    """A check the server runs in a worktree (``/bin/sh -c command``); exit status 0 is a pass."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")
    command: str = Field(min_length=1)
    timeout_s: float = Field(default=600.0, gt=0)


class Concurrency(_Strict):
    """How many agents of each role may run at once."""

    coder: int = Field(default=2, ge=1, le=64)
    qa: int = Field(default=1, ge=1, le=64)
    mergemaster: int = Field(default=1, ge=1, le=64)


class NodesPolicy(_Strict):
    """How the server shares runs with build nodes (``[nodes]``; SPEC.md "Build nodes")."""

    # The server runs agents itself, up to [concurrency], and gives nodes what is beyond; false:
    # every coder and QA run waits for a node (a mergemaster runs on a node with a mergemaster slot, else here).
    server_agents: bool = True
    # A lease not renewed for this long has lapsed (its node froze, was cut off or died); nodes renew six times in it.
    lease_s: float = Field(default=LEASE_S, ge=3.0, le=3600.0)
    # Where a coder's gates run when the coder ran on a build node: "server" (in its worktree, once the
    # branch is pushed) or "node" (there, right after the agent, with the node's toolchain). The merge's
    # gates are always the server's.
    gates: Literal["server", "node"] = "server"


class RetentionPolicy(_Strict):
    """``[retention]``: how long, and up to how much disk, the runs' logs, the worktrees of done items and the
    gates' output are kept (``pipeline.retention``)."""

    compress_after_s: float = Field(default=2 * 86400.0, ge=0)  # an ended run's log is gzip-compressed after this
    delete_after_s: float = Field(default=30 * 86400.0, gt=0)  # ... and removed after this, with old gate output
    max_bytes: ByteSize = Field(default=ByteSize(5 * 2**30), ge=2**20)  # "5GiB", "500MB" or a number of bytes
    sweep_every_s: float = Field(default=600.0, ge=10, le=86400)

    @model_validator(mode="after")
    def _in_order(self) -> RetentionPolicy:
        if self.delete_after_s <= self.compress_after_s:
            raise KeyedError(
                "retention.delete_after_s",
                f"expected more than compress_after_s ({self.compress_after_s:g}), got {self.delete_after_s:g}",
            )
        return self


class RateLimitPolicy(_Strict):
    """What to do when an agent CLI reports a hard rate limit."""

    default_wait_s: float = Field(default=300.0, gt=0)  # when the CLI reports no reset time
    max_wait_s: float = Field(default=21600.0, gt=0)  # a reset further away blocks the item instead
    margin_s: float = Field(default=5.0, ge=0)  # added to the reset time


class ModelPrice(_Strict):
    """A ``[price."<model>"]`` table: US dollars per million tokens, for CLIs that report only tokens.

    Cached input defaults to the full input price, so an estimate errs towards stopping early.
    """

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)

    def price(self) -> Price:
        cache_read = self.input if self.cache_read is None else self.cache_read
        cache_write = self.input if self.cache_write is None else self.cache_write
        return Price(self.input, self.output, cache_write, cache_read)


# The CLIs whose output carries tokens but no cost: gangline prices them from [price."<model>"].
TOKEN_ONLY = (CliKind.CODEX, CliKind.GEMINI)


def _check_rule(text: str) -> str:
    parse_rule(text)  # its ValueError says what is wrong
    return text


PermissionRule = Annotated[str, AfterValidator(_check_rule)]


class PermissionSettings(_Strict):
    """How agents' tool calls are decided when the CLI would ask (``core.rules`` has the order).

    ``allow`` and ``deny`` hold rules like ``"Write"``, ``"Bash(git status:*)"`` or
    ``"mcp__gangline__*"``. ``unattended``: nobody is asked; what no rule allows is denied at once.
    """

    allow: tuple[PermissionRule, ...] = ()
    deny: tuple[PermissionRule, ...] = ()
    ask_timeout_s: float = Field(default=300.0, gt=0, le=86400)  # then the call is denied, and the agent told so
    unattended: bool = False


# Git's rules for ref names (git check-ref-format), applied to one branch name.
_BAD_BRANCH = (
    (re.compile(r"[\x00-\x20\x7f]"), "contains a space or a control character"),
    (re.compile(r"\.\."), 'contains ".."'),
    (re.compile(r"[~^:?*\[\\]"), "contains one of ~ ^ : ? * [ \\"),
    (re.compile(r"\A[-/]"), 'starts with "-" or "/"'),
    (re.compile(r"(\.lock|/|\.)\Z"), 'ends with ".lock", "/" or "."'),
    (re.compile(r"//|/\.|\A\.|@\{"), 'has an empty or dot-started component, or "@{"'),
)


def _check_branch(name: str) -> str:
    if not name or name == "@":
        raise ValueError(f"expected a git branch name, got {json.dumps(name)}")
    for pattern, why in _BAD_BRANCH:
        if pattern.search(name):
            raise ValueError(f"expected a valid git branch name, got {json.dumps(name)}, which {why}")
    return name


def _absolute_or_home(path: str) -> str:
    if not (path.startswith("/") or path.startswith("~/")) or "\0" in path:
        raise ValueError(f"expected an absolute path or one under ~/, got {json.dumps(path)}")
    return path


class ProjectConfig(_Strict):
    """Everything ``.gangline/project.toml`` says. Build it with ``load_project``."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)  # merged with StrictModel's

    base_branch: str = "main"
    gates: tuple[GateSpec, ...] = Field(default=(), alias="gate")
    hooks: HookSettings = Field(default_factory=HookSettings)
    components: tuple[Component, ...] = Field(default=(), alias="component")
    max_retries: int = Field(default=3, ge=0, le=20)
    concurrency: Concurrency = Field(default_factory=Concurrency)
    nodes: NodesPolicy = Field(default_factory=NodesPolicy)
    qa_mode: QaMode = QaMode.SERVER
    inactivity_timeout_s: float = Field(default=300.0, gt=0)
    archive_after_s: float = Field(default=86400.0, ge=0)
    rate_limit: RateLimitPolicy = Field(default_factory=RateLimitPolicy)
    retention: RetentionPolicy = Field(default_factory=RetentionPolicy)
    permissions: PermissionSettings = Field(default_factory=PermissionSettings)
    sandbox: SandboxMode = SandboxMode.AUTO
    # More directories the sandbox shows writable (a toolchain's cache), absolute or under ~/.
    sandbox_writable: tuple[Annotated[str, AfterValidator(_absolute_or_home)], ...] = ()
    # More paths it hides (a file or directory of secrets), absolute or under ~/.
    sandbox_hidden: tuple[Annotated[str, AfterValidator(_absolute_or_home)], ...] = ()
    agents: tuple[AgentProfile, ...] = Field(default=(), alias="agent")
    prices: dict[str, ModelPrice] = Field(default_factory=dict, alias="price")
    chats: tuple[AnyChat, ...] = Field(default=(), alias="chat")
    # false: new items stay in the backlog until a person starts them (or sets a timer): a triage gate.
    auto_start: bool = True
    time_zone: str = "UTC"  # an IANA name: what "09:30" means in chat timers and "today" in costs
    # The shared store (PostgreSQL) for several machines; None: the project's SQLite file. Read by
    # ``project.database`` before the rest of the file; checked here with it.
    database_url: str | None = None

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def profile(self, name: str) -> AgentProfile | None:
        return next((a for a in self.agents if a.name == name), None)

    def profiles_for(self, role: Role) -> list[AgentProfile]:
        return [a for a in self.agents if a.role is role]

    def chat_agent(self) -> AgentProfile | None:
        """The profile that answers free text in chat (``role = "chat"``), if there is one."""
        return next(iter(self.profiles_for(Role.CHAT)), None)

    def hook_steps(self, point: HookPoint) -> list[HookStep]:
        """The commands run at ``point`` ([hooks] and each [[component]]'s), in order."""
        return steps(self.hooks, self.components, point)

    def node_gates(self) -> tuple[GateSpec, ...]:
        """What a coder's build node runs right after it with ``[nodes] gates = "node"``: the gates; none when the
        server runs them."""
        return tuple(self.gates) if self.nodes.gates == "node" else ()

    def node_hooks(self) -> dict[str, list[GateSpec]]:
        """The hooks a build node runs around a coder's or QA agent's run there, in its own checkout, which is
        never readied here: ``after_create`` (once per checkout), ``before_run``, ``after_run``, each as gates."""
        # A gate's name has no "/": a component's ("setup apps/web") is sent as "setup apps-web".
        return {
            point.value: [GateSpec(name=s.name.replace("/", "-"), command=s.command, timeout_s=s.timeout_s)
                          for s in self.hook_steps(point)]
            for point in NODE_HOOK_POINTS
        }  # fmt: skip

    def price_table(self) -> dict[str, Price]:
        return {model: entry.price() for model, entry in self.prices.items()}

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"expected an IANA time zone such as Europe/Berlin or UTC, got {json.dumps(name)}"
            ) from None
        return name

    @field_validator("database_url")
    @classmethod
    def _openable_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        try:
            check_url(url)
        except ConfigError as err:
            raise ValueError(str(err).removeprefix("database_url: ")) from None
        if has_password(url):
            raise ValueError(
                "expected no password in project.toml (it is committed): give it in PGPASSWORD or ~/.pgpass, "
                f"or the whole URL in {DATABASE_VAR}"
            )
        return url

    @field_validator("base_branch")
    @classmethod
    def _base_branch_is_valid(cls, name: str) -> str:
        return _check_branch(name)

    @model_validator(mode="after")
    def _consistent(self) -> ProjectConfig:
        _check_unique("gate", [g.name for g in self.gates])
        _check_unique("agent", [a.name for a in self.agents])
        _check_unique("chat", [c.key for c in self.chats])
        _check_unique("component", [c.dir for c in self.components], "dir")
        if not self.profiles_for(Role.CODER):
            raise KeyedError("agent", 'expected at least one [[agent]] with role = "coder", got none')
        if self.qa_mode is QaMode.AGENT and not self.profiles_for(Role.QA):
            raise KeyedError("qa_mode", 'expected an [[agent]] with role = "qa" for qa_mode = "agent", got none')
        chats = [i for i, a in enumerate(self.agents, 1) if a.role is Role.CHAT]
        if len(chats) > 1:
            message = f'expected one [[agent]] with role = "chat" (the chat agent), got another in agent[{chats[0]}]'
            raise KeyedError(f"agent[{chats[1]}].role", message)
        for index, agent in enumerate(self.agents, 1):
            _check_template(index, agent)
            self._check_fallback(index, agent)
            self._check_priced(index, agent)
        return self

    def _check_fallback(self, index: int, agent: AgentProfile) -> None:
        if agent.fallback is None:
            return
        other = self.profile(agent.fallback)
        key = f"agent[{index}].fallback"
        if other is None:
            names = ", ".join(a.name for a in self.agents if a.name != agent.name) or "none"
            message = f"expected the name of another [[agent]] ({names}), got {json.dumps(agent.fallback)}"
            raise KeyedError(key, message)
        if other.role is not agent.role:
            message = f"expected a {agent.role.value} profile, got {other.name!r}, whose role is {other.role.value!r}"
            raise KeyedError(key, message)

    def _check_priced(self, index: int, agent: AgentProfile) -> None:
        # A budget the server cannot price is a budget it cannot keep: refuse it up front.
        if agent.max_budget_usd is None or agent.cli not in TOKEN_ONLY:
            return
        key = f"agent[{index}].max_budget_usd"
        if agent.model is None:
            message = f'{agent.cli.value} reports only tokens: set model, and a [price."<model>"] table for it'
            raise KeyedError(key, message)
        if agent.model not in self.prices:
            table = f"[price.{json.dumps(agent.model)}]"
            message = f"{agent.cli.value} reports only tokens: add a {table} table (input, output)"
            raise KeyedError(key, message)


def _check_unique(table: str, names: list[str], key: str = "name") -> None:
    for index, name in enumerate(names, 1):
        first = names.index(name) + 1
        if first != index:
            message = f"expected a {key} no other [[{table}]] uses, got {json.dumps(name)} ({table}[{first}] has it)"
            raise KeyedError(f"{table}[{index}].{key}", message)


def _check_template(index: int, agent: AgentProfile) -> None:
    if agent.prompt_template is None:
        return  # the built-in templates are tested
    key = f"agent[{index}].prompt_template"
    try:
        validate_template(agent.prompt_template, key, agent.role)
    except ConfigError as err:
        raise KeyedError(key, f"agent {agent.name!r}: {str(err).removeprefix(f'{key}: ')}") from None


def load_project(paths: ProjectPaths, env: Mapping[str, str]) -> ProjectConfig:
    """Read and validate ``paths.config_file``; ``${NAME}`` in an agent's env comes from ``env``."""
    path = paths.config_file
    where = shown(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(where, "not found; run `gangline init` in the repository to create it") from None
    except UnicodeDecodeError as err:
        raise ConfigError(where, f"expected UTF-8 text, got an invalid byte at offset {err.start}") from None
    except OSError as err:
        raise ConfigError(where, f"cannot be read: {err.strerror or err}") from None
    return load_project_text(text, where, env)


def load_project_text(text: str, where: str, env: Mapping[str, str]) -> ProjectConfig:
    """Validate TOML ``text``; errors name ``where`` and the TOML key (``agent[2].max_turns``)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(where, f"invalid TOML: {err}") from None
    _expand_env(data, env, where)
    try:
        # By alias only: the file says [[agent]] and [[gate]], never "agents" or "gates".
        return ProjectConfig.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as err:
        key, message = describe(err, ProjectConfig)
        raise ConfigError(f"{where}: {key}" if key else where, message) from None


_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(data: dict[str, Any], env: Mapping[str, str], where: str) -> None:
    """Replace agent env values ``${NAME}`` in place, so secrets stay out of the committed file."""
    agents = data.get("agent")
    for index, agent in enumerate(agents if isinstance(agents, list) else [], 1):
        values = agent.get("env") if isinstance(agent, dict) else None
        if isinstance(values, dict):
            _expand_values(values, env, f"{where}: agent[{index}].env")


def _expand_values(values: dict[str, Any], env: Mapping[str, str], field: str) -> None:
    for key, value in values.items():
        ref = _REFERENCE.fullmatch(value) if isinstance(value, str) else None
        if ref is None:
            continue
        if ref[1] not in env:
            message = f"expected the environment variable {ref[1]} to be set (the value is {value}), but it is not"
            raise ConfigError(f"{field}.{key}", message)
        values[key] = env[ref[1]]
