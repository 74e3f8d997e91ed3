"""gangline's MCP endpoint at ``/mcp``: one endpoint, three tool sets, chosen by the bearer token.

A run's token reaches the agents' tools (``mcp_agents``), and only for that run's own item and
worktree. The server token (the REST API's, when one is configured) reaches the people's tools
(``mcp_people``). A chat agent's token reaches the people's tools and the permission prompt tool,
acting as the agent, for as long as its run lives. No set reaches another: each is its own MCP
server with its own sessions, so an item's agent never even sees the people's tools, and a
person's token is never taken for a run's. With no server token configured, a request without a
token is a person (the app's Guard admits only loopback then); an unknown or revoked token is
refused with 401.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from gangline.pipeline.grants import ChatGrant, Grant
from gangline.server import mcp_agents, mcp_people
from gangline.server.mcp_access import PRINCIPAL, Hub, Person
from gangline.server.state import ServerState

SESSION_IDLE_S = 4 * 3600  # an agent may go hours between MCP calls; a gone client's session ends then


def _quiet_server(instructions: str) -> MCPServer:
    # MCPServer() calls logging.basicConfig (a rich handler at INFO). A library must not set up
    # the application's logging; basicConfig does nothing while the root logger has a handler.
    root = logging.getLogger()
    placeholder = logging.NullHandler()
    empty = not root.handlers
    if empty:
        root.addHandler(placeholder)
    try:
        server: MCPServer = MCPServer("gangline", instructions=instructions, log_level="WARNING")
    finally:
        if empty:
            root.removeHandler(placeholder)
    # The app's Guard already checks Host and Origin (and the token); the SDK's own check knows
    # only loopback names and would refuse a server that a token lets listen further.
    server.streamable_http_app(
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        session_idle_timeout=SESSION_IDLE_S,
    )
    return server


class GanglineMcp:
    """The ASGI endpoint for ``/mcp`` (an instance is the app) and the two servers behind it."""

    def __init__(self, token: str | None, state: ServerState) -> None:
        self.hub = Hub(token, state)
        self.agents_server = _quiet_server(mcp_agents.INSTRUCTIONS)
        self.people_server = _quiet_server(mcp_people.INSTRUCTIONS)
        self.chat_server = _quiet_server(mcp_people.INSTRUCTIONS)
        mcp_agents.register(self.agents_server, self.hub)
        mcp_people.register(self.people_server, self.hub)
        mcp_people.register(self.chat_server, self.hub)
        mcp_agents.register_permission_tool(self.chat_server, self.hub)

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Run the servers' session managers (enter it in the app's lifespan)."""
        async with (
            self.agents_server.session_manager.run(),
            self.people_server.session_manager.run(),
            self.chat_server.session_manager.run(),
        ):
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        principal = self.hub.principal(Headers(scope=scope))
        if principal is None:
            body = {
                "error": {"code": "unauthorized", "message": "this MCP endpoint needs a run's or the server's token"}
            }
            await JSONResponse(body, 401, {"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        key = "person" if isinstance(principal, Person) else f"run:{principal.run_id}"
        # The SDK binds a session to the credential that opened it: another token gets a 404 for it.
        user = AuthenticatedUser(AccessToken(token=key, client_id=key, scopes=[]))
        scope = {**scope, PRINCIPAL: principal, "user": user}
        server = (
            self.agents_server
            if isinstance(principal, Grant)
            else self.chat_server
            if isinstance(principal, ChatGrant)
            else self.people_server
        )
        await server.session_manager.handle_request(scope, receive, send)
