"""The permission rule language and its decisions: rules, what they decide, and the answers Claude Code takes.

Order (first match wins): gangline's own MCP tools are allowed (for the chat agent, whose
gangline tools are the people's, only those that read: ``CHAT_OWN_TOOLS``); then deny rules; then allow rules
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

import contextlib
import enum
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal, Protocol

OWN_TOOLS = ("mcp__gangline__*",)
# The people's tools that only read: the chat agent uses these without asking; what would change
# something (add, edit, delete, act) is decided by the rules or asked, as any agent's tool call is.
CHAT_OWN_TOOLS = tuple(
    f"mcp__gangline__{name}" for name in ("list_items", "show_item", "list_permissions", "pipeline_status", "costs")
)
SUBJECT_KEYS = ("command", "file_path", "notebook_path", "path", "url", "query", "pattern")
_RULE = re.compile(r"(?P<tool>[A-Za-z0-9_*.-]+)(?:\((?P<pattern>.*)\))?", re.DOTALL)
_SHELL_CONTROL = re.compile(r"[;&|`\n<>]|\$\(")
_CHAIN = re.compile(r"&&|\|\||[;|\n&]")
_WORD = re.compile(r"[A-Za-z0-9][\w.+-]*")


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
    tool_name: str,
    tool_input: Mapping[str, Any],
    cwd: Path | None,
    deny: Sequence[Rule],
    allow: Sequence[Rule],
    own: Sequence[str] = OWN_TOOLS,
) -> Ruling | None:
    """The first matching rule's decision; None when no rule decides (someone must be asked).

    ``own``: the asker's own gangline tools, always allowed (CHAT_OWN_TOOLS for the chat agent).
    """
    if any(fnmatchcase(tool_name, pattern) for pattern in own):
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
    item_id: int | None  # None: the chat agent asks
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
    """What the project says (``project.config.PermissionSettings`` is one)."""

    @property
    def allow(self) -> tuple[str, ...]: ...
    @property
    def deny(self) -> tuple[str, ...]: ...
    @property
    def ask_timeout_s(self) -> float: ...
    @property
    def unattended(self) -> bool: ...
