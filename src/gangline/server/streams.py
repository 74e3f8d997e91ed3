"""Server-Sent Events streams: the pipeline's events and one run's agent records, resumable by id.

Memory per client is bounded by construction. Pipeline events are pulled from the store a
page at a time and nothing is queued per client. A run's records come from its durable log
and then from the run's ``Bus``, whose subscriber queue is bounded: a client that reads
slowly through HTTP stops this generator at ``send`` (the server's flow control), its
subscription overflows and is cut off with a ``Gap``, and the stream tells the client
(``event: gap``) and carries on from the log. Every record still arrives exactly once, in
order. A client that goes away cancels the generator: Starlette's ``StreamingResponse``
listens for ``http.disconnect`` (or sees ``send`` fail), so there is no polling for it here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import msgspec
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from gangline.agents.bus import Bus
from gangline.agents.runlog import replay, stored
from gangline.core.events import Gap, Record, RunFinished
from gangline.core.records import EventRow
from gangline.pipeline.orchestrator import Orchestrator
from gangline.server.errors import ERRORS
from gangline.server.state import OrchestratorDep, state_of

POLL_S = 1.0  # re-read the store at least this often: the CLI writes it from another process
PAGE = 500  # store rows per read
CHUNK = 256  # log records per write while replaying
KEEPALIVE = b": keepalive\n\n"
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering

router = APIRouter(prefix="/api", tags=["events"], responses=ERRORS)
_encoder = msgspec.json.Encoder()

LastEventId = Annotated[
    int | None, Header(ge=0, description="Standard SSE resume header: the last id the client received")
]
After = Annotated[int | None, Query(ge=0, description="Resume after this id; wins over Last-Event-ID")]
Kinds = Annotated[list[str] | None, Query(description="Only these event kinds (repeatable)")]


def sse(data: bytes, event: str, event_id: int | None = None) -> bytes:
    """One SSE message. A line break inside the data becomes a new ``data:`` line, as the format requires."""
    head = (b"id: %d\n" % event_id if event_id is not None else b"") + b"event: " + event.encode() + b"\n"
    return head + b"".join(b"data: " + line + b"\n" for line in data.splitlines() or [b""]) + b"\n"


class EventStream(StreamingResponse):
    """A ``text/event-stream`` response; as ``response_class`` it documents the routes' media type."""

    media_type = "text/event-stream"


def _stream(body: AsyncIterator[bytes]) -> EventStream:
    return EventStream(body, headers=_HEADERS)


def _resume_from(after: int | None, last_event_id: int | None) -> int | None:
    return after if after is not None else last_event_id


class Pace:
    """When a quiet stream owes a keepalive, how long it may wait, and whether the server is closing.

    The heartbeat is the app's (``ServerState.heartbeat_s``). ``Serving.closing``, an
    ``asyncio.Event`` the server sets when it begins to shut down, ends every stream within
    ``POLL_S``: uvicorn waits for open connections before it stops, and an event stream
    never ends by itself. Clients reconnect with their last id.
    """

    def __init__(self, heartbeat_s: float, closing: asyncio.Event | None = None) -> None:
        self.heartbeat_s = heartbeat_s
        self.closing = closing if closing is not None else asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._since = self._loop.time()

    @classmethod
    def of(cls, request: Request) -> Pace:
        state = state_of(request.app)
        return cls(state.heartbeat_s, state.serving.closing)

    def sent(self) -> None:
        self._since = self._loop.time()

    def keepalive_due(self) -> bool:
        """True (and counted as sent) when the stream has been quiet for a heartbeat."""
        due = self._loop.time() - self._since >= self.heartbeat_s
        if due:
            self.sent()
        return due

    def wait_s(self) -> float:
        """How long to wait for news before the next keepalive or check."""
        return max(0.0, min(POLL_S, self.heartbeat_s - (self._loop.time() - self._since)))


# --- pipeline events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    """Which pipeline events a client asked for; empty means all."""

    items: frozenset[int] = frozenset()
    run: str | None = None
    kinds: frozenset[str] = frozenset()

    @property
    def single_item(self) -> int | None:
        """The one item the store can filter on, so a page is not mostly other items' rows."""
        return next(iter(self.items)) if len(self.items) == 1 else None

    def matches(self, row: EventRow) -> bool:
        return (
            (not self.items or row.item_id in self.items)
            and (self.run is None or row.run_id == self.run)
            and (not self.kinds or row.kind in self.kinds)
        )


@router.get("/events", response_class=EventStream, summary="Live pipeline events (Server-Sent Events)")
async def pipeline_events(
    request: Request,
    orch: OrchestratorDep,
    item: Annotated[list[int] | None, Query(description="Only these items (repeatable)")] = None,
    run: Annotated[str | None, Query(description="Only this run")] = None,
    kind: Kinds = None,
    after: After = None,
    last_event_id: LastEventId = None,
) -> EventStream:
    """Transitions, runs started and finished, gates, parking...: ``id`` is the event id,
    ``event`` its kind, ``data`` the event row as JSON. Without ``after`` or
    ``Last-Event-ID`` the stream starts from now; ``after=0`` replays everything."""
    start = _resume_from(after, last_event_id)
    if start is None:
        start = orch.store.last_event_id()
    wanted = EventFilter(frozenset(item or ()), run, frozenset(kind or ()))
    return _stream(follow_pipeline(orch, start, wanted, Pace.of(request)))


async def follow_pipeline(orch: Orchestrator, after: int, wanted: EventFilter, pace: Pace) -> AsyncIterator[bytes]:
    """Every matching event after ``after``, in id order, until the server closes.

    The orchestrator's version is read before the store, so a change made between the read
    and the wait wakes the wait at once. The poll catches the writes that bump no version:
    another process's (the CLI), and those a job makes before it finishes.
    """
    last = after
    version = orch.version
    while not pace.closing.is_set():
        rows = orch.store.events_after(last, limit=PAGE, item_id=wanted.single_item)
        if rows:
            last = rows[-1].id
            if chunk := b"".join(sse(_encoder.encode(r), r.kind, r.id) for r in rows if wanted.matches(r)):
                yield chunk
                pace.sent()
            if len(rows) == PAGE:
                continue  # more are waiting
        if pace.keepalive_due():
            yield KEEPALIVE
        version = await orch.wait_changed(version, pace.wait_s())


# --- one run's records -------------------------------------------------------------------------


@router.get(
    "/runs/{run_id}/events",
    response_class=EventStream,
    summary="One run's agent events, from its log and then live (SSE)",
)
async def run_events(
    request: Request,
    orch: OrchestratorDep,
    run_id: str,
    kind: Kinds = None,
    after: After = None,
    last_event_id: LastEventId = None,
) -> EventStream:
    """``id`` is the record id, ``event`` the event's kind, ``data`` the record as JSON (the CLI's
    raw line included). ``event: gap`` says the client fell behind the live run and the rest
    comes from the log (nothing is lost); ``event: end`` closes the stream when the run is over."""
    run = orch.store.get_run(run_id)  # NotFoundError before the stream starts: a 404
    cursor = RunCursor(Path(run.log_path), _resume_from(after, last_event_id) or 0, frozenset(kind or ()))
    return _stream(follow_run(orch, run_id, cursor, Pace.of(request)))


class RunCursor:
    """Where a client is in one run's records: the last id seen (sent or filtered out)."""

    def __init__(self, log_path: Path, after: int, kinds: frozenset[str]) -> None:
        self.log_path = log_path
        self.last = after
        self.kinds = kinds
        self.finished = False  # the log holds the run's RunFinished record

    def encode(self, records: Iterable[Record]) -> bytes:
        """The SSE messages for records not sent yet; advances the cursor past all of them."""
        out = []
        for record in records:
            if record.id <= self.last:
                continue  # already sent: the log and the live bus overlap by design
            self.last = record.id
            self.finished = self.finished or isinstance(record.event, RunFinished)
            kind = _kind(record)
            if not self.kinds or kind in self.kinds:
                out.append(sse(_encoder.encode(record), kind, record.id))
        return b"".join(out)

    def replay_chunks(self) -> Iterator[bytes]:
        """What the log holds past the cursor, ``CHUNK`` records per message batch."""
        if stored(self.log_path) is None:
            return  # the run row is written before the runner opens its log (or retention removed it)
        batch: list[Record] = []
        for record in replay(self.log_path, self.last):
            batch.append(record)
            if len(batch) == CHUNK:
                if chunk := self.encode(batch):
                    yield chunk
                batch.clear()
        if chunk := self.encode(batch):
            yield chunk


def _kind(record: Record) -> str:
    return str(record.event.__struct_config__.tag)


async def follow_run(orch: Orchestrator, run_id: str, cursor: RunCursor, pace: Pace) -> AsyncIterator[bytes]:
    """A run's records after the cursor, then ``end`` once the run is over.

    A live run in this server has a bus. Without one the run is over, or is between its row
    and its process (or between its last record and its row's end): the log is polled until
    it holds the run's end or the store says the run ended.
    """
    version = orch.version
    while not cursor.finished:
        bus = orch.bus(run_id)
        if bus is not None:
            async for chunk in _follow_bus(bus, cursor, pace):
                yield chunk
            break  # the bus closes only after the runner wrote the run's last record
        for chunk in cursor.replay_chunks():
            yield chunk
            pace.sent()
        if cursor.finished or not orch.store.get_run(run_id).live:
            break
        if pace.keepalive_due():
            yield KEEPALIVE
        version = await orch.wait_changed(version, pace.wait_s())
        if pace.closing.is_set():
            return
    if pace.closing.is_set():
        return  # not the run's end: the client resumes from its last id on the next server
    for chunk in cursor.replay_chunks():  # whatever the log got after the bus or the row ended
        yield chunk
    yield sse(_encoder.encode({"run_id": run_id, "last_id": cursor.last}), "end")


async def _follow_bus(bus: Bus, cursor: RunCursor, pace: Pace) -> AsyncIterator[bytes]:
    """``bus.follow`` in batches, with keepalives while waiting and a ``gap`` message when cut off.

    Subscribing before reading the log closes the race: the runner writes a record before it
    publishes it, so whatever the replay misses arrives on the subscription, and ids already
    sent are skipped. Taking the queue a batch at a time (``next_batch``) costs one wake-up
    and one write per published batch, and waiting on it can be timed out safely, which
    ``bus.follow``'s one-record generator cannot be.
    """
    while True:
        sub = bus.subscribe()
        try:
            for chunk in cursor.replay_chunks():
                yield chunk
                pace.sent()
            while not pace.closing.is_set():
                if pace.keepalive_due():
                    yield KEEPALIVE
                try:
                    async with asyncio.timeout(pace.wait_s()):
                        batch = await sub.next_batch()
                except TimeoutError:
                    continue
                if not batch:
                    return  # the bus closed: the run is over
                gap = batch[-1].event if isinstance(batch[-1].event, Gap) else None
                if chunk := cursor.encode(batch[:-1] if gap else batch):
                    yield chunk
                    pace.sent()
                if gap is not None:
                    yield sse(_encoder.encode(gap), "gap")
                    break  # resubscribe and catch up from the log
            else:
                return  # the server is closing
        finally:
            bus.unsubscribe(sub)
