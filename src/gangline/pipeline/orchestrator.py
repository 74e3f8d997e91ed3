"""The orchestrator: the only writer of pipeline state. It recovers, plans, runs jobs, and carries out orders.

Event-driven: a finished job, a person's order or a new item wakes the loop at once; a
periodic reconcile tick catches everything else (items added by another process, timers).
Its face is its named methods: the doors reach it through ``pipeline.orders`` and
``pipeline.views``, the agents' MCP tools through the methods under "agents", never through
the runner, the jobs or the store's writes directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from gangline.agents.bus import Bus
from gangline.agents.runner import Runner
from gangline.core.errors import GanglineError, RunnerError, StateConflict
from gangline.core.items import Item, ItemDraft, ItemPatch
from gangline.core.nodes import capacity
from gangline.core.profiles import AgentProfile, Role, RunnerSettings
from gangline.core.reports import QaVerdict
from gangline.core.scheduler import Job, Plan, Step, plan
from gangline.core.stages import Facts, Stage, Trigger
from gangline.core.types import SERVER, Clock
from gangline.pipeline.changes import Changes
from gangline.pipeline.configwatch import configure, retune
from gangline.pipeline.grants import Grants
from gangline.pipeline.jobs import MAX_REPORT, Pipeline
from gangline.pipeline.onboarding import Onboarder
from gangline.pipeline.remote import RemoteRuns
from gangline.pipeline.restart import ProjectLock, fenced, recover, take_locks
from gangline.pipeline.results import AgentResult
from gangline.pipeline.retention import Retention
from gangline.pipeline.rooms import Rooms
from gangline.pipeline.runs import AgentRuns
from gangline.pipeline.views import Live
from gangline.project.config import ProjectConfig
from gangline.project.paths import ProjectPaths
from gangline.project.scaffold import refresh_gitignore
from gangline.repo import baseguard
from gangline.repo.gates import GatesReport
from gangline.repo.worktrees import Worktrees
from gangline.store import Store

log = logging.getLogger(__name__)

_ROLE_OF = {Step.START: Role.CODER, Step.CODE: Role.CODER, Step.REVIEW: Role.QA, Step.MERGE: Role.MERGEMASTER}
_RETIRES = (Trigger.CLOSE, Trigger.ABANDON, Trigger.SUPERSEDE)  # the item is over: its worktree goes when clean
_STOPS_RUNS = (Trigger.BLOCK, Trigger.DEMOTE, Trigger.HOLD_FOR_REVIEW, *_RETIRES)


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
        standby: bool = False,
    ) -> None:
        self.paths = paths
        self.config = config
        self.store = store
        self.clock = clock
        self.tick_s = tick_s
        self.idle = False  # after the last tick: nothing ran, nothing could start, nothing waited on a timer
        self._env = env
        self.worktrees = Worktrees(paths.root, paths.worktrees_dir, paths.merge_dir, config.base_branch)
        runner = Runner(
            settings or RunnerSettings(inactivity_timeout_s=config.inactivity_timeout_s), paths.runs_dir, env
        )
        self._agents = AgentRuns(store, runner, Rooms.of(paths, config, env))
        configure(self._agents, config)
        self._pipeline = Pipeline(config, store, self.worktrees, self._agents, env, guide, clock)
        self.retention = Retention(paths, store, self._retire, config.retention, clock)
        self._changes = Changes()
        store.on_event = self._changes.bump
        self._wake = asyncio.Event()
        self._jobs: dict[int, tuple[Role | None, asyncio.Task[None]]] = {}
        self._working: dict[int, Step] = {}  # item id -> the job the orchestrator is doing on it
        self._tg: asyncio.TaskGroup | None = None
        self._lock = ProjectLock(paths)
        self._recovered = asyncio.Event()  # set once what a previous server left is reaped
        # A standby waits for the server that drives the database to stop, then drives it itself.
        self.standby = standby
        self.standing_by = standby  # until this one drives (a standby's orders are refused meanwhile)
        self.on_driving: Callable[[], None] = lambda: None  # once it drives, recovered (the server announces itself)

    # --- lifecycle -------------------------------------------------------------------------

    async def serve(self, until_idle: bool = False) -> None:
        """Recover, then drive the pipeline; with ``until_idle``, return once nothing can move.

        ServerLockedError when another server drives this project or its database, unless this
        one is a standby: then it waits for both, and drives once the other has stopped.
        """
        try:
            with contextlib.ExitStack() as held:
                still_held = await take_locks(self._lock, self.store, self.standby, held)
                self.standing_by = False
                await self._serve(until_idle, still_held)
        finally:
            self._tg = None
            self._lock.release()

    async def _serve(self, until_idle: bool, still_held: Callable[[], bool]) -> None:
        refresh_gitignore(self.paths)
        await self._guard_base()
        recover(self.store, self.paths.root)
        await self._agents.recover_rooms()  # before any item is checked: commits a kill left outside
        self._recovered.set()  # a run started before this would be taken for a leftover and killed
        self.on_driving()
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            fence = tg.create_task(fenced(still_held), name="driver lock")
            sweeper = tg.create_task(self.retention.run(), name="retention")
            try:
                await self._loop(until_idle)
            finally:
                fence.cancel()
                sweeper.cancel()
                await self._agents.runner.shutdown()

    async def _guard_base(self) -> None:
        """Install the hooks that make every agent's git refuse to move the base (see baseguard)."""
        own = await baseguard.repository_hooks(self.paths.root, self._env)
        baseguard.install(self.paths.hooks_dir, self.config.base_branch, own)
        self._agents.guard_env = baseguard.agent_env(self.paths.hooks_dir)

    async def _loop(self, until_idle: bool) -> None:
        while True:
            self._wake.clear()
            current = self.tick()
            was_idle, self.idle = self.idle, not self._jobs and not current.jobs and not current.waiting
            if self.idle and not was_idle:
                self._changes.bump()  # viewers waiting for the pipeline to settle (wait_idle) hear of it now
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
        limits = self._limits()
        if self._agents.remote.open:  # a server nodes can reach: its own slots, and the live nodes' on top
            limits = {role: limit if self.config.nodes.server_agents else 0 for role, limit in limits.items()}
            self._agents.local_limits = dict(limits)
            limits[Role.MERGEMASTER] = self.config.concurrency.mergemaster  # the merge step itself is the server's
            for role, room in capacity(self.store.nodes(), self.clock(), self.config.nodes.lease_s).items():
                limits[role] += room
        merging = any(role is Role.MERGEMASTER for role, _ in self._jobs.values())
        current = plan(candidates, set(self._jobs), running, limits, self.config.qa_mode, merging, self.clock(),
                       self.config.auto_start)  # fmt: skip
        for job in current.jobs:
            self._launch(job, self.store.get_item(job.item_id))
        return current

    def reconfigure(self, config: ProjectConfig) -> None:
        """An edited project.toml that loaded (``pipeline.configwatch``): the next plan, run, gate and merge use it."""
        old, self.config = self.config, config
        self._pipeline.reconfigure(config)
        self.retention.policy = config.retention
        retune(self._agents, self.paths, old, config, self._env)
        self._notify()  # more slots, another QA mode: what can start may have changed

    def open_to_nodes(self) -> None:
        """Build nodes can reach this orchestrator now (a server listens for them): offer them runs from here on."""
        self._agents.remote.open = True
        self._notify()

    def _limits(self) -> dict[Role, int]:
        concurrency = self.config.concurrency
        return {Role.CODER: concurrency.coder, Role.QA: concurrency.qa, Role.MERGEMASTER: concurrency.mergemaster}

    def _launch(self, job: Job, item: Item) -> None:
        if self._tg is None:
            raise RuntimeError("the orchestrator is not serving")
        role = _ROLE_OF.get(job.step)
        if job.step is Step.REVIEW and (item.qa_mode or self.config.qa_mode).value != "agent":
            role = None  # server QA takes no agent slot
        task = self._tg.create_task(self._job(job, item), name=f"{job.step.value}-{item.id}")
        self._jobs[item.id] = (role, task)
        self._working[item.id] = job.step

    async def _job(self, job: Job, item: Item) -> None:
        try:
            await self._pipeline.do(job.step, item, started=self._notify)
        except StateConflict as err:
            log.info("item moved under a job", extra={"action": "job_conflict", "item_id": item.id, "error": str(err)})
        except Exception as err:
            log.exception("job failed", extra={"action": "job_failed", "item_id": item.id})
            self._hold_after_error(item.id, err)
        finally:
            del self._jobs[item.id]
            self._working.pop(item.id, None)
            self._notify()

    def _hold_after_error(self, item_id: int, err: Exception) -> None:
        what = str(err) if isinstance(err, GanglineError) else f"internal error: {type(err).__name__}: {err}"
        # Already held, moved or deleted: then the error is only in the log.
        with contextlib.suppress(GanglineError):
            self.store.hold(item_id, Trigger.BLOCK, SERVER, what)

    def nudge(self) -> None:
        """Plan again now: something the store's items do not show changed what can start (a node came)."""
        self._notify()

    def _notify(self) -> None:
        self._wake.set()
        self._changes.bump()

    # --- for viewers -----------------------------------------------------------------------

    @property
    def version(self) -> int:
        """How many changes viewers have been told of; pass it to wait_changed."""
        return self._changes.version

    async def wait_changed(self, seen: int, timeout_s: float) -> int:
        """Wait (at most ``timeout_s``) for a change after version ``seen``; return the current version."""
        return await self._changes.wait_changed(seen, timeout_s)

    async def wait_idle(self) -> None:
        """Wait until nothing in the pipeline can move by itself any more."""
        version = self.version
        while not self.idle:
            version = await self.wait_changed(version, 1.0)

    def live(self) -> Live:
        """What it is doing now: whether it serves, its jobs, the agents running and those held back."""
        agents = self._agents
        return Live(self._tg is not None, len(self._jobs), len(agents.running()), dict(self._working), agents.throttled,
                    disk=self.retention.disk)  # fmt: skip

    # --- people's orders (through pipeline.orders) ------------------------------------------

    def add_item(self, draft: ItemDraft, actor: str) -> Item:
        item = self.store.create_item(draft, actor)
        self._notify()
        return item

    def edit_item(self, item_id: int, patch: ItemPatch, actor: str) -> Item:
        item = self.store.edit_item(item_id, patch, actor)
        self._notify()  # priority or dependencies may have changed what can start
        return item

    def delete_item(self, item_id: int, actor: str) -> Item:
        item = self.store.delete_item(item_id, actor)
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
            item = self._pipeline.reject(item, actor, reason or "rejected by a reviewer")
        elif trigger is Trigger.ARCHIVE:
            await self._pipeline.archive(item, actor)  # archiving prunes the worktree when it is safe
            item = self.store.get_item(item_id)
        else:
            ahead = None
            if trigger is Trigger.QA_PASSED and item.stage is Stage.QA:  # elsewhere the table refuses it anyway
                ahead = await self.worktrees.commits_ahead(item.id, item.slug)
            facts = Facts(reason=reason, commits_ahead=ahead)
            item = self.store.transition(item_id, trigger, actor, expected=item.state, facts=facts,
                                         updates=_resets(trigger))  # fmt: skip
        if trigger in _STOPS_RUNS:
            for run in self.store.runs(item_id, live_only=True):
                self.stop_run(run.id, f"{trigger.value} by {actor}")
        if trigger in _RETIRES:
            await self._pipeline.retire(item)
        self._notify()
        return item

    async def _retire(self, item: Item) -> str | None:
        """Retention's pruning of an over item's worktree, as archiving does it; never under a job on the item."""
        if item.id in self._jobs:
            return "a job is working on the item"
        return await self._pipeline.retire(item, keep_branch=item.merged_commit is None)

    def back_to_coding(self, item_id: int, actor: str, reason: str) -> Item:
        """QA → coding for a person's message: no retry spent, the coder's session resumed with the message."""
        state = self.store.get_item(item_id).state
        item = self.store.transition(item_id, Trigger.QA_FAILED, actor, expected=state, facts=Facts(reason=reason),
                                     updates={"report": None})  # a spike reports again  # fmt: skip
        for run in self.store.runs(item_id, live_only=True):  # an agent QA run on work that changes now
            self.stop_run(run.id, reason)
        self._notify()
        return item

    def stop_run(self, run_id: str, reason: str) -> None:
        """Stop a run's agent if this process supervises it (one run by ``gangline run`` elsewhere is not)."""
        with contextlib.suppress(RunnerError):  # it ended meanwhile, or runs in another process
            self._agents.stop_nowait(run_id, reason)

    # --- agents (their MCP tools, and tests that drive one run) --------------------------------

    @property
    def remote_runs(self) -> RemoteRuns:
        """The runs offered to build nodes (what the nodes' calls reach, through ``NodeDesk``)."""
        return self._agents.remote

    @property
    def onboarder(self) -> Onboarder:
        """The project's first steps: what it lacks, and gates proven and added (the board's onboarding)."""
        return Onboarder(self.paths, self._agents.rooms, self._env)

    @property
    def grants(self) -> Grants:
        """Each live run's MCP token."""
        return self._agents.grants

    def set_agent_mcp_url(self, url: str | None) -> None:
        """gangline's MCP endpoint for agents, once the server listens (None: agents get no MCP)."""
        self._agents.mcp_url = url

    def on_run_started(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(run_id)`` as each agent run starts (its bus is then ``bus(run_id)``)."""
        self._agents.on_start = callback

    def bus(self, run_id: str) -> Bus | None:
        """A live run's bus, for a viewer to follow; None once it ended (its log has everything)."""
        return self._agents.buses.get(run_id)

    async def run_agent(
        self, item: Item, profile: AgentProfile, prompt: str, cwd: Path, resume: str | None, attempt: int
    ) -> AgentResult:
        """One agent run on ``item``, recorded and watched as the pipeline's own are."""
        return await self._agents.run(item, profile, prompt, cwd, resume, attempt)

    async def recovered(self) -> None:
        """Until what a previous server left is reaped (its runs closed, their rooms told): then serving starts."""
        await self._recovered.wait()

    async def converse(
        self, transport: str, room: str, profile: AgentProfile, prompt: str, cwd: Path, resume: str | None
    ) -> AgentResult:
        """The chat agent's run on one message said in ``room``, recorded and watched as the pipeline's are.

        It waits until the pipeline has recovered from any previous server: chat is heard from the start.
        """
        await self.recovered()
        return await self._agents.converse(transport, room, profile, prompt, cwd, resume)

    async def run_gates(self, item: Item, cwd: Path, run_id: str | None, context: str) -> GatesReport:
        """The project's gates in ``cwd``, recorded on the item."""
        return await self._pipeline.gates(item, cwd, run_id, context)

    def report_qa(self, run_id: str, verdict: QaVerdict) -> None:
        """A QA run's verdict, taken when the run ends instead of its final message."""
        self._agents.qa_verdicts[run_id] = verdict

    def qa_report(self, run_id: str) -> QaVerdict | None:
        return self._agents.qa_verdicts.get(run_id)

    def submit_report(self, item_id: int, report: str, actor: str, run_id: str) -> None:
        """A spike's report from its coder's tool, kept on the item: taken when the run ends (``jobs``)."""
        item = self.store.get_item(item_id)
        self.store.bookkeep(item_id, "report_submitted", actor, expected=item.state, run_id=run_id,
                            updates={"report": report[:MAX_REPORT]}, data={"chars": len(report)})  # fmt: skip

    def report_merge_failure(self, run_id: str, reason: str) -> None:
        """A mergemaster's word that the merge cannot be resolved, taken when its run ends."""
        self._agents.merge_failures[run_id] = reason


def _resets(trigger: Trigger) -> dict[str, object]:
    if trigger is Trigger.RETRY_MERGE:
        return {"merge_attempts": 0}
    if trigger is Trigger.UNBLOCK:
        return {"retries": 0}  # a person looked and wants it tried again: a fresh retry budget
    if trigger is Trigger.DEMOTE:
        return {"retries": 0, "merge_attempts": 0, "parked_until": None, "feedback": None}
    return {}
