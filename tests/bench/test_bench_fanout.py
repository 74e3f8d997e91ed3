"""The fan-out benchmark: a small real run through the server, its SSE client, its loss check, and --stamp."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gangline.bench.fanout import _check_fanout, _Logged, fanout
from gangline.bench.subscribers import Report, Tally, _Events, _Response, stamp_of
from gangline.core.errors import ConfigError


async def test_fanout_benchmark_delivers_every_line_to_every_subscriber_and_reports_sane_figures(
    tmp_path: Path,
) -> None:
    figures = await fanout(agents=2, rate=50, subscribers=3, seconds=2, env=dict(os.environ), workdir=tmp_path)

    shown = json.loads(json.dumps(figures.as_dict()))
    assert (shown["agents"], shown["subscribers"]) == (2, 3)
    assert shown["emitted"] == 2 * 100
    # Subscribers 0 and 2 follow the first run to start, subscriber 1 the second.
    assert shown["delivered"] == shown["expected_deliveries"] == 3 * 100
    assert 0 <= shown["catch_up"] <= shown["delivered"]
    assert 0 <= shown["latency_ms_p50"] <= shown["latency_ms_p99"] <= shown["latency_ms_max"]
    assert shown["latency_ms_max"] > 0
    # The steady window (both agents streaming) may be empty on a slow machine: its figures are then 0.
    assert shown["steady_latency_ms_max"] <= shown["latency_ms_max"] and shown["steady_s"] >= 0
    assert shown["peak_rss_mb"] > 0 and shown["server_cpu_s"] > 0 and shown["subscribers_cpu_s"] > 0
    # Each item ran its agent once: the run ended without a commit and, with no retries, blocked the item.
    assert sorted(p.name for p in (tmp_path / "repo" / ".gangline" / "runs").glob("*.jsonl")) == [
        "1-coder-1.jsonl",
        "2-coder-1.jsonl",
    ]


async def test_fanout_benchmark_refuses_runs_too_short_to_have_a_body(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rate x seconds >= 3"):
        await fanout(agents=1, rate=1, subscribers=1, seconds=2, env=dict(os.environ), workdir=tmp_path)


def _complete(run_id: str, last_id: int, lines: int) -> Tally:
    return Tally(run_id, status=200, records=last_id, last_id=last_id, stamped=lines, ended=True, end_last_id=last_id)


def test_the_loss_check_accepts_complete_streams_and_names_a_short_or_repeated_one() -> None:
    logged = {"1-coder-1": _Logged(12, 10, 1.0, 2.0)}
    complete = _complete("1-coder-1", 12, 10)
    _check_fanout(Report([complete], 0.1, 1.0), logged, agents=1, subscribers=1, lines=10)

    short = _complete("1-coder-1", 11, 9)
    repeated = _complete("1-coder-1", 12, 10)
    repeated.out_of_order = 1
    for broken in (short, repeated):
        with pytest.raises(RuntimeError, match="1-coder-1"):
            _check_fanout(Report([broken], 0.1, 1.0), logged, agents=1, subscribers=1, lines=10)


def test_the_client_reads_a_chunked_event_stream_fed_one_byte_at_a_time() -> None:
    body = b'id: 1\nevent: text\ndata: {"id":1,"raw":{"fake_written_at":5.25,"type":"x"}}\n\n: keepalive\n\n'
    body += b'event: gap\ndata: {"after_id":1}\n\nid: 2\nevent: text\ndata: a\ndata: b\n\n'
    wire = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    wire += b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:30], body[30:])) + b"0\r\n\r\n"

    response, events, messages = _Response(), _Events(), []
    for n in range(len(wire)):
        messages += events.feed(response.feed(wire[n : n + 1]))

    assert response.status == 200 and response.complete
    assert [(event, record_id) for event, record_id, _ in messages] == [(b"text", 1), (b"gap", None), (b"text", 2)]
    assert messages[2][2] == b"a\nb"
    assert stamp_of(messages[0][2]) == 5.25 and stamp_of(messages[2][2]) is None


def test_a_tally_times_live_lines_and_counts_earlier_ones_as_catch_up() -> None:
    tally = Tally("1-coder-1", opened_at=10.0)
    assert tally.on_message(b"text", 1, b'{"raw":{"fake_written_at":9.5,"type":"x"}}', 10.2)
    assert tally.on_message(b"text", 2, b'{"raw":{"fake_written_at":10.5,"type":"x"}}', 10.52)
    assert tally.on_message(b"text", 4, b"{}", 10.6)  # id 3 never came
    assert not tally.on_message(b"end", None, b'{"last_id":4}', 10.7)

    assert (tally.records, tally.stamped, tally.catch_up, tally.out_of_order) == (3, 2, 1, 1)
    assert tally.stamps == [10.5] and tally.latencies_s == [pytest.approx(0.02)]
    assert tally.ended and tally.end_last_id == 4


def test_the_fake_cli_stamps_each_line_with_its_write_time_as_the_first_key() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gangline.fake.cli", "--stamp", "--repeat-to", "5", "--rate", "1000"],
        capture_output=True,
        check=True,
    ).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    stamps = [line["fake_written_at"] for line in lines]
    assert len(lines) == 5 and all(next(iter(line)) == "fake_written_at" for line in lines)
    assert stamps == sorted(stamps) and lines[0]["type"] == "system" and lines[-1]["type"] == "result"
