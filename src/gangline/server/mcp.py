"""gangline's MCP server at ``/mcp``: one endpoint, two tool sets, chosen by the bearer token.

A run's token (``grants.Grants``) reaches the agents' tools (``mcp_agent_tools``), and only for
that run's own item and worktree. The server token (the REST API's, when one is configured)
reaches the people's tools below. Neither reaches the other set: each set is its own MCP server
with its own sessions, so an agent never even sees the people's tools, and a person's token is
never taken for a run's. With no server token configured, a request without a token is a person
(the app's Guard admits only loopback then); an unknown or revoked token is refused with 401.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from gangline.core.items import ItemDraft, Kind
from gangline.core.rules import Decision
from gangline.core.stages import Stage, Trigger
from gangline.pipeline.grants import Grant
from gangline.pipeline.orchestrator import Orchestrator
from gangline.pipeline.permissions import Permissions
from gangline.server import mcp_agents as mcp_agent_tools
from gangline.server.mcp_agents import FORBIDDEN, NOT_READY, domain_errors

PRINCIPAL = "gangline.principal"  # the ASGI scope key where the endpoint leaves who is calling
SESSION_IDLE_S = 4 * 3600  # an agent may go hours between MCP calls; a gone client's session ends then
PERSON_ACTOR = "mcp"
# The server's own triggers: they need facts only the pipeline has (commits, a merge).
_SERVER_TRIGGERS = frozenset({Trigger.CODED, Trigger.MERGED})


@dataclass(frozen=True)
class Person:
    """Someone holding the server token (or anyone on loopback when the server has none)."""

    actor: str = PERSON_ACTOR


Principal = Grant | Person


def principal_of(ctx: Context) -> Principal:
    request = ctx.request_context.request
    principal = getattr(request, "scope", {}).get(PRINCIPAL)
    if not isinstance(principal, Grant | Person):
        raise MCPError(FORBIDDEN, "no credentials came with this call; gangline's MCP endpoint needs a bearer token")
    return principal


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


AGENT_INSTRUCTIONS = (
    "gangline runs you on one work item in your own git worktree. These tools reach only that item and "
    "worktree: read it (status, get_item_todos), tick criteria, run the project's gates server-side, commit, "
    "and report (QA: report_qa_result; mergemaster: report_merge_failure)."
)
PEOPLE_INSTRUCTIONS = (
    "Drive a gangline server: list, add, start, stop and move work items; answer agents' permission requests."
)


class GanglineMcp:
    """The ASGI endpoint for ``/mcp`` (an instance is the app) and the two servers behind it."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token is not None else None
        self.orchestrator: Orchestrator | None = None
        self.permissions: Permissions | None = None
        self.agents_server = _quiet_server(AGENT_INSTRUCTIONS)
        self.people_server = _quiet_server(PEOPLE_INSTRUCTIONS)
        mcp_agent_tools.register(self.agents_server, self)
        self._register_people_tools()

    def attach(self, orch: Orchestrator) -> Permissions:
        """Serve ``orch``'s runs and items; returns the permission service (REST answers through it too)."""
        permissions = Permissions(orch.store, orch.config.permissions, clock=orch.clock)
        orch.agents.grants.on_revoke.append(lambda grant: permissions.cancel_run(grant.run_id))
        self.orchestrator, self.permissions = orch, permissions
        return permissions

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Run both servers' session managers (enter it in the app's lifespan)."""
        async with self.agents_server.session_manager.run(), self.people_server.session_manager.run():
            yield

    # --- the endpoint --------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        principal = self._principal(Headers(scope=scope))
        if principal is None:
            body = {
                "error": {"code": "unauthorized", "message": "this MCP endpoint needs a run's or the server's token"}
            }
            await JSONResponse(body, 401, {"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        key = f"run:{principal.run_id}" if isinstance(principal, Grant) else "person"
        # The SDK binds a session to the credential that opened it: another token gets a 404 for it.
        user = AuthenticatedUser(AccessToken(token=key, client_id=key, scopes=[]))
        scope = {**scope, PRINCIPAL: principal, "user": user}
        server = self.agents_server if isinstance(principal, Grant) else self.people_server
        await server.session_manager.handle_request(scope, receive, send)

    def _principal(self, headers: Headers) -> Principal | None:
        authorization = headers.get("authorization")
        if authorization is None:
            return Person() if self._token is None else None
        scheme, _, credentials = authorization.partition(" ")
        given = credentials.strip()
        if scheme.lower() != "bearer" or not given:
            return None
        grant = self.orchestrator.agents.grants.resolve(given) if self.orchestrator is not None else None
        if grant is not None:
            return grant
        # compare_digest takes as long for a near miss as for a wild guess.
        if self._token is not None and hmac.compare_digest(given.encode("utf-8", "replace"), self._token):
            return Person()
        return None  # unknown or revoked: never quietly taken for a person

    # --- what tools need --------------------------------------------------------------------------

    def ready(self) -> tuple[Orchestrator, Permissions]:
        if self.orchestrator is None or self.permissions is None:
            raise MCPError(NOT_READY, "gangline is starting; try again in a moment")
        return self.orchestrator, self.permissions

    def grant_of(self, ctx: Context, item_id: int | None = None) -> tuple[Grant, Orchestrator]:
        """The calling run's grant; refuses the server token, ended runs and any other item."""
        principal = principal_of(ctx)
        if not isinstance(principal, Grant):
            raise MCPError(FORBIDDEN, "this tool is for agent runs and needs a run's token, not the server token")
        orch, _ = self.ready()
        if not orch.agents.grants.is_live(principal):
            raise MCPError(FORBIDDEN, f"run {principal.run_id} has ended; its token no longer works")
        if item_id is not None and item_id != principal.item_id:
            raise MCPError(
                FORBIDDEN,
                f"item {item_id} is not yours: run {principal.run_id} may reach only item {principal.item_id} "
                "(leave item_id out to mean your own item)",
            )
        return principal, orch

    def person_of(self, ctx: Context) -> tuple[Person, Orchestrator, Permissions]:
        principal = principal_of(ctx)
        if not isinstance(principal, Person):
            raise MCPError(FORBIDDEN, "this tool is for people and needs the server token, not a run's token")
        orch, permissions = self.ready()
        return principal, orch, permissions

    # --- tools for people -------------------------------------------------------------------------

    def _register_people_tools(self) -> None:
        hub = self

        async def list_items(
            ctx: Context, stages: list[Stage] | None = None, include_archived: bool = False
        ) -> dict[str, Any]:
            """Work items with their stage and hold, oldest first (archived ones only when asked)."""
            _, orch, _ = hub.person_of(ctx)
            items = orch.store.list_items(stages or None)
            if not stages and not include_archived:
                items = [i for i in items if i.stage is not Stage.ARCHIVED]
            return {"items": [mcp_agent_tools.item_view(i, body=False) for i in items]}

        async def add_item(
            ctx: Context,
            title: str,
            body: str = "",
            criteria: list[str] | None = None,
            kind: Kind = Kind.STORY,
            priority: int = 0,
            depends_on: list[int] | None = None,
        ) -> dict[str, Any]:
            """Add a work item to the backlog; it starts once its dependencies are done and a coder is free."""
            person, orch, _ = hub.person_of(ctx)
            fields = {"title": title, "body": body, "criteria": criteria or [], "kind": kind, "priority": priority}
            draft = ItemDraft.model_validate({**fields, "depends_on": depends_on or []})
            return mcp_agent_tools.item_view(orch.add_item(draft, person.actor), body=False)

        async def start_item(ctx: Context, item_id: int) -> dict[str, Any]:
            """Start a backlog item now (backlog → coding), whatever it was waiting for."""
            return await _act(ctx, item_id, Trigger.START, None)

        async def stop_item(ctx: Context, item_id: int, reason: str | None = None) -> dict[str, Any]:
            """Stop an item: block it and stop its running agent (its session is kept for later)."""
            return await _act(
                ctx, item_id, Trigger.BLOCK, f"stopped by {PERSON_ACTOR}" + (f": {reason}" if reason else "")
            )

        async def move_item(ctx: Context, item_id: int, trigger: str, reason: str | None = None) -> dict[str, Any]:
            """Apply a trigger by name: start, qa_passed (approve), qa_failed (reject), demote, block, unblock,
            hold_for_review, release, retry_merge, freeze, unfreeze, archive."""
            try:
                wanted = Trigger(trigger)
            except ValueError:
                wanted = None
            if wanted is None or wanted in _SERVER_TRIGGERS:
                names = ", ".join(t.value for t in Trigger if t not in _SERVER_TRIGGERS)
                raise ToolError(f"trigger {trigger!r} cannot be applied by a person; use one of: {names}")
            return await _act(ctx, item_id, wanted, reason or f"{wanted.value} by {PERSON_ACTOR}")

        async def _act(ctx: Context, item_id: int, trigger: Trigger, reason: str | None) -> dict[str, Any]:
            person, orch, _ = hub.person_of(ctx)
            item = await orch.act(item_id, trigger, person.actor, reason)
            return mcp_agent_tools.item_view(item, body=False)

        async def list_permissions(ctx: Context) -> dict[str, Any]:
            """Agents' tool calls waiting for a person's answer, oldest first."""
            _, _, permissions = hub.person_of(ctx)
            return {"requests": [asdict(request) for request in permissions.pending()]}

        async def answer_permission(
            ctx: Context,
            request_id: str,
            decision: Decision,
            message: str | None = None,
            updated_input: dict[str, Any] | None = None,
        ) -> dict[str, Any]:
            """Answer a pending request: allow, deny (message: why, for the agent) or always_allow (also saves a
            rule). updated_input keys replace the tool's input keys when allowing."""
            person, _, permissions = hub.person_of(ctx)
            done = permissions.answer(request_id, decision, person.actor, message, updated_input)
            return {"request_id": request_id, "decision": decision.value, "rule": str(done.rule) if done.rule else None}

        for fn in (list_items, add_item, start_item, stop_item, move_item, list_permissions, answer_permission):
            self.people_server.add_tool(domain_errors(fn))
