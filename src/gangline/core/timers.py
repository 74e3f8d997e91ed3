"""When a person means: ``09:30``, ``+30m`` or ``2026-12-24T09:00``, read the same way from every door.

A time of day is the next time the project's clocks show it (today, else tomorrow); a
date-time without an offset is the project's time zone's; ``+N`` with ``s``, ``m``, ``h`` or
``d`` counts from now. What is none of these is a ConfigError naming the field, saying what was
expected.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo

from gangline.core.errors import ConfigError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TIME_OF_DAY = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
EXPECTED = "expected HH:MM (the next such time), +30m / +2h / +1d, or a date-time such as 2026-12-24T09:00"


def parse_when(text: str, now: float, zone: tzinfo, field: str = "when") -> float:
    """The moment ``text`` means, seen at ``now`` in ``zone`` (seconds since the epoch)."""
    value = text.strip()
    if value.startswith("+") and value[-1:] in UNITS and value[1:-1].isdigit():
        return now + int(value[1:-1]) * UNITS[value[-1]]
    if match := _TIME_OF_DAY.fullmatch(value):
        return next_at(int(match[1]), int(match[2]), now, zone)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(field, f"{EXPECTED}; got {text!r}") from None
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)).timestamp()


def next_at(hour: int, minute: int, now: float, zone: tzinfo) -> float:
    """The next time the clocks of ``zone`` show ``hour:minute`` after ``now`` (today, or else tomorrow).

    A time the clocks skip that day (a change to summer time) is read with the offset before the
    change, as cron and systemd do: 02:30 on a day that jumps from 02:00 to 03:00 is 03:30.
    """
    local = datetime.fromtimestamp(now, zone)
    for days in (0, 1):
        day = (local + timedelta(days=days)).date()
        at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).timestamp()
        if at > now:
            return at
    raise AssertionError("unreachable: a time of day comes again within a day")
