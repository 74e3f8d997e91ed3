"""Who calls gangline's MCP endpoint, what each caller may reach, and errors as the tools report them.

A run's token (``pipeline.grants``) reaches the agents' tools, and only for that run's own item
and worktree; the server token (or loopback, when the server has none) reaches the people's, and
so does a chat agent's token, for as long as its run lives, acting as the agent.
A refused credential is a JSON-RPC error; everything a tool refuses on its merits is a tool
error whose text is the same ``{"error": {"code", "message", "field"?...}}`` object REST sends.
"""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent
from pydantic import ValidationError
from starlette.datastructures import Headers

from gangline.core.errors import GanglineError
from gangline.core.problems import ErrorOut, detail_of
from gangline.core.validation import invalid
from gangline.pipeline.grants import AnyGrant, ChatGrant, Grant
from gangline.pipeline.orchestrator import Orchestrator
from gangline.server.state import ServerState

PRINCIPAL = "gangline.principal"  # the ASGI scope key where the endpoint leaves who is calling
PERSON_ACTOR = "mcp"
FORBIDDEN = -32001  # a JSON-RPC server error: the credentials do not reach what was named
NOT_READY = -32002

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Person:
    """Someone holding the server token (or anyone on loopback when the server has none)."""

    actor: str = PERSON_ACTOR


Principal = Grant | ChatGrant | Person


def principal_of(ctx: Context) -> Principal:
    request = ctx.request_context.request
    principal = getattr(request, "scope", {}).get(PRINCIPAL)
    if not isinstance(principal, Grant | ChatGrant | Person):
        raise MCPError(FORBIDDEN, "no credentials came with this call; gangline's MCP endpoint needs a bearer token")
    return principal


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """gangline's errors and invalid input as a tool error the caller can read and act on: the error object."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except GanglineError as err:
            return cast(R, error_result(err))
        except ValidationError as err:
            return cast(R, error_result(invalid(err)))

    return wrapper


def error_result(err: GanglineError) -> CallToolResult:
    body = ErrorOut(error=detail_of(err)).model_dump(mode="json", exclude_none=True)
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(body))], is_error=True)


class Hub:
    """What the tools reach, resolved per call: the caller's grant or person, and the running pipeline."""

    def __init__(self, token: str | None, state: ServerState) -> None:
        self._token = token.encode() if token is not None else None
        self.state = state

    def principal(self, headers: Headers) -> Principal | None:
        """Who the bearer token says is calling; None for an unknown or revoked one (never a person then)."""
        authorization = headers.get("authorization")
        if authorization is None:
            return Person() if self._token is None else None
        scheme, _, credentials = authorization.partition(" ")
        given = credentials.strip()
        if scheme.lower() != "bearer" or not given:
            return None
        orch = self.state.orchestrator
        grant = orch.grants.resolve(given) if orch is not None else None
        if grant is not None:
            return grant
        # compare_digest takes as long for a near miss as for a wild guess.
        if self._token is not None and hmac.compare_digest(given.encode("utf-8", "replace"), self._token):
            return Person()
        return None

    def orchestrator(self) -> Orchestrator:
        if self.state.orchestrator is None:
            raise MCPError(NOT_READY, "gangline is starting; try again in a moment")
        return self.state.orchestrator

    def grant_of(self, ctx: Context, item_id: int | None = None) -> tuple[Grant, Orchestrator]:
        """The calling run's grant; refuses the server token, ended runs and any other item."""
        principal = principal_of(ctx)
        if not isinstance(principal, Grant):
            raise MCPError(FORBIDDEN, "this tool is for agent runs and needs a run's token, not the server token")
        orch = self.orchestrator()
        if not orch.grants.is_live(principal):
            raise MCPError(FORBIDDEN, f"run {principal.run_id} has ended; its token no longer works")
        if item_id is not None and item_id != principal.item_id:
            raise MCPError(
                FORBIDDEN,
                f"item {item_id} is not yours: run {principal.run_id} may reach only item {principal.item_id} "
                "(leave item_id out to mean your own item)",
            )
        return principal, orch

    def person_of(self, ctx: Context) -> Person:
        """Who acts through a people's tool: the person, or a live chat agent acting as itself."""
        principal = principal_of(ctx)
        if isinstance(principal, ChatGrant):
            return Person(self.asker_of(ctx).actor)
        if not isinstance(principal, Person):
            raise MCPError(FORBIDDEN, "this tool is for people and needs the server token, not a run's token")
        self.orchestrator()
        return principal

    def asker_of(self, ctx: Context) -> AnyGrant:
        """The calling run's grant, whatever the run (an item's or a chat agent's); refuses ended runs and people."""
        principal = principal_of(ctx)
        if isinstance(principal, Person):
            raise MCPError(FORBIDDEN, "this tool is for agent runs and needs a run's token, not the server token")
        if not self.orchestrator().grants.is_live(principal):
            raise MCPError(FORBIDDEN, f"run {principal.run_id} has ended; its token no longer works")
        return principal


def view(model: Any) -> dict[str, Any]:
    """A wire record as a tool's result."""
    return cast(dict[str, Any], model.model_dump(mode="json"))
