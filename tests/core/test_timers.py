"""When a person means, read one way from every door: a time of day, +N, a date-time in the project's zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from gangline.core.errors import ConfigError
from gangline.core.timers import parse_when

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 6, 10, 0, tzinfo=BERLIN).timestamp()  # Sunday 10:00 in Berlin


@pytest.mark.parametrize(
    ("said", "means"),
    [
        ("09:30", datetime(2026, 12, 7, 9, 30, tzinfo=BERLIN)),  # gone today: tomorrow's
        ("18:05", datetime(2026, 12, 6, 18, 5, tzinfo=BERLIN)),
        ("+30m", datetime(2026, 12, 6, 10, 30, tzinfo=BERLIN)),
        (" +2h ", datetime(2026, 12, 6, 12, 0, tzinfo=BERLIN)),
        ("+1d", datetime(2026, 12, 7, 10, 0, tzinfo=BERLIN)),
        ("2026-12-24T09:00", datetime(2026, 12, 24, 9, 0, tzinfo=BERLIN)),  # no offset: the project's zone
        ("2026-12-24T09:00+00:00", datetime(2026, 12, 24, 10, 0, tzinfo=BERLIN)),
    ],
)
def test_what_a_time_means(said: str, means: datetime) -> None:
    assert parse_when(said, NOW, BERLIN) == means.timestamp()


@pytest.mark.parametrize("said", ["tomorrow", "25:00", "+2w", "+h", "", "9.30"])
def test_what_is_no_time_is_refused_naming_the_field_and_what_was_expected(said: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_when(said, NOW, BERLIN, "--start-after")
    assert str(refused.value) == (
        "--start-after: expected HH:MM (the next such time), +30m / +2h / +1d, or a date-time such as "
        f"2026-12-24T09:00; got {said!r}"
    )
