"""Render run records readably in a terminal, as they arrive.

Everything an agent wrote goes through ``inert``: its output must not drive the terminal
(clipboard writes, links, cursor moves, a forged "run succeeded" line).
"""

from __future__ import annotations

import json
import time

from rich.console import Console

from gangline.cli.text import inert
from gangline.core.events import (
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
        self.console.print(
            inert(ev.text, multiline=True), end="", style=None if kind == "text" else "dim italic", highlight=False
        )

    def _close_inline(self) -> None:
        if self._inline is not None:
            self.console.print()
            self._inline = None

    def _line(self, ev: object) -> str | None:
        if isinstance(ev, ProcessStarted):
            return f"[dim]▶ started {inert(ev.argv[0].rsplit('/', 1)[-1])} (pid {ev.pid}) in {inert(ev.cwd)}[/]"
        if isinstance(ev, SessionStarted):
            about = inert(f"model {ev.model} · CLI {ev.cli_version} · {len(ev.tools)} tools")
            return f"[cyan]● session {inert(ev.session_id)}[/] [dim]{about}[/]"
        if isinstance(ev, AssistantText):
            if ev.error:
                return f"[red]● {inert(ev.text, multiline=True)}[/]"
            return None if ev.message_id in self._streamed else f"[bold]●[/] {inert(ev.text, multiline=True)}"
        if isinstance(ev, ToolUse):
            args = inert(json.dumps(ev.input, ensure_ascii=False), limit=120)
            return f"[magenta]⚙ {inert(ev.name)}[/] [dim]{args}[/]"
        if isinstance(ev, ToolResult):
            style = "red" if ev.is_error else "dim"
            return f"[{style}]  ↳ {inert(ev.content, limit=160) or '(no output)'}[/]"
        if isinstance(ev, CommandExecution):
            code = f"exit {ev.exit_code}" if ev.exit_code is not None else inert(ev.status)
            return f"[{'red' if ev.exit_code else 'dim'}]  ↳ $ {inert(ev.command, limit=80)} ({code})[/]"
        if isinstance(ev, FileChange):
            files = ", ".join(f"{c.kind} {c.path}" for c in ev.changes)
            return f"[{'dim' if ev.status == 'completed' else 'red'}]  ✎ {inert(files, limit=120)}[/]"
        if isinstance(ev, TodoList):
            return (
                "[dim]☐ plan: " + inert(" · ".join(("✓ " if t.completed else "○ ") + t.text for t in ev.items)) + "[/]"
            )
        if isinstance(ev, AgentError):
            return f"[{'red' if ev.fatal else 'yellow'}]⚠ {inert(ev.message, multiline=True)}[/]"
        if isinstance(ev, ApiRetry):
            error = inert(ev.error) or "error"
            return f"[yellow]↻ API {error} ({ev.error_status}); retry {ev.attempt}/{ev.max_retries}[/]"
        if isinstance(ev, RateLimit):
            when = time.strftime("%H:%M:%S", time.localtime(ev.resets_at)) if ev.resets_at else "unknown"
            kind = "hard block" if ev.hard_block else "warning"
            return f"[yellow]⚠ rate limit {kind} ({inert(ev.status)}); resets at {when}[/]"
        if isinstance(ev, Result):
            cost = f"${ev.cost_usd:.4f}" if ev.cost_usd is not None else "$?"
            usage = ev.usage
            tokens = f"{usage.input_tokens} in / {usage.output_tokens} out" if usage else "? tokens"
            about = f"{ev.num_turns} turns · {tokens} · {cost} · {ev.duration_ms} ms"
            return f"[bold]■ result {inert(ev.subtype)}[/] [dim]{about}[/]"
        if isinstance(ev, RawOutput):
            return f"[dim]│ {inert(ev.text, multiline=True)}[/]" if ev.text.strip() else None
        if isinstance(ev, Malformed):
            return f"[yellow]⚠ malformed line ({ev.size} bytes): {inert(ev.reason)}[/]"
        if isinstance(ev, (UnknownEvent, NonObjectJson)):
            return f"[yellow]? kept an event this version does not know: {inert(str(ev), limit=400)}[/]"
        if isinstance(ev, Gap):
            return f"[yellow]… fell behind after event {ev.after_id}; replaying from the log[/]"
        if isinstance(ev, RunFinished):
            style = _OUTCOME_STYLE.get(ev.outcome, "bold red")
            return f"[{style}]■ run {ev.outcome.value}[/]: {inert(ev.reason, multiline=True)}"
        return None
