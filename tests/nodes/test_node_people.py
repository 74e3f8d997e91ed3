"""Build nodes as people steer them, and the protocol's refusals: tokens and the list from the CLI,
draining, labels that choose the node, a stale epoch's push, and nodes following a standby."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gangline.core.errors import GitError
from gangline.core.nodes import LeaseLost
from gangline.core.nodewire import JoinIn
from gangline.core.stages import Stage
from gangline.nodes.checkout import Checkout
from gangline.nodes.client import NodeClient
from kits.helpers import git
from kits.pipeline_kit import Project, commit_file
from kits.servers import env, join_token, kill, node, serve, stop, until


def cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gangline", *args], cwd=project.root, env=env(),
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def _project(tmp_path: Path, items: int = 1, steps: list[dict[str, object]] | None = None, **agent: object) -> Project:
    project = Project(tmp_path)
    work = commit_file("work/{item_slug}.txt", "{run_id}\n", message="work of {run_id}")
    project.agent("coder", [[*(steps or []), *work]], **agent)
    project.configure(nodes={"server_agents": False, "lease_s": 3.0})
    for n in range(items):
        project.add(f"Item {n}")
    return project


async def test_a_person_makes_a_token_lists_the_nodes_and_drains_one_from_the_cli(tmp_path: Path) -> None:
    project = _project(tmp_path, items=0)
    server, url = await serve(project)
    worker = None
    try:
        made = cli(project, "node", "token")
        assert made.returncode == 0 and "valid until" in made.stderr, made.stderr
        worker = await node(tmp_path / "a", "--name", "a", "--label", "gpu", "--slots", "coder=2", "--slots", "qa=1",
                            servers=(url,), token=made.stdout.strip())  # fmt: skip
        await until(lambda: len(project.store.nodes()) == 1, "the node joined")
        listed = json.loads(cli(project, "nodes", "--json").stdout)
        assert [(n["name"], n["labels"], n["slots"], n["live"], n["draining"]) for n in listed] == [
            ("a", ["gpu"], {"coder": 2, "qa": 1}, True, False)
        ]
        assert "a" in cli(project, "nodes").stdout
        again = cli(project, "node", "token")
        reused = await node(tmp_path / "b", servers=(url,), token=made.stdout.strip())  # a token works once
        async with asyncio.timeout(60):
            _, err = await reused.communicate()
        assert reused.returncode == 11 and "already used" in err.decode()
        assert again.stdout.strip() != made.stdout.strip()
        drained = cli(project, "nodes", "drain", "a")
        assert drained.returncode == 0 and "node a is draining" in drained.stdout
        async with asyncio.timeout(60):
            out, err = await worker.communicate()
        assert worker.returncode == 0 and "node a is drained" in out.decode(), err.decode()
        missing = cli(project, "nodes", "drain", "nobody")
        assert missing.returncode == 7 and "nobody" in missing.stderr
        assert "Traceback" not in await stop(server)
    finally:
        await kill(server, *([worker] if worker else []))


async def test_a_profile_that_needs_a_label_runs_only_on_a_node_that_has_it(tmp_path: Path) -> None:
    project = _project(tmp_path, items=2, node_labels=["gpu"])
    server, url = await serve(project)
    plain = gpu = None
    try:
        plain = await node(tmp_path / "plain", "--name", "plain", servers=(url,), token=await join_token(url))
        await until(lambda: len(project.store.nodes()) == 1, "the plain node joined")
        gpu = await node(
            tmp_path / "gpu", "--name", "gpu", "--label", "gpu", servers=(url,), token=await join_token(url)
        )
        await until(lambda: all(i.stage is Stage.DONE for i in project.store.list_items()), "every item done")
        by_id = {n.id: n.name for n in project.store.nodes()}
        assert {by_id[r.node_id] for r in project.store.runs() if r.node_id is not None} == {"gpu"}
        assert "Traceback" not in await stop(server)
    finally:
        await kill(server, *(p for p in (plain, gpu) if p is not None))


async def test_a_push_or_an_upload_under_a_lapsed_epoch_is_refused_and_moves_nothing(tmp_path: Path) -> None:
    project = _project(tmp_path, items=1)
    server, url = await serve(project)
    client = NodeClient((url,))
    try:
        joined = await client.join(JoinIn(token=await join_token(url), name="stale", slots={"coder": 1},
                                          clis={"fake": "1"}))  # fmt: skip
        client.credential = joined.credential
        leased = await client.lease({}, 5.0)
        assert leased is not None and leased.run.push
        checkout = Checkout(tmp_path / "stale", client)
        path = await checkout.prepare(leased.run)
        (path / "late.txt").write_text("too late\n")
        git(path, "add", "late.txt")
        git(path, "commit", "-q", "-m", "work of a stale lease")
        # Never renewed: the lease lapses, the run ends, and the item goes on without this "node".
        await until(lambda: not project.store.get_run(leased.run.run_id).live, "the lease lapsed")
        with pytest.raises(GitError) as refused:
            await checkout.push(leased.run, path, leased.epoch)
        assert "returned error: 409" in str(refused.value)  # the server refused the lapsed epoch's push
        with pytest.raises(LeaseLost, match=r"its run has ended|lapsed"):
            await client.upload(leased.run.run_id, leased.epoch, b"")
        branch = git(project.root, "log", "--format=%s", "-1", "gangline/1-item-0")
        assert branch.strip() != "work of a stale lease"
        assert "Traceback" not in await stop(server)
    finally:
        await client.aclose()
        await kill(server)


async def test_nodes_given_a_driver_and_a_standby_follow_the_standby_when_the_driver_is_killed(tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    project = _project(tmp_path, items=2, steps=[{"wait_for_file": f"{gates}/{{run_id}}", "timeout_s": 120}])
    driver, driver_url = await serve(project)
    standby, standby_url = await serve(project, "--standby")
    worker = None
    try:
        token = await join_token(driver_url)
        worker = await node(tmp_path / "a", "--name", "a", "--slots", "coder=2", servers=(driver_url, standby_url),
                            token=token)  # fmt: skip
        await until(lambda: len([r for r in project.store.runs() if r.live]) == 2, "two runs on the node")
        driver.send_signal(signal.SIGKILL)
        await driver.wait()
        # The standby reaps the driver's runs; the node is refused for them, then leases the standby's.
        await until(lambda: len([r for r in project.store.runs() if r.live]) == 2 and len(project.store.runs()) == 4,
                    "the standby offered both items again and the node took them")  # fmt: skip
        for run in project.store.runs():
            (gates / run.id).touch()
        await until(lambda: all(i.stage is Stage.DONE for i in project.store.list_items()), "every item done")
        assert "Traceback" not in await stop(standby)
    finally:
        await kill(driver, standby, *([worker] if worker else []))
    assert len(project.base_log()) == 3
