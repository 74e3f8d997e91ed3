"""The orchestrator: the only writer of pipeline state. It recovers, plans, runs jobs, and takes orders.

Event-driven: a finished job, a person's action or a new item wakes the loop at once; a
periodic reconcile tick catches everything else (items added by another process, timers).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from gangline.agents.processes import kill_group_now, start_ticks
from gangline.agents.recovery import kill_groups, leftover_groups, read_logged_run
from gangline.agents.runner import Runner
from gangline.core.errors import ConfigError, GanglineError, ServerLockedError, StateConflict
from gangline.core.events import RunOutcome
from gangline.core.items import Item, ItemDraft
from gangline.core.profiles import Role, RunnerSettings
from gangline.core.records import RunEnd
from gangline.core.scheduler import Job, Plan, Step, plan
from gangline.core.stages import Facts, Stage, Trigger
from gangline.pipeline.jobs import RESTARTED, SERVER, Pipeline
from gangline.pipeline.merge import Merger
from gangline.pipeline.runs import AgentRuns
from gangline.project.config import ProjectConfig, ProjectPaths
from gangline.repo import baseguard
from gangline.repo.gates import GatesReport
from gangline.repo.worktrees import Worktrees
from gangline.store import Store

log = logging.getLogger(__name__)

Clock = Callable[[], float]
_ROLE_OF = {Step.START: Role.CODER, Step.CODE: Role.CODER, Step.REVIEW: Role.QA, Step.MERGE: Role.MERGEMASTER}


class Orchestrator:
    def __init__(
        self,
        paths: ProjectPaths,
        config: ProjectConfig,
        store: Store,
        env: Mapping[str, str],
        *,
        clock: Clock = time.time,
        settings: RunnerSettings | None = None,
        tick_s: float = 5.0,
        guide: str = "",
    ) -> None:
        self.paths = paths
        self.config = config
        self.store = store
        self.clock = clock
        self.working: dict[int, Step] = {}  # item id -> the job the orchestrator is doing on it
        self.idle = False  # after the last tick: nothing ran, nothing could start, nothing waited on a timer
        self.tick_s = tick_s
        self._env = env
        settings = settings or RunnerSettings(inactivity_timeout_s=config.inactivity_timeout_s)
        self.runner = Runner(settings, paths.runs_dir, env)
        worktrees = Worktrees(paths.root, paths.worktrees_dir, paths.merge_dir, config.base_branch)
        self.agents = AgentRuns(store, self.runner, paths.root, SERVER, config.price_table())
        self.pipeline = Pipeline(
            config,
            store,
            worktrees,
            self.agents,
            Merger(config, store, worktrees, self.agents, paths.root, self._gates, clock),
            env,
            guide,
            clock,
        )
        self.changed = asyncio.Event()  # set after every change the orchestrator makes; viewers clear it
        self._version = 0  # bumped by every change; wait_changed() lets any number of viewers wait on it
        self._watchers: set[asyncio.Event] = set()
        store.on_event = self._changed
        self._wake = asyncio.Event()
        self._jobs: dict[int, tuple[Role | None, asyncio.Task[None]]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._lock_fd = -1

    # --- lifecycle -------------------------------------------------------------------------

    async def serve(self, until_idle: bool = False) -> None:
        """Recover, then drive the pipeline; with ``until_idle``, return once nothing can move."""
        self._acquire_lock()
        try:
            await self._guard_base()
            await self.recover()
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                try:
                    await self._loop(until_idle)
                finally:
                    await self.runner.shutdown()
        finally:
            self._tg = None
            self._release_lock()

    async def _guard_base(self) -> None:
        """Install the hooks that make every agent's git refuse to move the base (see baseguard)."""
        hooks = self.paths.hooks_dir
        own = await baseguard.repository_hooks(self.paths.root, self._env)
        baseguard.install(hooks, self.config.base_branch, own)
        self.agents.guard_env = baseguard.agent_env(hooks)

    async def _loop(self, until_idle: bool) -> None:
        while True:
            self._wake.clear()
            current = self.tick()
            self.idle = not self._jobs and not current.jobs and not current.waiting
            if until_idle and self.idle:
                return
            timeout = self.tick_s
            if current.next_due is not None:
                timeout = min(timeout, max(0.0, current.next_due - self.clock()))
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the event is set, and a Ctrl-C would then be lost.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def tick(self) -> Plan:
        """One reconcile pass: plan from the store and start each job it plans."""
        candidates = self.store.candidates((Stage.BACKLOG, Stage.CODING, Stage.QA, Stage.MERGE, Stage.DONE))
        running: dict[Role, int] = {}
        for role, _task in self._jobs.values():
            if role is not None:
                running[role] = running.get(role, 0) + 1
        limits = {
            Role.CODER: self.config.concurrency.coder,
            Role.QA: self.config.concurrency.qa,
            Role.MERGEMASTER: self.config.concurrency.mergemaster,
        }
        merging = any(role is Role.MERGEMASTER for role, _ in self._jobs.values())
        current = plan(candidates, set(self._jobs), running, limits, self.config.qa_mode, merging, self.clock())
        for job in current.jobs:
            self._launch(job, self.store.get_item(job.item_id))
        return current

    def _launch(self, job: Job, item: Item) -> None:
        if self._tg is None:
            raise RuntimeError("the orchestrator is not serving")
        role = _ROLE_OF.get(job.step)
        if job.step is Step.REVIEW and (item.qa_mode or self.config.qa_mode).value != "agent":
            role = None  # server QA takes no agent slot
        task = self._tg.create_task(self._job(job, item), name=f"{job.step.value}-{item.id}")
        self._jobs[item.id] = (role, task)
        self.working[item.id] = job.step

    async def _job(self, job: Job, item: Item) -> None:
        try:
            if job.step is Step.START:
                item = await self.pipeline.start(item)
                self._notify()
                await self.pipeline.code(item)
            elif job.step is Step.CODE:
                await self.pipeline.code(item)
            elif job.step is Step.REVIEW:
                await self.pipeline.review(item)
            elif job.step is Step.MERGE:
                await self.pipeline.merge(item)
            else:
                await self.pipeline.archive(item)
        except StateConflict as err:
            log.info("item moved under a job", extra={"action": "job_conflict", "item_id": item.id, "error": str(err)})
        except Exception as err:
            log.exception("job failed", extra={"action": "job_failed", "item_id": item.id})
            self._hold_after_error(item.id, err)
        finally:
            del self._jobs[item.id]
            self.working.pop(item.id, None)
            self._notify()

    def _hold_after_error(self, item_id: int, err: Exception) -> None:
        what = str(err) if isinstance(err, GanglineError) else f"internal error: {type(err).__name__}: {err}"
        # Already held, moved or deleted: then the error is only in the log.
        with contextlib.suppress(GanglineError):
            self.store.hold(item_id, Trigger.BLOCK, SERVER, what)

    def _notify(self) -> None:
        self._wake.set()
        self._changed()

    def _changed(self) -> None:
        """Tell viewers something was written (the loop itself wakes only on _notify)."""
        self.changed.set()
        self._version += 1
        for watcher in self._watchers:
            watcher.set()

    @property
    def version(self) -> int:
        """How many changes viewers have been told of; pass it to wait_changed."""
        return self._version

    async def wait_changed(self, seen: int, timeout_s: float) -> int:
        """Wait (at most ``timeout_s``) for a change after version ``seen``; return the current version.

        Any number of viewers may wait at once; each costs one Event while it waits.
        """
        if self._version > seen:
            return self._version
        watcher = asyncio.Event()
        self._watchers.add(watcher)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await watcher.wait()
        finally:
            self._watchers.discard(watcher)
        return self._version

    # --- restart safety ----------------------------------------------------------------------

    async def recover(self) -> list[str]:
        """Kill what a previous server left running and close its live runs as crashed."""
        kill_groups(leftover_groups(self.paths.root))
        closed = []
        for run in self.store.runs(live_only=True):
            if run.pgid and run.pid and run.start_ticks and start_ticks(run.pid) == run.start_ticks:
                kill_group_now(run.pgid)
            logged = read_logged_run(Path(run.log_path))
            end = RunEnd(
                RunOutcome.CRASHED,
                "gangline stopped while this run was live",
                logged.session_id,
                logged.usage,
                logged.cost_usd,
            )
            self.store.finish_run(run.id, end, SERVER)
            closed.append(run.id)
            self._resume_after_restart(run.item_id, logged.session_id)
        return closed

    def _resume_after_restart(self, item_id: int, session_id: str | None) -> None:
        try:
            item = self.store.get_item(item_id)
        except GanglineError:
            return
        if item.stage is not Stage.CODING or item.state.hold or item.state.frozen:
            return  # QA and merge restart from scratch; held items wait for a person
        session = session_id or item.session_id
        self.store.bookkeep(
            item_id,
            "interrupted",
            SERVER,
            expected=item.state,
            reason="gangline restarted",
            updates={"session_id": session, "feedback": RESTARTED if session else item.feedback},
        )

    def _acquire_lock(self) -> None:
        self.paths.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.paths.state_dir / "server.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # flock dies with its process, so a SIGKILLed server never leaves a stale lock.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ServerLockedError(
                f"another gangline server (pid {holder}) is already running on {self.paths.root}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    # --- orders from people (the CLI now; REST, MCP and the UI later) ---------------------

    def add_item(self, draft: ItemDraft, actor: str) -> Item:
        if draft.pinned_agent and self.config.profile(draft.pinned_agent) is None:
            raise ConfigError("pinned_agent", f"no agent profile named {draft.pinned_agent!r} in project.toml")
        item = self.store.create_item(draft, actor)
        self._notify()
        return item

    def schedule_start(self, item_id: int, at: float | None, actor: str) -> Item:
        item = self.store.schedule_start(item_id, at, actor)
        self._notify()
        return item

    async def act(self, item_id: int, trigger: Trigger, actor: str, reason: str | None = None) -> Item:
        """A person's transition: block, unblock, release, retry_merge, demote, freeze, approve..."""
        item = self.store.get_item(item_id)
        if trigger is Trigger.QA_FAILED:
            item = self.pipeline.reject(item, actor, reason or "rejected by a reviewer")
        elif trigger is Trigger.ARCHIVE:
            await self.pipeline.archive(item, actor)  # archiving prunes the worktree when it is safe
            item = self.store.get_item(item_id)
        else:
            ahead = None
            if trigger is Trigger.QA_PASSED and item.stage is Stage.QA:  # elsewhere the table refuses it anyway
                ahead = await self.pipeline.worktrees.commits_ahead(item.id, item.slug)
            facts = Facts(reason=reason, commits_ahead=ahead)
            item = self.store.transition(
                item_id, trigger, actor, expected=item.state, facts=facts, updates=_resets(trigger)
            )
        if trigger in (Trigger.BLOCK, Trigger.DEMOTE, Trigger.HOLD_FOR_REVIEW):
            self._stop_runs_of(item_id, f"{trigger.value} by {actor}")
        self._notify()
        return item

    def notify(self) -> None:
        """Plan again now: a surface changed something the plan reads (an edit, a delete)."""
        self._notify()

    def _stop_runs_of(self, item_id: int, reason: str) -> None:
        for run in self.store.runs(item_id, live_only=True):
            if run.id in self.runner.running():
                self.runner.stop_nowait(run.id, reason)

    async def _gates(self, item: Item, cwd: Path, run_id: str | None, context: str) -> GatesReport:
        return await self.pipeline.gates(item, cwd, run_id, context)

    def statistics(self) -> dict[str, int]:
        return {"jobs": len(self._jobs), "runs": len(self.runner.running())}


def _resets(trigger: Trigger) -> dict[str, object]:
    if trigger is Trigger.RETRY_MERGE:
        return {"merge_attempts": 0}
    if trigger is Trigger.UNBLOCK:
        return {"retries": 0}  # a person looked and wants it tried again: a fresh retry budget
    if trigger is Trigger.DEMOTE:
        return {"retries": 0, "merge_attempts": 0, "parked_until": None, "feedback": None}
    return {}
