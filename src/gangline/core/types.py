"""The aliases the whole code base shares: who acts, what time it is."""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]  # seconds since the epoch; tests pass their own
SERVER = "gangline"  # the actor on the server's own changes, as the event log names it
