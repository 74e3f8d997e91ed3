"""One agent run for the pipeline: recorded in the store before it spawns, watched for budget, closed after."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gangline.budget import BudgetMeter
from gangline.bus import Bus
from gangline.config import AgentProfile, Role
from gangline.errors import GanglineError, RunnerError
from gangline.events import Gap, RunOutcome, SessionStarted
from gangline.items import Item
from gangline.policy import RunEnding
from gangline.processes import ProcessRecord
from gangline.recovery import PROJECT_VAR
from gangline.runner import Runner, RunRequest, RunSummary
from gangline.store import NewRun, RunEnd, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentResult:
    run_id: str
    summary: RunSummary
    ending: RunEnding


class AgentRuns:
    """Starts the agent runs the pipeline asks for and keeps their buses for live viewers."""

    def __init__(self, store: Store, runner: Runner, project_root: Path, actor: str) -> None:
        self.store = store
        self.runner = runner
        self.project_root = project_root
        self.actor = actor
        self.buses: dict[str, Bus] = {}  # live runs, for anyone who wants to watch
        self.on_start: Callable[[str], None] = lambda run_id: None

    def env_for(self, item: Item, role: Role, run_id: str) -> dict[str, str]:
        """Variables every process started for the item carries (agents, gates, and their children)."""
        return {
            PROJECT_VAR: str(self.project_root),
            "GANGLINE_ITEM_ID": str(item.id),
            "GANGLINE_ITEM_SLUG": item.slug,
            "GANGLINE_ROLE": role.value,
            "GANGLINE_RUN_ID": run_id,
        }

    async def run(
        self, item: Item, profile: AgentProfile, prompt: str, cwd: Path, resume: str | None, attempt: int
    ) -> AgentResult:
        """Run the agent to its end. Raises StateConflict if the item moved before it could start."""
        run_id = f"{item.id}-{profile.role.value}-{self.store.count_runs(item.id) + 1}"
        log_path = self.runner.log_path(run_id)
        new = NewRun(run_id, item.id, profile.role, profile.name, attempt, str(cwd), str(log_path), resume)
        self.store.start_run(new, item.state, self.actor)
        meter = BudgetMeter(profile.max_budget_usd)
        bus = Bus(self.runner.settings.subscriber_queue)
        self.buses[run_id] = bus
        request = RunRequest(
            run_id,
            profile,
            prompt,
            cwd,
            resume_session_id=resume,
            env=self.env_for(item, profile.role, run_id),
            on_started=lambda rec: self._started(run_id, rec),
        )
        not_started: GanglineError | None = None
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._watch(run_id, bus, meter))
                try:
                    summary = await self.runner.run(request, bus)
                except GanglineError as err:  # nothing was spawned; the runner closed the bus
                    not_started = err
                    summary = _not_started(run_id, log_path, str(err))
        finally:
            self.buses.pop(run_id, None)
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
        return AgentResult(run_id, summary, ending)

    def _started(self, run_id: str, rec: ProcessRecord) -> None:
        self.store.record_process(run_id, rec.pid, rec.pgid, rec.start_ticks)
        self.on_start(run_id)

    async def _watch(self, run_id: str, bus: Bus, meter: BudgetMeter) -> None:
        stopped = False
        async for record in bus.subscribe():
            event = record.event
            if isinstance(event, Gap):
                return  # the meter is cheap: this only happens if the loop is starved
            if isinstance(event, SessionStarted):
                self.store.set_run_session(run_id, event.session_id)
            meter.feed(event)
            if meter.exceeded and not stopped:
                stopped = True
                log.warning("budget exceeded", extra={"action": "budget_stop", "run_id": run_id})
                with contextlib.suppress(RunnerError):  # it may have ended on its own meanwhile
                    self.runner.stop_nowait(run_id, meter.note())


def _not_started(run_id: str, log_path: Path, reason: str) -> RunSummary:
    return RunSummary(run_id, RunOutcome.CRASHED, f"could not start: {reason}", log_path, 0, None)
