"""One agent run for the pipeline: recorded in the store before it spawns, watched for budget, closed after."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gangline.agents.bus import Bus, follow
from gangline.agents.processes import ProcessRecord, boot_id
from gangline.agents.recovery import PROJECT_VAR
from gangline.agents.runlog import replay_if_any
from gangline.agents.runner import Runner, RunRequest, RunSummary
from gangline.core.budget import BudgetMeter, Price
from gangline.core.errors import ConfigError, GanglineError, RunnerError
from gangline.core.events import Event, RunOutcome, SessionStarted, Usage
from gangline.core.items import Item
from gangline.core.nodes import NODE_ROLES, Offer, capacity, on_node
from gangline.core.nodewire import NodeRun
from gangline.core.policy import RunEnding
from gangline.core.profiles import AgentProfile, Role
from gangline.core.records import NewRun, RunEnd
from gangline.core.reports import QaVerdict
from gangline.core.throttle import Throttle, answering, throttle_of
from gangline.core.types import SERVER
from gangline.pipeline.grants import Grants, launched_with_mcp, remove_mcp_config
from gangline.pipeline.remote import RemoteRuns
from gangline.pipeline.results import AgentResult, Ready, Unready, from_node
from gangline.pipeline.rooms import Opened, Rooms
from gangline.project.config import GateSpec
from gangline.repo import nodepush
from gangline.repo.git import git
from gangline.repo.quarantine import Harvest
from gangline.repo.worktrees import branch_name, item_dir_name
from gangline.store import Store

log = logging.getLogger(__name__)


class AgentRuns:
    """Starts the agent runs the pipeline asks for and keeps their buses for live viewers."""

    def __init__(self, store: Store, runner: Runner, rooms: Rooms, prices: dict[str, Price] | None = None) -> None:
        self.store = store
        self.rooms = rooms  # the sandbox every run and gate works in
        self.prices = prices or {}  # [price."<model>"] tables: what a token-only CLI's run cost
        self.runner = runner
        self.project_root = rooms.paths.root
        self.actor = SERVER
        self.buses: dict[str, Bus] = {}  # live runs, for anyone who wants to watch
        self.on_start: Callable[[str], None] = lambda run_id: None
        # gangline's MCP endpoint (http://127.0.0.1:<port>/mcp), set by the server once it listens.
        # None (no server, as in `gangline run`): agents get no MCP config and no permission tool.
        self.mcp_url: str | None = None
        self.grants = Grants()  # each live run's MCP token
        # What agents reported through MCP, per run, until the run's result takes it.
        self.qa_verdicts: dict[str, QaVerdict] = {}
        self.merge_failures: dict[str, str] = {}
        self.throttled: dict[str, Throttle] = {}  # live runs held back by their model API, for the board
        self.guard_env: dict[str, str] = {}  # baseguard.agent_env(): every agent's git refuses to move the base
        # Build nodes: the runs offered to them, and how many of each role the server runs itself
        # before it offers more (0: none; a role missing: any number, nodes only for their labels).
        self.remote = RemoteRuns(store, runner.log_path, store.clock)
        self.local_limits: dict[Role, int] = {}
        self.node_gates: tuple[GateSpec, ...] = ()  # the gates a coder's node runs itself ([nodes] gates = "node")
        self.node_hooks: dict[str, list[GateSpec]] = {}  # what a node runs around a coder's or QA run (config's)
        self._local: dict[str, Role] = {}  # the runs on this server's runner, by role

    def env_for(self, item: Item | None, role: Role, run_id: str) -> dict[str, str]:
        """Variables every process started for the item carries (agents, gates, and their children)."""
        about = {"GANGLINE_ITEM_ID": str(item.id), "GANGLINE_ITEM_SLUG": item.slug} if item is not None else {}
        return {PROJECT_VAR: str(self.project_root), **about, "GANGLINE_ROLE": role.value, "GANGLINE_RUN_ID": run_id}

    async def run(
        self,
        item: Item,
        profile: AgentProfile,
        prompt: str,
        cwd: Path,
        resume: str | None,
        attempt: int,
        fresh: str | None = None,
        ready: Ready | None = None,
    ) -> AgentResult:
        """Run the agent to its end, here or on a build node. Raises StateConflict if the item moved first.

        ``fresh`` is the prompt for a new session, used where ``resume``'s session does not live. ``ready``
        runs first when the run is this server's (a build node runs the project's hooks itself); when it
        says why it failed, Unready is raised and nothing is started.
        """
        run_id = f"{item.id}-{profile.role.value}-{self.store.count_runs(item.id) + 1}"
        log_path = self.runner.log_path(run_id)
        node = self._placed(profile, item.id, resume, fresh) if profile.role in NODE_ROLES else None
        if node is None and resume and self.store.session_node(item.id, resume) is not None:
            resume, prompt = None, fresh or prompt  # its session lives on a build node: start afresh here
        if node is None and ready is not None and (why := await ready()) is not None:
            raise Unready(why)
        new = NewRun(run_id, item.id, profile.role, profile.name, attempt, str(cwd), str(log_path), resume)
        self.store.start_run(new, item.state, self.actor)
        branch = item_dir_name(item.id, item.slug) if profile.role is not Role.MERGEMASTER else None
        launch = _Launch(run_id, item, profile, prompt, cwd, resume, branch, in_git=True, node=node)
        try:
            summary, ending = await self._drive(launch)
        finally:  # what the run reported through MCP is taken, whether or not it could start
            qa_verdict, merge_failure = self.qa_verdicts.pop(run_id, None), self.merge_failures.pop(run_id, None)
            on_node = self.remote.ends.pop(run_id, None)
        result = AgentResult(run_id, summary, ending, qa_verdict, merge_failure)
        return result if node is None else from_node(result, on_node)

    def _placed(self, profile: AgentProfile, item_id: int, resume: str | None, fresh: str | None) -> _OnNode | None:
        """Where the run goes (``core.nodes.on_node``): None for this server, else what its offer needs.

        Without a server nodes can reach (``gangline run``) every run is this process's; a profile
        that needs a node's labels is then refused (ConfigError: the item is held, saying why).
        """
        if not self.remote.open:
            if profile.node_labels:
                labels = ", ".join(profile.node_labels)
                raise ConfigError(f"agent {profile.name} node_labels", f"its agents run only on build nodes labelled "
                                  f"{labels}; serve the project (gangline serve) for nodes to reach it")  # fmt: skip
            return None
        local = sum(1 for role in self._local.values() if role is profile.role)
        nodes = self.store.nodes()
        room = capacity(nodes, self.store.clock(), self.remote.lease_s)[profile.role]
        if not on_node(profile.role, profile.node_labels, local, self.local_limits.get(profile.role, 1 << 30), room):
            return None
        where = self.store.session_node(item_id, resume) if resume else None
        return _OnNode(fresh, next((node.name for node in nodes if node.id == where), None))

    def stop_nowait(self, run_id: str, reason: str) -> None:
        """Stop a live run, here or on its node; RunnerError when this server supervises no such run."""
        if run_id in self.remote.running():
            self.remote.stop_nowait(run_id, reason)
        else:
            self.runner.stop_nowait(run_id, reason)

    def running(self) -> list[str]:
        return self.runner.running() + self.remote.running()

    async def converse(
        self, transport: str, room: str, profile: AgentProfile, prompt: str, cwd: Path, resume: str | None
    ) -> AgentResult:
        """Run the chat agent on one message said in ``room`` (in its own directory ``cwd``) to its end.

        RunnerError when the room has a live run already (the database refuses a second).
        """
        run_id = f"chat-{self.store.count_runs(None) + 1}"
        log_path = self.runner.log_path(run_id)
        new = NewRun(run_id, None, Role.CHAT, profile.name, 1, str(cwd), str(log_path), resume, transport, room)
        self.store.start_run(new, None, self.actor)
        summary, ending = await self._drive(_Launch(run_id, None, profile, prompt, cwd, resume, None, in_git=False))
        return AgentResult(run_id, summary, ending)

    async def _drive(self, launch: _Launch) -> tuple[RunSummary, RunEnding]:
        """The recorded run from its spawn to its end in the store: MCP access, sandbox, budget, cost.

        Raises what kept it from starting (AgentNotFoundError, RunnerError, ...) once the run is closed.
        """
        run_id, profile, cwd = launch.run_id, launch.profile, launch.cwd
        item_id = launch.item.id if launch.item is not None else None
        log_path = self.runner.log_path(run_id)
        meter = BudgetMeter(profile.max_budget_usd, self.prices)
        bus = Bus(self.runner.settings.subscriber_queue)
        self.buses[run_id] = bus
        not_started: GanglineError | None = None
        opened: Opened | None = None
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._watch(_Watched(run_id, item_id), bus, meter))
                try:
                    if launch.node is not None:
                        summary = await self._offer(launch, bus)
                    else:
                        launched = await self._with_mcp(launch, bus)
                        opened = await self._open_room(launch, bus)
                        self._local[run_id] = profile.role
                        summary = await self.runner.run(self._request(launch, launched, opened), bus)
                except GanglineError as err:  # nothing was spawned; the bus is closed
                    not_started = err
                    summary = _not_started(run_id, log_path, str(err))
        finally:
            self._local.pop(run_id, None)
            if opened is not None:
                await self._close_room(run_id, item_id, opened)
            self.buses.pop(run_id, None)
            self.throttled.pop(run_id, None)
            self.grants.revoke(run_id)
            remove_mcp_config(cwd)
            self._private_settings(run_id).unlink(missing_ok=True)
        if not_started is not None:
            # A missing binary or a bad profile will not fix itself: no retry, the caller holds the item.
            self.store.finish_run(run_id, RunEnd(summary.outcome, summary.reason), self.actor)
            raise not_started
        budget_note = meter.note() if meter.exceeded else None
        cost = summary.cost_usd if summary.cost_usd is not None else (meter.spent_usd or None)
        end = RunEnd(summary.outcome, budget_note or summary.reason, summary.session_id, summary.usage, cost)
        self.store.finish_run(run_id, end, self.actor)
        ending = RunEnding(
            summary.outcome, summary.reason, summary.resets_at, cost, summary.result_subtype, budget_note
        )
        return summary, ending

    def _request(self, launch: _Launch, launched: AgentProfile, opened: Opened | None) -> RunRequest:
        """What the runner needs to start ``launch`` here, as ``launched`` (with MCP) in its sandbox ``opened``."""
        run_id, profile = launch.run_id, launch.profile
        return RunRequest(
            run_id,
            launched,
            launch.prompt,
            launch.cwd,
            resume_session_id=launch.resume,
            env=self.env_for(launch.item, profile.role, run_id) | self.guard_env,
            on_started=lambda rec: self._started(run_id, rec),
            price=self.prices.get(profile.model) if profile.model else None,
            session_usage=self._session_usage(launch.item.id if launch.item else None, launch.resume),
            room=opened.room if opened else None,
            bwrap=opened.bwrap if opened else None,
        )

    async def _offer(self, launch: _Launch, bus: Bus) -> RunSummary:
        """Offer the run to the build nodes and wait for its end there (``RemoteRuns``)."""
        assert launch.item is not None
        try:
            run = await self._node_run(launch)
        except BaseException:
            bus.close()  # the budget watcher follows this bus: it must not wait for a run never offered
            raise
        offer = Offer(launch.run_id, launch.item.id, launch.profile.role, launch.profile.cli.value,
                      launch.profile.node_labels, None, run.model_dump(mode="json"), self.store.clock())  # fmt: skip
        self.on_start(launch.run_id)
        return await self.remote.run(offer, bus, launch.cwd)

    async def _node_run(self, launch: _Launch) -> NodeRun:
        """What a node needs to start the run: its MCP token, the branch and its tip, the prompts, the gates."""
        item, profile, node = launch.item, launch.profile, launch.node
        assert item is not None and node is not None
        token = self.grants.issue(launch.run_id, item.id, profile.role, launch.cwd) if self.mcp_url else None
        if profile.role is Role.MERGEMASTER:  # the merge workspace as it stands, on a branch of its own
            branch = nodepush.merge_branch(item.id, item.slug)
            tip = await nodepush.lend_workspace(launch.cwd, branch)
        else:
            branch = branch_name(item.id, item.slug)
            tip = (await git(launch.cwd, "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False)).stdout
        env = {k: v for k, v in self.env_for(item, profile.role, launch.run_id).items() if k != PROJECT_VAR}
        return NodeRun(
            run_id=launch.run_id,
            item_id=item.id,
            item_slug=item.slug,
            role=profile.role.value,
            profile=profile.model_dump(mode="json"),
            prompt=launch.prompt,
            fresh_prompt=node.fresh,
            resume=launch.resume,
            resume_node=node.session_node,
            branch=branch,
            base=tip.strip() or None,
            push=profile.role in (Role.CODER, Role.MERGEMASTER),
            mcp_token=token,
            env=env,
            gates=[gate.model_dump() for gate in self.node_gates] if profile.role is Role.CODER else [],
            hooks={point: [step.model_dump() for step in steps] for point, steps in self.node_hooks.items() if steps}
            if profile.role in (Role.CODER, Role.QA)
            else {},
        )

    def _session_usage(self, item_id: int | None, resume: str | None) -> Usage | None:
        """What earlier runs in the resumed session were counted for (only Codex needs it; chat runs Claude)."""
        return self.store.session_usage(item_id, resume) if item_id is not None and resume else None

    async def _with_mcp(self, launch: _Launch, bus: Bus) -> AgentProfile:
        """The profile to launch: with the run's own MCP token and gangline's permission tool when a server listens."""
        profile, cwd = launch.profile, launch.cwd
        if self.mcp_url is None:
            return profile
        item_id = launch.item.id if launch.item is not None else None
        token = self.grants.issue(launch.run_id, item_id, profile.role, cwd)
        try:
            settings = self._private_settings(launch.run_id)
            return await launched_with_mcp(profile, cwd, self.mcp_url, token, settings, in_git=launch.in_git)
        except (OSError, GanglineError) as err:
            bus.close()  # the runner never saw this bus: close it, or the budget watcher waits forever
            if isinstance(err, GanglineError):
                raise
            raise RunnerError(launch.run_id, f"cannot write the MCP configuration for {cwd}: {err}") from err

    async def _open_room(self, launch: _Launch, bus: Bus) -> Opened | None:
        """The run's sandbox, or None when runs go unconfined; RunnerError when it cannot be made."""
        try:
            return await self.rooms.open(launch.run_id, launch.profile, launch.cwd, launch.branch, in_git=launch.in_git)
        except (OSError, GanglineError) as err:
            bus.close()  # the runner never saw this bus
            if isinstance(err, GanglineError):
                raise
            raise RunnerError(launch.run_id, f"cannot prepare its sandbox: {err}") from err

    async def _close_room(self, run_id: str, item_id: int | None, opened: Opened) -> None:
        """Take in what the sandboxed run committed; say so in the item's history."""
        try:
            harvest = await self.rooms.close(opened)
        except GanglineError as err:
            harvest = Harvest(0, refused=f"its objects could not be taken in: {err}")
        if harvest is not None:
            self.record_harvest(run_id, item_id, harvest)

    async def recover_rooms(self) -> None:
        """After a restart: the commits of sandboxed runs a killed server never took in."""
        for run_id, harvest in await self.rooms.recover():
            try:
                item_id: int | None = self.store.get_run(run_id).item_id
            except GanglineError:  # its item was deleted since
                item_id = None
            self.record_harvest(run_id, item_id, harvest)

    def record_harvest(self, run_id: str, item_id: int | None, harvest: Harvest) -> None:
        if harvest.new_tip is None and harvest.refused is None:
            return
        data = {"objects": harvest.objects, "tip": harvest.new_tip, "refused": harvest.refused}
        kind = "sandbox_refused" if harvest.refused else "sandbox_commits"
        self.store.record_event(kind, self.actor, item_id=item_id, run_id=run_id, reason=harvest.refused, data=data)

    def _private_settings(self, run_id: str) -> Path:
        """A file for the run's MCP settings outside its worktree (Gemini's), removed when it ends."""
        return self.runner.log_dir / f"{run_id}.settings.json"

    def _started(self, run_id: str, rec: ProcessRecord) -> None:
        self.store.record_process(run_id, rec.pid, rec.pgid, rec.start_ticks, boot_id())
        self.on_start(run_id)

    async def _watch(self, run: _Watched, bus: Bus, meter: BudgetMeter) -> None:
        # follow(), not a bare subscription: if the loop is ever too busy and the bus cuts this
        # subscriber off, the log fills the gap, so the meter never misses a message's cost.
        stopped = False
        run_id = run.run_id
        async for record in follow(bus, lambda after: replay_if_any(self.runner.log_path(run_id), after)):
            event = record.event
            if isinstance(event, SessionStarted):
                self.store.set_run_session(run_id, event.session_id)
            self._track_throttle(run, event, record.ts)
            meter.feed(event)
            if meter.exceeded and not stopped:
                stopped = True
                log.warning("budget exceeded", extra={"action": "budget_stop", "run_id": run_id})
                with contextlib.suppress(RunnerError):  # it may have ended on its own meanwhile
                    self.stop_nowait(run_id, meter.note())

    def _track_throttle(self, run: _Watched, event: Event, ts: float) -> None:
        """Record when a run starts and stops being held back by its API: the board shows it live."""
        throttle = throttle_of(event, ts)
        held = self.throttled.get(run.run_id)
        if throttle is not None:
            self.throttled[run.run_id] = Throttle(held.since if held else ts, throttle.resets_at, throttle.note)
            if held is None:
                data = {"note": throttle.note, "resets_at": throttle.resets_at}
                self.store.record_event(
                    "throttled", self.actor, item_id=run.item_id, run_id=run.run_id, reason=throttle.note, data=data
                )
        elif held is not None and answering(event):
            del self.throttled[run.run_id]
            waited = {"waited_s": round(ts - held.since, 3)}
            self.store.record_event("throttle_cleared", self.actor, item_id=run.item_id, run_id=run.run_id, data=waited)


@dataclass(frozen=True)
class _Watched:
    run_id: str
    item_id: int | None


@dataclass(frozen=True)
class _Launch:
    """One recorded run to start: what it is about (an item; None for a chat agent's) and where."""

    run_id: str
    item: Item | None
    profile: AgentProfile
    prompt: str
    cwd: Path
    resume: str | None
    branch: str | None  # the item branch its sandbox's git may move
    in_git: bool  # its cwd is a git worktree (a chat agent's directory is not)
    node: _OnNode | None = None  # offered to the build nodes; None: it runs on this server


@dataclass(frozen=True)
class _OnNode:
    """What an offer to the build nodes adds: a new session's prompt, and the node the resumed session lives on."""

    fresh: str | None
    session_node: str | None  # its name; None: the session lives on this server (or there is none)


def _not_started(run_id: str, log_path: Path, reason: str) -> RunSummary:
    return RunSummary(run_id, RunOutcome.CRASHED, f"could not start: {reason}", log_path, 0, None)
