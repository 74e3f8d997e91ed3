"""The durable run log: monotonic ids, replay from an id, recovery from a torn write."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from gangline.agents.runlog import RunLog, replay, replay_tail
from gangline.core.errors import RunLogError
from gangline.core.events import RawOutput, TextDelta


def test_ids_keep_increasing_across_reopens_and_replay_starts_after_an_id(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with RunLog(path) as log:
        log.append([(TextDelta(text="a"), msgspec.Raw(b'{"x":1}')), (TextDelta(text="b"), None)], 1.5)
    with RunLog(path) as log:
        assert log.last_id == 2
        log.append([(RawOutput(text="c"), None)], 2.0)
    assert [r.id for r in replay(path)] == [1, 2, 3]
    after = list(replay(path, after_id=1))
    assert [r.event for r in after] == [TextDelta(text="b"), RawOutput(text="c")]
    assert bytes(next(iter(replay(path))).raw) == b'{"x":1}'


def test_a_torn_last_line_from_a_crash_is_dropped_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with RunLog(path) as log:
        log.append([(TextDelta(text="kept"), None)], 0.0)
    with open(path, "ab") as f:
        f.write(b'{"id":2,"ts":0.0,"event":{"kind":"text_de')
    assert [r.id for r in replay(path)] == [1]  # readers skip it too
    with RunLog(path) as log:
        assert log.last_id == 1
        log.append([(TextDelta(text="next"), None)], 0.0)
    assert [r.event.text for r in replay(path)] == ["kept", "next"]


def test_a_corrupt_line_in_the_middle_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"id":1,"ts":0,"event":{"kind":"raw_output","text":"x"}}\nnot a record\n')
    with pytest.raises(RunLogError, match="line 2 is not a record"):
        list(replay(path))


def test_reading_a_missing_log_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RunLogError, match="cannot read"):
        list(replay(tmp_path / "absent.jsonl"))


def test_the_tail_of_a_long_log_is_its_last_whole_records_in_order(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with RunLog(path) as log:
        log.append([(RawOutput(text=f"line {n:04d} " + "x" * 80), None) for n in range(1, 1001)], 0.0)
    with open(path, "ab") as f:
        f.write(b'{"id":1001,"ts":0.0,"event":{"kind":"raw_out')  # a write in progress
    tail = list(replay_tail(path, max_bytes=2000))
    assert 10 <= len(tail) < 30 and [r.id for r in tail] == list(range(1001 - len(tail), 1001))
    assert list(replay_tail(path, max_bytes=1 << 20)) == list(replay(path))
