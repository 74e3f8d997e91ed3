"""A count of the changes written, that any number of viewers can wait on (streams, the narrator, the demo).

Writes by other processes (``gangline add`` on the store) are not counted: viewers also re-read
on a timer.
"""

from __future__ import annotations

import asyncio
import contextlib


class Changes:
    def __init__(self) -> None:
        self._version = 0
        self._watchers: set[asyncio.Event] = set()

    @property
    def version(self) -> int:
        """How many changes viewers have been told of; pass it to ``wait_changed``."""
        return self._version

    def bump(self) -> None:
        self._version += 1
        for watcher in self._watchers:
            watcher.set()

    async def wait_changed(self, seen: int, timeout_s: float) -> int:
        """Wait (at most ``timeout_s``) for a change after version ``seen``; return the current version.

        Each waiting viewer costs one Event while it waits.
        """
        if self._version > seen:
            return self._version
        watcher = asyncio.Event()
        self._watchers.add(watcher)
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the event is set.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await watcher.wait()
        finally:
            self._watchers.discard(watcher)
        return self._version
