"""The people's MCP tools: a person's own assistant sees and orders what the CLI and REST do.

Each tool validates its arguments with the model REST validates a request with, then makes the
one call of ``pipeline.views`` or ``pipeline.orders`` that the REST route makes; the result is
the same wire record, and a refusal the same error object.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError

from gangline.core.items import ItemPatch
from gangline.core.messages import MessageIn
from gangline.core.validation import validated
from gangline.core.wire import ActionOrder, CostQuery, ItemQuery, NewItem, PermissionAnswer, TimerIn
from gangline.pipeline.grants import ChatGrant
from gangline.pipeline.onboarding import GateIn
from gangline.server.mcp_access import FORBIDDEN, Hub, principal_of, tool_errors, view
from gangline.server.mcp_watch import watch_tools

INSTRUCTIONS = (
    "Drive a gangline server: list, show, add, edit and delete work items, act on them (start, stop, approve, "
    "reject, block, ...), set or cancel their timers, see the pipeline's status and costs, and answer agents' "
    "permission requests."
)


def _given(**values: Any) -> dict[str, Any]:
    """The arguments the caller gave: an argument left out is not a change."""
    return {name: value for name, value in values.items() if value is not None}


def register(server: MCPServer, hub: Hub) -> None:
    """Add the people's tools to ``server``."""
    for fn in (*_reading_tools(hub), *_writing_tools(hub), *_talking_tools(hub), *_order_tools(hub),
               *_pipeline_tools(hub), *watch_tools(hub)):  # fmt: skip
        server.add_tool(tool_errors(fn))


def _reading_tools(hub: Hub) -> list[Any]:
    async def list_items(
        ctx: Context,
        stages: list[str] | None = None,
        hold: str | None = None,
        kind: str | None = None,
        q: str | None = None,
        include_archived: bool = False,
    ) -> dict[str, Any]:
        """Work items with their stage, hold and activity, oldest first (archived ones only when asked)."""
        hub.person_of(ctx)
        query = validated(
            ItemQuery, _given(stages=stages, hold=hold, kind=kind, q=q, include_archived=include_archived)
        )
        return {"items": [view(item) for item in hub.state.views.items(query)]}

    async def show_item(ctx: Context, item_id: int) -> dict[str, Any]:
        """One item in full: its text, state, transitions, runs and last gate results."""
        hub.person_of(ctx)
        return view(hub.state.views.detail(item_id))

    return [list_items, show_item]


def _writing_tools(hub: Hub) -> list[Any]:
    async def add_item(
        ctx: Context,
        title: str,
        body: str = "",
        criteria: list[str] | None = None,
        kind: str = "story",
        priority: int = 0,
        depends_on: list[int] | None = None,
        pinned_agent: str | None = None,
        qa_mode: str | None = None,
        frozen: bool = False,
        start_after: str | float | None = None,
    ) -> dict[str, Any]:
        """Add a work item to the backlog; it starts once its dependencies are done and a coder is free
        (not before start_after: an ISO date-time with a zone, or seconds since the epoch)."""
        person = hub.person_of(ctx)
        fields = _given(title=title, body=body, criteria=criteria, kind=kind, priority=priority,
                        depends_on=depends_on, pinned_agent=pinned_agent, qa_mode=qa_mode, frozen=frozen,
                        start_after=start_after)  # fmt: skip
        return view(hub.state.orders().add_item(validated(NewItem, fields), person.actor))

    async def edit_item(
        ctx: Context,
        item_id: int,
        title: str | None = None,
        body: str | None = None,
        criteria: list[str] | None = None,
        kind: str | None = None,
        priority: int | None = None,
        depends_on: list[int] | None = None,
        pinned_agent: str | None = None,
        qa_mode: str | None = None,
        clear: list[str] | None = None,
    ) -> dict[str, Any]:
        """Change what a person wrote (given criteria or dependencies replace the old ones); clear
        pinned_agent or qa_mode to the project's defaults. The stage changes only by act_on_item."""
        person = hub.person_of(ctx)
        fields = _given(title=title, body=body, criteria=criteria, kind=kind, priority=priority,
                        depends_on=depends_on, pinned_agent=pinned_agent, qa_mode=qa_mode, clear=clear)  # fmt: skip
        return view(hub.state.orders().edit_item(item_id, validated(ItemPatch, fields), person.actor))

    async def delete_item(ctx: Context, item_id: int) -> dict[str, Any]:
        """Delete an item (refused while an agent runs on it, or while another item depends on it)."""
        person = hub.person_of(ctx)
        return view(hub.state.orders().delete_item(item_id, person.actor))

    async def set_timer(ctx: Context, item_id: int, when: str) -> dict[str, Any]:
        """Start a backlog item at ``when``: HH:MM (the next such time), +30m, +2h, +1d, or a date-time, in the
        project's time zone unless it has an offset."""
        person = hub.person_of(ctx)
        return view(hub.state.orders().set_timer(item_id, validated(TimerIn, {"when": when}).when, person.actor))

    async def cancel_timer(ctx: Context, item_id: int) -> dict[str, Any]:
        """Cancel a backlog item's timer: it starts when the pipeline takes it up."""
        person = hub.person_of(ctx)
        return view(hub.state.orders().set_timer(item_id, None, person.actor))

    return [add_item, edit_item, delete_item, set_timer, cancel_timer]


def _talking_tools(hub: Hub) -> list[Any]:
    async def say_to_agent(
        ctx: Context, item_id: int, text: str = "", comments: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """Say something to the item's coder (text, and/or comments [{path, line, text}] on lines of its diff): a
        live run is stopped and its session resumed with it; an item in QA goes back to coding for it."""
        person = hub.person_of(ctx)
        message = validated(MessageIn, _given(text=text, comments=comments))
        return view(await hub.state.orders().say(item_id, message, person.actor))

    async def list_messages(ctx: Context, item_id: int) -> dict[str, Any]:
        """What people said to the item's coder, oldest first, each with the run that took it (none: waiting)."""
        hub.person_of(ctx)
        return {"messages": [view(message) for message in hub.state.views.messages(item_id)]}

    return [say_to_agent, list_messages]


def _order_tools(hub: Hub) -> list[Any]:
    async def act_on_item(
        ctx: Context, item_id: int, action: str, reason: str | None = None, by: int | None = None
    ) -> dict[str, Any]:
        """A person's action: start, stop, block, unblock, hold, release, approve, reject, demote, freeze,
        unfreeze, archive, retry-merge, close (a spike), abandon or supersede (by: the item that does it instead);
        as `gangline <action> ID` and POST /api/items/{id}/{action}."""
        person = hub.person_of(ctx)
        order = validated(ActionOrder, _given(action=action, reason=reason, by=by))
        return view(await hub.state.orders().act(item_id, order.action, order.reason, person.actor, order.by))

    async def start_item(ctx: Context, item_id: int) -> dict[str, Any]:
        """Start a backlog item now (backlog → coding), whatever it was waiting for."""
        return await act_on_item(ctx, item_id, "start")

    async def stop_item(ctx: Context, item_id: int, reason: str | None = None) -> dict[str, Any]:
        """Stop an item: block it and stop its running agent (its session is kept for later)."""
        return await act_on_item(ctx, item_id, "stop", reason)

    async def list_permissions(ctx: Context) -> dict[str, Any]:
        """Agents' tool calls waiting for a person's answer, oldest first."""
        hub.person_of(ctx)
        return {"requests": [view(request) for request in hub.state.orders().pending_permissions()]}

    async def answer_permission(
        ctx: Context,
        request_id: str,
        decision: str,
        message: str | None = None,
        updated_input: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Answer a pending request: allow, deny (message: why, for the agent) or always_allow (also saves a
        rule). updated_input keys replace the tool's input keys when allowing."""
        if isinstance(principal_of(ctx), ChatGrant):  # an agent never answers an agent's question, its own least
            raise MCPError(FORBIDDEN, "a permission request is a person's to answer, not the chat agent's")
        person = hub.person_of(ctx)
        answer = validated(PermissionAnswer, _given(decision=decision, message=message, updated_input=updated_input))
        return view(hub.state.orders().answer_permission(request_id, answer, person.actor))

    return [act_on_item, start_item, stop_item, list_permissions, answer_permission]


def _pipeline_tools(hub: Hub) -> list[Any]:
    async def pipeline_status(ctx: Context) -> dict[str, Any]:
        """Items per stage and hold, live runs, the next timers, and whether the pipeline is driven."""
        hub.person_of(ctx)
        return view(hub.state.views.status())

    async def costs(ctx: Context, by: str = "item", item_id: int | None = None) -> dict[str, Any]:
        """Tokens and cost from the ledger, summed per item, profile, day (UTC) or run, with the total."""
        hub.person_of(ctx)
        query = validated(CostQuery, _given(by=by, item_id=item_id))
        return view(hub.state.views.costs(query.by, query.item_id))

    async def onboarding(ctx: Context) -> dict[str, Any]:
        """What the project lacks (gates, a coder this machine can start) and what was found: the gates its stack
        suggests and the agent CLIs on the server's PATH, with their versions."""
        hub.person_of(ctx)
        return view(await asyncio.to_thread(hub.state.running().onboarder.survey, hub.state.config))

    async def add_gate(
        ctx: Context, name: str, command: str, timeout_s: float = 600.0, anyway: bool = False
    ) -> dict[str, Any]:
        """Prove a gate by running it once in a fresh worktree, then add it to project.toml if it passed (or
        anyway); the answer has its outcome and the end of its output."""
        hub.person_of(ctx)
        given = validated(GateIn, _given(name=name, command=command, timeout_s=timeout_s, anyway=anyway))
        return view(await hub.state.add_gate(given))

    return [pipeline_status, costs, onboarding, add_gate]
