"""The SSE streams through a real HTTP client: pipeline events and a run's records, live and resumed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Message

from gangline.agents.runlog import replay
from gangline.core.items import ItemDraft
from gangline.core.profiles import RunnerSettings
from gangline.pipeline.orchestrator import Orchestrator
from gangline.server import streams as api_events
from gangline.server.app import create_app
from gangline.server.state import state_of
from kits.pipeline_kit import FAST, Project, commit_file

WRITE = [{"say": "working on it"}, *commit_file("work/{item_slug}.txt", "done by {item_id}\n")]
BOUND_S = 60  # every read of a stream is bounded; a hang fails the test instead of the suite


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@contextlib.asynccontextmanager
async def server(
    project: Project, heartbeat_s: float = 30.0, token: str | None = None, **settings: Any
) -> AsyncIterator[FastAPI]:
    """The real app with its lifespan, which drives the project's pipeline."""
    assert project.config is not None
    runner = RunnerSettings(**{**FAST.model_dump(), **settings})
    app = create_app(project.paths, project.config, project.store, dict(os.environ), settings=runner, token=token)
    state_of(app).heartbeat_s = heartbeat_s
    async with app.router.lifespan_context(app):
        yield app


def orchestrator_of(app: FastAPI) -> Orchestrator:
    orch: Orchestrator = state_of(app).running()
    return orch


# --- a client that streams ---------------------------------------------------------------------


class StreamingTransport(httpx.AsyncBaseTransport):
    """Serves an ASGI app in process and streams its responses, which httpx's ASGITransport
    buffers whole. At most ``window`` body chunks wait unread; past that the app's ``send``
    waits, as on a real server whose client reads slowly."""

    def __init__(self, app: ASGIApp, window: int = 8) -> None:
        self.app = app
        self.window = window

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue(self.window)
        start: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        gone = asyncio.Event()
        requested = False

        async def receive() -> Message:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.set_result(message)
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    await chunks.put(message["body"])
                if not message.get("more_body", False):
                    await chunks.put(None)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "server": (request.url.host, request.url.port or 80),
            "client": ("127.0.0.1", 50000),
        }

        async def serve() -> None:
            await self.app(scope, receive, send)

        app = asyncio.create_task(serve())  # owned by the response, which awaits it on close
        await asyncio.wait([start, app], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
        if not start.done():
            app.result()
            raise AssertionError("the app returned without starting a response")
        head = start.result()
        return httpx.Response(head["status"], headers=head.get("headers", []), stream=_Body(chunks, gone, app))


class _Body(httpx.AsyncByteStream):
    def __init__(self, chunks: asyncio.Queue[bytes | None], gone: asyncio.Event, app: asyncio.Task[None]) -> None:
        self.chunks, self.gone, self.app = chunks, gone, app

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            getter = asyncio.ensure_future(self.chunks.get())
            done, _ = await asyncio.wait([getter, self.app], return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                self.app.result()  # the app failed mid-stream: raise it here
                return
            chunk = getter.result()
            if chunk is None:
                return
            yield chunk

    async def aclose(self) -> None:
        """Disconnect, and require the app to notice: a stream that ignores it would leak."""
        self.gone.set()
        async with asyncio.timeout(10):
            await self.app


@contextlib.asynccontextmanager
async def client(app: ASGIApp, window: int = 8, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = StreamingTransport(app, window)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", **kwargs) as http:
        yield http


@dataclass
class Sse:
    event: str | None = None
    data: str = ""
    id: int | None = None
    comment: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class SseReader:
    """Parses a ``text/event-stream`` response one message (or comment) at a time."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        self._lines = response.aiter_lines()

    async def next(self) -> Sse:
        message, data = Sse(), list[str]()
        async for line in self._lines:
            if line.startswith(":"):
                return Sse(comment=line[1:].strip())
            if not line:
                if data:
                    message.data = "\n".join(data)
                    return message
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                message.event = value
            elif name == "id":
                message.id = int(value)
        raise EOFError("the stream ended")

    async def read(self, until: Callable[[Sse], bool], comments: bool = False) -> list[Sse]:
        """Messages up to and including the first that satisfies ``until``."""
        got = []
        async with asyncio.timeout(BOUND_S):
            while True:
                message = await self.next()
                if message.comment is not None and not comments:
                    continue
                got.append(message)
                if until(message):
                    return got

    async def take(self, count: int) -> list[Sse]:
        got: list[Sse] = []
        while len(got) < count:
            got += await self.read(lambda _: True)
        return got


def done(message: Sse) -> bool:
    return message.event == "transition" and message.json()["to_stage"] == "done"


async def started_run(http: httpx.AsyncClient, item_id: int) -> str:
    async with http.stream("GET", "/api/events", params={"item": item_id, "kind": "run_started", "after": 0}) as resp:
        [message] = await SseReader(resp).take(1)
    run_id: str = message.json()["run_id"]
    return run_id


# --- pipeline events ---------------------------------------------------------------------------


async def test_an_items_events_arrive_live_in_order_with_their_ids(project: Project) -> None:
    project.agent("coder", [WRITE])
    project.configure()
    async with server(project) as app, client(app) as http:
        before = project.store.last_event_id()
        async with http.stream("GET", "/api/events") as resp:
            item = orchestrator_of(app).add_item(ItemDraft(title="Live"), "person")
            got = await SseReader(resp).read(done)
    last = got[-1].id
    assert last is not None
    stored = [e for e in project.store.events_after(before) if e.id <= last]
    assert [(m.id, m.event) for m in got] == [(e.id, e.kind) for e in stored]
    assert got[0].event == "created" and got[0].json()["item_id"] == item.id
    assert [m.json()["trigger"] for m in got if m.event == "transition"] == ["start", "coded", "qa_passed", "merged"]


async def test_reconnecting_with_last_event_id_gets_exactly_the_rest(project: Project) -> None:
    project.agent("coder", [WRITE])
    project.configure()
    project.add("One")
    await project.run_until_idle()
    everything = [e.id for e in project.store.events_after(0)]
    async with server(project, heartbeat_s=0.05) as app, client(app) as http:
        async with http.stream("GET", "/api/events", params={"after": 0}) as resp:
            first = await SseReader(resp).take(3)
        resume = {"Last-Event-ID": str(first[-1].id)}
        async with http.stream("GET", "/api/events", headers=resume) as resp:
            reader = SseReader(resp)
            rest = await reader.take(len(everything) - 3)
            [quiet] = await reader.read(lambda m: True, comments=True)
        assert quiet.comment == "keepalive"  # nothing more: no duplicate, no extra
        async with http.stream("GET", "/api/events", params={"after": everything[-2]}, headers=resume) as resp:
            [last] = await SseReader(resp).take(1)  # the explicit id wins over the header
    assert [m.id for m in first + rest] == everything
    assert last.id == everything[-1]


async def test_the_stream_filters_by_item_run_and_kind(project: Project) -> None:
    project.agent("coder", [WRITE])
    project.configure()
    project.add("One")
    project.add("Two")
    await project.run_until_idle()
    events = project.store.events_after(0)
    [run_two] = project.store.runs(2)
    kinds = {"run_started", "run_finished"}
    async with server(project, heartbeat_s=0.05) as app, client(app) as http:

        async def only(params: dict[str, Any], expected: list[int]) -> None:
            async with http.stream("GET", "/api/events", params={"after": 0, **params}) as resp:
                got = await SseReader(resp).read(lambda m: m.comment is not None, comments=True)
            assert [m.id for m in got[:-1]] == expected

        await only({"item": 2}, [e.id for e in events if e.item_id == 2])
        await only({"item": [1, 2], "kind": "transition"}, [e.id for e in events if e.kind == "transition"])
        await only({"kind": sorted(kinds)}, [e.id for e in events if e.kind in kinds])
        await only({"run": run_two.id}, [e.id for e in events if e.run_id == run_two.id])
    assert any(e.item_id == 1 for e in events)  # the filters had something to leave out


async def test_an_idle_stream_sends_keepalives(project: Project) -> None:
    project.agent("coder", [WRITE])
    project.configure()
    async with server(project, heartbeat_s=0.05) as app, client(app) as http, http.stream("GET", "/api/events") as resp:
        got = await SseReader(resp).read(lambda m: True, comments=True)
    assert got == [Sse(comment="keepalive")]


def test_a_line_break_in_data_becomes_another_data_line() -> None:
    assert api_events.sse(b'{"a": 1}', "x", 7) == b'id: 7\nevent: x\ndata: {"a": 1}\n\n'
    assert api_events.sse(b"[1,\n2]\r\n", "y") == b"event: y\ndata: [1,\ndata: 2]\n\n"


# --- one run's records -------------------------------------------------------------------------


async def test_a_finished_runs_stream_replays_its_whole_log_then_ends(project: Project) -> None:
    project.agent("coder", [WRITE])
    project.configure()
    item = project.add("One")
    await project.run_until_idle()
    [run] = project.store.runs(item.id)
    logged = list(replay(Path(run.log_path)))
    async with server(project) as app, client(app) as http, http.stream("GET", f"/api/runs/{run.id}/events") as resp:
        reader = SseReader(resp)
        got = await reader.read(lambda m: m.event == "end")
        with pytest.raises(EOFError):
            async with asyncio.timeout(BOUND_S):
                await reader.next()  # the server closed the stream
    assert [m.id for m in got[:-1]] == [r.id for r in logged]
    assert [m.data.encode() for m in got[:-1]] == [msgspec.json.encode(r) for r in logged]  # raw lines included
    assert got[-1].json() == {"run_id": run.id, "last_id": logged[-1].id}
    assert any(r.raw for r in logged)


async def test_a_run_stream_resumes_after_an_id_and_filters_by_kind(project: Project) -> None:
    project.agent("coder", [WRITE])
    project.configure()
    item = project.add("One")
    await project.run_until_idle()
    [run] = project.store.runs(item.id)
    logged = list(replay(Path(run.log_path)))
    kinds = ["tool_use", "run_finished"]
    async with server(project) as app, client(app) as http:
        params = {"kind": kinds}
        headers = {"Last-Event-ID": str(logged[2].id)}
        async with http.stream("GET", f"/api/runs/{run.id}/events", params=params, headers=headers) as resp:
            got = await SseReader(resp).read(lambda m: m.event == "end")
    wanted = [r.id for r in logged[3:] if msgspec.json.decode(msgspec.json.encode(r.event))["kind"] in kinds]
    assert [m.id for m in got[:-1]] == wanted and len(wanted) >= 2


async def test_a_live_runs_records_arrive_as_they_are_written_then_the_end(project: Project, tmp_path: Path) -> None:
    go = tmp_path / "go"
    project.agent("coder", [[{"say": "before"}, {"wait_for_file": str(go), "timeout_s": 60}, *WRITE]])
    project.configure()
    async with server(project, heartbeat_s=0.05) as app, client(app) as http:
        item = orchestrator_of(app).add_item(ItemDraft(title="Live run"), "person")
        run_id = await started_run(http, item.id)
        async with http.stream("GET", f"/api/runs/{run_id}/events") as resp:
            reader = SseReader(resp)
            early = await reader.read(lambda m: m.event == "assistant_text")
            assert early[-1].json()["event"]["text"] == "before"
            assert project.store.get_run(run_id).live  # delivered while the agent still runs
            go.touch()
            late = await reader.read(lambda m: m.event == "end")
    got = early + late
    assert [m.id for m in got[:-1]] == list(range(1, len(got)))
    assert got[-2].event == "run_finished"


async def test_a_slow_reader_of_a_long_run_gets_every_record_once_in_order_across_a_gap(
    project: Project, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    says = [{"say": f"line {n} " + "x" * 200} for n in range(150)]
    project.agent("coder", [[{"wait_for_file": str(go), "timeout_s": 60}, *says, *WRITE]])
    project.configure()
    async with server(project, subscriber_queue=4) as app:
        orch = orchestrator_of(app)
        async with client(app) as http:
            item = orch.add_item(ItemDraft(title="Long run"), "person")
            run_id = await started_run(http, item.id)
        async with client(app, window=1) as http, http.stream("GET", f"/api/runs/{run_id}/events") as resp:
            reader = SseReader(resp)
            got = await reader.take(1)
            bus = orch.bus(run_id)
            watcher = bus.subscribe(maxsize=1_000_000)  # learns when the run is over
            go.touch()
            async with asyncio.timeout(BOUND_S):
                async for _ in watcher:  # the stream is not read meanwhile: its client is slow
                    pass
            got += await reader.read(lambda m: m.event == "end")
    records = [m for m in got if m.event not in ("gap", "end")]
    assert [m.id for m in records] == list(range(1, len(records) + 1))
    assert records[-1].event == "run_finished" and len(records) > 150 * 3
    gaps = [m.json() for m in got if m.event == "gap"]
    assert gaps and bus.statistics()["cut_offs"] >= 1
    assert all(g["kind"] == "gap" and g["dropped_from_id"] > g["after_id"] for g in gaps)


async def test_a_client_that_goes_away_releases_its_subscription(project: Project, tmp_path: Path) -> None:
    go = tmp_path / "go"
    project.agent("coder", [[{"say": "before"}, {"wait_for_file": str(go), "timeout_s": 60}, *WRITE]])
    project.configure()
    async with server(project) as app, client(app) as http:
        orch = orchestrator_of(app)
        item = orch.add_item(ItemDraft(title="Watched"), "person")
        run_id = await started_run(http, item.id)
        bus = orch.bus(run_id)
        watchers = bus.statistics()["subscribers"]
        async with http.stream("GET", f"/api/runs/{run_id}/events") as resp:
            await SseReader(resp).take(1)
            assert bus.statistics()["subscribers"] == watchers + 1
        assert bus.statistics()["subscribers"] == watchers  # closing awaited the app, which let go
        go.touch()


# --- through the app's edges -------------------------------------------------------------------


async def test_an_unknown_run_is_a_404_before_any_stream_starts(project: Project) -> None:
    project.agent("coder", [WRITE])
    project.configure()
    async with server(project) as app, client(app) as http:
        resp = await http.get("/api/runs/9-coder-1/events")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


async def test_a_resume_id_that_is_not_a_number_is_refused_naming_it(project: Project) -> None:
    project.agent("coder", [WRITE])
    project.configure()
    async with server(project) as app, client(app) as http:
        header = await http.get("/api/events", headers={"Last-Event-ID": "soon"})
        query = await http.get("/api/events", params={"after": -1})
    assert header.status_code == 422 and header.json()["error"]["field"] == "last-event-id"
    assert query.status_code == 422 and query.json()["error"]["field"] == "after"


async def test_the_streams_need_the_servers_token(project: Project) -> None:
    project.agent("coder", [WRITE])
    project.configure()
    async with server(project, heartbeat_s=0.05, token="sesame") as app:
        async with client(app) as http:
            refused = await http.get("/api/events")
        with_token = client(app, headers={"Authorization": "Bearer sesame"})
        async with with_token as http, http.stream("GET", "/api/events") as resp:
            got = await SseReader(resp).read(lambda m: True, comments=True)
    assert refused.status_code == 401 and got == [Sse(comment="keepalive")]


async def test_over_real_http_a_dropped_client_resumes_from_its_last_id(project: Project) -> None:
    project.agent("coder", [WRITE])
    project.configure()
    project.add("One")
    await project.run_until_idle()
    everything = [e.id for e in project.store.events_after(0)]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # connections queue from now on: no waiting for the server to start
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    bound = asyncio.timeout(BOUND_S)  # uvicorn's shutdown waits for streams that never noticed their client left
    async with bound, server(project, heartbeat_s=0.05) as app, asyncio.TaskGroup() as tg:
        http_server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
        tg.create_task(http_server.serve(sockets=[sock]))
        try:
            async with httpx.AsyncClient(base_url=base_url) as http:
                async with http.stream("GET", "/api/events", params={"after": 0}) as resp:
                    first = await SseReader(resp).take(2)
                resume = {"Last-Event-ID": str(first[-1].id)}
                async with http.stream("GET", "/api/events", headers=resume) as resp:
                    reader = SseReader(resp)
                    rest = await reader.read(lambda m: m.comment is not None, comments=True)
        finally:
            http_server.should_exit = True
    # Leaving the task group waited for uvicorn, which waits for its open connections: both
    # streams stopped when their clients went away.
    assert [m.id for m in first + rest[:-1]] == everything


async def test_streams_end_when_the_server_begins_to_close(project: Project, tmp_path: Path) -> None:
    go = tmp_path / "go"
    project.agent("coder", [[{"say": "before"}, {"wait_for_file": str(go), "timeout_s": 60}, *WRITE]])
    project.configure()
    async with server(project) as app, client(app) as http:
        item = orchestrator_of(app).add_item(ItemDraft(title="Closing"), "person")
        run_id = await started_run(http, item.id)
        async with (
            http.stream("GET", "/api/events") as pipeline,
            http.stream("GET", f"/api/runs/{run_id}/events") as run,
        ):
            run_reader = SseReader(run)
            await run_reader.read(lambda m: m.event == "assistant_text")
            state_of(app).serving.closing.set()
            rest = await rest_of(run_reader)
            assert await rest_of(SseReader(pipeline)) == []
        go.touch()
    assert all(m.event != "end" for m in rest)  # not the run's end: a client resumes elsewhere


async def rest_of(reader: SseReader) -> list[Sse]:
    """The messages until the server ends the stream."""
    got = []
    async with asyncio.timeout(BOUND_S):
        with contextlib.suppress(EOFError):
            while True:
                if (message := await reader.next()).comment is None:
                    got.append(message)
    return got
