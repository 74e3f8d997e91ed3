"""``gangline top``: a live run's process tree with CPU and memory, the same through REST, MCP, the CLI and /metrics.

``gangline serve`` runs as a process of its own; its fake coder runs a busy loop under a shell,
so the tree has depth and one process that uses a core.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx

from kits.helpers import cli_env, gangline, ok
from kits.mcp_kit import mcp_client, text_of
from kits.pipeline_kit import Project
from kits.servers import TOKEN, kill, serve, until

BUSY = "timeout 120 sh -c 'while :; do :; done'"  # one core's worth of work, a grandchild of the agent's process


async def busy_reading(client: httpx.AsyncClient, bound_s: float = 60) -> dict[str, Any]:
    """A reading of /api/top that shows the busy loop using CPU, bounded."""
    deadline = time.monotonic() + bound_s
    while True:
        reading = (await client.get("/api/top", params={"over_s": 0.5})).json()
        busy = [p for r in reading["runs"] for p in r["processes"] if p["name"] == "sh" and p["cpu_percent"] > 20]
        if busy:
            return reading
        assert time.monotonic() < deadline, f"the busy loop never showed: {reading}"


async def test_a_live_runs_process_tree_cpu_and_memory_from_every_door(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [[{"run": BUSY}]])
    project.configure()
    item = project.add("Spin")
    server, url = await serve(project)
    try:
        await until(lambda: bool(project.store.runs(item.id, live_only=True)), "the coder started")
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            reading = await busy_reading(client)
            [run] = reading["runs"]
            assert run["run"]["id"] == f"{item.id}-coder-1" and run["note"] is None
            processes = run["processes"]
            assert processes[0]["depth"] == 0 and processes[0]["pid"] == run["run"]["pid"]
            depths = [p["depth"] for p in processes]
            assert max(depths) >= 2  # the agent, its shell, the loop: a tree, each after its parent
            assert all(b <= a + 1 for a, b in itertools.pairwise(depths))
            assert run["cpu_percent"] >= max(p["cpu_percent"] for p in processes) > 20
            assert run["rss_bytes"] == sum(p["rss_bytes"] for p in processes) > 0
            refused = await client.get("/api/top", params={"over_s": 0})
            assert refused.status_code == 422
            metrics = (await client.get("/metrics")).text
        labels = f'item="#{item.id}",profile="coder",role="coder",run="{item.id}-coder-1"'
        assert re.search(rf"gangline_run_processes\{{{labels}\}} [1-9]", metrics), metrics
        assert re.search(rf"gangline_run_memory_bytes\{{{labels}\}} [1-9]", metrics), metrics
        assert re.search(rf"gangline_run_cpu_seconds\{{{labels}\}} \d", metrics), metrics

        async with mcp_client(f"{url}/mcp", TOKEN) as person:
            said = json.loads(text_of(await person.call_tool("top", {"over_s": 0.5})))
            bad = await person.call_tool("top", {"over_s": 0})
        mcp_error, rest_error = json.loads(text_of(bad))["error"], refused.json()["error"]
        assert bad.is_error and (mcp_error["code"], mcp_error["field"]) == (rest_error["code"], rest_error["field"])
        said_why = mcp_error["message"].split("; found")[0]
        assert (
            said_why
            == rest_error["message"].split("; found")[0]
            == "over_s: Input should be greater than or equal to 0.1"
        )
        assert [r["run"]["id"] for r in said["runs"]] == [run["run"]["id"]]
        assert {p["pid"] for p in said["runs"][0]["processes"]} >= {processes[0]["pid"]}

        shown = ok(gangline("top", "--once", cwd=project.root, env=cli_env(GANGLINE_TOKEN=TOKEN)))
        said_once = " ".join(shown.split())
        assert f"{item.id}-coder-1 (#{item.id}, coder, coder): {len(processes)} process(es), CPU " in said_once
        assert re.search(r"│\s+\d+ │ {4,}sh\s", shown), shown  # the loop, indented under its parents

        ok(gangline("stop", str(item.id), cwd=project.root, env=cli_env(GANGLINE_TOKEN=TOKEN)))
        await until(lambda: not project.store.runs(item.id, live_only=True), "the run stopped")
        idle = ok(gangline("top", "--once", cwd=project.root, env=cli_env(GANGLINE_TOKEN=TOKEN)))
        assert "No agent is running." in idle
    finally:
        await kill(server)
