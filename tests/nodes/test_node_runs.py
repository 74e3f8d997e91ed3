"""Build nodes end to end: real ``gangline serve`` and ``gangline node`` processes, real git over HTTP, a real PTY.

The server runs no agents itself (``[nodes] server_agents = false``): every coder run is
offered, leased by a node, run in the node's own clone and worktree, streamed back line by line,
pushed to the item's branch, and then gated, reviewed and merged by the server as a local run is.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gangline.agents.runlog import replay
from gangline.core.events import RunOutcome
from gangline.core.stages import Stage
from kits.pipeline_kit import Project, commit_file
from kits.servers import join_token, kill, node, serve, stop, until


def _project(tmp_path: Path, items: int, **nodes: object) -> Project:
    project = Project(tmp_path)
    project.agent("coder", [[{"say": "working on it"}, *commit_file("work/{item_slug}.txt", "{item_id}\n")]])
    project.configure(gates=[("has-work", 'test -n "$(ls work)"')], nodes={"server_agents": False, **nodes})
    for n in range(items):
        project.add(f"Item {n}")
    return project


async def test_a_node_runs_every_item_and_the_server_merges_what_it_pushed(tmp_path: Path) -> None:
    project = _project(tmp_path, 2)
    server, url = await serve(project)
    worker = None
    try:
        worker = await node(tmp_path / "node-a", "--name", "node-a", servers=(url,), token=await join_token(url))
        await until(lambda: all(i.stage is Stage.DONE for i in project.store.list_items()), "every item done")
        runs = project.store.runs()
        (joined,) = project.store.nodes()
        assert joined.name == "node-a" and joined.clis.get("fake")
        assert runs and all(r.node_id == joined.id and r.outcome is RunOutcome.SUCCEEDED for r in runs)
        for run in runs:  # the server's copy of each run's log holds what the agent said on the node
            said = [r.event for r in replay(Path(run.log_path))]
            assert any(getattr(event, "text", None) == "working on it" for event in said), said
        assert len(project.base_log()) == 3  # one squash commit per item on the base
        assert [project.base_file(f"work/item-{n}.txt").strip() for n in range(2)] == ["1", "2"]
        assert "Traceback" not in await stop(server)
    finally:
        await kill(server, *([worker] if worker else []))
    assert worker is not None
    _, err = await worker.communicate()
    assert "Traceback" not in err.decode(), err.decode()


@pytest.mark.parametrize("bad", ["not-a-token-at-all-0123", ""])
async def test_a_node_with_a_wrong_token_is_refused_and_says_so(tmp_path: Path, bad: str) -> None:
    project = _project(tmp_path, 0)
    server, url = await serve(project)
    try:
        worker = await node(tmp_path / "node", servers=(url,), token=bad or None)
        async with asyncio.timeout(60):
            _, err = await worker.communicate()
        said = err.decode()
        assert worker.returncode != 0 and "Traceback" not in said
        assert ("join token is unknown" in said) if bad else ("has no credential" in said), said
    finally:
        await kill(server)
