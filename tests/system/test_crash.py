"""Crash consistency: SIGKILL the server at random points of a multi-item run, restart, check the invariants."""

from __future__ import annotations

import itertools
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from gangline.agents.processes import ProcessRecord, Spawned, boot_id, kill_group_now, spawn_in_pty
from gangline.agents.recovery import PROJECT_VAR, kill_groups, leftover_groups
from gangline.agents.runlog import replay_if_any
from gangline.core.events import RunOutcome, ToolResult
from gangline.core.items import Item
from gangline.core.profiles import Role
from gangline.core.records import NewRun
from gangline.core.stages import Stage, Trigger
from gangline.store import Store, open_sqlite, open_store
from gangline.store import sqlite as store_module
from kits.pipeline_kit import Project, commit_file, git
from kits.postgres import Cluster

ITEMS = 3


def serve(project: Project, env: dict[str, str] | None = None, told: bool = False) -> subprocess.Popen[bytes]:
    """``gangline run --until-idle`` as its own process: the server a person would run (``told``: what it prints
    is kept, to read with ``communicate``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "gangline", "run", "--until-idle", "--quiet"],
        cwd=project.root,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if told else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for_events(store: Store, count: int, server: subprocess.Popen[bytes], bound_s: float = 60) -> None:
    """Block until the store holds ``count`` events or the server exits (bounded)."""
    deadline = time.monotonic() + bound_s
    while len(store.events_after(0, limit=count)) < count and server.poll() is None:
        assert time.monotonic() < deadline, f"fewer than {count} events after {bound_s}s"
        time.sleep(0.01)  # polling a condition with a bound, not waiting on the clock


def check_invariants(project: Project, finished: bool, count: int = ITEMS) -> None:
    store = project.store
    items = store.list_items()
    assert len(items) == count, "an item was lost"
    for item in items:
        chain = [e for e in store.events_after(0, limit=100_000, item_id=item.id) if e.kind == "transition"]
        stage = "backlog"
        for event in chain:  # every transition starts where the previous one ended: none lost
            assert event.from_stage == stage, (item.id, [(e.trigger, e.from_stage, e.to_stage) for e in chain])
            stage = event.to_stage or stage
        assert stage == item.stage.value
        runs = store.runs(item.id)
        assert len([r for r in runs if r.live]) <= 1
        for earlier, later in itertools.pairwise(runs):  # never two runs of an item at once
            assert earlier.ended_at is not None and earlier.ended_at <= later.started_at
    base = git(project.root, "log", "--format=%H %s%n%b", "main")
    merged = [line for line in base.splitlines() if line.startswith("Gangline-Item:")]
    on_base = set(git(project.root, "rev-list", "main").split())
    # A kill between the base's move and the item's DONE leaves the squash recorded (merged_commit) and on the
    # base, the transition still to make: the merge job makes it when a server starts again.
    landing = [i for i in items if i.stage is Stage.MERGE and i.merged_commit in on_base and not finished]
    done = [i for i in items if i.stage is Stage.DONE]
    assert len(merged) == len(done) + len(landing) == len(set(merged)), (
        "the base moved other than by one merge per done item"
    )
    if finished:
        assert not any(r.live for r in store.runs())
        assert leftover_groups(project.root) == set(), "an agent or gate outlived the server"


def left_why(project: Project) -> str:
    """For a failure's message: each unfinished item's events and its runs' failed tool calls."""
    said = []
    for item in project.store.list_items():
        if item.stage is Stage.DONE:
            continue
        events = project.store.events_after(0, limit=100_000, item_id=item.id)
        said += [f"#{item.id} {e.kind} {e.run_id or ''} {e.reason or ''} {e.data or ''}" for e in events]
        for run in project.store.runs(item.id):
            events_of_run = [record.event for record in replay_if_any(Path(run.log_path))]
            failed = [e for e in events_of_run if isinstance(e, ToolResult) and e.is_error]
            said += [f"#{item.id} {run.id}: {tool.content[:300]}" for tool in failed]
    return "\n".join(said)


@pytest.mark.usefixtures("project_database")
@pytest.mark.parametrize("seed", [1, 2])
def test_killing_the_server_anywhere_loses_nothing_and_duplicates_nothing(tmp_path: Path, seed: int) -> None:
    project = Project(tmp_path)
    slow = [{"say": "thinking"}, {"sleep": 0.3}, *commit_file("work/{item_slug}.txt", "{item_id}\n"), {"sleep": 0.2}]
    project.agent("coder", [slow])
    project.agent(
        "qa", [[{"sleep": 0.2}, {"final_json": {"verdict": "pass", "criteria": [], "summary": "ok"}}]], role="qa"
    )
    project.configure(
        qa_mode="agent",
        gates=[("work", 'sleep 0.2; test -n "$(git ls-files work)"')],
        concurrency={"coder": 2, "qa": 1},
    )
    for n in range(ITEMS):
        project.add(f"Item number {n}")
    rng = random.Random(seed)
    kills = 0
    for _ in range(4):
        server = serve(project)
        target = len(project.store.events_after(0, limit=100_000)) + rng.randint(2, 12)
        wait_for_events(project.store, target, server)
        if server.poll() is not None:
            server.communicate()
            break
        server.send_signal(signal.SIGKILL)
        server.communicate()
        kills += 1
        check_invariants(project, finished=False)
    server = serve(project, told=True)
    out, err = server.communicate(timeout=120)
    assert server.returncode == 0, (out + err).decode() + left_why(project)
    assert kills >= 1
    check_invariants(project, finished=True)
    assert all(i.stage is Stage.DONE for i in project.store.list_items())
    crashed = [r for r in project.store.runs() if r.outcome is RunOutcome.CRASHED]
    assert all("gangline stopped" in (r.reason or "") for r in crashed)


# Each stage's instant, told by what the store or the gate itself shows (never by a timer).
STAGES: dict[str, Callable[[Store, Path], bool]] = {
    "coding": lambda store, marks: any(r.live and r.pid for r in store.runs()),
    "parked for a rate limit": lambda store, marks: any(e.kind == "parked" for e in store.events_after(0)),
    "gates": lambda store, marks: (marks / "gate").exists(),
    "merge": lambda store, marks: (marks / "merge-gate").exists(),
}
MARKING_GATE = (
    'case "$PWD" in */.gangline/merge*) touch "$MARKS/merge-gate";; *) touch "$MARKS/gate";; esac; '
    'sleep 0.5; test -n "$(git ls-files work)"'
)


@pytest.mark.usefixtures("project_database")
@pytest.mark.parametrize("stage", STAGES)
def test_killing_the_server_in_each_stage_then_restarting_finishes_the_item_once(tmp_path: Path, stage: str) -> None:
    project = Project(tmp_path)
    limited = [{"say": "starting"}, {"sleep": 0.5}, {"rate_limit": {"resets_in_s": 1}}]
    project.agent("coder", [limited, [{"sleep": 0.3}, *commit_file("work/{item_slug}.txt", "{item_id}\n")]])
    marks = tmp_path / "marks"
    marks.mkdir()
    # The gate leaves its marks outside the worktree: shown writable in its sandbox.
    writable = [str(project.scenarios), str(marks)]
    project.configure(gates=[("work", MARKING_GATE)], rate_limit={"margin_s": 0}, sandbox_writable=writable)
    item = project.add("Survive a kill")
    server = serve(project, {"MARKS": str(marks)})
    deadline = time.monotonic() + 60
    while not STAGES[stage](project.store, marks):
        assert server.poll() is None, f"the server ended before reaching {stage}: {server.communicate()[1]!r}"
        assert time.monotonic() < deadline, f"never reached {stage}"
        time.sleep(0.01)  # polling a condition with a bound, not waiting on the clock
    server.send_signal(signal.SIGKILL)
    server.communicate()
    check_invariants(project, finished=False, count=1)
    parked_before = [e.data for e in project.store.events_after(0) if e.kind == "parked"]
    server = serve(project, {"MARKS": str(marks)})
    _, err = server.communicate(timeout=120)
    assert server.returncode == 0, err.decode()
    check_invariants(project, finished=True, count=1)
    done = project.item(item.id)
    assert done.stage is Stage.DONE and done.retries == 0, done.state  # a crash costs no retry
    assert project.base_file(f"work/{item.slug}.txt") == str(item.id)
    coder = [r for r in project.store.runs(item.id) if r.role is Role.CODER]
    for earlier, later in itertools.pairwise(coder):  # a killed or parked run's session goes on, not a new one
        if earlier.outcome in (RunOutcome.CRASHED, RunOutcome.RATE_LIMITED) and earlier.session_id:
            assert later.resumed_session == earlier.session_id, (earlier, later)
    if stage == "coding":
        assert any(r.outcome is RunOutcome.CRASHED for r in coder), "the kill did not land in a run"
    if stage == "parked for a rate limit":  # the park, and its reset time, outlived the server
        assert [e.data for e in project.store.events_after(0) if e.kind == "parked"][: len(parked_before)] == (
            parked_before
        )


def left_live(tmp_path: Path, env: dict[str, str], boot: str) -> tuple[Project, Item, Spawned]:
    """A project whose coding item has a live run row, its process recorded as ``boot``'s, as a killed server leaves."""
    project = Project(tmp_path)
    project.agent("coder", [[*commit_file("a.txt", "x"), {"say": "done"}]])
    project.configure()
    item = project.add("Interrupted")
    coding = project.store.transition(item.id, Trigger.START, "gangline")
    process = spawn_in_pty(["sleep", "1000"], project.root, env)
    run = NewRun("1-coder-1", item.id, Role.CODER, "coder", 1, str(project.root), str(tmp_path / "none.jsonl"))
    project.store.start_run(run, coding.state, "gangline")
    rec: ProcessRecord = process.record
    project.store.record_process(run.id, rec.pid, rec.pgid, rec.start_ticks, boot)
    return project, item, process


@pytest.mark.usefixtures("project_database")
async def test_a_restarted_server_kills_the_agents_of_the_old_one_and_resumes_their_items(tmp_path: Path) -> None:
    # What a server killed mid-run leaves behind: a live run row and its agent, still running.
    project, item, orphan = left_live(tmp_path, {**os.environ, PROJECT_VAR: str(tmp_path / "repo")}, boot_id())
    await project.run_until_idle()
    assert orphan.popen.wait(timeout=5) == -signal.SIGKILL
    os.close(orphan.master_fd)
    first, second = project.store.runs(item.id)
    assert first.outcome is RunOutcome.CRASHED and first.reason == "gangline stopped while this run was live"
    assert second.outcome is RunOutcome.SUCCEEDED
    assert project.stage(item.id) is Stage.DONE and project.item(item.id).retries == 0


@pytest.mark.usefixtures("project_database")
async def test_a_run_another_machine_left_live_is_closed_and_nothing_here_is_killed_for_it(tmp_path: Path) -> None:
    # A process of this machine whose pid and start ticks happen to be what the other machine recorded.
    project, item, bystander = left_live(tmp_path, dict(os.environ), "another-machine-or-boot")
    rec = bystander.record
    try:
        await project.run_until_idle()
        assert bystander.popen.poll() is None  # still running: it was never the run's
    finally:
        kill_group_now(rec.pgid)
        bystander.popen.wait(timeout=5)
        os.close(bystander.master_fd)
    first, second = project.store.runs(item.id)
    assert first.outcome is RunOutcome.CRASHED and second.outcome is RunOutcome.SUCCEEDED


def test_a_server_on_another_checkout_of_the_same_postgresql_database_is_refused(
    tmp_path: Path, postgres: Cluster
) -> None:
    url = postgres.database()
    projects = []
    for name in ("one", "two"):  # two checkouts (clones, say on two machines) of one project, one database
        (tmp_path / name).mkdir()
        project = Project(tmp_path / name)
        project.database_url = url
        project.store = open_store(url)
        project.agent("coder", [[{"wait_for_file": str(tmp_path / "go"), "timeout_s": 60}]])
        project.configure()
        projects.append(project)
    one, two = projects
    try:
        err = refused_beside(one, two)
        assert b"another gangline server already drives the database" in err and b"Traceback" not in err
        assert len(two.store.runs()) == 1  # the refused server started nothing
    finally:
        for project in projects:
            project.store.close()


def test_a_second_server_on_the_same_project_is_refused(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [[{"wait_for_file": str(tmp_path / "go"), "timeout_s": 60}]])
    project.configure()
    assert b"another gangline server" in refused_beside(project, project)


def refused_beside(serving: Project, other: Project) -> bytes:
    """A server on ``other`` while one serves ``serving`` (its agent waiting): exit 8, and what it said."""
    serving.add("Hold the server")
    first = serve(serving)
    try:
        wait_for_events(serving.store, 3, first)  # created, start, run_started: the first one is serving
        second = serve(other)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 8, err.decode()
        return err
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
        kill_groups(leftover_groups(serving.root))  # its agent, orphaned by the kill


# A newer gangline opening the database, SIGKILLed right after its migration's first DDL statement:
# the worst instant, a table created and the new revision not yet recorded.
_KILLED_MID_MIGRATION = """
import os, signal, sys
from pathlib import Path
from sqlalchemy import event
import gangline.store.sqlite as store

real_migrate = store.migrate

def migrate(engine):
    @event.listens_for(engine, "after_cursor_execute")
    def _die(conn, cursor, statement, *rest):
        if statement.lstrip().upper().startswith("CREATE TABLE"):
            os.kill(os.getpid(), signal.SIGKILL)
    real_migrate(engine)

store.migrate = migrate
store.open_sqlite(Path(sys.argv[1]))
"""


def _migrate_to(revision: str) -> Callable[[Engine], None]:
    def migrate(engine: Engine) -> None:
        config = Config()
        config.set_main_option("script_location", "gangline.store:migrations")
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)

    return migrate


def test_a_server_killed_in_the_middle_of_a_migration_leaves_the_database_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "state.db"
    with monkeypatch.context() as older:  # the database of an older gangline (first revision), holding an item
        older.setattr(store_module, "migrate", _migrate_to("0001"))
        open_sqlite(db).close()
    with sqlite3.connect(db) as conn:  # the row as that gangline wrote it: no column a later revision added
        conn.execute(
            "INSERT INTO items (slug, kind, title, body, priority, stage, frozen, retries, merge_attempts, created_at,"
            " updated_at) VALUES ('keep-me', 'story', 'Keep me', 'all of it', 0, 'backlog', 0, 0, 0, 1.0, 1.0)"
        )
    killed = subprocess.run([sys.executable, "-c", _KILLED_MID_MIGRATION, str(db)], capture_output=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    store = open_sqlite(db)  # the next start migrates from the last commit, which was the old schema
    try:
        assert [(i.title, i.body) for i in store.list_items()] == [("Keep me", "all of it")]
        assert store.permission_rules() == []  # the table the interrupted migration adds is there and works
    finally:
        store.close()
