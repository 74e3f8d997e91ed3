"""The chat commands that are no order or view of the pipeline: git, logs, overview, htop, reset."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime, tzinfo
from pathlib import Path

from gangline.agents.runlog import replay_tail
from gangline.chat.commands import Asked, Extra
from gangline.chat.htop import Htop
from gangline.chat.replies import when
from gangline.core.chat import Command
from gangline.core.errors import NotFoundError
from gangline.core.overview import summary
from gangline.core.text import plain
from gangline.core.transcript import line_of, text_of
from gangline.pipeline.orders import Orders
from gangline.pipeline.overview import overview as item_overview
from gangline.repo.checkout import base_status

LOG_LINES = 15  # what ``logs N`` shows of a run: its last lines


def extras(orders: Callable[[], Orders], htop: Htop, reset: Extra | None = None) -> dict[str, Extra]:
    """The handlers ``Commands`` takes for git, logs, overview, htop and reset."""

    async def git(command: Command, asked: Asked) -> str:
        found = orders()
        base = await base_status(found.orchestrator.paths.root, found.config.base_branch)
        lines = [f"{base.branch} at {base.tip[:10]} {plain(base.subject, limit=80)}"]
        if base.upstream is not None:
            lines.append(f"{base.ahead} ahead, {base.behind} behind {base.upstream} (as last fetched)")
        where = f"on {base.checked_out}" if base.checked_out else "detached"
        lines.append(f"your checkout: {where}, " + (f"{base.changed} changed file(s)" if base.changed else "clean"))
        return "\n".join(lines)

    async def logs(command: Command, asked: Asked) -> str:
        assert command.item_id is not None
        runs = orders().views.runs(command.item_id)
        if not runs:
            raise NotFoundError("run of item", str(command.item_id))
        run = next((r for r in reversed(runs) if r.live), runs[-1])
        lines = _last_lines(Path(orders().orchestrator.store.get_run(run.id).log_path), orders().config.zone())
        state = "live" if run.live else (run.outcome.value if run.outcome else "ended")
        shown = "\n".join(lines) or "(nothing yet)"
        return f"run {run.id} ({run.profile}, {state}), its last lines:\n{shown}"

    async def overview(command: Command, asked: Asked) -> str:
        assert command.item_id is not None
        found = orders()
        merged = await item_overview(found.views, found.orchestrator.paths.root, found.config.base_branch,
                                     command.item_id)  # fmt: skip
        zone = found.config.zone()
        return "\n".join(summary(merged, lambda at: when(at, zone)))

    async def top(command: Command, asked: Asked) -> str:
        if command.word == "stop":
            return "htop stopped." if htop.stop(asked.said.room) else "No htop is running in this room."
        return htop.start(asked.said.room)

    async def no_agent(command: Command, asked: Asked) -> str:
        return "There is no conversation to start over: no chat agent is set up."

    return {"git": git, "logs": logs, "overview": overview, "htop": top, "reset": reset or no_agent}


def _last_lines(log: Path, zone: tzinfo) -> list[str]:
    """The last lines of a run's transcript, as every door words them (``core.transcript``)."""
    if not log.exists():
        return []

    def clock(at: float) -> str:
        return datetime.fromtimestamp(at, zone).strftime("%H:%M")

    lines = deque((text_of(line) for record in replay_tail(log) if (line := line_of(record.event, clock))), LOG_LINES)
    return list(lines)
