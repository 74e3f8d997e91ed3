"""Build nodes end to end: real ``gangline serve`` and ``gangline node`` processes, real git over HTTP, a real PTY.

The server runs no agents itself (``[nodes] server_agents = false``): every coder run is
offered, leased by a node, run in the node's own clone and worktree, streamed back line by line,
pushed to the item's branch, and then gated, reviewed and merged by the server as a local run is.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from gangline.agents.runlog import replay
from gangline.core.events import RunOutcome
from gangline.core.stages import Stage
from kits.helpers import git
from kits.pipeline_kit import Project, commit_file
from kits.servers import TOKEN, join_token, kill, node, serve, stop, until


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
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            metrics = (await client.get("/metrics")).text
        assert 'gangline_nodes{state="live"} 1.0' in metrics and 'gangline_nodes{state="gone"} 0.0' in metrics
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


async def test_a_qa_agent_on_a_node_reviews_the_branch_and_its_verdict_moves_the_item(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [[*commit_file("work/{item_slug}.txt", "{item_id}\n")]])
    verdict = {"verdict": "pass", "criteria": [{"index": 1, "passed": True, "note": "the file is there"}],
               "summary": "looks right"}  # fmt: skip
    project.agent("reviewer", [[{"say": "reviewing"}, {"final_json": verdict}]], role="qa")
    project.configure(qa_mode="agent", nodes={"server_agents": False})
    project.add("Reviewed elsewhere", criteria=["a file per item"])
    server, url = await serve(project)
    worker = None
    try:
        token = await join_token(url)
        worker = await node(tmp_path / "n", "--slots", "coder=1", "--slots", "qa=1", servers=(url,), token=token)
        await until(lambda: project.stage(1) is Stage.DONE, "the item done")
        roles = [(r.role.value, r.node_id is not None, r.outcome) for r in project.store.runs(1)]
        assert roles == [("coder", True, RunOutcome.SUCCEEDED), ("qa", True, RunOutcome.SUCCEEDED)]
        assert project.item(1).criteria[0].checked  # the verdict, read from the QA run's final message
        assert "Traceback" not in await stop(server)
    finally:
        await kill(server, *([worker] if worker else []))


async def test_a_nodes_agent_works_in_its_sandbox_and_cannot_touch_the_node_or_the_machine(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    home = tmp_path / "node"
    tries = (f"echo escaped > {outside}; cat {home}/.gangline/node.json; "
             f"echo {{item_id}} > work-{{item_slug}}.txt; git add -A; git commit -qm 'work of {{run_id}}'")  # fmt: skip
    project = Project(tmp_path)
    project.agent("coder", [[{"run": tries}]])
    project.configure(nodes={"server_agents": False})
    project.add("Confined")
    server, url = await serve(project)
    worker = None
    try:
        worker = await node(home, "--sandbox", "required", servers=(url,), token=await join_token(url))
        await until(lambda: project.stage(1) is Stage.DONE, "the item done")
        credential = json.loads((home / ".gangline" / "node.json").read_text())["credential"]
        (run,) = project.store.runs(1)
        logged = Path(run.log_path).read_text()
        assert not outside.exists()  # the machine is read-only to it
        assert credential not in logged and "No such file or directory" in logged  # the node's state is hidden
        # its commit, taken in from the sandbox and pushed:
        assert project.base_file(f"work-{project.item(1).slug}.txt").strip() == "1"
        assert "Traceback" not in await stop(server)
    finally:
        await kill(server, *([worker] if worker else []))


async def test_a_mergemaster_on_a_node_resolves_a_conflict_in_the_merge_it_fetched(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [[{"wait_for_file": str(tmp_path / "go"), "timeout_s": 120},
                             *commit_file("shared.txt", "from item {item_id}\n")]])  # fmt: skip
    # On the node the conflict arrives as files with markers: it writes the resolution and leaves it uncommitted.
    resolve = "grep -q '<<<<<<<' shared.txt && printf 'from both items\\n' > shared.txt"
    resolved = {"resolved": True, "summary": "kept both"}
    project.agent("merger", [[{"run": resolve}, {"final_json": resolved}]], role="mergemaster")
    project.configure(nodes={"server_agents": False})
    project.add("First")
    project.add("Second")
    server, url = await serve(project)
    worker = None
    try:
        token = await join_token(url)
        worker = await node(tmp_path / "n", "--slots", "coder=2", "--slots", "mergemaster=1", servers=(url,),
                            token=token)  # fmt: skip
        await until(lambda: len([r for r in project.store.runs() if r.live]) == 2, "both coders under way")
        (tmp_path / "go").touch()  # both branch from the same base: the second merge conflicts
        await until(lambda: all(i.stage is Stage.DONE for i in project.store.list_items()), "both items done")
        masters = [r for r in project.store.runs() if r.role.value == "mergemaster"]
        assert len(masters) == 1 and masters[0].node_id is not None and masters[0].outcome is RunOutcome.SUCCEEDED
        assert project.base_file("shared.txt").strip() == "from both items"
        assert len(project.base_log()) == 3  # one squash commit per item
        branches = git(project.root, "branch", "--list", "gangline/merge-*")
        assert branches.strip() == ""  # the merge's branch for the node is gone once taken back
        assert "Traceback" not in await stop(server)
    finally:
        await kill(server, *([worker] if worker else []))


async def test_gates_run_on_the_node_where_the_project_says_so_and_its_leftovers_are_sent_back(tmp_path: Path) -> None:
    project = Project(tmp_path)
    left = [*commit_file("work/{item_slug}.txt", "{item_id}\n"), {"write": "scratch.txt", "text": "not committed\n"}]
    project.agent("coder", [left, commit_file("work/{item_slug}.txt", "{item_id} again\n")])
    project.configure(gates=[("where", "pwd")], nodes={"server_agents": False, "gates": "node"},
                      tables='[hooks]\nafter_create = "echo readied in $PWD"\n')  # fmt: skip
    project.add("Gated there")
    server, url = await serve(project)
    worker = None
    try:
        worker = await node(tmp_path / "n", servers=(url,), token=await join_token(url))
        await until(lambda: project.stage(1) is Stage.DONE, "the item done")
        first, second = project.store.runs(1)
        # The first attempt left a file uncommitted on the node: retried with that, as a local run is.
        assert "You left uncommitted changes in the worktree: scratch.txt" in project.prompts(1)[1]
        ran = [g for g in project.store.gate_results(1) if g.context == "coding"]
        assert [(g.name, g.run_id) for g in ran] == [("where", second.id)]  # the first attempt's gates never counted
        assert str(tmp_path / "n" / "worktrees") in ran[0].output  # they ran in the node's worktree
        # The node's checkout was readied by the project's after_create before its first agent, in its worktree.
        readied = [g for g in project.store.gate_results(1) if g.context == "after_create" and g.run_id == first.id]
        assert len(readied) == 1 and f"readied in {tmp_path / 'n' / 'worktrees'}" in readied[0].output
        passed = [e for e in project.store.events_after(0, limit=1000, item_id=1) if e.kind == "gates_passed"]
        assert passed[0].data == {"context": "coding", "where": "node"}
        assert first.node_id == second.node_id is not None
        assert "Traceback" not in await stop(server)
    finally:
        await kill(server, *([worker] if worker else []))


async def test_a_node_runs_the_hooks_around_its_agent_and_a_failing_before_run_is_a_failed_attempt(
    tmp_path: Path,
) -> None:
    project = Project(tmp_path)
    project.agent("coder", [commit_file("work/{item_slug}.txt", "{item_id}\n")])
    said = 'echo "$GANGLINE_HOOK in $PWD"'
    first_fails = f'{said}; test "$GANGLINE_RUN_ID" != 1-coder-1 || {{ echo db down; exit 3; }}'
    hooks = {"after_create": said, "before_run": first_fails, "after_run": said}
    tables = "[hooks]\n" + "".join(f"{point} = {json.dumps(command)}\n" for point, command in hooks.items())
    project.configure(gates=[("where", "pwd")], nodes={"server_agents": False}, tables=tables)
    project.add("Hooked there")
    server, url = await serve(project)
    worker = None
    try:
        worker = await node(tmp_path / "n", servers=(url,), token=await join_token(url))
        await until(lambda: project.stage(1) is Stage.DONE, "the item done")
        first, second = project.store.runs(1)
        there = str(tmp_path / "n" / "worktrees")
        on_node = [(g.context, g.run_id, g.exit_code) for g in project.store.gate_results(1) if there in g.output]
        # after_create readied the node's checkout once; before_run failed, so the agent did not start there, and
        # the next attempt ran it again before its agent, and after_run after it.
        assert on_node == [("after_create", first.id, 0), ("before_run", first.id, 3),
                           ("before_run", second.id, 0), ("after_run", second.id, 0)]  # fmt: skip
        assert first.outcome is RunOutcome.FAILED and "the agent did not start" in (first.reason or "")
        assert [p for p in project.prompts(1) if "db down" in p]  # the hook's output was the next prompt
        assert "Hook 'before_run' failed with exit code 3." in project.prompts(1)[0]
        here = [g.context for g in project.store.gate_results(1) if str(project.root) in g.output]
        assert "before_run" not in here and "after_run" not in here  # the server's copy ran none of them
        failed = [e for e in project.store.events_after(0, limit=1000, item_id=1) if e.kind == "hooks_failed"]
        assert [e.data for e in failed] == [{"context": "before_run", "where": "node"}]
        assert "Traceback" not in await stop(server)
    finally:
        await kill(server, *([worker] if worker else []))


def test_gangline_run_takes_no_nodes_and_runs_every_agent_itself_whatever_server_agents_says(tmp_path: Path) -> None:
    import subprocess
    import sys

    from kits.servers import env

    project = Project(tmp_path)
    project.agent("coder", [commit_file("work/{item_slug}.txt", "{item_id}\n")])
    project.configure(nodes={"server_agents": False})
    project.add("Here")
    done = subprocess.run([sys.executable, "-m", "gangline", "run", "--until-idle", "--quiet"], cwd=project.root,
                          env=env(), capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert project.stage(1) is Stage.DONE and [r.node_id for r in project.store.runs(1)] == [None]
