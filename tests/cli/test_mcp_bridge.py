"""``gangline mcp`` as a person's own assistant starts it from ``.mcp.json``: stdio in, the running server's tools out.

The MCP SDK's own stdio client spawns the command ``gangline init`` wrote; ``gangline serve``
runs as a process of its own, is killed and started again on another port.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from kits.helpers import gangline, ok
from kits.pipeline_kit import Project
from kits.servers import env, kill, serve


def bridge_of(project: Project) -> StdioServerParameters:
    """What ``.mcp.json`` tells an MCP client to run, as ``gangline init`` wrote it."""
    entry = json.loads((project.root / ".mcp.json").read_text())["mcpServers"]["gangline"]
    assert entry["type"] == "stdio"
    return StdioServerParameters(command=entry["command"], args=entry["args"], cwd=project.root, env=env())


async def add_and_list(session: ClientSession, title: str) -> list[str]:
    added = await session.call_tool("add_item", {"title": title})
    assert not added.is_error, added
    listed: Any = await session.call_tool("list_items", {})
    return [item["title"] for item in json.loads(listed.content[0].text)["items"]]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(tmp_path)
    ok(gangline("init", "--yes", cwd=project.root))
    project.agent("coder", [])
    project.configure()  # the test's own settings over init's
    return project


async def test_the_bridge_serves_the_running_servers_tools_and_follows_it_across_a_restart(project: Project) -> None:
    params = bridge_of(project)
    server, _url = await serve(project)
    try:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = {tool.name for tool in (await session.list_tools()).tools}
            assert {"list_items", "show_item", "add_item", "act_on_item", "set_timer"} <= tools
            assert await add_and_list(session, "Through the bridge") == ["Through the bridge"]

            await kill(server)
            await server.wait()
            with pytest.raises(MCPError, match=r"no gangline server is running for .*gangline serve"):
                await session.call_tool("list_items", {})

            server, _url = await serve(project)  # a new process on a new port: the bridge finds it
            assert await add_and_list(session, "After the restart") == ["Through the bridge", "After the restart"]
    finally:
        await kill(server)
