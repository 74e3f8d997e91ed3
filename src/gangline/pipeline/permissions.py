"""Permission decisions for agents' tool calls: rules, the questions put to people, and their answers.

Order (first match wins): gangline's own MCP tools are allowed; then deny rules; then allow rules
(project.toml ``[permissions]`` and rules saved by "always allow"); otherwise a person is asked,
and the tool call waits at most ``ask_timeout_s`` for the answer. Unattended, nobody is asked:
the call is denied at once with a message the agent can act on.

A rule is ``Tool`` (any use of the tool) or ``Tool(pattern)``; ``*`` in the tool name matches any
characters (``mcp__gangline__*``). The pattern is matched against what the tool acts on: Bash's
command, a file tool's path (relative to the worktree when it is inside it), a URL or a query.
``prefix:*`` matches that prefix followed by nothing or a space (``Bash(git status:*)``); anything
else is a glob (``Write(src/*)``). An allow rule never matches a Bash command that chains,
pipes, redirects or substitutes (such a command is asked about); a deny rule is checked against
the whole command and each command in the chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import re
import shlex
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal, Protocol

from gangline.core.errors import NotFoundError
from gangline.store import Store

OWN_TOOLS = "mcp__gangline__*"
SUBJECT_KEYS = ("command", "file_path", "notebook_path", "path", "url", "query", "pattern")
_RULE = re.compile(r"(?P<tool>[A-Za-z0-9_*.-]+)(?:\((?P<pattern>.*)\))?", re.DOTALL)
_SHELL_CONTROL = re.compile(r"[;&|`\n<>]|\$\(")
_CHAIN = re.compile(r"&&|\|\||[;|\n&]")
_WORD = re.compile(r"[A-Za-z0-9][\w.+-]*")
_INPUT_CHARS = 2000  # of a tool's input kept in an event row


class Decision(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ALWAYS_ALLOW = "always_allow"  # allow, and save a rule so the same kind of call is allowed from now on


@dataclass(frozen=True)
class Rule:
    tool: str
    pattern: str | None = None

    def __str__(self) -> str:
        return self.tool if self.pattern is None else f"{self.tool}({self.pattern})"

    def matches(self, tool_name: str, tool_input: Mapping[str, Any], cwd: Path | None, *, deny: bool) -> bool:
        if not fnmatchcase(tool_name, self.tool):
            return False
        if self.pattern is None:
            return True
        subject = _subject(tool_input, cwd)
        if subject is None:
            return False
        if tool_name != "Bash":
            return self._matches_text(subject)
        if deny:
            return self._matches_text(subject) or any(self._matches_text(part) for part in _commands(subject))
        return _SHELL_CONTROL.search(subject) is None and self._matches_text(subject.strip())

    def _matches_text(self, subject: str) -> bool:
        assert self.pattern is not None
        if self.pattern.endswith(":*"):
            prefix = self.pattern[:-2]
            return subject == prefix or (
                subject.startswith(prefix) and subject[len(prefix) : len(prefix) + 1].isspace()
            )
        return fnmatchcase(subject, self.pattern)


def parse_rule(text: str) -> Rule:
    """``Tool`` or ``Tool(pattern)``; ValueError saying what is wrong."""
    found = _RULE.fullmatch(text.strip())
    if found is None:
        raise ValueError(f'expected a rule like "Write", "Bash(git status:*)" or "mcp__gangline__*", got {text!r}')
    pattern = found["pattern"]
    if pattern is not None and not pattern.strip():
        raise ValueError(
            f"expected a pattern inside the parentheses, got {text!r}; write just the tool name for any use"
        )
    return Rule(found["tool"], pattern)


def _subject(tool_input: Mapping[str, Any], cwd: Path | None) -> str | None:
    for key in SUBJECT_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str):
            if key in ("file_path", "notebook_path", "path") and cwd is not None:
                with contextlib.suppress(ValueError):
                    return str(Path(value).relative_to(cwd))
            return value
    return None


def _commands(command: str) -> list[str]:
    return [part.strip() for part in _CHAIN.split(command) if part.strip()]


def rule_for(tool_name: str, tool_input: Mapping[str, Any]) -> Rule:
    """The rule "always allow" saves: the tool, and for Bash its command's first word or two (``git status:*``)."""
    if tool_name != "Bash":
        return Rule(tool_name)
    command = str(tool_input.get("command", ""))
    first = _commands(command)[0] if _commands(command) else ""
    try:
        words = shlex.split(first)
    except ValueError:
        words = first.split()
    if not words:
        return Rule("Bash", _glob_escape(command))
    keep = words[:2] if len(words) > 1 and _WORD.fullmatch(words[1]) else words[:1]
    return Rule("Bash", " ".join(keep) + ":*")


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


@dataclass(frozen=True)
class Ruling:
    """What a rule (or the absence of any) decided, and why."""

    allowed: bool
    why: str
    rule: Rule | None = None


def rule_decision(
    tool_name: str, tool_input: Mapping[str, Any], cwd: Path | None, deny: Sequence[Rule], allow: Sequence[Rule]
) -> Ruling | None:
    """The first matching rule's decision; None when no rule decides (someone must be asked)."""
    if fnmatchcase(tool_name, OWN_TOOLS):
        return Ruling(True, "gangline's own tools are always allowed")
    for rule in deny:
        if rule.matches(tool_name, tool_input, cwd, deny=True):
            return Ruling(False, f"denied by the rule {rule}", rule)
    for rule in allow:
        if rule.matches(tool_name, tool_input, cwd, deny=False):
            return Ruling(True, f"allowed by the rule {rule}", rule)
    return None


@dataclass(frozen=True)
class Answer:
    """The permission prompt tool's reply, in the shape Claude Code requires (REAL_CLI.md §6a)."""

    behavior: Literal["allow", "deny"]
    updated_input: Mapping[str, Any] | None = None
    message: str | None = None

    def to_json(self) -> str:
        if self.behavior == "allow":
            # updatedInput is required for "allow"; {} would mean "unchanged" too.
            return json.dumps({"behavior": "allow", "updatedInput": dict(self.updated_input or {})})
        return json.dumps({"behavior": "deny", "message": self.message or "denied"})


@dataclass(frozen=True)
class PermissionRequest:
    """A tool call waiting for a person's answer."""

    id: str
    run_id: str
    item_id: int
    tool_name: str
    input: dict[str, Any]
    tool_use_id: str | None
    created_at: float
    expires_at: float | None  # None: unbounded wait (never, today)


@dataclass(frozen=True)
class Answered:
    request: PermissionRequest
    decision: Decision
    answer: Answer
    rule: Rule | None  # saved by "always allow"


class PermissionPolicy(Protocol):
    """What the project says (``project.PermissionSettings`` is one)."""

    @property
    def allow(self) -> tuple[str, ...]: ...
    @property
    def deny(self) -> tuple[str, ...]: ...
    @property
    def ask_timeout_s(self) -> float: ...
    @property
    def unattended(self) -> bool: ...


def _timeout_message(tool_name: str, seconds: float) -> str:
    return (
        f"No one answered the request to use {tool_name} within {seconds:g} s, so it is denied. "
        "Continue without this tool, or stop and say which permission you need."
    )


def _unattended_message(tool_name: str) -> str:
    return (
        f"gangline is running unattended and no rule allows {tool_name}, so it is denied. Continue without it, "
        "or stop and say which permission you need (a person can add an allow rule under [permissions] in "
        ".gangline/project.toml)."
    )


def _rule_denial(tool_name: str, ruling: Ruling) -> str:
    return f"{tool_name} is {ruling.why} in this project. Do not retry it; continue without it or stop and explain."


class Permissions:
    """Decides tool calls and keeps the questions put to people; in memory, like the runs that ask them."""

    def __init__(
        self,
        store: Store,
        policy: PermissionPolicy,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store  # its event writes wake the event stream's viewers
        self.policy = policy
        self.clock = clock
        self._deny = [parse_rule(text) for text in policy.deny]
        self._allow = [parse_rule(text) for text in policy.allow]
        self._pending: dict[str, tuple[PermissionRequest, asyncio.Future[Answer]]] = {}
        self._asked = asyncio.Condition()

    def rules(self) -> tuple[list[Rule], list[Rule]]:
        """(deny, allow): the project's rules, then the ones saved by "always allow"."""
        deny, allow = list(self._deny), list(self._allow)
        for row in self.store.permission_rules():
            (allow if row.decision == "allow" else deny).append(Rule(row.tool, row.pattern))
        return deny, allow

    async def ask(
        self,
        run_id: str,
        item_id: int,
        cwd: Path | None,
        tool_name: str,
        tool_input: dict[str, Any],
        tool_use_id: str | None,
    ) -> Answer:
        """Decide one tool call; waits (bounded) when a person must answer."""
        ruling = rule_decision(tool_name, tool_input, cwd, *self.rules())
        if ruling is not None and ruling.allowed:
            return Answer("allow", tool_input)
        if ruling is not None:
            return self._denied(run_id, item_id, tool_name, ruling.why, _rule_denial(tool_name, ruling))
        if self.policy.unattended:
            return self._denied(run_id, item_id, tool_name, "unattended", _unattended_message(tool_name))
        return await self._wait_for_person(run_id, item_id, tool_name, tool_input, tool_use_id)

    def _denied(self, run_id: str, item_id: int, tool_name: str, why: str, message: str) -> Answer:
        data = {"tool": tool_name, "why": why}
        self.store.record_event(
            "permission_denied", "gangline", item_id=item_id, run_id=run_id, reason=message, data=data
        )
        return Answer("deny", message=message)

    async def _wait_for_person(
        self, run_id: str, item_id: int, tool_name: str, tool_input: dict[str, Any], tool_use_id: str | None
    ) -> Answer:
        now = self.clock()
        timeout = self.policy.ask_timeout_s
        request = PermissionRequest(
            uuid.uuid4().hex[:16], run_id, item_id, tool_name, tool_input, tool_use_id, now, now + timeout
        )
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = (request, future)
        try:
            data = {
                "request_id": request.id,
                "tool": tool_name,
                "input": _shown(tool_input),
                "tool_use_id": tool_use_id,
            }
            self.store.record_event(
                "permission_requested", f"agent:{run_id}", item_id=item_id, run_id=run_id, reason=tool_name, data=data
            )
            async with self._asked:
                self._asked.notify_all()
            try:
                async with asyncio.timeout(timeout):
                    return await asyncio.shield(future)
            except TimeoutError:
                if future.done():  # answered in the very instant the wait ran out: the answer stands
                    return future.result()
                self._record_answer(request, "timeout", "gangline", None)
                return Answer("deny", message=_timeout_message(tool_name, timeout))
        finally:
            self._pending.pop(request.id, None)

    def pending(self) -> list[PermissionRequest]:
        return sorted((request for request, _ in self._pending.values()), key=lambda r: r.created_at)

    async def wait_requested(self, timeout_s: float) -> list[PermissionRequest]:
        """The pending requests, once there is at least one; TimeoutError after ``timeout_s``."""
        async with asyncio.timeout(timeout_s), self._asked:
            await self._asked.wait_for(lambda: bool(self._pending))
            return self.pending()

    def answer(
        self,
        request_id: str,
        decision: Decision,
        actor: str,
        message: str | None = None,
        updated_input: Mapping[str, Any] | None = None,
    ) -> Answered:
        """A person's answer. ``updated_input`` keys replace the tool's input keys (allow only)."""
        entry = self._pending.get(request_id)
        if entry is None or entry[1].done():
            raise NotFoundError("pending permission request", request_id)
        request, future = entry
        rule = None
        if decision is Decision.DENY:
            answer = Answer("deny", message=message or f"{actor} denied the use of {request.tool_name}")
        else:
            answer = Answer("allow", {**request.input, **(updated_input or {})})
            if decision is Decision.ALWAYS_ALLOW:
                rule = rule_for(request.tool_name, request.input)
                self.store.add_permission_rule(rule.tool, rule.pattern, "allow", actor)
        future.set_result(answer)
        self._record_answer(request, decision.value, actor, rule)
        return Answered(request, decision, answer, rule)

    def cancel_run(self, run_id: str) -> None:
        """The run ended: its questions are moot; their waits end with a denial."""
        for request, future in list(self._pending.values()):
            if request.run_id == run_id and not future.done():
                future.set_result(Answer("deny", message="the run ended before anyone answered"))
                self._record_answer(request, "run_ended", "gangline", None)

    def _record_answer(self, request: PermissionRequest, decision: str, actor: str, rule: Rule | None) -> None:
        data = {"request_id": request.id, "tool": request.tool_name, "decision": decision}
        if rule is not None:
            data["rule"] = str(rule)
        self.store.record_event(
            "permission_answered", actor, item_id=request.item_id, run_id=request.run_id, reason=decision, data=data
        )


def _shown(tool_input: Mapping[str, Any]) -> Any:
    text = json.dumps(tool_input, sort_keys=True, default=str)
    return dict(tool_input) if len(text) <= _INPUT_CHARS else {"truncated": text[:_INPUT_CHARS]}
