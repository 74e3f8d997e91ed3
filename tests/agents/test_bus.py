"""The bus: fan-out, a slow subscriber cut off with a gap, and replay that closes the gap."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gangline.agents.bus import GAP_RECORD_ID, Bus, follow
from gangline.agents.runlog import RunLog, replay
from gangline.core.events import Gap, Record, TextDelta


def deltas(n: int) -> list[tuple[TextDelta, None]]:
    return [(TextDelta(text=str(i)), None) for i in range(n)]


async def test_every_subscriber_gets_every_record_in_order(tmp_path: Path) -> None:
    bus = Bus()
    subs = [bus.subscribe() for _ in range(4)]
    with RunLog(tmp_path / "r.jsonl") as log:
        bus.publish_nowait(log.append(deltas(3), 0.0))
        bus.publish_nowait(log.append(deltas(2), 0.0))
    bus.close()
    for sub in subs:
        assert [r.id async for r in sub] == [1, 2, 3, 4, 5]


async def test_a_slow_subscriber_is_cut_off_with_a_gap_and_never_blocks_the_publisher(tmp_path: Path) -> None:
    bus = Bus()
    slow = bus.subscribe(maxsize=3)
    fast = bus.subscribe(maxsize=100)
    with RunLog(tmp_path / "r.jsonl") as log:
        for _ in range(5):
            bus.publish_nowait(log.append(deltas(2), 0.0))  # returns at once although nobody reads
    got = [r async for r in slow]
    assert [r.id for r in got] == [1, 2, 3, GAP_RECORD_ID]
    assert got[-1].event == Gap(after_id=3, dropped_from_id=4)
    assert slow.cut_off and bus.statistics()["cut_offs"] == 1
    bus.close()
    assert [r.id async for r in fast] == list(range(1, 11))


async def test_follow_replays_the_log_across_a_gap_so_nothing_is_missed_or_repeated(tmp_path: Path) -> None:
    bus = Bus()
    path = tmp_path / "r.jsonl"
    log = RunLog(path)
    bus.publish_nowait(log.append(deltas(5), 0.0))  # before the follower arrives
    seen: list[int] = []
    started = asyncio.Event()

    async def follower() -> None:
        async for record in follow(bus, lambda after: replay(path, after), after_id=2, maxsize=4):
            seen.append(record.id)
            started.set()
            if len(seen) == 3:
                # Fall far behind: 20 records arrive while this follower is away.
                for _ in range(10):
                    bus.publish_nowait(log.append(deltas(2), 0.0))

    async with asyncio.TaskGroup() as tg:
        tg.create_task(follower())
        await started.wait()
        bus.publish_nowait(log.append(deltas(3), 0.0))
        log.close()
        bus.close()
    assert seen == list(range(3, log.last_id + 1))
    assert bus.statistics()["cut_offs"] >= 1  # the follower really fell behind


async def test_a_subscriber_that_joins_after_close_ends_at_once() -> None:
    bus = Bus()
    bus.close()
    assert [r async for r in bus.subscribe()] == []
    assert await bus.subscribe().next_batch() == []


async def test_next_batch_hands_over_everything_queued(tmp_path: Path) -> None:
    bus = Bus()
    sub = bus.subscribe()
    with RunLog(tmp_path / "r.jsonl") as log:
        bus.publish_nowait(log.append(deltas(3), 0.0))
        bus.publish_nowait(log.append(deltas(1), 0.0))
    batch: list[Record] = await sub.next_batch()
    assert [r.id for r in batch] == [1, 2, 3, 4] and sub.qsize() == 0
