"""Text for the terminal: what an item or an agent wrote, made inert; times and money, said briefly.

Item titles, hold reasons, agent outcomes and gate output are untrusted: everything that comes
from an item or an agent goes through ``inert`` before it reaches the terminal.
"""

from __future__ import annotations

import time

from rich.markup import escape

from gangline.core.text import first_line as text_first_line
from gangline.core.text import plain


def inert(text: str | None, *, multiline: bool = False, limit: int | None = None) -> str:
    """``text`` safe to print with rich: plain (``core.text``), and its markup escaped."""
    return escape(plain(text, multiline=multiline, limit=limit))


def first_line(text: str | None, limit: int = 160) -> str:
    """The first non-blank line of ``text``, inert."""
    return escape(text_first_line(text, limit))


def clock_time(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def money(cost: float | None) -> str:
    return "-" if not cost else f"${cost:.4f}"
