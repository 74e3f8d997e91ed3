"""``gangline mcp``: the people's MCP tools over stdio, for a person's own assistant (Claude Code, any MCP client).

``gangline init`` names this command in the project's ``.mcp.json``. It holds no tools of its
own: it finds the server driving the project as every CLI command does (``.gangline/server.json``,
whatever port it listens on; the token from ``GANGLINE_TOKEN`` or the project's secret), and
forwards the list of tools and each call to that server's ``/mcp`` endpoint, so the tools, their
checks and their errors are the server's. It finds the server again for each request, so a
restarted server is followed; while no server runs, each request is refused with a JSON-RPC
error that says how to start one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from gangline import __version__
from gangline.cli.client import TOKEN_ENV
from gangline.project.paths import ProjectPaths
from gangline.project.secret import read_secret
from gangline.project.serverfile import live_server

NO_SERVER = -32002  # the server the tools live in is not running (as the endpoint's NOT_READY)
_CONNECT_S = 10.0
_CALL_S = 3600.0  # a tool may wait long (a run's end): the server bounds its own waits


class Upstream:
    """The project's server, asked afresh for each request: a restarted server, on any port, is simply found again.

    Each request opens its own MCP session and closes it in the same task, as the SDK's task
    groups require; on loopback that costs a few milliseconds, at an assistant's pace.
    """

    def __init__(self, paths: ProjectPaths, env: Mapping[str, str]) -> None:
        self.paths = paths
        self.env = env

    @asynccontextmanager
    async def session(self) -> AsyncIterator[ClientSession]:
        found = live_server(self.paths)
        if found is None:
            raise MCPError(
                NO_SERVER,
                f"no gangline server is running for {self.paths.root}; start one there with `gangline serve` "
                "(or `gangline run`), then ask again",
            )
        token = self.env.get(TOKEN_ENV) or read_secret(self.paths)
        headers = {"X-Gangline-Actor": "mcp"} | ({"Authorization": f"Bearer {token}"} if token else {})
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(_CONNECT_S, read=_CALL_S)) as http,
            streamable_http_client(f"{found.url}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session

    async def list_tools(self, _ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        async with self._asking() as session:
            return await session.list_tools(params=params)

    async def call_tool(self, _ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        async with self._asking() as session:
            return await session.call_tool(params.name, params.arguments or {})

    @asynccontextmanager
    async def _asking(self) -> AsyncIterator[ClientSession]:
        """A session for one request; a server that does not answer is a JSON-RPC error that says so."""
        try:
            async with self.session() as session:
                yield session
        except Exception as err:
            trouble = _connection_trouble(err)
            if trouble is None:
                raise
            raise MCPError(NO_SERVER, f"the gangline server for {self.paths.root} did not answer: {trouble}") from None


def _connection_trouble(err: BaseException) -> BaseException | None:
    """The network error in ``err`` (maybe inside the SDK's exception groups), None when it is something else."""
    if isinstance(err, BaseExceptionGroup):
        return next((found for sub in err.exceptions if (found := _connection_trouble(sub)) is not None), None)
    return err if isinstance(err, OSError | httpx2.HTTPError) else None


async def serve_stdio(paths: ProjectPaths, env: Mapping[str, str]) -> None:
    """Serve the bridge on this process's stdin and stdout until the client closes them."""
    upstream = Upstream(paths, env)
    server: Server[Any] = Server(
        "gangline",
        version=__version__,
        instructions=f"Drive the gangline server of {paths.root}: its work items, runs, gates and costs.",
        on_list_tools=upstream.list_tools,
        on_call_tool=upstream.call_tool,
    )
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())
