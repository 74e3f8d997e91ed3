"""The chat command parser and the addressing rule, as tables: every transport gets the same answers."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gangline.core.chat import COMMANDS, Command, FreeText, addressed, help_text, parse
from gangline.core.errors import ConfigError
from gangline.core.timers import next_at


@pytest.mark.parametrize(
    ("said", "parsed"),
    [
        ("status", Command("status")),
        ("STATUS", Command("status")),
        ("backlog", Command("ls")),
        ("show 3", Command("show", item_id=3)),
        ("show #3", Command("show", item_id=3)),
        ("start 12", Command("start", item_id=12)),
        ("stop 2", Command("stop", item_id=2)),
        ("stop 2 gone to lunch", Command("stop", item_id=2, rest="gone to lunch")),
        ("block 2", Command("block", item_id=2)),
        ("unblock 2", Command("unblock", item_id=2)),
        ("approve 4", Command("approve", item_id=4)),
        ("reject 4 the empty case still fails", Command("reject", item_id=4, rest="the empty case still fails")),
        ("assign 5 claude-fast", Command("assign", item_id=5, word="claude-fast")),
        ("say 5 also handle the empty case", Command("say", item_id=5, rest="also handle the empty case")),
        ("cost", Command("cost")),
        ("cost week", Command("cost", word="week")),
        ("logs 7", Command("logs", item_id=7)),
        ("git", Command("git")),
        ("htop", Command("htop")),
        ("htop stop", Command("htop", word="stop")),
        ("timer 3 09:30", Command("timer", item_id=3, at=(9, 30))),
        ("timer 3 9:05", Command("timer", item_id=3, at=(9, 5))),
        ("timer cancel 3", Command("timer", item_id=3, word="cancel")),
        ("ambient on", Command("ambient", word="on")),
        ("reset", Command("reset")),
        ("help", Command("help")),
        ("why is #3 blocked?", FreeText("why is #3 blocked?")),
        ("", FreeText("")),
    ],
)
def test_what_a_person_types_is_one_command_or_free_text(said: str, parsed: Command | FreeText) -> None:
    assert parse(said) == parsed


@pytest.mark.parametrize(
    ("said", "words"),
    [
        ("show", "show: expected 1 argument(s), got 0; usage: show N"),
        ("show three", "show: expected an item id such as 3 or #3, got 'three'; usage: show N"),
        ("show 3 4", "show: expected 1 argument(s), got 2; usage: show N"),
        ("start 0", "start: expected an item id such as 3 or #3, got '0'; usage: start N [REASON]"),
        ("reject 4", "reject: expected 2 argument(s), got 1; usage: reject N REASON"),
        ("say 4", "say: expected 2 argument(s), got 1; usage: say N TEXT"),
        ("cost year", "cost: expected today or week, got 'year'; usage: cost [today|week]"),
        ("ambient maybe", "ambient: expected on or off, got 'maybe'; usage: ambient on|off"),
        (
            "timer 3 25:00",
            "timer: expected a time as HH:MM (00:00 to 23:59), got '25:00'; usage: timer N HH:MM | timer cancel N",
        ),
        (
            "timer 3",
            "timer: expected an item and a time, or cancel and an item; got 1 argument(s); "
            "usage: timer N HH:MM | timer cancel N",
        ),
    ],
)
def test_a_command_said_wrong_is_refused_naming_what_and_its_usage(said: str, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse(said)
    assert refused.value.field == "chat" and str(refused.value) == f"chat: {words}"


def test_help_lists_every_command_the_parser_takes_with_its_usage() -> None:
    shown = help_text()
    for spec in COMMANDS:
        assert f"{spec.usage} — {spec.help}" in shown
        try:  # every listed name is a command: taken, or refused for its missing arguments
            assert not isinstance(parse(spec.name), FreeText)
        except ConfigError as refused:
            assert f"usage: {spec.usage}" in str(refused)
    assert "backlog = ls" in shown


BOT = ("gangline", "@gangline:example.org", "<@U024BE7LH>")


@pytest.mark.parametrize(
    ("said", "ambient", "command"),
    [
        ("gangline status", False, "status"),
        ("gangline: status", False, "status"),
        ("Gangline, show 3", False, "show 3"),
        ("@gangline show 3", False, "show 3"),
        ("@gangline:example.org: start 2", False, "start 2"),
        ("<@U024BE7LH> approve 4", False, "approve 4"),
        ("status", False, None),  # not named: not for the bot
        ("ganglinez status", False, None),
        ("tell gangline status", False, None),  # a mention counts at the start only
        ("status", True, "status"),  # an ambient room: every message is
        ("gangline status", True, "status"),
    ],
)
def test_a_message_is_for_the_bot_when_it_names_it_first_however_the_client_renders_it(
    said: str, ambient: bool, command: str | None
) -> None:
    assert addressed(said, BOT, ambient) == command


def test_discord_renders_a_nickname_mention_with_a_bang() -> None:
    assert addressed("<@!80351110224678912> status", ("<@80351110224678912>",)) == "status"


@pytest.mark.parametrize(
    ("said", "parsed"),
    [
        ("allow", Command("allow")),
        ("allow #3", Command("allow", item_id=3)),
        ("allow 0123456789abcdef", Command("allow", request_id="0123456789abcdef")),
        ("deny", Command("deny")),
        ("deny 3 not on a Friday", Command("deny", item_id=3, rest="not on a Friday")),
        ("deny never push", Command("deny", rest="never push")),
        ("always allow 3", Command("always", item_id=3)),
        ("ALWAYS", Command("always")),
    ],
)
def test_a_permission_answer_names_its_request_by_item_id_or_nothing(said: str, parsed: Command) -> None:
    assert parse(said) == parsed


def test_an_answer_with_more_than_its_request_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"always: expected an item such as #3 or a request id, got '4'"):
        parse("always 3 4")


TOKYO = ZoneInfo("Asia/Tokyo")
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("now", "at", "zone", "expected"),
    [
        (datetime(2026, 12, 6, 8, 0, tzinfo=TOKYO), (9, 30), TOKYO, datetime(2026, 12, 6, 9, 30, tzinfo=TOKYO)),
        (datetime(2026, 12, 6, 10, 0, tzinfo=TOKYO), (9, 30), TOKYO, datetime(2026, 12, 7, 9, 30, tzinfo=TOKYO)),
        (datetime(2026, 12, 6, 9, 30, tzinfo=TOKYO), (9, 30), TOKYO, datetime(2026, 12, 7, 9, 30, tzinfo=TOKYO)),
        # 02:30 does not exist in Berlin on 29 March 2026 (clocks go from 02:00 to 03:00): 03:30, as cron has it
        (datetime(2026, 3, 29, 1, 0, tzinfo=BERLIN), (2, 30), BERLIN, datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN)),
        # 02:30 comes twice in Berlin on 25 October 2026: the first
        (datetime(2026, 10, 25, 1, 0, tzinfo=BERLIN), (2, 30), BERLIN, datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ],
)
def test_a_timer_is_the_next_time_the_zones_clocks_show_it(
    now: datetime, at: tuple[int, int], zone: ZoneInfo, expected: datetime
) -> None:
    assert next_at(*at, now.timestamp(), zone) == expected.timestamp()
