"""Faults that are not crashes: a database another process has locked, a gate that never ends, a clock that jumps."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gangline.core.events import RunOutcome
from gangline.core.stages import Hold, Stage
from gangline.pipeline.orchestrator import Orchestrator
from gangline.project.paths import ProjectPaths
from gangline.store import open_sqlite
from kits.helpers import alive, cli_env, gangline, initialised_repo, ok
from kits.pipeline_kit import Project, commit_file

BOUND_S = 30.0

# Another process holding SQLite's write lock until it reads a line on stdin.
HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""

# The real CLI with a short busy timeout, so a lock can outlast it in well under a second
# instead of the shipped 10 s. Nothing else is changed.
SHORT_WAIT_CLI = "import gangline.store.sqlite as s; s.BUSY_TIMEOUT_S = 0.3; from gangline.cli.app import main; main()"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return initialised_repo(tmp_path / "repo")


@pytest.fixture
def lock(project: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the project's database write lock until ``release(lock)``."""
    db = ProjectPaths(project).db_file
    open_sqlite(db).close()  # the database as any earlier gangline command left it (WAL mode)
    holder = hold_lock(db)
    yield holder
    release(holder)


def hold_lock(db: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "locked\n"
    return holder


def release(holder: subprocess.Popen[str]) -> None:
    if holder.poll() is None:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(BOUND_S) == 0
    for pipe in (holder.stdin, holder.stdout):
        if pipe is not None:
            pipe.close()


def titles(project: Path) -> list[str]:
    store = open_sqlite(ProjectPaths(project).db_file)
    try:
        return [item.title for item in store.list_items()]
    finally:
        store.close()


def has_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open (read from /proc)."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd) == str(path) for fd in fds.iterdir())
    except OSError:
        return False


def test_a_write_while_another_process_holds_the_lock_fails_clearly_and_writes_nothing(
    project: Path, lock: subprocess.Popen[str]
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SHORT_WAIT_CLI, "add", "Add login"],
        cwd=project,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=BOUND_S,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 10  # DatabaseBusyError
    assert "Traceback" not in out.stderr
    assert "error:" in out.stderr
    assert "is locked by another process" in out.stderr
    assert str(ProjectPaths(project).db_file) in out.stderr
    release(lock)
    assert titles(project) == []
    ok(gangline("add", "Add login", cwd=project))  # once the lock is gone the same write works
    assert titles(project) == ["Add login"]


def test_a_write_waits_out_a_short_lock_and_succeeds(project: Path, lock: subprocess.Popen[str]) -> None:
    db = ProjectPaths(project).db_file
    add = subprocess.Popen(
        [sys.executable, "-m", "gangline", "add", "Add login"],
        cwd=project,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    # Once it has the WAL index open it is at (or a moment from) its first write: the locked BEGIN.
    shm = db.with_name(db.name + "-shm")
    deadline = time.monotonic() + BOUND_S
    while not has_open(add.pid, shm):
        assert add.poll() is None, add.communicate()
        assert time.monotonic() < deadline, "`gangline add` never opened the database"
        time.sleep(0.01)  # polling a condition with a bound
    assert add.poll() is None, "the write gave up instead of waiting for the lock"
    release(lock)
    stdout, stderr = add.communicate(timeout=BOUND_S)
    assert add.returncode == 0, stdout + stderr
    assert titles(project) == ["Add login"]


# --- a gate that never ends --------------------------------------------------------------------


async def test_a_gate_that_never_ends_is_killed_with_its_children_and_blocks_the_item(tmp_path: Path) -> None:
    project = Project(tmp_path)
    pids = tmp_path / "gate.pids"
    project.agent("coder", [commit_file("a.txt", "work\n")])
    hang = f"echo $$ >> {pids}; sleep 1000 & echo $! >> {pids}; sleep 1000"
    # Unconfined, so the pids it writes are the machine's (in the sandbox its pid namespace ends them all).
    tables = f"[[gate]]\nname = \"hang\"\ncommand = '{hang}'\ntimeout_s = 1\n"
    project.configure(max_retries=0, sandbox="off", tables=tables)
    item = project.add("Hanging tests")
    await project.run_until_idle(timeout_s=BOUND_S)
    held = project.item(item.id)
    assert (held.stage, held.state.hold) == (Stage.CODING, Hold.BLOCKED)
    assert held.state.hold_reason is not None
    assert re.search(r"Gate 'hang' timed out after \d\.\d s and was killed", held.state.hold_reason)
    [gate] = project.store.gate_results(item.id)
    assert gate.timed_out and gate.exit_code is None and gate.name == "hang"
    [run] = project.store.runs(item.id)
    assert run.outcome is RunOutcome.SUCCEEDED  # the agent was fine; its work did not pass
    shell, grandchild = (int(line) for line in pids.read_text().split())
    assert not alive(shell) and not alive(grandchild)
    assert project.base_log() == ["initial"]


# --- clock jumps -------------------------------------------------------------------------------

DAY_S = 86400.0
TICK_S = 0.05
WRITE = commit_file("work/{item_slug}.txt", "done by {item_id}\n")
GATE_HAS_WORK = ("work", 'test -n "$(git ls-files work)"')


class JumpingClock:
    """The wall clock, plus an offset a test moves to make it jump (NTP, a suspended laptop)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Ticks:
    """Counts the orchestrator's reconcile passes (wrapping the real ``tick``)."""

    def __init__(self, orch: Orchestrator) -> None:
        self.count = 0
        real = orch.tick

        def counted() -> object:
            self.count += 1
            return real()

        orch.tick = counted  # type: ignore[method-assign]

    async def wait(self, more: int) -> float:
        """Wait for ``more`` passes; return the (monotonic) seconds they took."""
        loop = asyncio.get_running_loop()
        start, target = loop.time(), self.count + more
        while self.count < target:
            assert loop.time() < start + BOUND_S, "the orchestrator stopped ticking"
            await asyncio.sleep(0.01)
        return loop.time() - start


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND_S
    while not condition():
        assert loop.time() < deadline, f"never: {what}"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def serving(orch: Orchestrator) -> AsyncIterator[asyncio.Task[None]]:
    """``orch.serve(until_idle=True)`` as a task; cancelled and awaited on the way out, however the test ends."""
    task = asyncio.create_task(orch.serve(until_idle=True))
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_wall_clock_jump_either_way_does_not_kill_a_healthy_agent(tmp_path: Path) -> None:
    project = Project(tmp_path)
    go = tmp_path / "go"
    project.agent("coder", [[{"say": "working"}, {"wait_for_file": str(go), "timeout_s": 60}, *WRITE]])
    project.configure(gates=[GATE_HAS_WORK])
    item = project.add("Steady work")
    clock = JumpingClock()
    orch = project.orchestrator(clock=clock, tick_s=TICK_S)
    ticks = Ticks(orch)
    async with serving(orch) as task:
        await until(lambda: any(run.live for run in project.store.runs(item.id)), "the agent started")
        clock.offset = DAY_S  # a day forward: far past the 30 s inactivity timeout, were it on this clock
        await ticks.wait(3)
        clock.offset = -DAY_S  # then back
        await ticks.wait(3)
        assert [run.live for run in project.store.runs(item.id)] == [True]
        go.write_text("go\n")
        await asyncio.wait_for(task, BOUND_S)
    assert project.stage(item.id) is Stage.DONE
    [run] = project.store.runs(item.id)
    assert run.outcome is RunOutcome.SUCCEEDED


async def test_a_parked_item_survives_a_jump_back_and_a_jump_forward_releases_it_without_busy_looping(
    tmp_path: Path,
) -> None:
    project = Project(tmp_path)
    project.agent("coder", [[{"say": "starting"}, {"rate_limit": {"resets_in_s": 3600}}], WRITE])
    project.configure(gates=[GATE_HAS_WORK], max_retries=0, rate_limit={"margin_s": 0})
    item = project.add("Rate limited")
    clock = JumpingClock()
    orch = project.orchestrator(clock=clock, tick_s=TICK_S)
    ticks = Ticks(orch)
    async with serving(orch) as task:
        parked_by_now = lambda: project.item(item.id).parked_until is not None and not orch.live().working  # noqa: E731
        await until(parked_by_now, "the item parked")
        parked = project.item(item.id)
        assert parked.parked_until is not None and parked.parked_until > time.time() + 3000
        # While parked the loop sleeps a tick at a time, never spins: 5 passes take 4 whole ticks.
        assert await ticks.wait(5) >= 4 * TICK_S
        clock.offset = -DAY_S  # the clock jumps a day back: the item is still parked, nothing else
        assert await ticks.wait(5) >= 4 * TICK_S
        still = project.item(item.id)
        assert (still.stage, still.state.hold, still.parked_until) == (Stage.CODING, None, parked.parked_until)
        assert len(project.store.runs(item.id)) == 1 and not task.done()
        before, jumped = ticks.count, asyncio.get_running_loop().time()
        clock.offset = 3600 + 60  # past the reset: the next pass releases it
        await asyncio.wait_for(task, BOUND_S)
        took = asyncio.get_running_loop().time() - jumped
    done = project.item(item.id)
    assert done.stage is Stage.DONE and done.retries == 0
    first, second = project.store.runs(item.id)
    assert first.outcome is RunOutcome.RATE_LIMITED and second.resumed_session == first.session_id
    # One pass a tick, plus one per wake-up (a job ending); a loop spinning on a past due time does thousands.
    passes = ticks.count - before
    assert passes <= 2 * took / TICK_S + 20, f"{passes} passes in {took:.1f}s: a busy loop"


# --- a lock held past the wait while the pipeline runs -----------------------------------------


class BusyWarnings(logging.Handler):
    """Counts the store's "still waiting" warnings; set ``seen`` after ``enough`` of them.

    While the store waits for the lock the event loop is blocked (the store is synchronous), so
    only another thread can notice the wait and end it.
    """

    def __init__(self, enough: int) -> None:
        super().__init__(logging.WARNING)
        self.count, self.enough, self.seen = 0, enough, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "action", None) == "database_busy":
            self.count += 1
            if self.count >= self.enough:
                self.seen.set()


async def test_a_lock_held_past_the_wait_while_an_agent_finishes_loses_nothing_and_the_item_lands(
    tmp_path: Path,
) -> None:
    project = Project(tmp_path)
    project.store.close()
    # The orchestrator's store, as `serve` and `run` open it, with the 10 s wait shortened.
    project.store = open_sqlite(project.paths.db_file, busy_timeout_s=0.2, patient=True)
    go = tmp_path / "go"
    project.agent("coder", [[{"say": "working"}, {"wait_for_file": str(go), "timeout_s": 60}, *WRITE]])
    project.configure(gates=[GATE_HAS_WORK])
    item = project.add("Finishes while locked out")
    warnings = BusyWarnings(enough=3)  # three waits of 0.2 s: the lock outlasted one wait by far
    logging.getLogger("gangline.store.sqlite").addHandler(warnings)
    try:
        async with serving(project.orchestrator(tick_s=TICK_S)) as task:
            await until(lambda: any(run.live for run in project.store.runs(item.id)), "the agent started")
            holder = hold_lock(project.paths.db_file)
            releaser = threading.Thread(target=lambda: (warnings.seen.wait(BOUND_S), release(holder)))
            releaser.start()
            go.write_text("go\n")  # the agent commits and exits while nothing can be written
            await asyncio.wait_for(task, BOUND_S)
            releaser.join(BOUND_S)
    finally:
        logging.getLogger("gangline.store.sqlite").removeHandler(warnings)
    assert warnings.seen.is_set(), "the store never met the lock"
    done = project.item(item.id)
    assert (done.stage, done.state.hold) == (Stage.DONE, None), done.state
    assert project.base_file(f"work/{done.slug}.txt") == f"done by {item.id}"
    [run] = project.store.runs(item.id)
    assert run.outcome is RunOutcome.SUCCEEDED and not run.live
