"""A node's run under the server's limits: its budget stops it on the node, its rate limit parks the item.

The budget meter and the rate-limit policy are the server's, fed by the events the node streams:
nothing about them is a node's own decision.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gangline.core.events import RunOutcome
from gangline.core.stages import Hold, Stage
from kits.pipeline_kit import Project, commit_file
from kits.servers import join_token, kill, node, serve, stop, until


async def test_a_run_on_a_node_past_its_budget_is_stopped_there_and_the_item_blocked(tmp_path: Path) -> None:
    project = Project(tmp_path)
    usage = {"usage": {"input_tokens": 0, "output_tokens": 1_000_000}, "model": "claude-sonnet-4-5"}  # $15
    project.agent("coder", [[usage, {"hang": True}]], max_budget_usd=0.5)
    project.configure(nodes={"server_agents": False, "lease_s": 3.0})
    project.add("Expensive")
    server, url = await serve(project)
    worker = None
    try:
        worker = await node(tmp_path / "n", servers=(url,), token=await join_token(url))
        await until(lambda: project.item(1).state.hold is Hold.BLOCKED, "the item blocked")
        assert project.item(1).state.hold_reason == "budget exceeded: spent $15.00 of $0.50"
        (run,) = project.store.runs(1)
        assert run.node_id is not None and run.outcome is RunOutcome.STOPPED
        assert run.cost_usd == pytest.approx(15.0)  # counted once, by the server's meter
        assert "Traceback" not in await stop(server)
    finally:
        await kill(server, *([worker] if worker else []))


async def test_a_rate_limit_on_a_node_parks_the_item_and_the_same_node_resumes_its_session(tmp_path: Path) -> None:
    project = Project(tmp_path)
    write = commit_file("work/{item_slug}.txt", "{item_id}\n")
    project.agent("coder", [[{"say": "starting"}, {"rate_limit": {"resets_in_s": 1}}], write])
    project.configure(nodes={"server_agents": False}, max_retries=0, rate_limit={"margin_s": 0})
    project.add("Throttled")
    server, url = await serve(project)
    worker = None
    try:
        worker = await node(tmp_path / "n", "--name", "n", servers=(url,), token=await join_token(url))
        await until(lambda: project.stage(1) is Stage.DONE, "the item done after its park")
        first, second = project.store.runs(1)
        assert first.outcome is RunOutcome.RATE_LIMITED and second.outcome is RunOutcome.SUCCEEDED
        assert second.resumed_session == first.session_id is not None  # resumed where the session lives
        assert first.node_id == second.node_id is not None
        assert "parked" in [e.kind for e in project.store.events_after(0, limit=1000, item_id=1)]
        assert "Traceback" not in await stop(server)
    finally:
        await kill(server, *([worker] if worker else []))
