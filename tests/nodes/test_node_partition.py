"""A build node on "another machine": its own network namespace, joined by a veth pair, and the cable cut.

The server listens on the pair's address. The node in the namespace leases the item; the link
goes down; its lease lapses and a node on this side finishes the item. When the link comes back
the cut-off node's calls are refused: its agent is stopped, its work never pushed, and it takes
new work again.
"""

from __future__ import annotations

import signal
from pathlib import Path

from gangline.core.events import RunOutcome
from gangline.core.stages import Stage
from kits.netns import namespace
from kits.pipeline_kit import Project, commit_file
from kits.servers import join_token, kill, node, serve, stop, until


async def test_a_partitioned_node_loses_its_lease_another_finishes_and_after_healing_it_is_refused(
    tmp_path: Path,
) -> None:
    project = Project(tmp_path)
    gates = tmp_path / "gates"
    gates.mkdir()
    work = commit_file("work/{item_slug}.txt", "{run_id}\n", message="work of {run_id}")
    project.agent("coder", [[{"say": "working"}, {"wait_for_file": f"{gates}/{{run_id}}", "timeout_s": 120}, *work]])
    project.configure(nodes={"server_agents": False, "lease_s": 3.0})
    project.add("Item")
    with namespace() as far:
        server, url = await serve(project, "--host", far.host_ip)
        away = here = None
        try:
            token = await join_token(url)
            away = await node(tmp_path / "away", "--name", "away", servers=(url,), token=token, inside=far.prefix())
            await until(lambda: any(r.live and r.node_id for r in project.store.runs()), "the far node runs the item")
            (first,) = project.store.runs()
            far.cut()
            await until(lambda: not project.store.get_run(first.id).live, "its lease lapsed behind the cut")
            assert project.store.get_run(first.id).outcome is RunOutcome.STOPPED
            (gates / first.id).touch()  # behind the cut, the far agent commits its work
            here = await node(tmp_path / "here", "--name", "here", servers=(url,), token=await join_token(url))
            await until(lambda: len(project.store.runs()) == 2 and project.store.runs()[1].node_id is not None,
                        "this side took over")  # fmt: skip
            far.heal()
            names = {n.id: n.name for n in project.store.nodes()}
            second = project.store.runs()[1]
            assert names[second.node_id or 0] == "here"
            await until(lambda: next(n for n in project.store.nodes() if n.name == "away").seen_at > second.started_at,
                        "the far node heard from again")  # fmt: skip
            (gates / second.id).touch()
            await until(lambda: project.stage(1) is Stage.DONE, "the item done")
            branch = project.store.get_item(1)
            assert branch.stage is Stage.DONE
            said = await stop(away)
            assert "lease" in said and "Traceback" not in said, said
            assert "Traceback" not in await stop(server)
        finally:
            if away is not None and away.returncode is None:
                away.send_signal(signal.SIGKILL)
            await kill(server, *(p for p in (away, here) if p is not None))
    from kits.helpers import git

    log = git(project.root, "log", "--format=%s", "gangline/1-item").splitlines()
    assert log[0] == "work of 1-coder-2" and "work of 1-coder-1" not in log  # the cut-off work never arrived
    assert len([e for e in project.store.events_after(0, limit=1000, item_id=1) if e.trigger == "merged"]) == 1
