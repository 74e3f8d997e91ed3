"""What a person hears of outside the board: pipeline events as notices, filtered per room, coalesced under bursts.

Pure: ``notice_of`` reads one row of the event log (``EventRow``) and says whether it is news a
person wants pushed to them (an item blocked and why, a merge that failed, a merge, a hard rate
limit with its resume time, an agent asking permission, a failed run); ``Coalescer`` throttles
one room's notices: a lone change goes at once, and a burst is one message a window.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gangline.core.events import RunOutcome
from gangline.core.records import EventRow
from gangline.core.stages import Trigger


class NoticeKind(enum.StrEnum):
    BLOCKED = "blocked"
    MERGE_FAILED = "merge_failed"
    MERGED = "merged"
    RATE_LIMITED = "rate_limited"
    PERMISSION = "permission"
    RUN_FAILED = "run_failed"
    DAILY_COST = "daily_cost"  # not from an event: the day's cost, at a time of the room's choosing


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    event_id: int  # where it came from in the event log: sent once, in order, resumable
    item_id: int | None
    text: str
    request_id: str | None = None  # a permission request, answerable from chat


_FAILED_RUNS = frozenset({RunOutcome.FAILED, RunOutcome.CRASHED, RunOutcome.REFUSED, RunOutcome.TIMED_OUT,
                          RunOutcome.STALLED})  # fmt: skip


def notice_of(row: EventRow) -> Notice | None:
    """The notice one event is, or None when it is no news to push."""
    item = f"#{row.item_id}" if row.item_id is not None else "the server"
    why = f": {row.reason}" if row.reason else ""
    if row.kind == "transition" and row.trigger == Trigger.BLOCK.value:
        return Notice(NoticeKind.BLOCKED, row.id, row.item_id, f"{item} is blocked{why}")
    if row.kind == "transition" and row.trigger == Trigger.MERGE_FAILED.value:
        return Notice(NoticeKind.MERGE_FAILED, row.id, row.item_id, f"{item} could not be merged{why}")
    if row.kind == "transition" and row.trigger == Trigger.MERGED.value:
        return Notice(NoticeKind.MERGED, row.id, row.item_id, f"{item} is merged{why}")
    if row.kind == "parked":
        until = row.data.get("until")
        when = f" until {_utc(until)}" if isinstance(until, int | float) else ""
        return Notice(NoticeKind.RATE_LIMITED, row.id, row.item_id, f"{item} waits for a rate limit{when}{why}")
    if row.kind == "permission_requested":
        tool, request = row.data.get("tool") or row.reason or "a tool", row.data.get("request_id")
        asker = f"{item}'s agent" if row.item_id is not None else "The chat agent"
        text = f"{asker} asks to use {tool}: answer allow, deny or always allow"
        return Notice(NoticeKind.PERMISSION, row.id, row.item_id, text, request if isinstance(request, str) else None)
    # A chat agent's run that fails is answered in its own room (``chat.agent``), not announced.
    if row.kind == "run_finished" and row.item_id is not None and row.data.get("outcome") in _FAILED_RUNS:
        outcome = row.data["outcome"]
        return Notice(NoticeKind.RUN_FAILED, row.id, row.item_id, f"{item}'s run {row.run_id} {outcome}{why}")
    return None


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass
class Coalescer:
    """One room's pending notices, throttled: at most one message per window, the rest held and sent together.

    What is added goes at the next ``due`` if the room's last message is at least ``window_s`` old
    (so a lone notice goes at once, and a batch read together is one message); otherwise it waits
    for the window to end and goes with everything added meanwhile. ``wanted`` is the room's filter
    (empty: every kind). A permission request is never held: a person should see it at once, and it
    carries its own answer.
    """

    window_s: float = 2.0
    wanted: frozenset[NoticeKind] = frozenset()
    _held: list[Notice] = field(default_factory=list)
    _last_sent: float | None = None

    def add(self, notice: Notice, now: float) -> list[list[Notice]]:
        """Take a notice; what must go at once (only for a permission request: what was held, then it)."""
        if self.wanted and notice.kind not in self.wanted:
            return []
        if notice.kind is NoticeKind.PERMISSION:
            held, self._held, self._last_sent = self._held, [], now
            return [*([held] if held else []), [notice]]
        self._held.append(notice)
        return []

    def due(self, now: float) -> list[list[Notice]]:
        """The held notices as one message when the window since the last message has passed; else nothing."""
        if not self._held or (self._last_sent is not None and now < self._last_sent + self.window_s):
            return []
        held, self._held, self._last_sent = self._held, [], now
        return [held]

    @property
    def next_due(self) -> float | None:
        """When the held notices are due, for the caller's timer; None when nothing is held."""
        if not self._held:
            return None
        return self._last_sent + self.window_s if self._last_sent is not None else 0.0


def message_of(notices: list[Notice]) -> str:
    """One message for notices sent together: each on its own line, the oldest first."""
    return "\n".join(notice.text for notice in sorted(notices, key=lambda n: n.event_id))
