"""Untrusted text made plain: what an item or an agent wrote, without escape sequences, control or bidi characters.

Every door that shows such text to a person passes it through ``plain`` first: the terminal
(``cli.text.inert`` adds rich's markup escaping), chat messages, notices.
"""

from __future__ import annotations

import re
import unicodedata

# ESC sequences (CSI, OSC, DCS/SOS/PM/APC strings, and two-character ones) and the 8-bit CSI.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
# Bidirectional overrides and isolates can make text display in another order than it is.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def plain(text: str | None, *, multiline: bool = False, limit: int | None = None) -> str:
    """``text`` without escape sequences, control or bidi characters.

    A single line unless ``multiline``; at most ``limit`` characters (cut with "…").
    """
    if not text:
        return ""
    text = _ESCAPE_SEQUENCE.sub("", text)
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char == "\n" and multiline:
            kept.append(char)
        elif char == "\t":
            kept.append("    " if multiline else " ")
        elif category in ("Cc", "Zl", "Zp"):
            kept.append(" " if char in "\n\r\v\f\u2028\u2029" else "")
        elif char not in _BIDI:
            kept.append(char)
    clean = "".join(kept)
    if not multiline:
        clean = " ".join(clean.split())
    if limit is not None and len(clean) > limit:
        clean = clean[: limit - 1] + "…"
    return clean


def first_line(text: str | None, limit: int = 160) -> str:
    """The first non-blank line of ``text``, plain."""
    return plain(next((part for part in (text or "").splitlines() if part.strip()), ""), limit=limit)


def money(cost: float) -> str:
    """Dollars in a sentence: cents, or four places for less than a cent."""
    return f"${cost:.2f}" if cost >= 0.01 or cost == 0 else f"${cost:.4f}"


def span(seconds: float) -> str:
    """A duration for a person: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
