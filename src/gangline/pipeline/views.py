"""What a person sees, defined once: items with their activity, one item's history, status, costs, runs.

Every door shows these records (``core.wire``): REST returns them, the people's MCP tools
return them, the CLI prints them (``--json`` as they are), whether it reads the store itself or
asks a server. What only a serving orchestrator knows comes in as a ``Live`` snapshot; without
one (the CLI on the store) nothing drives the pipeline and nothing is running on its behalf.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from pydantic import BaseModel

from gangline.agents.runlog import replay_if_any
from gangline.core.disk import DiskOut
from gangline.core.events import Record
from gangline.core.items import Item
from gangline.core.messages import MessageOut
from gangline.core.profiles import CliKind, Role
from gangline.core.records import CHAT_LEDGER_KEY, LedgerKey, RunRow, last_gates, last_hooks
from gangline.core.scheduler import Step
from gangline.core.stages import Hold, Stage
from gangline.core.throttle import Throttle
from gangline.core.types import Clock
from gangline.core.wire import (
    Activity,
    ConfigOut,
    CostRow,
    CostsOut,
    EventOut,
    GateOut,
    ItemDetail,
    ItemOut,
    ItemQuery,
    OrchestratorOut,
    RunOut,
    StatusOut,
    Timer,
    TimerKind,
)
from gangline.pipeline.top import Top
from gangline.project.config import ProjectConfig
from gangline.repo.worktrees import branch_name
from gangline.store import Store

# Each timer counts only in the stage where the scheduler reads it.
TIMERS: tuple[tuple[TimerKind, Stage], ...] = (
    ("start_after", Stage.BACKLOG),
    ("parked_until", Stage.CODING),
    ("archive_at", Stage.DONE),
)
# Server-side work on an item between agent runs, as the card says it.
_WORK = {Step.START: "starting", Step.CODE: "checking the work", Step.REVIEW: "reviewing", Step.MERGE: "merging"}


@dataclass(frozen=True)
class Live:
    """What only the orchestrator knows, at one instant: whether it drives the pipeline and what it is doing."""

    running: bool = False
    jobs: int = 0  # items it is working on
    runs: int = 0  # agent processes it supervises
    working: Mapping[int, Step] = field(default_factory=dict)  # item id -> its job on it
    throttled: Mapping[str, Throttle] = field(default_factory=dict)  # run id -> how its API holds it back
    config: ConfigOut | None = None  # a server's configuration watch: what is in force, an edit refused
    disk: DiskOut | None = None  # what the runs take on disk, at the last retention sweep


@dataclass(frozen=True)
class Board:
    """What the cards need beyond the items: cost so far, live runs, throttles, and the time."""

    costs: dict[int, float]
    live_runs: dict[int, RunRow]  # item id -> its live run
    live: Live
    now: float

    def out(self, item: Item) -> ItemOut:
        return ItemOut.of(item, self.costs.get(item.id, 0.0), self.activity(item))

    def activity(self, item: Item) -> Activity:
        run = self.live_runs.get(item.id)
        if run is not None:
            agent = {"run_id": run.id, "profile": run.profile, "role": run.role}
            throttle = self.live.throttled.get(run.id)
            if throttle is not None:
                return Activity(
                    state="throttled", since=throttle.since, until=throttle.resets_at, note=throttle.note, **agent
                )
            return Activity(state="running", since=run.started_at, **agent)
        state = item.state
        step = self.live.working.get(item.id)
        if step is not None and state.hold is None:
            return Activity(state="working", note=_WORK.get(step, step.value))
        if state.hold is not None:
            return Activity(state=state.hold.value, note=state.hold_reason)
        if state.frozen:
            return Activity(state="frozen")
        return _waiting(item, self.now)


def _waiting(item: Item, now: float) -> Activity:
    stage = item.stage
    if stage is Stage.CODING and item.parked_until is not None and item.parked_until > now:
        return Activity(state="parked", until=item.parked_until, note="rate limited")
    if stage is Stage.BACKLOG and item.start_after is not None and item.start_after > now:
        return Activity(state="scheduled", until=item.start_after)
    if stage in (Stage.CODING, Stage.QA, Stage.MERGE):
        return Activity(state="waiting")
    return Activity(state="idle")


@dataclass(frozen=True)
class RunPage:
    """A page of a run's event log: the run as it is now, its records after a cursor, and where to read on."""

    run: RunOut
    records: list[Record]
    more: bool
    next_after: int


class ProfileOut(BaseModel):
    """An agent profile in force, as a person reads it."""

    name: str
    role: Role
    cli: CliKind
    model: str | None
    command: str | None
    max_turns: int | None
    max_budget_usd: float | None
    fallback: str | None
    node_labels: list[str]


def profiles_out(config: ProjectConfig) -> list[ProfileOut]:
    """The agent profiles of ``config``, in the order project.toml gives them."""
    return [
        ProfileOut(name=p.name, role=p.role, cli=p.cli, model=p.model, command=p.command, max_turns=p.max_turns,
                   max_budget_usd=p.max_budget_usd, fallback=p.fallback, node_labels=list(p.node_labels))
        for p in config.agents
    ]  # fmt: skip


class Views:
    """Reads of the store, in the records every door shows."""

    def __init__(self, store: Store, live: Callable[[], Live] = Live, clock: Clock = time.time) -> None:
        self.store = store
        self.live = live
        self.clock = clock
        self.top = Top(lambda: self.runs(live=True))  # the live runs' process trees, sampled (``pipeline.top``)

    def board(self) -> Board:
        live_runs = {run.item_id: run for run in self.store.runs(live_only=True) if run.item_id is not None}
        return Board(item_costs(self.store), live_runs, self.live(), self.clock())

    def items(self, query: ItemQuery | None = None) -> list[ItemOut]:
        query = query or ItemQuery()
        board = self.board()
        return [board.out(i) for i in self.store.list_items(query.stages or None) if query.matches(i)]

    def item(self, item_id: int) -> ItemOut:
        return self.board().out(self.store.get_item(item_id))

    def detail(self, item_id: int) -> ItemDetail:
        """An item with its branch, transitions, runs, last gate results and each hook's last result."""
        item = self.store.get_item(item_id)
        events = self.store.events_after(0, limit=100_000, item_id=item_id)
        gate_rows = self.store.gate_results(item_id)
        return ItemDetail(
            **self.board().out(item).model_dump(),
            branch=branch_name(item.id, item.slug),
            transitions=[EventOut.of(e) for e in events if e.kind == "transition"],
            runs=[RunOut.of(r) for r in self.store.runs(item_id)],
            gates=[GateOut.of(g) for g in last_gates(gate_rows)],
            hooks=[GateOut.of(g) for g in last_hooks(gate_rows)],
        )

    def runs(self, item_id: int | None = None, live: bool | None = None) -> list[RunOut]:
        """Runs, oldest first; ``live`` True for only the live ones, False for only the finished."""
        runs = self.store.runs(item_id, live_only=live is True)
        return [RunOut.of(r) for r in runs if live is not False or not r.live]

    def run(self, run_id: str) -> RunOut:
        return RunOut.of(self.store.get_run(run_id))

    def log_page(self, run_id: str, after: int = 0, limit: int = 500) -> RunPage:
        """The run's records after ``after``, ``limit`` at most (none yet: its log is made a moment after its row)."""
        row = self.store.get_run(run_id)
        path = Path(row.log_path)
        records = list(islice(replay_if_any(path, after), limit + 1))
        page = records[:limit]
        return RunPage(RunOut.of(row), page, len(records) > limit, page[-1].id if page else after)

    def status(self) -> StatusOut:
        """The pipeline at a glance: items per stage and hold, live runs, the next timers, who drives it."""
        items = self.store.list_items()
        stages = Counter(i.stage for i in items)
        holds = Counter(i.state.hold for i in items if i.state.hold)
        timers = [
            Timer(item_id=i.id, kind=kind, at=at)
            for i in items
            for kind, stage in TIMERS
            if i.stage is stage and (at := getattr(i, kind)) is not None
        ]
        live = self.live()
        return StatusOut(
            stages={s: stages.get(s, 0) for s in Stage},
            holds={h: holds.get(h, 0) for h in Hold},
            frozen=sum(i.state.frozen for i in items),
            live_runs=self.runs(live=True),
            timers=sorted(timers, key=lambda t: t.at)[:20],
            orchestrator=OrchestratorOut(running=live.running, jobs=live.jobs, runs=live.runs),
            config=live.config,
            disk=live.disk,
            last_event_id=self.store.last_event_id(),
        )

    def messages(self, item_id: int) -> list[MessageOut]:
        """The item's messages to its coder, oldest first, each with the run that took it (none: still waiting)."""
        self.store.get_item(item_id)
        return [message.out() for message in self.store.messages(item_id)]

    def costs(self, by: LedgerKey = "item", item_id: int | None = None, since: float | None = None) -> CostsOut:
        """Tokens and cost from the ledger, summed per run, item, profile or UTC day, with the total;
        ``since``: only runs started then or later."""
        rows = [CostRow.model_validate(r, from_attributes=True) for r in self.store.ledger(by, item_id, since)]
        return CostsOut(by=by, rows=rows, total_usd=sum(r.cost_usd for r in rows))


def item_costs(store: Store) -> dict[int, float]:
    """What each item's runs cost so far."""
    return {int(row.key): row.cost_usd for row in store.ledger("item") if row.key != CHAT_LEDGER_KEY}
