"""Render run records readably in a terminal, as they arrive."""

from __future__ import annotations

import json
import time

from rich.console import Console
from rich.markup import escape

from gangline.events import (
    AgentError,
    ApiRetry,
    AssistantText,
    CommandExecution,
    FileChange,
    Gap,
    Malformed,
    MessageStarted,
    NonObjectJson,
    ProcessStarted,
    RateLimit,
    RawOutput,
    Record,
    Result,
    RunFinished,
    RunOutcome,
    SessionStarted,
    TextDelta,
    ThinkingDelta,
    TodoList,
    ToolResult,
    ToolUse,
    UnknownEvent,
)

_OUTCOME_STYLE = {RunOutcome.SUCCEEDED: "bold green", RunOutcome.RATE_LIMITED: "bold yellow"}


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Renderer:
    """Prints one record at a time; streamed text and thinking flow inline."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._inline: str | None = None  # "text" or "thinking" while a delta stream is open
        self._streamed: set[str] = set()  # message ids whose text already arrived as deltas
        self._message_id: str | None = None

    def render(self, record: Record) -> None:
        ev = record.event
        if isinstance(ev, (TextDelta, ThinkingDelta)):
            self._delta(ev)
            return
        if isinstance(ev, MessageStarted):
            self._close_inline()  # a new message starts on its own line
            self._message_id = ev.message_id
            return
        line = self._line(ev)
        if line is not None:
            self._close_inline()
            self.console.print(line, highlight=False)

    def _delta(self, ev: TextDelta | ThinkingDelta) -> None:
        kind = "text" if isinstance(ev, TextDelta) else "thinking"
        if self._inline != kind:
            self._close_inline()
            self.console.print("[bold]●[/] " if kind == "text" else "[dim]✻ thinking: [/]", end="")
            self._inline = kind
        if kind == "text" and self._message_id:
            self._streamed.add(self._message_id)
        self.console.print(escape(ev.text), end="", style=None if kind == "text" else "dim italic", highlight=False)

    def _close_inline(self) -> None:
        if self._inline is not None:
            self.console.print()
            self._inline = None

    def _line(self, ev: object) -> str | None:
        if isinstance(ev, ProcessStarted):
            return f"[dim]▶ started {escape(ev.argv[0].rsplit('/', 1)[-1])} (pid {ev.pid}) in {escape(ev.cwd)}[/]"
        if isinstance(ev, SessionStarted):
            about = f"model {ev.model} · CLI {ev.cli_version} · {len(ev.tools)} tools"
            return f"[cyan]● session {ev.session_id}[/] [dim]{about}[/]"
        if isinstance(ev, AssistantText):
            if ev.error:
                return f"[red]● {escape(ev.text)}[/]"
            return None if ev.message_id in self._streamed else f"[bold]●[/] {escape(ev.text)}"
        if isinstance(ev, ToolUse):
            args = _short(json.dumps(ev.input, ensure_ascii=False), 120)
            return f"[magenta]⚙ {escape(ev.name)}[/] [dim]{escape(args)}[/]"
        if isinstance(ev, ToolResult):
            style = "red" if ev.is_error else "dim"
            return f"[{style}]  ↳ {escape(_short(ev.content) or '(no output)')}[/]"
        if isinstance(ev, CommandExecution):
            code = f"exit {ev.exit_code}" if ev.exit_code is not None else ev.status
            return f"[{'red' if ev.exit_code else 'dim'}]  ↳ $ {escape(_short(ev.command, 80))} ({code})[/]"
        if isinstance(ev, FileChange):
            files = ", ".join(f"{c.kind} {c.path}" for c in ev.changes)
            return f"[{'dim' if ev.status == 'completed' else 'red'}]  ✎ {escape(_short(files, 120))}[/]"
        if isinstance(ev, TodoList):
            return (
                "[dim]☐ plan: " + escape(" · ".join(("✓ " if t.completed else "○ ") + t.text for t in ev.items)) + "[/]"
            )
        if isinstance(ev, AgentError):
            return f"[{'red' if ev.fatal else 'yellow'}]⚠ {escape(ev.message)}[/]"
        if isinstance(ev, ApiRetry):
            return f"[yellow]↻ API {ev.error or 'error'} ({ev.error_status}); retry {ev.attempt}/{ev.max_retries}[/]"
        if isinstance(ev, RateLimit):
            when = time.strftime("%H:%M:%S", time.localtime(ev.resets_at)) if ev.resets_at else "unknown"
            kind = "hard block" if ev.hard_block else "warning"
            return f"[yellow]⚠ rate limit {kind} ({ev.status}); resets at {when}[/]"
        if isinstance(ev, Result):
            cost = f"${ev.cost_usd:.4f}" if ev.cost_usd is not None else "$?"
            usage = ev.usage
            tokens = f"{usage.input_tokens} in / {usage.output_tokens} out" if usage else "? tokens"
            return (
                f"[bold]■ result {ev.subtype}[/] [dim]{ev.num_turns} turns · {tokens} · {cost} · {ev.duration_ms} ms[/]"
            )
        if isinstance(ev, RawOutput):
            return f"[dim]│ {escape(ev.text)}[/]" if ev.text.strip() else None
        if isinstance(ev, Malformed):
            return f"[yellow]⚠ malformed line ({ev.size} bytes): {escape(ev.reason)}[/]"
        if isinstance(ev, (UnknownEvent, NonObjectJson)):
            return f"[yellow]? kept an event this version does not know: {escape(str(ev))}[/]"
        if isinstance(ev, Gap):
            return f"[yellow]… fell behind after event {ev.after_id}; replaying from the log[/]"
        if isinstance(ev, RunFinished):
            style = _OUTCOME_STYLE.get(ev.outcome, "bold red")
            return f"[{style}]■ run {ev.outcome.value}[/]: {escape(ev.reason)}"
        return None
