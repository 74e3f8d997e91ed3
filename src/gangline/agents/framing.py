"""Split a byte stream into lines, holding at most ``max_line`` bytes of any one line."""

from __future__ import annotations

from gangline.core.events import Malformed

HEAD_BYTES = 512  # how much of an oversized line is kept, for a person to recognise it


class LineFramer:
    """Feed it chunks; it returns complete lines, and a ``Malformed`` for each oversized one.

    Memory stays bounded: once a partial line passes ``max_line`` bytes the framer keeps
    only its head and counts the rest until the newline that ends it.
    """

    __slots__ = ("_max", "_parts", "_size", "_skip_head", "_skip_size")

    def __init__(self, max_line: int) -> None:
        # A partial line is kept as a list of chunks: joining only at its newline keeps a
        # long line arriving in small PTY reads linear, not quadratic.
        self._parts: list[bytes] = []
        self._size = 0
        self._max = max_line
        self._skip_size = -1  # >= 0 while discarding the rest of an oversized line
        self._skip_head = b""

    def feed(self, data: bytes) -> list[bytes | Malformed]:
        out: list[bytes | Malformed] = []
        if self._skip_size >= 0:
            cut = data.find(b"\n")
            if cut < 0:
                self._skip_size += len(data)
                return out
            out.append(self._oversized(self._skip_size + cut, self._skip_head))
            self._skip_size = -1
            data = data[cut + 1 :]
        if self._parts:
            cut = data.find(b"\n")
            if cut < 0:
                self._hold(data)
                return out
            self._parts.append(data[:cut])
            self._emit(b"".join(self._parts), out)
            self._parts, self._size = [], 0
            data = data[cut + 1 :]
        lines = data.split(b"\n")
        tail = lines.pop()
        for line in lines:
            self._emit(line, out)
        if tail:
            self._hold(tail)
        return out

    def flush(self) -> list[bytes | Malformed]:
        """At end of stream: the unterminated last line, if any."""
        out: list[bytes | Malformed] = []
        if self._skip_size >= 0:
            out.append(self._oversized(self._skip_size, self._skip_head))
        elif self._parts:
            self._emit(b"".join(self._parts), out)
        self._parts, self._size, self._skip_size, self._skip_head = [], 0, -1, b""
        return out

    def _emit(self, line: bytes, out: list[bytes | Malformed]) -> None:
        if len(line) > self._max:
            out.append(self._oversized(len(line), line[:HEAD_BYTES]))
        elif line and line != b"\r":
            out.append(line)

    def _hold(self, chunk: bytes) -> None:
        self._parts.append(chunk)
        self._size += len(chunk)
        if self._size > self._max:
            self._skip_head = b"".join(self._parts)[:HEAD_BYTES]
            self._skip_size = self._size
            self._parts, self._size = [], 0

    def _oversized(self, size: int, head: bytes) -> Malformed:
        return Malformed(
            reason=f"line of {size} bytes exceeds the {self._max}-byte limit",
            size=size,
            head=head.decode("utf-8", "replace"),
        )
