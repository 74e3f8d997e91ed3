"""Serving a project: the app on uvicorn, loopback unless a token guards it, stopped gracefully and bounded.

``gangline serve``, ``gangline run`` and ``gangline demo`` are one serving core and differ only
in what they show: under each, agents get the same MCP tools and permission prompt tool, the
same budget watching and the same recovery. ``serve`` listens where it is told and shows its
URL; ``run`` listens on a private loopback port and narrates the pipeline; both write
``.gangline/server.json`` so the other commands go through them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI
from uvicorn.server import HANDLED_SIGNALS

from gangline.core.errors import ConfigError
from gangline.pipeline.grants import agent_mcp_url
from gangline.pipeline.orchestrator import Orchestrator
from gangline.pipeline.orders import Door
from gangline.project.config import ProjectConfig
from gangline.project.database import database_url
from gangline.project.paths import ProjectPaths, read_guide
from gangline.project.secret import person_secret
from gangline.project.serverfile import announce_server, withdraw_server
from gangline.server.app import create_app
from gangline.server.guard import is_loopback
from gangline.server.login import LOGIN_PATH
from gangline.server.state import state_of
from gangline.store import open_store

MIN_TOKEN_CHARS = 16
GRACEFUL_S = 5  # open connections (event streams never end by themselves) get this long to finish
START_BOUND_S = 30  # serving(): how long the server may take to listen
_MAKE_TOKEN = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"

Watch = Callable[[Orchestrator], Awaitable[object]]


def read_token(env: Mapping[str, str], name: str) -> str | None:
    """The bearer token from the environment variable ``name`` (never a flag: it would show in ps and history)."""
    value = env.get(name, "").strip()
    if not value:
        return None
    if len(value) < MIN_TOKEN_CHARS:
        raise ConfigError(name, f"a token needs at least {MIN_TOKEN_CHARS} characters; make one with: {_MAKE_TOKEN}")
    return value


def check_bind(host: str, no_auth: bool) -> None:
    """Refuse to serve beyond this machine without the person's credential."""
    if no_auth and not is_loopback(host):
        raise ConfigError(
            "--no-auth",
            f"{host} is not a loopback address, and serving it without a credential would let anyone who can "
            "reach it drive the agents; drop --no-auth (the project's secret then guards it), or serve 127.0.0.1",
        )


class Server(uvicorn.Server):
    """uvicorn's server, telling ``on_ready`` its URL once it listens (port 0 resolved), and ``on_closing``
    when it begins to shut down.

    With ``reraise_signals`` (uvicorn's way) a SIGINT or SIGTERM that stopped it is raised again
    once it has stopped, so the process ends by that signal; without, it is only recorded in
    ``stopped_by`` for the caller to report.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        on_ready: Callable[[str], None],
        on_closing: Callable[[], None],
        reraise_signals: bool = True,
    ) -> None:
        super().__init__(config)
        self.bind_error: ConfigError | None = None
        self.on_ready = on_ready
        self.on_closing = on_closing
        self.reraise_signals = reraise_signals
        self.stopped_by: int | None = None
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if self.reraise_signals:
            with super().capture_signals():
                yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: object) -> None:
        self.stopped_by = self.stopped_by or sig
        super().handle_exit(sig, frame)  # type: ignore[arg-type]

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        except SystemExit:
            # uvicorn exits the process when it cannot bind (it has logged why); say it as an error
            # of ours instead, so the caller ends with a clear message and cleans up.
            host, port = self.config.host, self.config.port
            self.bind_error = ConfigError(
                "--port", f"cannot listen on {host}:{port}: the address is in use or not available here"
            )
            self.should_exit = True
            return
        if self.started and not self.should_exit:
            self.on_ready(self.url())
            self.listening.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Before uvicorn waits for open connections: event streams end now instead of at the timeout.
        self.on_closing()
        await super().shutdown(sockets)

    def url(self) -> str:
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def build_server(
    app: FastAPI,
    host: str,
    port: int,
    on_ready: Callable[[str], None],
    on_closing: Callable[[], None] = lambda: None,
    reraise_signals: bool = True,
) -> Server:
    """A server for ``app``; it stops by itself if the orchestrator does (a crash, or a locked project)."""
    config = uvicorn.Config(app, host=host, port=port, lifespan="on", log_level="warning", access_log=False,
                            timeout_graceful_shutdown=GRACEFUL_S)  # fmt: skip
    state = state_of(app)
    if port:
        state.agent_mcp_url = agent_mcp_url(f"http://{host}:{port}")

    def ready(url: str) -> None:
        state.running().set_agent_mcp_url(agent_mcp_url(url))
        on_ready(url)

    def closing() -> None:
        state.serving.closing.set()
        on_closing()

    server = Server(config, ready, closing, reraise_signals)
    state.serving.on_stop = lambda: setattr(server, "should_exit", True)
    return server


async def serve_app(app: FastAPI, server: Server, watch: Watch | None = None) -> None:
    """Serve until a signal, the orchestrator stopping, or ``watch`` (given the orchestrator once the
    server listens) returning; then raise what stopped it, if anything went wrong."""
    state = state_of(app)
    async with asyncio.TaskGroup() as tg:
        serving = tg.create_task(server.serve())
        if watch is not None:
            tg.create_task(_watching(serving, server, state.running, watch))
    if server.bind_error is not None:
        raise server.bind_error
    if state.serving.error is not None:
        raise state.serving.error


async def _watching(serving: asyncio.Task[None], server: Server, running: Callable[[], Orchestrator],
                    watch: Watch) -> None:  # fmt: skip
    listening = asyncio.ensure_future(server.listening.wait())  # the lifespan (the orchestrator) is up then
    await asyncio.wait({listening, serving}, return_when=asyncio.FIRST_COMPLETED)
    if not listening.done():
        listening.cancel()
        return
    task = asyncio.ensure_future(watch(running()))
    await asyncio.wait({task, serving}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
        server.should_exit = True
    else:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass(frozen=True)
class Listen:
    """Where to serve, guarded by what, and whether uvicorn's signal handling ends the process."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    token: str | None = None  # from the environment; None: the project's secret (project.secret)
    reraise_signals: bool = True
    no_auth: bool = False  # loopback only: no credential at all (serve --no-auth)
    standby: bool = False  # serve reads at once, drive the pipeline once the server driving its database stops
    nodes: bool = True  # build nodes may join and lease runs (serve); run and demo keep every agent here


async def serve_project(
    paths: ProjectPaths,
    config: ProjectConfig,
    env: Mapping[str, str],
    listen: Listen,
    on_ready: Callable[[str, str | None], None],
    watch: Watch | None = None,
    doors: Sequence[Door] = (),
) -> int | None:
    """Serve the project, announced in ``.gangline/server.json`` while it listens; the signal that stopped it.

    ``on_ready`` gets the URL and a one-time login link for the board (None without a credential);
    ``doors`` run beside the pipeline (chat).
    """
    check_bind(listen.host, listen.no_auth)
    token = None if listen.no_auth else (listen.token or person_secret(paths))
    if token is not None:  # nothing an agent or a gate is given carries the person's credential
        env = {name: value for name, value in env.items() if value != token}
    store = open_store(database_url(paths, env), patient=True)
    login: list[str] = []
    listening: list[str] = []
    driving: list[bool] = []

    def announce() -> None:  # how the CLI on this machine finds us: a standby only once it drives
        if listening and (driving or not listen.standby):
            announce_server(paths, listening[0])

    def ready(url: str) -> None:
        listening.append(url)
        announce()
        on_ready(url, f"{url}{LOGIN_PATH}?code={login[0]}" if login else None)

    def took_over() -> None:
        driving.append(True)
        announce()

    try:
        app = create_app(paths, config, store, env, token=token, guide=read_guide(paths), doors=doors,
                         standby=listen.standby, on_driving=took_over, take_nodes=listen.nodes)  # fmt: skip
        if token is not None:
            login.append(state_of(app).logins.new_code())
        server = build_server(app, listen.host, listen.port, ready, lambda: withdraw_server(paths),
                              listen.reraise_signals)  # fmt: skip
        await serve_app(app, server, watch)
        return server.stopped_by
    finally:
        withdraw_server(paths)  # when serving failed before it could shut down
        store.close()


@asynccontextmanager
async def serving(app: FastAPI, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """``app`` on a real uvicorn at a free port of ``host``, for benchmarks and tests: yields its URL, then stops it.

    Both ends are bounded: listening by START_BOUND_S, stopping by the graceful timeout plus the
    orchestrator's own shutdown bound.
    """
    ready: asyncio.Queue[str] = asyncio.Queue()
    server = build_server(app, host, 0, ready.put_nowait)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(server.serve())
        try:
            async with asyncio.timeout(START_BOUND_S):
                url = await ready.get()
            yield url
        finally:
            server.should_exit = True
            async with asyncio.timeout(GRACEFUL_S + state_of(app).serving.shutdown_s + 10):
                await task
