"""The fan-out benchmark's subscribers: SSE clients on raw loopback sockets, in a process of their own.

``python -m gangline.bench.subscribers URL RESULT --agents N --subscribers M`` follows the
server's pipeline stream for ``run_started`` events; subscriber *k* follows the (*k* mod *N*)-th
run to start through ``/api/runs/{id}/events`` until the stream's ``end``. It prints ``ready``
once the pipeline stream is open and writes a ``Report`` (JSON) to RESULT when every
subscriber is done.

Each record whose raw line the fake CLI stamped (``--stamp``) is timed from that stamp to
the moment its bytes reached this process (``data_received``, before any parsing), so a
busy parser here adds nothing to the figure. Lines written before a subscriber's stream
opened reach it from the run log as catch-up, are counted apart and not timed. The clients
are ``asyncio.Protocol`` objects over plain sockets rather than httpx: the subscribers share
the machine's cores with the server, and a lighter client leaves the server more of them.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

STAMP_KEY = b'"fake_written_at":'  # what the fake CLI's --stamp puts first in each line
OnMessage = Callable[[bytes, int | None, bytes, float], bool]  # event, id, data, arrival; False: hang up


class Tally(msgspec.Struct):
    """What one subscriber received from its run's stream."""

    run_id: str
    status: int = 0  # the HTTP status of the stream
    opened_at: float = 0.0  # epoch seconds when the response head arrived
    records: int = 0  # messages with an id (the run's records)
    last_id: int = 0
    out_of_order: int = 0  # ids that were not the previous id plus one: a duplicate or a hole
    stamped: int = 0  # records carrying a stamped line
    catch_up: int = 0  # ... whose line was written before the stream opened (not timed)
    gaps: int = 0  # ``event: gap`` messages: cut off from the live bus, caught up from the log
    ended: bool = False  # ``event: end`` arrived
    end_last_id: int = -1  # the last id the ``end`` message announced
    stamps: list[float] = msgspec.field(default_factory=list)  # of the timed lines, in order
    latencies_s: list[float] = msgspec.field(default_factory=list)  # for each of ``stamps``

    def on_message(self, event: bytes, record_id: int | None, data: bytes, arrived: float) -> bool:
        if event == b"end":
            self.ended = True
            self.end_last_id = int(msgspec.json.decode(data)["last_id"])
            return False
        if event == b"gap":
            self.gaps += 1
            return True
        if record_id is None:
            return True
        self.records += 1
        if record_id != self.last_id + 1:
            self.out_of_order += 1
        self.last_id = record_id
        stamp = stamp_of(data)
        if stamp is not None:
            self.stamped += 1
            if stamp >= self.opened_at:
                self.stamps.append(stamp)
                self.latencies_s.append(arrived - stamp)
            else:
                self.catch_up += 1
        return True


def stamp_of(data: bytes) -> float | None:
    """The fake CLI's write time in a record (its raw line) or a line, if it carries one."""
    at = data.find(STAMP_KEY)
    if at < 0:
        return None
    start = at + len(STAMP_KEY)
    return float(data[start : data.index(b",", start)])


class Report(msgspec.Struct):
    subscribers: list[Tally]
    cpu_s: float  # this process's user + system time
    peak_rss_mb: float
    error: str | None = None


class _Response:
    """One HTTP/1.1 response, fed as it arrives: the status line and headers, then the (chunked) body."""

    def __init__(self) -> None:
        self._buf = b""
        self.status = 0
        self._chunked = False
        self._left = 0  # bytes of the current chunk still to come
        self._skip = 0  # bytes of the CRLF after a chunk still to skip
        self.complete = False

    def feed(self, data: bytes) -> bytes:
        """The body bytes in ``data``."""
        buf = self._buf + data
        if not self.status:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._buf = buf
                return b""
            status_line, *headers = buf[:end].decode("latin-1").split("\r\n")
            self.status = int(status_line.split()[1])
            self._chunked = any(h.lower().replace(" ", "") == "transfer-encoding:chunked" for h in headers)
            buf = buf[end + 4 :]
        if not self._chunked:
            self._buf = b""
            return buf
        out = []
        while buf and not self.complete:
            if self._skip:
                taken = min(self._skip, len(buf))
                buf, self._skip = buf[taken:], self._skip - taken
            elif self._left:
                piece = buf[: self._left]
                out.append(piece)
                buf, self._left = buf[len(piece) :], self._left - len(piece)
                self._skip = 0 if self._left else 2
            else:
                line_end = buf.find(b"\r\n")
                if line_end < 0:
                    break
                self._left = int(buf[:line_end].split(b";")[0], 16)
                buf = buf[line_end + 2 :]
                self.complete = self._left == 0
        self._buf = buf
        return b"".join(out)


class _Events:
    """Server-Sent Events framing: messages end at a blank line; ``:`` lines are comments."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[bytes, int | None, bytes]]:
        *blocks, self._buf = (self._buf + data).split(b"\n\n")
        messages = []
        for block in blocks:
            event, record_id, lines = b"message", None, []
            for line in block.split(b"\n"):
                name, _, value = line.partition(b":")
                value = value[1:] if value.startswith(b" ") else value
                if name == b"data":
                    lines.append(value)
                elif name == b"event":
                    event = value
                elif name == b"id":
                    record_id = int(value)
            if lines or event != b"message":
                messages.append((event, record_id, b"\n".join(lines)))
        return messages


class _Stream(asyncio.Protocol):
    """One GET of an event stream; ``opened`` gets the status and arrival time of the head, ``closed`` the end."""

    def __init__(self, request: bytes, on_message: OnMessage) -> None:
        loop = asyncio.get_running_loop()
        self.request = request
        self.on_message = on_message
        self.opened: asyncio.Future[tuple[int, float]] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._response = _Response()
        self._events = _Events()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        arrived = time.time()  # first thing: what follows is this process's work, not the server's
        body = self._response.feed(data)
        if self._response.status and not self.opened.done():
            self.opened.set_result((self._response.status, arrived))
            if self._response.status != 200:
                self.close()
                return
        for event, record_id, payload in self._events.feed(body):
            if not self.on_message(event, record_id, payload, arrived):
                self.close()
                return
        if self._response.complete:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_result((0, time.time()))
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _get(host: str, port: int, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
    ).encode()


async def _open(host: str, port: int, path: str, on_message: OnMessage) -> _Stream:
    stream = _Stream(_get(host, port, path), on_message)
    await asyncio.get_running_loop().create_connection(lambda: stream, host, port)
    return stream


async def _follow(host: str, port: int, tally: Tally) -> None:
    stream = await _open(host, port, f"/api/runs/{tally.run_id}/events", tally.on_message)
    tally.status, tally.opened_at = await stream.opened
    await stream.closed


async def subscribe(
    url: str, agents: int, subscribers: int, tallies: list[Tally], on_ready: Callable[[], None]
) -> None:
    """Follow the first ``agents`` runs to start with ``subscribers`` streams, round robin, to their ends.

    Each stream's ``Tally`` is appended to ``tallies`` as it opens, so a timeout still leaves them.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    started: asyncio.Queue[str] = asyncio.Queue()

    def on_pipeline_event(event: bytes, _id: int | None, data: bytes, _arrived: float) -> bool:
        if event == b"run_started":
            started.put_nowait(str(msgspec.json.decode(data)["run_id"]))
        return True

    watcher = await _open(host, port, "/api/events?kind=run_started&after=0", on_pipeline_event)
    status, _ = await watcher.opened
    if status != 200:
        raise RuntimeError(f"the pipeline stream answered {status}")
    on_ready()
    runs: list[str] = []
    async with asyncio.TaskGroup() as tg:
        while len(runs) < agents:
            run_id = await started.get()
            if run_id in runs:
                continue
            runs.append(run_id)
            for _ in range(len(runs) - 1, subscribers, agents):  # subscribers k = this run's index mod agents
                tallies.append(Tally(run_id))
                tg.create_task(_follow(host, port, tallies[-1]))
        watcher.close()


def _usage() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


async def _main(args: argparse.Namespace) -> Report:
    tallies: list[Tally] = []

    def ready() -> None:
        sys.stdout.write("ready\n")
        sys.stdout.flush()

    try:
        async with asyncio.timeout(args.timeout):
            await subscribe(args.url, args.agents, args.subscribers, tallies, ready)
    except (TimeoutError, OSError, RuntimeError) as err:
        return Report(tallies, *_usage(), error=f"{type(err).__name__}: {err}")
    return Report(tallies, *_usage())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gangline.bench.subscribers", description=__doc__)
    p.add_argument("url", help="the server, http://127.0.0.1:PORT")
    p.add_argument("result", type=Path, help="where to write the report (JSON)")
    p.add_argument("--agents", type=int, required=True, help="how many runs to follow")
    p.add_argument("--subscribers", type=int, required=True, help="how many streams, spread over the runs")
    p.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    args = p.parse_args(argv)
    report = asyncio.run(_main(args))
    args.result.write_bytes(msgspec.json.encode(report))
    return 0 if report.error is None else 1


if __name__ == "__main__":
    sys.exit(main())
