"""Runs on build nodes, as the server sees them: it offers each, takes in its events, and waits for its end.

``RemoteRuns`` stands where the runner stands for a local run. A recorded run is put up as
an offer; a node leases it (``lease``), streams its run log's lines (``ingest``: the server
appends them to its own copy of the log and publishes them on the run's bus, so the board, the
live stream and the budget meter see a node's run as they see a local one), renews its lease,
and reports how it ended (``finish``). A lease that lapses ends the run as stopped; whatever
its node says afterwards is refused. See SPEC.md "Build nodes".
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from gangline.agents.bus import Bus
from gangline.agents.run import RunSummary
from gangline.agents.runlog import RunLog
from gangline.core.errors import GanglineError, RunnerError
from gangline.core.events import Record, RunOutcome, Usage
from gangline.core.nodes import LEASE_S, Lease, LeaseLost, NodeRow, Offer
from gangline.core.nodewire import FinishIn, LeaseOut, NodeRun, RenewOut, UploadOut
from gangline.core.profiles import Role
from gangline.core.types import Clock
from gangline.pipeline.changes import Changes
from gangline.repo import nodepush
from gangline.repo.git import git
from gangline.store import Store

log = logging.getLogger(__name__)

_records = msgspec.json.Decoder(Record)
_LAPSE_MARGIN_S = 1.0  # past a lease's end before the server calls it lapsed (a renewal in flight)


@dataclass
class _Remote:
    """One offered run while the server waits for its end."""

    offer: Offer
    bus: Bus
    log: RunLog
    done: asyncio.Future[FinishIn]
    worktree: Path | None  # the server's worktree of the item, whose branch the node pushes
    stop: str | None = None  # asked to stop (a person, its budget): the node hears it at its next call
    taken: int = 0  # the last of the node's record ids the server has


@dataclass
class RemoteRuns:
    """The runs offered to build nodes, from the offer to the end of the run."""

    store: Store
    log_path: Callable[[str], Path]
    clock: Clock
    lease_s: float = LEASE_S
    open: bool = False  # nodes can reach this server (its NodeDesk exists): without, nothing is offered
    ends: dict[str, FinishIn] = field(default_factory=dict)  # what each node reported, until the run's result takes it
    _live: dict[str, _Remote] = field(default_factory=dict)
    _offers: Changes = field(default_factory=Changes)

    def running(self) -> list[str]:
        return list(self._live)

    async def run(self, offer: Offer, bus: Bus, worktree: Path | None) -> RunSummary:
        """Offer the recorded run, and return how it ended on the node that leased it.

        Raises RunLogError before anything is offered; every ending after that is a RunSummary.
        """
        try:
            runlog = RunLog(self.log_path(offer.run_id))
        except GanglineError:
            bus.close()
            raise
        remote = _Remote(offer, bus, runlog, asyncio.get_running_loop().create_future(), worktree)
        self._live[offer.run_id] = remote
        ended = "the run ended"
        try:
            self.store.offer_run(offer)
            self._offers.bump()
            end = await self._until_done(remote)
            ended = end.reason
        finally:
            del self._live[offer.run_id]
            self.store.end_lease(offer.run_id, ended)
            runlog.close()
            bus.close()
        await self._check_out(remote)
        usage = Usage(**end.usage) if end.usage else None
        return RunSummary(offer.run_id, end.outcome, end.reason, runlog.path, runlog.last_id, None, end.exit_code,
                          end.session_id, usage, end.cost_usd, end.resets_at, end.result_subtype,
                          end.result_text)  # fmt: skip

    async def _until_done(self, remote: _Remote) -> FinishIn:
        """The node's report of the end, or a stopped ending of the server's own once the lease lapses."""
        while True:
            lease = self.store.lease_of(remote.offer.run_id)
            if lease is not None:
                overdue = self.clock() - lease.expires_at
                if overdue > _LAPSE_MARGIN_S:
                    return _lapsed(lease, overdue)
                wait = _LAPSE_MARGIN_S - overdue + 0.1
            else:
                wait = self.lease_s
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(remote.done), wait)

    def stop_nowait(self, run_id: str, reason: str) -> None:
        """Stop an offered run: at once if no node has it yet, else at its node's next call."""
        remote = self._live.get(run_id)
        if remote is None:
            raise RunnerError(run_id, "is not running")
        if self.store.withdraw_offer(run_id):
            _settle(remote, FinishIn(epoch=0, outcome=RunOutcome.STOPPED, reason=reason))
        elif remote.stop is None:
            remote.stop = reason

    # --- what nodes call -------------------------------------------------------------------

    async def lease(
        self, node: NodeRow, busy: dict[str, int], wait_s: float, closing: asyncio.Event | None = None
    ) -> LeaseOut | None:
        """The oldest offer ``node`` can take, waiting up to ``wait_s`` for one; None when none came,
        or at once when ``closing`` is set (the server is shutting down)."""
        closing = closing or asyncio.Event()
        # A node waiting is not heard from: it asks again well within a lease, so it stays live meanwhile.
        deadline = self.clock() + min(wait_s, self.lease_s / 3)
        while True:
            seen = self._offers.version
            claimed = self.store.claim(node, busy, self.lease_s)
            if claimed is not None:
                offer, lease = claimed
                log.info("run leased", extra={"action": "run_leased", "run_id": offer.run_id, "node": node.name})
                run = NodeRun.model_validate(offer.payload)
                return LeaseOut(run=run, epoch=lease.epoch, expires_at=lease.expires_at, lease_s=self.lease_s)
            left = deadline - self.clock()
            if left <= 0 or closing.is_set():
                return None
            changed = asyncio.ensure_future(self._offers.wait_changed(seen, left))
            closed = asyncio.ensure_future(closing.wait())
            _, pending = await asyncio.wait((changed, closed), return_when=asyncio.FIRST_COMPLETED)
            for waiting in pending:
                waiting.cancel()

    def renew(self, node: NodeRow, run_id: str, epoch: int) -> RenewOut:
        lease = self.store.renew_lease(node.id, run_id, epoch, self.lease_s)
        remote = self._live.get(run_id)
        return RenewOut(expires_at=lease.expires_at, stop=remote.stop if remote else None)

    def ingest(self, node: NodeRow, run_id: str, epoch: int, lines: bytes) -> UploadOut:
        """Take a batch of the run's log lines from its node: append them here and publish them live.

        A batch sent again (its answer was lost) is taken once: records are known by the node's ids.
        """
        remote = self._held(node, run_id, epoch)
        try:
            records = [_records.decode(line) for line in lines.splitlines() if line.strip()]
        except msgspec.DecodeError as err:
            raise RunnerError(run_id, f"an upload line is not a run log record: {err}") from None
        fresh = [record for record in records if record.id > remote.taken]
        for ts, group in itertools.groupby(fresh, key=lambda record: record.ts):
            batch = remote.log.append([(record.event, record.raw or None) for record in group], ts)
            remote.bus.publish_nowait(batch)
        if fresh:
            remote.taken = fresh[-1].id
        return UploadOut(taken=remote.taken, stop=remote.stop)

    async def finish(self, node: NodeRow, run_id: str, end: FinishIn) -> None:
        """The node's report of the run's end (once its push, if any, is in)."""
        remote = self._held(node, run_id, end.epoch)
        self.ends[run_id] = end
        _settle(remote, end)

    async def _check_out(self, remote: _Remote) -> None:
        """A node's push moved the branch the server's worktree has checked out: its files follow the branch.

        Whatever ended the run (a report, a lapse after the push went in): nothing else wrote there meanwhile.
        """
        payload = remote.offer.payload
        if remote.worktree is None or not payload.get("push"):
            return
        try:
            if payload.get("role") == Role.MERGEMASTER.value:
                await nodepush.take_back_workspace(remote.worktree, str(payload["branch"]))
                return
            head = await git(remote.worktree, "rev-parse", "-q", "--verify", "HEAD", check=False)
            if head.stdout.strip() != payload.get("base"):
                await git(remote.worktree, "reset", "--hard", "-q", "HEAD")
        except GanglineError as err:  # the run is over all the same; the gates, next, find what is there
            said = {"action": "node_checkout_failed", "run_id": remote.offer.run_id, "error": str(err)}
            log.warning("checkout after a node's run failed", extra=said)

    def _held(self, node: NodeRow, run_id: str, epoch: int) -> _Remote:
        self.store.check_lease(node.id, run_id, epoch)
        remote = self._live.get(run_id)
        if remote is None or remote.done.done():
            raise LeaseLost(run_id, epoch, "the server is no longer waiting for it")
        return remote


def _settle(remote: _Remote, end: FinishIn) -> None:
    if not remote.done.done():
        remote.done.set_result(end)


def _lapsed(lease: Lease, overdue: float) -> FinishIn:
    why = f"its build node stopped renewing its lease (epoch {lease.epoch}, lapsed {overdue:.0f} s ago)"
    return FinishIn(epoch=lease.epoch, outcome=RunOutcome.STOPPED, reason=why)
