"""When a live run is held back by its model API, and when it is answered again (the board's "throttled")."""

from __future__ import annotations

from dataclasses import dataclass

from gangline.core.events import ApiRetry, Event, MessageStarted, RateLimit, TextDelta, ToolUse

# Statuses an API retry is a throttle for: rate limited (429) and overloaded (529).
_THROTTLING_STATUSES = frozenset({429, 529})


@dataclass(frozen=True)
class Throttle:
    """A live run waiting on its model API: retrying a 429/529, or told it is rate limited."""

    since: float  # when the run was first held back (the record's time)
    resets_at: float | None  # when the limit resets, if the CLI said
    note: str  # for people: "429, retry 2 of 10" or "rate limit rejected (five_hour)"


def throttle_of(event: Event, ts: float) -> Throttle | None:
    """The throttle an agent event reports, if any."""
    if isinstance(event, ApiRetry) and event.error_status in _THROTTLING_STATUSES:
        of = f" of {event.max_retries}" if event.max_retries else ""
        return Throttle(ts, None, f"{event.error_status}, retry {event.attempt}{of}")
    if isinstance(event, RateLimit) and (event.hard_block or event.status not in ("allowed", "allowed_warning")):
        kind = f" ({event.limit_type})" if event.limit_type else ""
        return Throttle(ts, event.resets_at, f"rate limit {event.status}{kind}")
    return None


def answering(event: Event) -> bool:
    """The model is producing again: a throttle is over."""
    return isinstance(event, MessageStarted | TextDelta | ToolUse)
