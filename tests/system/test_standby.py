"""A standby server: two ``gangline serve`` on one project and database, the first killed, the second taking over.

Real processes, a real PTY for each agent, the project's database on SQLite and on PostgreSQL.
The standby serves reads from the start and refuses orders (they could not reach the runs of the
server that drives the pipeline); once the driver is SIGKILLed it takes the locks, reaps what
the dead server left as a restart does, announces itself, and finishes every item exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from gangline.core.events import RunOutcome
from gangline.core.stages import Stage
from gangline.project.serverfile import read_server_file
from gangline.store.base import DRIVER_LOCK
from kits import pipeline_kit
from kits.pipeline_kit import Project, commit_file
from kits.postgres import Cluster
from kits.servers import TOKEN, kill, serve, stop, until

ITEMS = 3


def held_project(tmp_path: Path) -> tuple[Project, Path]:
    """A project whose first agent attempts wait for the returned gate: its driver is stopped mid-run, for sure."""
    project = Project(tmp_path)
    gate = tmp_path / "go"
    work = commit_file("work/{item_slug}.txt", "{item_id}\n")
    project.agent("coder", [[{"say": "working"}, {"wait_for_file": str(gate), "timeout_s": 120}, *work], work])
    project.configure(concurrency={"coder": 2})
    for n in range(ITEMS):
        project.add(f"Item {n}")
    return project, gate


@asynccontextmanager
async def driver_and_standby(project: Project) -> AsyncIterator[tuple[Process, Process, str]]:
    """``gangline serve`` driving the project, two runs under way, and ``serve --standby`` beside it (its URL)."""
    driver, _ = await serve(project)
    standby, standby_url = await serve(project, "--standby")
    try:
        await until(lambda: len([r for r in project.store.runs() if r.live and r.pid]) == 2, "two runs under way")
        yield driver, standby, standby_url
    finally:
        await kill(driver, standby)


def each_done_once(project: Project) -> None:
    """Every item done, merged once, its runs one after another; no run left live."""
    assert not any(r.live for r in project.store.runs())
    for item in project.store.list_items():
        assert item.stage is Stage.DONE
        events = project.store.events_after(0, limit=10_000, item_id=item.id)
        assert len([e for e in events if e.trigger == "merged"]) == 1, item
        for earlier, later in itertools.pairwise(project.store.runs(item.id)):  # never two runs at once
            assert earlier.ended_at is not None and earlier.ended_at <= later.started_at
    assert len(project.base_log()) == 1 + ITEMS  # one squash commit per item on the base


@pytest.mark.usefixtures("project_database")
async def test_a_standby_serves_reads_refuses_orders_and_takes_over_when_the_driver_is_killed(tmp_path: Path) -> None:
    project, gate = held_project(tmp_path)
    async with driver_and_standby(project) as (driver, standby, standby_url):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=standby_url, headers=headers) as standing_by:
            listed = (await standing_by.get("/api/items")).json()
            assert [i["title"] for i in listed] == [f"Item {n}" for n in range(ITEMS)]  # reads are served
            refused = await standing_by.post("/api/items", json={"title": "Not here"})
            assert refused.status_code == 503 and "this server is a standby" in refused.json()["error"]["message"]
        found = read_server_file(project.paths)
        assert found is not None and found.pid == driver.pid  # the CLI keeps talking to the driver
        driver.send_signal(signal.SIGKILL)
        await driver.wait()
        gate.touch()  # the third item's first attempt need not wait
        await until(lambda: all(i.stage is Stage.DONE for i in project.store.list_items()), "every item done")
        taken_over = read_server_file(project.paths)
        assert taken_over is not None and taken_over.pid == standby.pid  # it announced itself once driving
        assert "Traceback" not in await stop(standby)
    each_done_once(project)
    killed = [r for r in project.store.runs() if r.outcome is RunOutcome.CRASHED]
    assert len(killed) == 2 and all(r.reason == "gangline stopped while this run was live" for r in killed)


async def test_a_driver_whose_lock_connection_is_cut_stops_driving_and_the_standby_finishes_the_work(
    tmp_path: Path, postgres: Cluster
) -> None:
    url = postgres.database()
    previous, pipeline_kit.DATABASE_URL = pipeline_kit.DATABASE_URL, url
    try:
        project, gate = held_project(tmp_path)
    finally:
        pipeline_kit.DATABASE_URL = previous
    try:
        async with driver_and_standby(project) as (driver, standby, _):
            # What a database restart or a cut network does to the driver: its lock's session ends.
            with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
                ended = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
                    (DRIVER_LOCK,),
                ).fetchall()
            assert ended == [(True,)]
            async with asyncio.timeout(60):
                err = (await driver.communicate())[1].decode()
            assert "lost the database's driver lock" in err  # it stopped driving, and said why
            gate.touch()
            await until(lambda: all(i.stage is Stage.DONE for i in project.store.list_items()), "every item done")
            assert "Traceback" not in await stop(standby)
        each_done_once(project)
    finally:
        project.store.close()
