"""Per-run line decoders: one CLI's lines into gangline's events, with what a line alone cannot tell.

``parse.parse_line`` (Claude Code), ``parse_codex`` and ``parse_gemini`` turn lines into events;
a decoder lives for one run and adds what needs memory across lines: which tool call a result
answers (to say that it was a command and how it exited, or a file change), and what a run cost
when its CLI reports only tokens (priced from the project's ``[price."<model>"]`` tables).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import msgspec

from gangline.agents.claude import DEFAULT_RATE_LIMIT_BACKOFF_S, Parsed, parse_line
from gangline.core.budget import Price
from gangline.core.events import CommandExecution, Event, FileChange, FileEdit, RateLimit, Result, ToolResult, ToolUse

LineDecoder = Callable[[bytes, float], Parsed]

_KEPT_CALLS = 256  # tool calls remembered until their result; a CLI that never answers cannot grow this
# How Codex and Gemini word a request refused for a rate or usage limit, once their own retries gave up.
# Not "quota" alone: Codex's "Quota exceeded. Check your plan and billing details." will not pass
# by waiting, so it fails the run (and retries end in a block) instead of parking it forever.
_RATE_LIMITED = re.compile(
    r"\b429\b|too many requests|rate[ _-]?limit|usage limit|resource[ _]exhausted", re.IGNORECASE
)
_EXIT_CODE = re.compile(r"\bexit(?:ed with)? code:? *(-?\d+)", re.IGNORECASE)


class ToolCalls:
    """The run's open tool calls, by id, so a result can be joined to its call."""

    def __init__(self) -> None:
        self._open: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()

    def opened(self, use: ToolUse) -> None:
        self._open[use.tool_use_id] = (use.name, use.input)
        while len(self._open) > _KEPT_CALLS:
            self._open.popitem(last=False)

    def closed(self, tool_use_id: str) -> tuple[str, dict[str, Any]] | None:
        return self._open.pop(tool_use_id, None)


def exit_code_in(text: str) -> int | None:
    """The exit status a tool's output states ("Exit code 2", "Command exited with code: 1")."""
    found = _EXIT_CODE.search(text[:4096])
    return int(found[1]) if found else None


_HTTP_STATUS = re.compile(r"\b([45]\d\d)\b")


def http_status_in(message: str) -> int | None:
    """The HTTP error status a CLI's error message names ("last status: 429 Too Many Requests")."""
    found = _HTTP_STATUS.search(message)
    return int(found[1]) if found else None


def rate_limit_in(message: str, now: float) -> RateLimit | None:
    """A hard block, if the CLI's final error says its API refused for a limit.

    Neither CLI reports when a limit resets, so the run waits the default backoff (``reset_assumed``).
    """
    if not _RATE_LIMITED.search(message):
        return None
    return RateLimit(
        status="rejected", hard_block=True, resets_at=now + DEFAULT_RATE_LIMIT_BACKOFF_S, reset_assumed=True
    )


def priced(decoder: LineDecoder, price: Price | None) -> LineDecoder:
    """``decoder`` whose results carry a cost from ``price`` when the CLI reported tokens only."""
    if price is None:
        return decoder

    def decode(line: bytes, now: float) -> Parsed:
        events, raw = decoder(line, now)
        if not any(isinstance(e, Result) and e.cost_usd is None and e.usage is not None for e in events):
            return events, raw
        return tuple(_with_cost(e, price) for e in events), raw

    return decode


def _with_cost(event: Event, price: Price) -> Event:
    if isinstance(event, Result) and event.cost_usd is None and event.usage is not None:
        return msgspec.structs.replace(event, cost_usd=price.cost(event.usage))
    return event


# Claude Code's tools that run a command or write a file, and the kind of change each makes.
_CLAUDE_COMMANDS = frozenset({"Bash"})
_CLAUDE_FILE_TOOLS = {"Write": "write", "Edit": "update", "MultiEdit": "update", "NotebookEdit": "update"}


class ClaudeDecoder:
    """``parse_line``, plus a ``command`` or ``file_change`` event after the result of such a tool."""

    def __init__(self) -> None:
        self.calls = ToolCalls()

    def __call__(self, line: bytes, now: float) -> Parsed:
        parsed = parse_line(line, now)
        events, raw = parsed
        # The hot path: almost every line is one delta. Type checks by identity, no generator.
        if len(events) == 1 and type(events[0]) is not ToolUse and type(events[0]) is not ToolResult:
            return parsed
        if not any(type(e) is ToolUse or type(e) is ToolResult for e in events):
            return parsed
        out: list[Event] = []
        for event in events:
            out.append(event)
            if isinstance(event, ToolUse):
                self.calls.opened(event)
            elif isinstance(event, ToolResult) and (call := self.calls.closed(event.tool_use_id)):
                out.extend(_claude_effect(event, *call))
        return tuple(out), raw


def _claude_effect(result: ToolResult, name: str, args: dict[str, Any]) -> list[Event]:
    status = "failed" if result.is_error else "completed"
    if name in _CLAUDE_COMMANDS and isinstance(args.get("command"), str):
        # Claude Code says only success or error; an error's output usually starts "Exit code N".
        code = exit_code_in(result.content) if result.is_error else 0
        return [CommandExecution(result.tool_use_id, args["command"], code, status)]
    kind = _CLAUDE_FILE_TOOLS.get(name)
    path = args.get("file_path") or args.get("notebook_path")
    if kind and isinstance(path, str) and not result.is_error:
        return [FileChange(result.tool_use_id, [FileEdit(path, kind)], status)]
    return []
