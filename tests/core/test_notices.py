"""Which pipeline events a person hears of in chat, and how bursts become one message."""

from __future__ import annotations

from typing import Any

import pytest

from gangline.core.notices import Coalescer, Notice, NoticeKind, message_of, notice_of
from gangline.core.records import EventRow


def row(kind: str, trigger: str | None = None, reason: str | None = None, n: int = 1, **data: Any) -> EventRow:
    return EventRow(n, 0.0, 3, "3-coder-1", kind, "gangline", trigger, None, None, None, None, reason, data)


@pytest.mark.parametrize(
    ("event", "kind", "text"),
    [
        (row("transition", "block", "3 attempts failed"), NoticeKind.BLOCKED, "#3 is blocked: 3 attempts failed"),
        (row("transition", "merge_failed", "conflicts in a.txt"), NoticeKind.MERGE_FAILED,
         "#3 could not be merged: conflicts in a.txt"),
        (row("transition", "merged", "merged as 0123abcd"), NoticeKind.MERGED, "#3 is merged: merged as 0123abcd"),
        (row("parked", reason="rate limited", until=1796400000.0), NoticeKind.RATE_LIMITED,
         "#3 waits for a rate limit until 2026-12-04 16:00 UTC: rate limited"),
        (row("permission_requested", reason="Bash", tool="Bash", request_id="abc"), NoticeKind.PERMISSION,
         "#3's agent asks to use Bash: answer allow, deny or always allow"),
        (row("run_finished", reason="CLI was killed", outcome="crashed"), NoticeKind.RUN_FAILED,
         "#3's run 3-coder-1 crashed: CLI was killed"),
    ],
)  # fmt: skip
def test_news_a_person_wants_pushed_becomes_a_notice(event: EventRow, kind: NoticeKind, text: str) -> None:
    notice = notice_of(event)
    assert notice is not None and (notice.kind, notice.text, notice.event_id) == (kind, text, 1)


@pytest.mark.parametrize(
    "event",
    [
        row("transition", "start"),
        row("transition", "coded"),
        row("run_finished", outcome="succeeded"),
        row("run_finished", outcome="stopped"),
        row("run_started"),
        row("throttled"),
    ],
)
def test_everything_else_stays_on_the_board(event: EventRow) -> None:
    assert notice_of(event) is None


def test_the_chat_agent_asking_is_named_and_its_failed_runs_are_told_in_its_own_room_not_announced() -> None:
    chat_row = row("permission_requested", tool="mcp__gangline__start_item", request_id="r-1")
    asked = notice_of(EventRow(**{**chat_row.__dict__, "item_id": None, "run_id": "chat-4"}))
    assert asked is not None and asked.text.startswith("The chat agent asks to use mcp__gangline__start_item")
    failed = row("run_finished", reason="CLI was killed", outcome="crashed")
    assert notice_of(EventRow(**{**failed.__dict__, "item_id": None, "run_id": "chat-4"})) is None


def test_a_permission_request_keeps_its_id_for_an_answer_from_chat() -> None:
    notice = notice_of(row("permission_requested", tool="Write", request_id="r-17"))
    assert notice is not None and notice.request_id == "r-17"


def notice(n: int, kind: NoticeKind = NoticeKind.MERGED) -> Notice:
    return Notice(kind, n, n, f"#{n} {kind.value}")


def test_a_lone_notice_goes_at_once_and_a_burst_after_it_is_one_message_when_the_window_ends() -> None:
    room = Coalescer(window_s=2.0)
    assert room.add(notice(1), 10.0) == [] and room.next_due == 0.0
    assert room.due(10.0) == [[notice(1)]] and room.next_due is None
    for n, at in ((2, 10.5), (3, 11.0), (4, 11.9)):
        assert room.add(notice(n), at) == [] and room.due(at) == []
    assert room.next_due == 12.0 and room.due(11.99) == []
    [sent] = room.due(12.0)
    assert [n.event_id for n in sent] == [2, 3, 4] and room.next_due is None
    assert room.add(notice(5), 20.0) == [] and room.due(20.0) == [[notice(5)]]


def test_notices_read_together_are_one_message() -> None:
    room = Coalescer(window_s=2.0)
    for n in (1, 2, 3):
        room.add(notice(n), 5.0)
    assert room.due(5.0) == [[notice(1), notice(2), notice(3)]]


def test_a_permission_request_goes_at_once_after_what_was_held() -> None:
    room = Coalescer(window_s=5.0)
    room.add(notice(1), 0.0)
    room.due(0.0)
    room.add(notice(2), 1.0)
    assert room.add(notice(3, NoticeKind.PERMISSION), 1.0) == [[notice(2)], [notice(3, NoticeKind.PERMISSION)]]


def test_a_room_s_filter_keeps_out_the_kinds_it_does_not_want() -> None:
    room = Coalescer(window_s=0.0, wanted=frozenset({NoticeKind.BLOCKED}))
    assert room.add(notice(1, NoticeKind.MERGED), 0.0) == [] and room.due(0.0) == []
    room.add(notice(2, NoticeKind.BLOCKED), 0.0)
    assert room.due(0.0) == [[notice(2, NoticeKind.BLOCKED)]]


def test_a_message_lists_its_notices_oldest_first() -> None:
    assert message_of([notice(5), notice(2)]) == "#2 merged\n#5 merged"
