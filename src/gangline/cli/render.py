"""Render run records readably in a terminal, as they arrive.

Everything an agent wrote is made plain (``core.text``) and its markup escaped: its output must
not drive the terminal (clipboard writes, links, cursor moves, a forged "run succeeded" line).
Each event's line is ``core.transcript``'s, the one every door shows.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from gangline.cli.text import clock_time, inert
from gangline.core.events import AssistantText, MessageStarted, Record, TextDelta, ThinkingDelta
from gangline.core.transcript import line_of


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
        if isinstance(ev, AssistantText) and not ev.error and ev.message_id in self._streamed:
            return None  # its text already flowed in as deltas
        line = line_of(ev, clock_time)
        return None if line is None else "".join(f"[{tone}]{escape(text)}[/]" if tone else escape(text)
                                                 for tone, text in line)  # fmt: skip
