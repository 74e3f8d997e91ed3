"""The agent runner: starts runs, one CLI process each, and stops them one by one or all at shutdown."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from gangline.agents.bus import Bus
from gangline.agents.leftovers import MARK_VAR, become_subreaper
from gangline.agents.processes import ProcessRegistry, kill_group_now
from gangline.agents.registry import ADAPTERS
from gangline.agents.run import LiveRun, RunRequest, RunSummary
from gangline.agents.runlog import RunLog
from gangline.agents.sandbox import confine
from gangline.core.errors import GanglineError, RunnerError
from gangline.core.events import RunOutcome
from gangline.core.profiles import RunnerSettings

log = logging.getLogger(__name__)

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
__all__ = ["RunRequest", "RunSummary", "Runner"]


class Runner:
    """Starts runs, and stops them one by one or all at shutdown."""

    def __init__(
        self,
        settings: RunnerSettings,
        log_dir: Path,
        base_env: Mapping[str, str],
        registry: ProcessRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.registry = registry or ProcessRegistry()
        self._base_env = dict(base_env)
        self._active: dict[str, LiveRun] = {}
        # An orphan of a run is reparented to us, not to init: the run's end finds and reaps it.
        self.subreaper = become_subreaper()

    def log_path(self, run_id: str) -> Path:
        return self.log_dir / f"{run_id}.jsonl"

    async def run(self, request: RunRequest, bus: Bus | None = None) -> RunSummary:
        """Run the agent to the end and return how it ended.

        Raises AgentNotFoundError, RunLogError or RunnerError before anything is spawned;
        once the process exists every ending, including a crash, is a RunSummary.
        """
        bus = bus or Bus(self.settings.subscriber_queue)
        try:
            if not _RUN_ID.fullmatch(request.run_id):
                raise RunnerError(request.run_id, "run id must be letters, digits, '.', '_' or '-' (at most 128)")
            if request.run_id in self._active:
                raise RunnerError(request.run_id, "is already running")
            adapter = ADAPTERS[request.profile.cli]
            argv = adapter.command(request.profile, request.prompt, request.resume_session_id)
            if not request.cwd.is_dir():
                raise RunnerError(request.run_id, f"working directory {str(request.cwd)!r} does not exist")
            env = adapter.environment(request.profile, {**self._base_env, **request.env})
            env[MARK_VAR] = secrets.token_hex(12)  # found on everything the run starts, wherever it went
            if request.room is not None and request.bwrap is not None:
                argv = confine(argv, request.room, request.bwrap)
            run = LiveRun(request, self.settings, adapter, RunLog(self.log_path(request.run_id)), bus)
        except GanglineError:
            bus.close()  # subscribers waiting for this run must not wait forever
            raise
        self._active[request.run_id] = run
        try:
            return await run.drive(argv, env, self.registry)
        finally:
            del self._active[request.run_id]

    def stop_nowait(self, run_id: str, reason: str = "stopped on request") -> None:
        run = self._active.get(run_id)
        if run is None:
            raise RunnerError(run_id, "is not running")
        run.request_kill(RunOutcome.STOPPED, reason)

    def running(self) -> list[str]:
        return list(self._active)

    async def shutdown(self) -> None:
        """Stop every run and wait, bounded, until each has killed its group and logged its end."""
        runs = list(self._active.values())
        for run in runs:
            run.request_kill(RunOutcome.STOPPED, "server shutting down")
        bound = self.settings.kill_grace_s + self.settings.drain_timeout_s + 10.0
        for run in runs:
            try:
                await asyncio.wait_for(run.finished.wait(), bound)
            except TimeoutError:
                kill_group_now(run.pgid)
