"""Chat's rows in the real store, on SQLite and PostgreSQL: a message taken up once, the outbox in order, each room."""

from __future__ import annotations

from contextlib import closing

import pytest

from gangline.core.errors import RunnerError
from gangline.core.events import RunOutcome
from gangline.core.profiles import Role
from gangline.core.records import NewRun, RunEnd
from gangline.store import Store, open_store
from kits.clock import Clock


def test_a_message_is_taken_up_once_per_transport_and_forgotten_after_the_keeping_time(
    store: Store, clock: Clock
) -> None:
    assert store.take_up("matrix", "$1") and not store.take_up("matrix", "$1") and store.take_up("slack", "$1")
    clock.now = 5000.0
    assert store.prune_chat(before=2000.0) == 2
    assert store.take_up("matrix", "$1")


def test_the_outbox_is_sent_oldest_first_and_a_room_can_be_skipped(store: Store) -> None:
    store.queue_notice("matrix", "!a", "#1 is blocked", through=7, request_id=None)
    answer = store.queue_reply("matrix", "!b", "backlog 1", reply_to="$said")
    store.queue_notice("matrix", "!a", "#2 is merged", through=9)
    assert [r.text for r in store.unsent("matrix")] == ["#1 is blocked", "backlog 1", "#2 is merged"]
    assert [r.room for r in store.unsent("matrix", skip_rooms={"!a"})] == ["!b"]
    store.mark_sent(answer, "$sent")
    assert store.sent_message("matrix", "$sent") is not None and store.sent_message("matrix", "$other") is None
    assert [r.text for r in store.unsent("matrix")] == ["#1 is blocked", "#2 is merged"]
    assert store.chat_room("matrix", "!a").notified_through == 9
    assert store.unsent("slack") == []
    assert store.take_back("matrix", "$sent") and not store.take_back("matrix", "$never-sent")
    assert [r.text for r in store.unsent("matrix")] == ["#1 is blocked", "backlog 1", "#2 is merged"]


def test_a_room_keeps_its_ambient_setting_and_cursor_across_a_reopen(store: Store, database_url: str) -> None:
    assert store.chat_room("matrix", "!a").ambient is None
    store.set_ambient("matrix", "!a", True)
    store.queue_notice("matrix", "!a", None, through=42)  # past events that were no news
    store.close()
    with closing(open_store(database_url, Clock())) as again:
        room = again.chat_room("matrix", "!a")
        assert (room.ambient, room.notified_through) == (True, 42) and again.unsent("matrix") == []


def test_a_room_never_has_two_live_chat_agent_runs_and_its_session_is_kept(store: Store) -> None:

    def chat_run(run_id: str, room: str) -> NewRun:
        return NewRun(run_id, None, Role.CHAT, "helper", 1, "/tmp/w", f"/tmp/{run_id}.jsonl", None, "matrix", room)

    store.start_run(chat_run("chat-1", "!a"), None, "gangline")
    store.start_run(chat_run("chat-2", "!b"), None, "gangline")  # another room: at the same time
    with pytest.raises(RunnerError, match="the chat room '!a' has a live run already"):
        store.start_run(chat_run("chat-3", "!a"), None, "gangline")
    store.finish_run("chat-1", RunEnd(RunOutcome.SUCCEEDED, "completed", "s-1", None, 0.02), "gangline")
    store.start_run(chat_run("chat-3", "!a"), None, "gangline")  # the first one ended: the next may start
    store.set_agent_session("matrix", "!a", "s-1")
    assert store.chat_room("matrix", "!a").agent_session == "s-1"
    assert (store.count_runs(None), store.get_run("chat-1").item_id) == (3, None)
    (chat,) = store.ledger("item")
    assert (chat.key, chat.runs, chat.cost_usd) == ("chat", 3, 0.02)
