"""A build node at work: lease runs from the server, run each agent in a worktree of its own, stream it back.

One loop asks for work while a slot is free (a long poll: the server answers the moment a run
is offered). Each leased run: the item's worktree is reset to the branch as the server has it and
readied by the project's hooks (after_create once per checkout, then before_run), the agent runs
in a PTY under this node's own runner (its log written here first), its log lines stream to the
server as they come, after_run and the gates (where the project says so) follow, and at its end
the branch is pushed and the end reported, with what the hooks and gates said. Its lease is
renewed six times per lease length from the lease to the report, hooks and gates included. When
the server refuses the lease (it lapsed while this node was frozen or cut off, or the server
restarted), the agent is stopped and nothing of the run is pushed or reported: the server has
already moved on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from gangline.agents.bus import Bus, follow
from gangline.agents.recovery import PROJECT_VAR
from gangline.agents.runlog import replay_if_any
from gangline.agents.runner import Runner, RunRequest, RunSummary
from gangline.core.errors import GanglineError, RunnerError, Unavailable
from gangline.core.events import Record, RunOutcome
from gangline.core.hooks import HookPoint
from gangline.core.nodes import LeaseLost
from gangline.core.nodewire import FinishIn, NodeHello, NodeRun
from gangline.core.profiles import AgentProfile, Role
from gangline.nodes.checkout import Checkout
from gangline.nodes.client import NodeClient
from gangline.pipeline.grants import launched_with_mcp, remove_mcp_config
from gangline.pipeline.hooks import mark_prepared, prepared
from gangline.pipeline.rooms import Opened, Rooms
from gangline.project.config import GateSpec
from gangline.repo.worktrees import dirty_paths

log = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder()
LEASE_WAIT_S = 20.0  # how long one ask for work waits on the server for a run to be offered
FLUSH_S = 30.0  # after a run ends, how long its last log lines may take to reach the server


@dataclass
class _Lease:
    """One leased run on this node, and whether its lease was lost (then why)."""

    run: NodeRun
    epoch: int
    renew_s: float
    lost: str | None = None
    stop: str | None = None  # the server wants it stopped, and why (a person, its budget)


@dataclass
class Node:
    """This machine as a build node of the server(s) ``client`` talks to."""

    name: str
    home: Path
    client: NodeClient
    runner: Runner
    rooms: Rooms  # the sandbox each run works in, as on the server (SPEC.md §25)
    hello: NodeHello
    env: Mapping[str, str]  # the node's own environment: its gates' (its agents' is the runner's)
    lease_wait_s: float = LEASE_WAIT_S
    _runs: dict[str, str] = field(default_factory=dict)  # run id -> role, while it runs here
    _freed: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self) -> str:
        """Take runs until drained (then return why); a refused credential or an unreachable server raises."""
        await self.client.hello(self.hello)
        checkout = Checkout(self.home, self.client)
        try:
            async with asyncio.TaskGroup() as tg:
                while True:
                    if len(self._runs) >= sum(self.hello.slots.values()):
                        self._freed.clear()
                        await self._freed.wait()
                        continue
                    leased = await self.client.lease(self._busy(), self.lease_wait_s)
                    if leased is None:
                        if self.client.draining and not self._runs:
                            return f"node {self.name} is drained: no runs left, none will be given"
                        continue
                    self._runs[leased.run.run_id] = leased.run.role
                    lease = _Lease(leased.run, leased.epoch, leased.lease_s / 6)
                    tg.create_task(self._take(checkout, lease), name=leased.run.run_id)
        finally:
            await self.runner.shutdown()

    def _busy(self) -> dict[str, int]:
        busy: dict[str, int] = {}
        for role in self._runs.values():
            busy[role] = busy.get(role, 0) + 1
        return busy

    async def _take(self, checkout: Checkout, lease: _Lease) -> None:
        """One leased run from its worktree to its reported end; nothing of it escapes as an error."""
        run = lease.run
        try:
            try:
                end = await self._work(checkout, lease)
            except Exception as err:  # a fault of this node's: said at once, not left for the lease to lapse
                log.exception("node run failed", extra={"action": "node_run_failed", "run_id": run.run_id})
                why = f"build node {self.name} failed: {type(err).__name__}: {err}"
                end = FinishIn(epoch=lease.epoch, outcome=RunOutcome.CRASHED, reason=why)
            if lease.lost is None:
                await self.client.finish(run.run_id, end)
                log.info("run finished", extra={"action": "node_run_end", "run_id": run.run_id})
        except GanglineError as err:
            lease.lost = lease.lost or str(err)
        finally:
            if lease.lost is not None:
                log.warning("lease lost", extra={"action": "node_lease_lost", "run_id": run.run_id, "why": lease.lost})
            del self._runs[run.run_id]
            self._freed.set()

    async def _work(self, checkout: Checkout, lease: _Lease) -> FinishIn:
        """The run from its checkout to its report, its lease renewed all along (hooks and gates take time too)."""
        renew = asyncio.create_task(self._renew(lease))
        try:
            return await self._leased(checkout, lease)
        finally:
            renew.cancel()

    async def _leased(self, checkout: Checkout, lease: _Lease) -> FinishIn:
        run, epoch = lease.run, lease.epoch
        try:
            path = await checkout.prepare(run)
        except GanglineError as err:
            return FinishIn(epoch=epoch, outcome=RunOutcome.CRASHED, reason=f"could not start: {err}")
        hooks: dict[str, list[dict[str, Any]]] = {}  # what the hooks said here, by point
        if not await self._ready(run, path, hooks):
            why = f"the agent did not start: a hook that readies its checkout on {self.name} failed"
            return FinishIn(epoch=epoch, outcome=RunOutcome.FAILED, reason=why, hooks=hooks)
        if lease.stop is not None:  # while the hooks ran
            return FinishIn(epoch=epoch, outcome=RunOutcome.STOPPED, reason=lease.stop, hooks=hooks)
        try:
            summary = await self._drive(lease, path)
        except GanglineError as err:  # nothing was spawned: a missing CLI, a bad profile
            why = f"could not start on {self.name}: {err}"
            return FinishIn(epoch=epoch, outcome=RunOutcome.REFUSED, reason=why, hooks=hooks)
        finally:
            remove_mcp_config(path)
        if lease.lost is not None:
            return _finish(epoch, summary, None, "")
        checked = await self._hook(run, path, HookPoint.AFTER_RUN, hooks)  # else its work is not checked
        dirty = await dirty_paths(path) if run.role == Role.CODER.value else []
        gates = await self._gates(run, path) if run.gates and checked else None
        pushed, note = None, ""
        if run.push:
            try:
                pushed = await checkout.push(run, path, epoch)
            except GanglineError as err:
                note = f"; its push was refused: {err}"
        return _finish(epoch, summary, pushed, note).model_copy(update={"dirty": dirty, "gates": gates, "hooks": hooks})

    async def _ready(self, run: NodeRun, path: Path, ran: dict[str, list[dict[str, Any]]]) -> bool:
        """after_create, unless these same commands passed in this checkout already, then before_run."""
        commands = [str(step["command"]) for step in run.hooks.get(HookPoint.AFTER_CREATE.value, [])]
        if not prepared(path, commands):
            if not await self._hook(run, path, HookPoint.AFTER_CREATE, ran):
                return False
            mark_prepared(path, commands)
        return await self._hook(run, path, HookPoint.BEFORE_RUN, ran)

    async def _hook(self, run: NodeRun, path: Path, point: HookPoint, ran: dict[str, list[dict[str, Any]]]) -> bool:
        """``point``'s hooks here, as the server runs them; whether they passed (or there are none)."""
        steps = run.hooks.get(point.value)
        if not steps:
            return True
        specs = [GateSpec.model_validate(step) for step in steps]
        env = {**self._gate_env(run), "GANGLINE_HOOK": point.value}
        report = await self.rooms.run_gates(specs, f"{run.run_id}-{point.value}", path, env, noun="hook")
        ran[point.value] = [asdict(result) for result in report.results]
        return report.passed

    async def _gates(self, run: NodeRun, path: Path) -> list[dict[str, Any]]:
        """The project's gates here, after the coder, in the gates' sandbox: their results for the server."""
        specs = [GateSpec.model_validate(gate) for gate in run.gates]
        report = await self.rooms.run_gates(specs, f"{run.run_id}-gates", path, self._gate_env(run))
        return [asdict(result) for result in report.results]

    def _gate_env(self, run: NodeRun) -> dict[str, str]:
        return {**self.env, **run.env, PROJECT_VAR: str(self.home)}

    async def _drive(self, lease: _Lease, path: Path) -> RunSummary:
        """The agent's run in ``path`` while its log streams to the server and its lease is renewed."""
        run = lease.run
        profile = AgentProfile.model_validate(run.profile)
        here = run.resume is not None and run.resume_node == self.name
        resume, prompt = (run.resume, run.prompt) if here else (None, run.fresh_prompt or run.prompt)
        if run.mcp_token:
            settings = self.runner.log_dir / f"{run.run_id}.settings.json"
            url = f"{self.client.server}/mcp"
            profile = await launched_with_mcp(profile, path, url, run.mcp_token, settings, in_git=True)
        env = {**run.env, PROJECT_VAR: str(self.home)}
        # The sandbox's git may move the run's branch (gangline/<...>) only.
        opened = await self.rooms.open(run.run_id, profile, path, (run.branch or "").removeprefix("gangline/") or None)
        request = RunRequest(run.run_id, profile, prompt, path, resume_session_id=resume, env=env,
                             room=opened.room if opened else None, bwrap=opened.bwrap if opened else None)  # fmt: skip
        bus = Bus(self.runner.settings.subscriber_queue)
        forward = asyncio.create_task(self._forward(lease, bus))
        try:
            return await self.runner.run(request, bus)
        finally:
            if opened is not None:
                await self._close_room(run.run_id, opened)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_S):
                    await forward
            forward.cancel()

    async def _close_room(self, run_id: str, opened: Opened) -> None:
        """Take in what the sandboxed agent committed (then the push sends it) and its CLI's refreshed sign-in."""
        try:
            harvest = await self.rooms.close(opened)
            refused = harvest.refused if harvest is not None else None
        except GanglineError as err:
            refused = f"its objects could not be taken in: {err}"
        if refused:  # the push sends what the branch had: the server finds no new commits and retries the item
            log.warning("sandbox refused", extra={"action": "node_harvest_refused", "run_id": run_id, "why": refused})

    async def _forward(self, lease: _Lease, bus: Bus) -> None:
        """Send the run's log lines to the server as they come: each batch is what arrived during the last send."""
        pending: list[Record] = []
        arrived = asyncio.Event()
        log_path = self.runner.log_path(lease.run.run_id)

        async def collect() -> None:
            async for record in follow(bus, lambda after: replay_if_any(log_path, after)):
                pending.append(record)
                arrived.set()
            arrived.set()

        collector = asyncio.create_task(collect())
        try:
            while not (collector.done() and not pending) and lease.lost is None:
                await arrived.wait()
                arrived.clear()
                if pending:
                    batch = pending[:]
                    del pending[:]
                    if not await self._send(lease, batch):
                        pending[:0] = batch  # the server is unreachable for now: send it with the next
                        arrived.set()
        finally:
            collector.cancel()

    async def _send(self, lease: _Lease, batch: list[Record]) -> bool:
        try:
            answer = await self.client.upload(lease.run.run_id, lease.epoch, _encoder.encode_lines(batch))
        except Unavailable:
            return False
        except LeaseLost as err:
            self._lose(lease, str(err))
            return True
        if answer.stop:
            self._stop(lease, answer.stop)
        return True

    async def _renew(self, lease: _Lease) -> None:
        while lease.lost is None:
            await asyncio.sleep(lease.renew_s)
            try:
                answer = await self.client.renew(lease.run.run_id, lease.epoch)
            except Unavailable:
                continue  # the lease lasts six renewals; the next may get through
            except LeaseLost as err:
                self._lose(lease, str(err))
                return
            if answer.stop:
                self._stop(lease, answer.stop)

    def _lose(self, lease: _Lease, why: str) -> None:
        lease.lost = why
        self._stop(lease, f"its lease is over: {why}")

    def _stop(self, lease: _Lease, reason: str) -> None:
        lease.stop = lease.stop or reason  # asked before the agent starts: it does not start
        with contextlib.suppress(RunnerError):  # it ended meanwhile, or has not started yet
            self.runner.stop_nowait(lease.run.run_id, reason)


def _finish(epoch: int, summary: RunSummary, pushed: str | None, note: str) -> FinishIn:
    usage = msgspec.structs.asdict(summary.usage) if summary.usage is not None else None
    return FinishIn(
        epoch=epoch,
        outcome=summary.outcome,
        reason=summary.reason + note,
        exit_code=summary.exit_code,
        session_id=summary.session_id,
        usage=usage,
        cost_usd=summary.cost_usd,
        resets_at=summary.resets_at,
        result_subtype=summary.result_subtype,
        result_text=summary.result_text,
        pushed=pushed,
    )
