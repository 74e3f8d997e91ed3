"""Build nodes under faults, with real processes: a node killed, a node frozen past its lease, a stale push.

After each: every item done exactly once, never two live runs of one item, no commit lost, and
what a node whose lease is over still had is refused (its agent stopped, nothing pushed).
Leases are 3 s here (renewed every 0.5 s), so a lapse is seen within about 4 s.
"""

from __future__ import annotations

import itertools
import os
import signal
from pathlib import Path

from gangline.agents.recovery import kill_groups, leftover_groups
from gangline.agents.runlog import replay
from gangline.core.events import ProcessStarted, RunOutcome
from gangline.core.stages import Stage
from kits.helpers import git
from kits.pipeline_kit import Project, commit_file
from kits.servers import join_token, kill, node, serve, stop, until

LEASE_S = 3.0


def held(tmp_path: Path, leave: bool = False) -> tuple[Project, Path]:
    """One item whose every coder run waits for its own gate file (``gates/<run id>``) before it commits.

    ``leave``: each run first starts a process that outlives its agent (``gates/pid-<run id>``).
    """
    project = Project(tmp_path)
    gates = tmp_path / "gates"
    gates.mkdir()
    work = commit_file("work/{item_slug}.txt", "{run_id}\n", message="work of {run_id}")
    left = [{"run": f"nohup sleep 600 >/dev/null 2>&1 & echo $! > {gates}/pid-{{run_id}}"}] if leave else []
    waits = {"wait_for_file": f"{gates}/{{run_id}}", "timeout_s": 120}
    project.agent("coder", [[{"say": "working"}, *left, waits, *work]])
    project.configure(nodes={"server_agents": False, "lease_s": LEASE_S})
    project.add("Item")
    return project, gates


def live_on(project: Project, node_name: str) -> str | None:
    """The live run a node holds, once its agent has started there (its process is in the server's log)."""
    names = {n.id: n.name for n in project.store.nodes()}
    for run in project.store.runs(live_only=True):
        if run.node_id is not None and names.get(run.node_id) == node_name and _agent_pid(run.log_path):
            return run.id
    return None


def _agent_pid(log_path: str) -> int | None:
    if not Path(log_path).exists():
        return None
    started = [r.event for r in replay(Path(log_path)) if isinstance(r.event, ProcessStarted)]
    return started[0].pid if started else None


def alive(pid: int) -> bool:
    """Running, not a zombie (a killed orphan may wait for a subreaper that never reaps it: this test process)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def done_once(project: Project) -> None:
    """The item done and merged once; its runs one after another; every run closed with its cost counted once."""
    (item,) = project.store.list_items()
    assert item.stage is Stage.DONE
    events = project.store.events_after(0, limit=10_000, item_id=item.id)
    assert len([e for e in events if e.trigger == "merged"]) == 1
    runs = project.store.runs(item.id)
    assert not any(r.live for r in runs)
    for earlier, later in itertools.pairwise(runs):
        assert earlier.ended_at is not None and earlier.ended_at <= later.started_at
    ledger = {row.key: row.cost_usd for row in project.store.ledger("run")}
    assert ledger == {r.id: r.cost_usd for r in runs} and runs[-1].cost_usd > 0  # the last run's cost, once


def branch_log(project: Project) -> list[str]:
    return git(project.root, "log", "--format=%s", "gangline/1-item").splitlines()


async def test_a_node_killed_mid_run_loses_its_lease_another_finishes_and_its_agent_is_reaped(tmp_path: Path) -> None:
    project, gates = held(tmp_path, leave=True)
    server, url = await serve(project)
    first = second = None
    try:
        # Unconfined: in its sandbox the agent's processes would share its pid namespace and die with it.
        token = await join_token(url)
        first = await node(tmp_path / "a", "--name", "a", "--sandbox", "off", servers=(url,), token=token)
        await until(lambda: live_on(project, "a") is not None, "node a runs the item")
        killed_run = live_on(project, "a")
        assert killed_run is not None
        pid_file = gates / f"pid-{killed_run}"
        await until(lambda: pid_file.exists() and pid_file.read_text().endswith("\n"), "its agent started a process")
        orphan = int(pid_file.read_text())
        first.send_signal(signal.SIGKILL)
        await first.wait()
        second = await node(tmp_path / "b", "--name", "b", servers=(url,), token=await join_token(url))
        await until(lambda: live_on(project, "b") is not None, "node b takes the item over")
        lapsed = project.store.get_run(killed_run)
        assert lapsed.outcome is RunOutcome.STOPPED and "stopped renewing its lease" in (lapsed.reason or "")
        (gates / str(live_on(project, "b"))).touch()
        await until(lambda: project.stage(1) is Stage.DONE, "the item done")
        assert alive(orphan)  # what a's agent started outlived a (kill -9)
        first = await node(tmp_path / "a", "--sandbox", "off", servers=(url,))  # a again: it reaps what it left
        await until(lambda: not alive(orphan), "what a left running killed")
        assert "Traceback" not in await stop(server)
    finally:
        await kill(server, *(p for p in (first, second) if p is not None))
        kill_groups(leftover_groups((tmp_path / "b").resolve()))  # b's own run's process
    done_once(project)
    assert branch_log(project)[0] == "work of 1-coder-2"


async def test_a_node_frozen_past_its_lease_is_refused_when_it_thaws_and_pushes_nothing(tmp_path: Path) -> None:
    project, gates = held(tmp_path)
    server, url = await serve(project)
    frozen = other = None
    try:
        frozen = await node(tmp_path / "a", "--name", "a", servers=(url,), token=await join_token(url))
        await until(lambda: live_on(project, "a") is not None, "node a runs the item")
        first_run = live_on(project, "a")
        frozen.send_signal(signal.SIGSTOP)
        (gates / str(first_run)).touch()  # its agent commits meanwhile, in a's worktree
        other = await node(tmp_path / "b", "--name", "b", servers=(url,), token=await join_token(url))
        await until(lambda: live_on(project, "b") is not None, "node b takes the item over")
        frozen.send_signal(signal.SIGCONT)
        pid = _agent_pid(project.store.get_run(str(first_run)).log_path)
        await until(lambda: pid is not None and not alive(pid), "a's agent ended")
        (gates / str(live_on(project, "b"))).touch()
        await until(lambda: project.stage(1) is Stage.DONE, "the item done")
        said_by_a = await stop(frozen)
        assert "Traceback" not in said_by_a and "lease" in said_by_a, said_by_a
        assert "Traceback" not in await stop(server)
    finally:
        if frozen is not None and frozen.returncode is None:
            os.kill(frozen.pid, signal.SIGCONT)
        await kill(server, *(p for p in (frozen, other) if p is not None))
    done_once(project)
    assert "work of 1-coder-1" not in branch_log(project)  # the thawed node's commit never reached the server
    assert branch_log(project)[0] == "work of 1-coder-2"
