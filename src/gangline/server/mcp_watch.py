"""The people's MCP tools for watching the work: runs, their output (and its live tail), waiting for one to end,
an item's diff, the event feed, the agent profiles and the build nodes.

Each is the MCP form of a REST route (``PARITY`` says which; a test holds every ``/api`` route to
it) and makes the same call below the doors: ``pipeline.views``, ``pipeline.orders``,
``pipeline.fleet``, ``repo.diff``. Where REST streams (Server-Sent Events), the tool pages and
waits, bounded: ``run_output`` with ``wait_s`` is a run's live tail, ``pipeline_events`` the feed's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import msgspec
from mcp.server.mcpserver import Context

from gangline.agents.bus import Subscription
from gangline.core.logs import LogQuery
from gangline.core.top import TopQuery
from gangline.core.validation import validated
from gangline.core.wire import ActionBody, EventOut
from gangline.pipeline.fleet import Fleet
from gangline.pipeline.overview import overview
from gangline.pipeline.views import profiles_out
from gangline.repo.diff import item_diff
from gangline.server.mcp_access import Hub, view

MAX_WAIT_S = 600.0  # a tool that waits answers within this, whatever it was asked
_POLL_CAP_S = 5.0  # a waiting tool looks again at least this often (another process may write the store)

# Every people's REST route and the tool that does the same (None: not an MCP tool, and why).
PARITY: dict[tuple[str, str], str] = {
    ("GET", "/api/items"): "list_items",
    ("POST", "/api/items"): "add_item",
    ("GET", "/api/items/{item_id}"): "show_item",
    ("PATCH", "/api/items/{item_id}"): "edit_item",
    ("DELETE", "/api/items/{item_id}"): "delete_item",
    ("PUT", "/api/items/{item_id}/timer"): "set_timer",
    ("DELETE", "/api/items/{item_id}/timer"): "cancel_timer",
    ("POST", "/api/items/{item_id}/messages"): "say_to_agent",
    ("GET", "/api/items/{item_id}/messages"): "list_messages",
    ("POST", "/api/items/{item_id}/{action}"): "act_on_item",
    ("GET", "/api/items/{item_id}/diff"): "item_diff",
    ("GET", "/api/items/{item_id}/overview"): "item_overview",
    ("GET", "/api/runs"): "list_runs",
    ("GET", "/api/top"): "top",
    ("GET", "/api/runs/{run_id}"): "show_run",
    ("GET", "/api/runs/{run_id}/log"): "run_output",
    ("GET", "/api/runs/{run_id}/events"): "run_output",  # the live tail: wait_s
    ("POST", "/api/runs/{run_id}/stop"): "stop_run",
    ("GET", "/api/status"): "pipeline_status",
    ("GET", "/api/costs"): "costs",
    ("GET", "/api/events"): "pipeline_events",
    ("GET", "/api/permissions"): "list_permissions",
    ("POST", "/api/permissions/{request_id}"): "answer_permission",
    ("GET", "/api/nodes"): "list_nodes",
    ("POST", "/api/nodes/token"): "node_token",
    ("POST", "/api/nodes/{name}/drain"): "drain_node",
    ("GET", "/api/onboarding"): "onboarding",
    ("POST", "/api/onboarding/gates"): "add_gate",
    ("GET", "/api/profiles"): "agent_profiles",
    ("GET", "/api/server-log"): "server_log",
}
NOT_TOOLS: dict[tuple[str, str], str] = {
    ("POST", "/api/login-links"): "a one-time link that signs a browser in; an assistant holds the token already",
}


def watch_tools(hub: Hub) -> list[Any]:
    """The watching tools, for ``mcp_people.register``."""
    return _run_tools(hub) + _item_tools(hub) + _feed_tools(hub) + _fleet_tools(hub)


def _run_tools(hub: Hub) -> list[Any]:
    async def list_runs(ctx: Context, item_id: int | None = None, live: bool | None = None) -> dict[str, Any]:
        """Agent runs, oldest first: one item's (item_id), only live ones (live=true) or only finished ones."""
        hub.person_of(ctx)
        return {"runs": [view(run) for run in hub.state.views.runs(item_id, live)]}

    async def top(ctx: Context, over_s: float = 1.0) -> dict[str, Any]:
        """Each live run's process tree with each process's CPU (a share of one core) and resident memory, as
        ``gangline top`` shows it; ``over_s`` (0.1-10) is the interval when there is no recent reading."""
        hub.person_of(ctx)
        query = validated(TopQuery, {"over_s": over_s})
        return view(await hub.state.views.top.sample(query.over_s))

    async def show_run(ctx: Context, run_id: str) -> dict[str, Any]:
        """One run: its item, role, profile, outcome and reason, session, tokens and cost."""
        hub.person_of(ctx)
        return view(hub.state.views.run(run_id))

    async def run_output(
        ctx: Context, run_id: str, after: int = 0, limit: int = 200, wait_s: float = 0
    ) -> dict[str, Any]:
        """A run's events (text, tool calls, results) after record ``after``, ``limit`` at most; pass ``next_after``
        back to read on. With ``wait_s``, a live run's next events are waited for that long: its live tail."""
        hub.person_of(ctx)
        views, limit = hub.state.views, max(1, min(limit, 1000))
        deadline = time.monotonic() + min(max(wait_s, 0.0), MAX_WAIT_S)
        while True:
            orch = hub.state.orchestrator
            bus = orch.bus(run_id) if orch is not None else None
            listening = bus.subscribe() if bus is not None else None  # before the read: nothing slips between
            try:
                page = views.log_page(run_id, after, limit)
                left = deadline - time.monotonic()
                if page.records or not page.run.live or left <= 0:
                    break
                await _next_record(listening, hub, min(left, _POLL_CAP_S))
            finally:
                if bus is not None and listening is not None:
                    bus.unsubscribe(listening)
        records = msgspec.json.decode(msgspec.json.encode(page.records))  # as stored: the raw lines too
        return {"run": view(page.run), "records": records, "more": page.more,
                "next_after": page.next_after}  # fmt: skip

    async def wait_for_run(ctx: Context, run_id: str, timeout_s: float = 300) -> dict[str, Any]:
        """Wait until a run ends (at most ``timeout_s``, 600 at most); the run as it is then, and whether it ended."""
        hub.person_of(ctx)
        deadline = time.monotonic() + min(max(timeout_s, 0.0), MAX_WAIT_S)
        while True:
            seen = _version(hub)
            run = hub.state.views.run(run_id)
            if not run.live or time.monotonic() >= deadline:
                break
            await _changed(hub, seen, deadline)
        return {"ended": not run.live, "run": view(run)}

    return [list_runs, top, show_run, run_output, wait_for_run]


def _item_tools(hub: Hub) -> list[Any]:
    async def stop_run(ctx: Context, run_id: str, reason: str | None = None) -> dict[str, Any]:
        """Stop a live run: its item is blocked and the agent's processes stopped; unblock the item to go on."""
        person = hub.person_of(ctx)
        body = validated(ActionBody, {"reason": reason} if reason else {})
        return view(await hub.state.orders().stop_run(run_id, body.reason, person.actor))

    async def item_diff_tool(ctx: Context, item_id: int) -> dict[str, Any]:
        """What an item changed: its branch against the base (its commits, files with +/-, the diff), or the merged
        commit once merged."""
        hub.person_of(ctx)
        state = hub.state
        return view(await item_diff(state.paths.root, state.config.base_branch, state.store.get_item(item_id)))

    async def item_overview(ctx: Context, item_id: int) -> dict[str, Any]:
        """What a merged item changed and how: its squash commit and files, how long it took, its runs, retries and
        rejections, who passed it, its cost and the gates it merged with (refused for an item never merged)."""
        hub.person_of(ctx)
        state = hub.state
        return view(await overview(state.views, state.paths.root, state.config.base_branch, item_id))

    item_diff_tool.__name__ = "item_diff"
    return [stop_run, item_diff_tool, item_overview]


def _feed_tools(hub: Hub) -> list[Any]:
    async def pipeline_events(
        ctx: Context, after: int = 0, limit: int = 100, item_id: int | None = None, wait_s: float = 0
    ) -> dict[str, Any]:
        """The pipeline's events (transitions, runs, gates, messages, ...) after event ``after``; pass
        ``next_after`` back to read on. With ``wait_s``, waits that long for the next one."""
        hub.person_of(ctx)
        store, limit = hub.state.store, max(1, min(limit, 1000))
        deadline = time.monotonic() + min(max(wait_s, 0.0), MAX_WAIT_S)
        while True:
            seen = _version(hub)
            rows = store.events_after(after, limit, item_id)
            if rows or time.monotonic() >= deadline:
                break
            await _changed(hub, seen, deadline)
        return {"events": [view(EventOut.of(row)) for row in rows], "next_after": rows[-1].id if rows else after}

    async def server_log(ctx: Context, level: str = "info", after: int = 0, limit: int = 200) -> dict[str, Any]:
        """The server's recent log (its last 2,000 lines), at ``level`` (info, warning, error) or above, after entry
        ``after``: what it did and what went wrong, with each line's fields."""
        hub.person_of(ctx)
        query = validated(LogQuery, {"level": level, "after": after, "limit": limit})
        return {"entries": [view(entry) for entry in hub.state.log_ring.entries(query)]}

    async def agent_profiles(ctx: Context) -> dict[str, Any]:
        """The agent profiles in force: name, role, CLI, model, budget, fallback and node labels."""
        hub.person_of(ctx)
        return {"profiles": [view(profile) for profile in profiles_out(hub.state.config)]}

    return [pipeline_events, server_log, agent_profiles]


def _fleet_tools(hub: Hub) -> list[Any]:
    def fleet() -> Fleet:
        return Fleet(hub.state.store, hub.state.config.nodes.lease_s)

    async def list_nodes(ctx: Context) -> dict[str, Any]:
        """The build nodes: live, draining or gone, their slots, labels, agent CLIs and runs."""
        hub.person_of(ctx)
        return {"nodes": [view(node) for node in fleet().nodes()]}

    async def node_token(ctx: Context) -> dict[str, Any]:
        """A one-time join token (valid for an hour) for `gangline node --token`."""
        person = hub.person_of(ctx)
        return view(fleet().new_token(person.actor))

    async def drain_node(ctx: Context, name: str, draining: bool = True) -> dict[str, Any]:
        """Drain a build node (it finishes its runs and takes no more), or give it runs again (draining=false)."""
        person = hub.person_of(ctx)
        return view(fleet().drain(name, draining, person.actor))

    return [list_nodes, node_token, drain_node]


def _version(hub: Hub) -> int:
    orch = hub.state.orchestrator
    return orch.version if orch is not None else 0


async def _changed(hub: Hub, seen: int, deadline: float) -> None:
    """Until the pipeline changes after version ``seen`` (the orchestrator says so), a few seconds pass (another
    process may write the store), or the deadline."""
    left = max(0.0, min(deadline - time.monotonic(), _POLL_CAP_S))
    orch = hub.state.orchestrator
    if orch is None:
        await asyncio.sleep(left)
    else:
        await orch.wait_changed(seen, left)


async def _next_record(listening: Subscription | None, hub: Hub, left: float) -> None:
    """Until the live run publishes its next record, or ``left`` passes (or the pipeline changes, off its bus)."""
    if listening is None:
        await _changed(hub, _version(hub), time.monotonic() + left)
        return
    with contextlib.suppress(TimeoutError, StopAsyncIteration):
        await asyncio.wait_for(anext(listening), left)
