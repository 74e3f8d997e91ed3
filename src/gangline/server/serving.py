"""``gangline serve``: the app on uvicorn, loopback unless a token guards it, stopped gracefully and bounded."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from gangline.cli.client import announce_server, withdraw_server
from gangline.core.errors import ConfigError
from gangline.pipeline.grants import agent_mcp_url
from gangline.project.config import ProjectConfig, ProjectPaths
from gangline.server.app import Serving, create_app, is_loopback
from gangline.store import open_sqlite

MIN_TOKEN_CHARS = 16
GRACEFUL_S = 5  # open connections (event streams never end by themselves) get this long to finish
START_BOUND_S = 30  # serving(): how long the server may take to listen
_MAKE_TOKEN = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def read_token(env: Mapping[str, str], name: str) -> str | None:
    """The bearer token from the environment variable ``name`` (never a flag: it would show in ps and history)."""
    value = env.get(name, "").strip()
    if not value:
        return None
    if len(value) < MIN_TOKEN_CHARS:
        raise ConfigError(name, f"a token needs at least {MIN_TOKEN_CHARS} characters; make one with: {_MAKE_TOKEN}")
    return value


def check_bind(host: str, token: str | None, token_env: str) -> None:
    """Refuse to serve beyond this machine without a token."""
    if token is None and not is_loopback(host):
        raise ConfigError(
            "--host",
            f"{host} is not a loopback address, and serving it without a token would let anyone who can reach it "
            f"drive the agents; set {token_env} to a secret of at least {MIN_TOKEN_CHARS} characters "
            f"(make one with: {_MAKE_TOKEN}), or serve 127.0.0.1",
        )


class Server(uvicorn.Server):
    """uvicorn's server, telling ``on_ready`` its URL once it listens (port 0 resolved), and ``on_closing``
    when it begins to shut down (after which uvicorn may re-raise SIGTERM and end the process)."""

    def __init__(
        self,
        config: uvicorn.Config,
        serving: Serving,
        on_ready: Callable[[str], None],
        on_closing: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(config)
        self.bind_error: ConfigError | None = None
        self.serving = serving
        self.on_ready = on_ready
        self.on_closing = on_closing

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

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Before uvicorn waits for open connections: event streams end now instead of at the timeout.
        self.serving.closing.set()
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
) -> Server:
    """A server for ``app``; it stops by itself if the orchestrator does (a crash, or a locked project)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_S,
    )
    serving: Serving = app.state.serving
    if port:
        app.state.agent_mcp_url = agent_mcp_url(f"http://{host}:{port}")

    def ready(url: str) -> None:
        app.state.orchestrator.agents.mcp_url = agent_mcp_url(url)
        on_ready(url)

    server = Server(config, serving, ready, on_closing)
    serving.on_stop = lambda: setattr(server, "should_exit", True)
    return server


async def serve_app(
    app: FastAPI,
    host: str,
    port: int,
    on_ready: Callable[[str], None],
    on_closing: Callable[[], None] = lambda: None,
) -> None:
    """Serve until SIGINT / SIGTERM (uvicorn's handlers) or the orchestrator stops; raise what stopped it."""
    server = build_server(app, host, port, on_ready, on_closing)
    await server.serve()
    if server.bind_error is not None:
        raise server.bind_error
    error = app.state.serving.error
    if error is not None:
        raise error


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
            serving_state: Serving = app.state.serving
            async with asyncio.timeout(GRACEFUL_S + serving_state.shutdown_s + 10):
                await task


def run_server(
    paths: ProjectPaths,
    config: ProjectConfig,
    env: Mapping[str, str],
    host: str,
    port: int,
    token: str | None,
    guide: str,
    on_ready: Callable[[str], None],
) -> None:
    store = open_sqlite(paths.db_file, patient=True)

    def ready(url: str) -> None:
        announce_server(paths, url)  # .gangline/server.json: how the CLI on this machine finds us
        on_ready(url)

    try:
        app = create_app(paths, config, store, env, token=token, guide=guide)
        asyncio.run(serve_app(app, host, port, ready, lambda: withdraw_server(paths)))
    finally:
        withdraw_server(paths)  # when serving failed before it could shut down
        store.close()
