"""One live run: its process in a PTY, read on the event loop into typed, durable, broadcast records."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from gangline.agents.adapter import AgentAdapter
from gangline.agents.bus import Bus
from gangline.agents.decoding import priced
from gangline.agents.framing import LineFramer
from gangline.agents.leftovers import MARK_VAR, RunCgroup, cgroup_prefix, end_marked, spawned_here
from gangline.agents.processes import (
    ProcessRecord,
    ProcessRegistry,
    Spawned,
    kill_group_now,
    spawn_in_pty,
    terminate_group,
)
from gangline.agents.recovery import PROJECT_VAR
from gangline.agents.runlog import RunLog
from gangline.agents.sandbox import Room, unwrapped_status
from gangline.core.budget import Price
from gangline.core.errors import RunLogError
from gangline.core.events import (
    Event,
    Malformed,
    ProcessesEnded,
    ProcessStarted,
    RateLimit,
    Record,
    Result,
    RunFinished,
    RunOutcome,
    SessionStarted,
    Usage,
)
from gangline.core.outcome import Conclusion, decide
from gangline.core.profiles import AgentProfile, RunnerSettings

log = logging.getLogger(__name__)

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_READ_SIZE = 1 << 16
_LAST_LINES = 10  # kept to explain a CLI that dies without a session or result
_WATCHED = (SessionStarted, Result, RateLimit)


@dataclass(frozen=True)
class RunRequest:
    run_id: str
    profile: AgentProfile
    prompt: str
    cwd: Path
    resume_session_id: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)  # added to the runner's base environment
    # Called with the process's identity after it is logged and before its first byte is read,
    # so a caller can store it durably too (DESIGN invariant 4).
    on_started: Callable[[ProcessRecord], None] | None = None
    # Prices the run's result when its CLI reports tokens but no cost (Codex, Gemini).
    price: Price | None = None
    # What earlier runs in the resumed session were already counted for (Codex reports a thread's total).
    session_usage: Usage | None = None
    # The sandbox the run works in, and the bwrap that makes it; None: unconfined.
    room: Room | None = None
    bwrap: str | None = None


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    outcome: RunOutcome
    reason: str
    log_path: Path
    last_event_id: int
    process: ProcessRecord | None
    exit_code: int | None = None
    session_id: str | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    resets_at: float | None = None
    result_subtype: str | None = None
    result_text: str | None = None  # the final message: where structured verdicts arrive


class LiveRun:
    """The state of one live run; driven by event-loop callbacks, not threads."""

    def __init__(
        self, request: RunRequest, settings: RunnerSettings, adapter: AgentAdapter, runlog: RunLog, bus: Bus
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.request = request
        self.settings = settings
        self.adapter = adapter
        self._decode = priced(adapter.decoder(request.profile, request.session_usage), request.price)
        self.log = runlog
        self.bus = bus
        self.finished = asyncio.Event()
        self.pgid = 0
        self._framer = LineFramer(settings.max_line_bytes)
        self._pidfd = -1
        self._last_lines: deque[bytes] = deque(maxlen=_LAST_LINES)
        self._session_id: str | None = request.resume_session_id
        self._session_started = False
        self._result: Result | None = None
        self._hard_limit: RateLimit | None = None
        self._killed_for: tuple[RunOutcome, str] | None = None
        self._kill_requested: asyncio.Future[None] = self.loop.create_future()
        self._exited: asyncio.Future[int] = self.loop.create_future()
        self._eof: asyncio.Future[None] = self.loop.create_future()
        self._last_output = self.loop.time()
        self._timers: list[asyncio.TimerHandle] = []
        self._idle_timer: asyncio.TimerHandle | None = None
        self._sync_due = False

    # --- public ------------------------------------------------------------------------

    def request_kill(self, outcome: RunOutcome, reason: str) -> None:
        if self._killed_for is None and not self._exited.done():
            self._killed_for = (outcome, reason)
            log.info("killing run", extra={"action": "kill_run", "run_id": self.request.run_id, "reason": reason})
        if not self._kill_requested.done():
            self._kill_requested.set_result(None)

    async def drive(self, argv: list[str], env: dict[str, str], registry: ProcessRegistry) -> RunSummary:
        rid = self.request.run_id
        mark = env[MARK_VAR]
        cgroup = RunCgroup.make(cgroup_prefix(env.get(PROJECT_VAR, "")) + mark)
        try:
            spawned = spawn_in_pty(argv, self.request.cwd, env)
        except OSError as err:
            if cgroup is not None:
                cgroup.remove()
            conclusion = Conclusion(RunOutcome.CRASHED, f"could not start {argv[0]!r}: {err.strerror or err}")
            return self._finish(conclusion, None, None)
        if cgroup is not None and not cgroup.add(spawned.popen.pid):
            cgroup.remove()
            cgroup = None
        self.pgid = spawned.record.pgid
        registry.register(rid, spawned.record)
        spawned_here.add(spawned.popen.pid)
        try:
            self._record_start(spawned, argv, env)
            returncode = await self._supervise(spawned)
            if self.request.room is not None:
                returncode = unwrapped_status(returncode)
        except asyncio.CancelledError:
            self._killed_for = self._killed_for or (RunOutcome.STOPPED, "runner cancelled")
            self._teardown(spawned)
            self._end_leftovers(mark, cgroup)
            self._finish(self._conclude(spawned.popen.poll()), spawned, spawned.popen.poll())
            raise
        finally:
            registry.unregister(rid)
            spawned_here.discard(spawned.popen.pid)
        self._teardown(spawned)
        self._end_leftovers(mark, cgroup)
        return self._finish(self._conclude(returncode), spawned, returncode)

    def _end_leftovers(self, mark: str, cgroup: RunCgroup | None) -> None:
        """Whatever the run started that outlived its CLI and its group dies now, and the log says what."""
        items: list[tuple[Event, msgspec.Raw | None]] = []
        if cgroup is not None:
            ended = cgroup.end()
            if ended:
                items.append((ProcessesEnded("cgroup", ended), None))
        ended = end_marked({MARK_VAR: mark})
        if ended:
            items.append((ProcessesEnded("marker", ended), None))
        if items:
            self._commit(items, time.time())

    # --- supervision -------------------------------------------------------------------

    def _record_start(self, spawned: Spawned, argv: list[str], env: dict[str, str]) -> None:
        # Durable before the first byte is read (DESIGN invariant 4).
        rec = spawned.record
        started = ProcessStarted(rec.pid, rec.pgid, rec.start_ticks, argv, str(self.request.cwd), sorted(env))
        self._commit([(started, None)], time.time())
        self.log.sync()
        if self.request.on_started is not None:
            self.request.on_started(rec)
        log.info("agent started", extra={"action": "run_started", "run_id": self.request.run_id, "pid": rec.pid})

    async def _supervise(self, spawned: Spawned) -> int:
        loop = self.loop
        pidfd = os.pidfd_open(spawned.popen.pid)
        self._pidfd = pidfd
        loop.add_reader(spawned.master_fd, self._on_readable, spawned.master_fd)
        loop.add_reader(pidfd, self._on_exit, spawned)
        self._arm_watchdogs()
        waiters: list[asyncio.Future[Any]] = [self._exited, self._kill_requested]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not self._exited.done():
            await terminate_group(self.pgid, self.settings.kill_grace_s)
            await asyncio.wait([self._exited], timeout=5.0)
        self._cancel_timers()
        returncode = self._exited.result() if self._exited.done() else spawned.popen.wait(timeout=5.0)
        # The run is over: anything it left in its group (grandchildren) goes with it.
        await terminate_group(self.pgid, self.settings.kill_grace_s)
        await asyncio.wait([self._eof], timeout=self.settings.drain_timeout_s)
        return returncode

    def _arm_watchdogs(self) -> None:
        self._idle_timer = self.loop.call_at(self._last_output + self.settings.inactivity_timeout_s, self._check_idle)
        if self.settings.max_run_s is not None:
            reason = f"run exceeded its limit of {self.settings.max_run_s:g}s"
            self._timers.append(
                self.loop.call_later(self.settings.max_run_s, self.request_kill, RunOutcome.TIMED_OUT, reason)
            )

    def _check_idle(self) -> None:
        due = self._last_output + self.settings.inactivity_timeout_s
        if self.loop.time() >= due:
            self.request_kill(
                RunOutcome.STALLED, f"no output for {self.settings.inactivity_timeout_s:g}s (inactivity timeout)"
            )
        else:
            # Re-armed only when it fires: cheaper than resetting a timer on every read.
            self._idle_timer = self.loop.call_at(due, self._check_idle)

    def _on_exit(self, spawned: Spawned) -> None:
        self.loop.remove_reader(self._pidfd)
        if not self._exited.done():
            self._exited.set_result(spawned.popen.wait())

    def _on_readable(self, fd: int) -> None:
        try:
            data = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO: every slave end is closed
        if not data:
            self.loop.remove_reader(fd)
            if not self._eof.done():
                self._eof.set_result(None)
            return
        self._last_output = self.loop.time()
        self._ingest(self._framer.feed(data))

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._idle_timer is not None:
            self._idle_timer.cancel()

    def _teardown(self, spawned: Spawned) -> None:
        self._cancel_timers()
        self.loop.remove_reader(spawned.master_fd)
        if spawned.popen.poll() is None:
            kill_group_now(self.pgid)
            spawned.popen.wait(timeout=5.0)
        if self._pidfd >= 0:
            self.loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        self._drain_nowait(spawned.master_fd)
        os.close(spawned.master_fd)
        self._ingest(self._framer.flush())

    def _drain_nowait(self, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, _READ_SIZE)
            except OSError:
                return
            if not data:
                return
            self._ingest(self._framer.feed(data))

    # --- the hot path: lines -> events -> log -> bus ---------------------------------------

    def _ingest(self, lines: list[bytes | Malformed]) -> None:
        if not lines:
            return
        now = time.time()
        parse = self._decode
        items: list[tuple[Event, msgspec.Raw | None]] = []
        append = items.append
        for line in lines:
            if isinstance(line, Malformed):
                append((line, None))  # an oversized line, already a Malformed event
                continue
            self._last_lines.append(line)
            events, raw = parse(line, now)
            for event in events:
                append((event, raw))
                raw = None  # the raw line goes with the first event it produced
                if isinstance(event, _WATCHED):
                    self._observe(event)
        self._commit(items, now)

    def _observe(self, event: Event) -> None:
        if isinstance(event, SessionStarted):
            self._session_id = event.session_id
            self._session_started = True
            self._sync_due = True
        elif isinstance(event, Result):
            self._result = event
            self._session_id = event.session_id or self._session_id
            self._sync_due = True
        elif isinstance(event, RateLimit) and event.hard_block:
            self._hard_limit = event

    def _commit(self, items: list[tuple[Event, msgspec.Raw | None]], now: float) -> list[Record]:
        try:
            records = self.log.append(items, now)
            if self._sync_due:
                self._sync_due = False
                self.log.sync()
        except RunLogError as err:
            # Without the log nothing is durable: stop the agent rather than lose its work silently.
            self.request_kill(RunOutcome.FAILED, str(err))
            return []
        if self.log.size > self.settings.max_log_bytes:  # an agent in a loop must not fill the disk
            self.request_kill(RunOutcome.FAILED, f"run log passed {self.settings.max_log_bytes} bytes (max_log_bytes)")
        self.bus.publish_nowait(records)
        return records

    # --- the end ---------------------------------------------------------------------------

    def _last_text(self) -> list[str]:
        # Decoded only at the end: the hot path keeps the raw bytes.
        return [line.decode("utf-8", "replace")[:500] for line in self._last_lines]

    def _conclude(self, returncode: int | None) -> Conclusion:
        return decide(
            killed_for=self._killed_for,
            returncode=returncode,
            session_started=self._session_started,
            result=self._result,
            hard_limit=self._hard_limit,
            last_lines=self._last_text(),
        )

    def _finish(self, conclusion: Conclusion, spawned: Spawned | None, returncode: int | None) -> RunSummary:
        result = self._result
        finished = RunFinished(
            outcome=conclusion.outcome,
            reason=conclusion.reason,
            exit_code=returncode,
            session_id=self._session_id,
            cost_usd=result.cost_usd if result else None,
            usage=result.usage if result else None,
            resets_at=self._hard_limit.resets_at if self._hard_limit else None,
            last_lines=self._last_text()[-3:],
        )
        self._commit([(finished, None)], time.time())
        try:
            self.log.close()
        except RunLogError as err:
            log.error(
                "run log close failed",
                extra={"action": "run_log_close", "run_id": self.request.run_id, "error": str(err)},
            )
        self.bus.close()
        self.finished.set()
        log.info(
            "run finished",
            extra={
                "action": "run_finished",
                "run_id": self.request.run_id,
                "session_id": self._session_id,
                "outcome": conclusion.outcome.value,
            },
        )
        return RunSummary(
            run_id=self.request.run_id,
            outcome=conclusion.outcome,
            reason=conclusion.reason,
            log_path=self.log.path,
            last_event_id=self.log.last_id,
            process=spawned.record if spawned else None,
            exit_code=returncode,
            session_id=self._session_id,
            usage=finished.usage,
            cost_usd=finished.cost_usd,
            resets_at=finished.resets_at,
            result_subtype=result.subtype if result else None,
            result_text=result.result if result else None,
        )
