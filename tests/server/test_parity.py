"""Every door with every power: each people's REST route has a people's MCP tool, and the tools for watching the
work (runs, a live tail, waiting for a run, diffs, the event feed, profiles, nodes) answer as REST does.

The app runs on a real uvicorn with fake agents; the MCP SDK's own client calls the tools.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gangline.server.mcp_watch import NOT_TOOLS, PARITY
from kits.mcp_kit import TOKEN, make_app, mcp_client, served, text_of
from kits.pipeline_kit import Project, commit_file


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def rest_routes(project: Project) -> set[tuple[str, str]]:
    """The app's documented routes under /api, as its OpenAPI schema lists them."""
    paths = make_app(project).openapi()["paths"]
    return {(method.upper(), path) for path, methods in paths.items() if path.startswith("/api/") for method in methods}


async def test_every_rest_route_a_person_calls_has_an_mcp_tool_that_exists(project: Project) -> None:
    project.agent("coder", [])
    project.configure()
    routes = rest_routes(project)
    assert ("GET", "/api/items") in routes and ("POST", "/api/onboarding/gates") in routes
    missing = sorted(routes - PARITY.keys() - NOT_TOOLS.keys())
    assert missing == [], f"REST routes without a people's MCP tool (add one, or say why not in NOT_TOOLS): {missing}"
    assert not (PARITY.keys() - routes), "PARITY names a route the app no longer has"
    async with served(project, TOKEN) as s, mcp_client(s.mcp_url, TOKEN) as person:
        tools = {tool.name for tool in (await person.list_tools()).tools}
    assert set(PARITY.values()) <= tools, sorted(set(PARITY.values()) - tools)


def result(said: Any) -> dict[str, Any]:
    assert not said.is_error, text_of(said)
    return json.loads(text_of(said))


async def test_a_person_follows_a_run_live_waits_for_it_and_reads_the_diff_through_mcp(project: Project) -> None:
    go = project.scenarios / "go"
    project.agent("coder", [[{"say": "first words"}, {"wait_for_file": str(go), "timeout_s": 60},
                             {"say": "last words"}, *commit_file("notes.md", "notes\n")]])  # fmt: skip
    project.configure(qa_mode="human")  # it stays in QA: its diff holds still while the doors are compared
    async with served(project, TOKEN) as s, mcp_client(s.mcp_url, TOKEN) as person:
        quiet = result(await person.call_tool("pipeline_events", {"after": 0}))
        waiting = asyncio.create_task(person.call_tool("pipeline_events", {"after": quiet["next_after"], "wait_s": 30}))
        item = result(await person.call_tool("add_item", {"title": "Take notes"}))
        woke = result(await waiting)  # the waiting call answers with the event that came
        assert [e["kind"] for e in woke["events"]][:1] == ["created"] and woke["events"][0]["item_id"] == item["id"]
        runs: list[dict[str, Any]] = []
        after = woke["next_after"]
        async with asyncio.timeout(30):
            while not runs:  # the run row appears as the coder starts: wait on the feed for it
                after = result(await person.call_tool("pipeline_events", {"after": after, "wait_s": 5}))["next_after"]
                runs = result(await person.call_tool("list_runs", {"item_id": item["id"], "live": True}))["runs"]
        run_id = runs[0]["id"]
        page = {"records": [], "next_after": 0}
        texts: list[str] = []
        async with asyncio.timeout(30):
            while "first words" not in texts:  # the live tail: each call waits for what comes next
                page = result(await person.call_tool("run_output", {"run_id": run_id, "after": page["next_after"],
                                                                    "wait_s": 10}))  # fmt: skip
                texts += [r["event"].get("text", "") for r in page["records"]]
        assert page["run"]["live"] is True
        waited = result(await person.call_tool("wait_for_run", {"run_id": run_id, "timeout_s": 0.2}))
        assert waited["ended"] is False  # still waiting for its file
        go.touch()
        ended = result(await person.call_tool("wait_for_run", {"run_id": run_id, "timeout_s": 60}))
        assert ended["ended"] is True and ended["run"]["outcome"] == "succeeded"
        rest = await _rest_diff(s.url, item["id"])
        diff = result(await person.call_tool("item_diff", {"item_id": item["id"]}))
        assert diff == rest and "notes.md" in [f["path"] for f in diff["files"]]
        profiles = result(await person.call_tool("agent_profiles", {}))["profiles"]
        assert [(p["name"], p["role"], p["cli"]) for p in profiles] == [("coder", "coder", "fake")]


async def _rest_diff(url: str, item_id: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        answer = await client.get(f"/api/items/{item_id}/diff")
        return dict(answer.json())
