"""What every CLI's decoder shares: the rules for a JSON line, tool calls joined to their results, pricing.

Each CLI's module (``claude``, ``codex``, ``gemini``) turns its lines into gangline's events; a
decoder lives for one run and adds what needs memory across lines: which tool call a result
answers (to say that it was a command and how it exited, or a file change), and what a run cost
when its CLI reports only tokens (priced from the project's ``[price."<model>"]`` tables).
Every line yields at least one event: one that is not JSON is kept as raw output, one that
looks like JSON but does not parse is ``malformed``, and nothing is dropped.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from gangline.agents.framing import HEAD_BYTES
from gangline.core.budget import Price
from gangline.core.events import (
    Event,
    Malformed,
    NonObjectJson,
    RateLimit,
    RawOutput,
    Result,
    ToolUse,
    UnknownEvent,
)

DEFAULT_RATE_LIMIT_BACKOFF_S = 300.0  # when a hard block carries no reset time

# CSI, OSC (BEL- or ST-terminated), charset selection, other two-byte escapes, then C0
# controls other than tab. The CLI writes a terminal-reset sequence of all of these on exit.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[()][0-9A-Za-z]"
    r"|\x1b[@-Z\\-_=>78]|[\x00-\x08\x0b-\x1f\x7f]"
)

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode

Parsed = tuple[tuple[Event, ...], "msgspec.Raw | None"]


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


Handler = Callable[[dict[str, Any], float], tuple[Event, ...]]


def parse_json_line(line: bytes, now: float, handlers: Mapping[str, Handler]) -> Parsed:
    """The rules every CLI's JSON lines share: a handler per ``type``; anything else is kept, never lost."""
    try:
        obj = _decode(line)
    except msgspec.DecodeError:
        return not_json(line)
    except RecursionError:  # msgspec's nesting limit; the line is kept, not the run's reader lost
        return not_json(line, reason="line is JSON nested too deeply to read")
    raw = msgspec.Raw(line)
    if type(obj) is not dict:
        return (NonObjectJson(json_type=type(obj).__name__),), raw
    kind = obj.get("type")
    handler = handlers.get(kind) if type(kind) is str else None
    if handler is None:
        return (UnknownEvent(type=kind if type(kind) is str else None),), raw
    try:
        return handler(obj, now), raw
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as err:
        # A known type with a shape we did not expect: keep it, say why.
        return (UnknownEvent(type=kind, reason=f"unexpected shape: {err!r}"),), raw


def not_json(line: bytes, reason: str = "line looks like JSON but does not parse") -> Parsed:
    text = line.decode("utf-8", "replace").rstrip("\r")
    raw = msgspec.Raw(_encode(text))
    if text.lstrip().startswith(("{", "[")):
        head = text[:HEAD_BYTES]
        return (Malformed(reason=reason, size=len(line), head=head),), raw
    return (RawOutput(text=strip_ansi(text)),), raw


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
