"""REST for work items: list, add, show, edit and delete them, and a person's actions on them."""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal, cast

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, Field, JsonValue

from gangline.core.errors import ConfigError
from gangline.core.items import Criterion, Item, ItemDraft, ItemPatch, Kind
from gangline.core.profiles import QaMode, Role
from gangline.core.records import EventRow, GateRow, RunRow, last_gates
from gangline.core.scheduler import Step
from gangline.core.stages import Facts, Hold, IllegalTransition, ItemState, Stage, Trigger, apply, legal_triggers
from gangline.core.throttle import Throttle
from gangline.repo.worktrees import branch_name
from gangline.server.app import ERRORS, ActorDep, OrchestratorDep, StoreDep
from gangline.server.runs import ActionBody, RunOut
from gangline.store import Store

router = APIRouter(prefix="/api/items", tags=["items"], responses=ERRORS)

ItemIdPath = Annotated[int, Path(ge=1, le=2**53, description="The item's id.")]


class Action(enum.StrEnum):
    START = "start"
    STOP = "stop"
    BLOCK = "block"
    UNBLOCK = "unblock"
    HOLD = "hold"
    RELEASE = "release"
    APPROVE = "approve"
    REJECT = "reject"
    DEMOTE = "demote"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    ARCHIVE = "archive"
    RETRY_MERGE = "retry-merge"


_TRIGGER = {
    Action.START: Trigger.START,
    Action.STOP: Trigger.BLOCK,
    Action.BLOCK: Trigger.BLOCK,
    Action.UNBLOCK: Trigger.UNBLOCK,
    Action.HOLD: Trigger.HOLD_FOR_REVIEW,
    Action.RELEASE: Trigger.RELEASE,
    Action.APPROVE: Trigger.QA_PASSED,
    Action.REJECT: Trigger.QA_FAILED,
    Action.DEMOTE: Trigger.DEMOTE,
    Action.FREEZE: Trigger.FREEZE,
    Action.UNFREEZE: Trigger.UNFREEZE,
    Action.ARCHIVE: Trigger.ARCHIVE,
    Action.RETRY_MERGE: Trigger.RETRY_MERGE,
}


def actions_for(state: ItemState) -> list[Action]:
    """The actions the stage table allows from ``state`` (guards assumed met; the orchestrator checks them)."""
    return list(_actions(state.stage, state.hold, state.frozen))


@functools.cache  # a few dozen states at most; the board asks for every item on every change
def _actions(stage: Stage, hold: Hold | None, frozen: bool) -> tuple[Action, ...]:
    legal = set(legal_triggers(ItemState(stage, hold, "reason" if hold else None, frozen)))
    return tuple(action for action, trigger in _TRIGGER.items() if trigger in legal)


class Activity(BaseModel):
    """What an item is doing, as the board shows it on the card.

    ``state``: running / throttled (an agent is on it; throttled while its model API holds it
    back), working (the server itself is on it: gates, its own review, the merge),
    parked (a hard rate limit: it resumes at ``until``), blocked / review_hold /
    merge_failure (a hold), frozen, scheduled (it starts at ``until``), waiting (its stage has
    work to do but no agent yet: a free slot, a dependency), or idle.
    """

    state: Literal[
        "running", "throttled", "working", "parked", "blocked", "review_hold", "merge_failure", "frozen",
        "scheduled", "waiting", "idle",
    ]  # fmt: skip
    run_id: str | None = None
    profile: str | None = None
    role: Role | None = None
    since: float | None = None
    until: float | None = None
    note: str | None = None


class ItemOut(BaseModel):
    """A work item: what a person wrote, where the pipeline has it, and what it cost so far."""

    id: int
    slug: str
    name: str  # <id>-<slug>: its branch is gangline/<name>
    kind: Kind
    title: str
    body: str
    criteria: list[Criterion]
    depends_on: list[int]
    priority: int
    pinned_agent: str | None
    qa_mode: QaMode | None
    stage: Stage
    hold: Hold | None
    hold_reason: str | None
    frozen: bool
    retries: int
    merge_attempts: int
    session_id: str | None
    feedback: str | None
    start_after: float | None  # times are seconds since the epoch
    parked_until: float | None
    archive_at: float | None
    merged_commit: str | None
    merged_tip: str | None
    created_at: float
    updated_at: float
    cost_usd: float
    actions: list[Action] = Field(description="What a person may do to it now (POST /api/items/{id}/{action}).")
    activity: Activity = Field(description="What is happening to it, for the board.")

    @classmethod
    def of(cls, item: Item, cost_usd: float = 0.0, activity: Activity | None = None) -> ItemOut:
        state = item.state
        return cls(
            **{name: getattr(item, name) for name in _COPIED},
            name=item.name,
            criteria=list(item.criteria),
            depends_on=list(item.depends_on),
            stage=state.stage,
            hold=state.hold,
            hold_reason=state.hold_reason,
            frozen=state.frozen,
            cost_usd=cost_usd,
            actions=actions_for(state),
            activity=activity or Activity(state="idle"),
        )


_DERIVED = {"name", "criteria", "depends_on", "stage", "hold", "hold_reason", "frozen", "cost_usd"}
_DERIVED |= {"actions", "activity"}
_COPIED = [name for name in ItemOut.model_fields if name not in _DERIVED]


class EventOut(BaseModel):
    """One row of the pipeline's event log."""

    id: int
    at: float
    kind: str
    actor: str
    item_id: int | None
    run_id: str | None
    trigger: str | None
    from_stage: str | None
    from_hold: str | None
    to_stage: str | None
    to_hold: str | None
    reason: str | None
    data: dict[str, JsonValue]

    @classmethod
    def of(cls, row: EventRow) -> EventOut:
        return cls.model_validate(row, from_attributes=True)


class GateOut(BaseModel):
    """One gate's last result on the item."""

    name: str
    command: str
    context: str
    run_id: str | None
    at: float
    passed: bool
    exit_code: int | None
    timed_out: bool
    duration_s: float
    output: str
    truncated: bool

    @classmethod
    def of(cls, row: GateRow) -> GateOut:
        passed = row.exit_code == 0 and not row.timed_out
        return cls.model_validate({**row.__dict__, "passed": passed})


class ItemDetail(ItemOut):
    """An item with its branch, transitions, runs and last gate results."""

    branch: str
    transitions: list[EventOut]
    runs: list[RunOut]
    gates: list[GateOut]


class NewItem(ItemDraft):
    """A draft, and optionally when to start it: an ISO date-time with a zone, or seconds since the epoch."""

    start_after: AwareDatetime | None = None


# Holds need a reason; when the person gives none, say who set it.
_DEFAULT_REASON = {
    Action.BLOCK: "blocked by {actor}",
    Action.HOLD: "held for review by {actor}",
    Action.REJECT: "rejected by {actor}",
}


def costs(store: Store) -> dict[int, float]:
    return {int(row.key): row.cost_usd for row in store.ledger("item")}


@dataclass(frozen=True)
class Board:
    """What the cards need beyond the items: cost so far, live runs, throttles, and the time."""

    costs: dict[int, float]
    live: dict[int, RunRow]  # item id -> its live run
    throttled: Mapping[str, Throttle]  # run id -> how its API holds it back
    working: Mapping[int, Step]  # item id -> the orchestrator's job on it
    now: float

    def out(self, item: Item) -> ItemOut:
        return ItemOut.of(item, self.costs.get(item.id, 0.0), self.activity(item))

    def activity(self, item: Item) -> Activity:
        state = item.state
        run = self.live.get(item.id)
        if run is not None:
            agent = {"run_id": run.id, "profile": run.profile, "role": run.role}
            throttle = self.throttled.get(run.id)
            if throttle is not None:
                return Activity(
                    state="throttled", since=throttle.since, until=throttle.resets_at, note=throttle.note, **agent
                )
            return Activity(state="running", since=run.started_at, **agent)
        step = self.working.get(item.id)
        if step is not None and state.hold is None:
            return Activity(state="working", note=_WORK.get(step, step.value))
        if state.hold is not None:
            return Activity(state=state.hold.value, note=state.hold_reason)
        if state.frozen:
            return Activity(state="frozen")
        if state.stage is Stage.CODING and item.parked_until is not None and item.parked_until > self.now:
            return Activity(state="parked", until=item.parked_until, note="rate limited")
        if state.stage is Stage.BACKLOG and item.start_after is not None and item.start_after > self.now:
            return Activity(state="scheduled", until=item.start_after)
        if state.stage in (Stage.CODING, Stage.QA, Stage.MERGE):
            return Activity(state="waiting")
        return Activity(state="idle")


# Server-side work on an item between agent runs, as the card says it.
_WORK = {Step.START: "starting", Step.CODE: "checking the work", Step.REVIEW: "reviewing", Step.MERGE: "merging"}


def get_board(request: Request, store: StoreDep) -> Board:
    orch = getattr(request.app.state, "orchestrator", None)
    clock = cast(Callable[[], float], request.app.state.clock)
    return Board(
        costs=costs(store),
        live={run.item_id: run for run in store.runs(live_only=True)},
        throttled=dict(orch.agents.throttled) if orch is not None else {},
        working=dict(orch.working) if orch is not None else {},
        now=clock(),
    )


BoardDep = Annotated[Board, Depends(get_board)]


@router.get("", response_model=list[ItemOut], summary="List work items")
async def list_items(
    store: StoreDep,
    board: BoardDep,
    stage: Annotated[list[Stage] | None, Query(description="Only these stages (repeatable).")] = None,
    hold: Annotated[Hold | None, Query(description="Only items held this way.")] = None,
    kind: Annotated[Kind | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text the title contains (any case).")] = None,
    include_archived: Annotated[bool, Query(alias="all", description="Also archived items (when no stage).")] = False,
) -> list[ItemOut]:
    items = store.list_items(stage or None)
    if not stage and not include_archived:
        items = [i for i in items if i.stage is not Stage.ARCHIVED]
    if hold is not None:
        items = [i for i in items if i.state.hold is hold]
    if kind is not None:
        items = [i for i in items if i.kind is kind]
    if q:
        needle = q.casefold()
        items = [i for i in items if needle in i.title.casefold()]
    return [board.out(i) for i in items]


@router.post("", response_model=ItemOut, status_code=201, summary="Add a work item to the backlog")
async def add_item(new: NewItem, orch: OrchestratorDep, actor: ActorDep, request: Request) -> ItemOut:
    draft = ItemDraft.model_validate({k: v for k, v in new if k != "start_after"})
    item = orch.add_item(draft, actor)
    if new.start_after is not None:
        # Nothing awaits between the two, so the orchestrator cannot start the item before it is scheduled.
        item = orch.schedule_start(item.id, new.start_after.timestamp(), actor)
    return get_board(request, orch.store).out(item)


@router.get("/{item_id}", response_model=ItemDetail, summary="Show one item with its history")
async def show_item(item_id: ItemIdPath, store: StoreDep, board: BoardDep) -> ItemDetail:
    item = store.get_item(item_id)
    events = store.events_after(0, limit=100_000, item_id=item_id)
    return ItemDetail(
        **board.out(item).model_dump(),
        branch=branch_name(item.id, item.slug),
        transitions=[EventOut.of(e) for e in events if e.kind == "transition"],
        runs=[RunOut.of(r) for r in store.runs(item_id)],
        gates=[GateOut.of(g) for g in last_gates(store.gate_results(item_id))],
    )


@router.patch("/{item_id}", response_model=ItemOut, summary="Edit what a person wrote")
async def edit_item(
    item_id: ItemIdPath, patch: ItemPatch, store: StoreDep, orch: OrchestratorDep, actor: ActorDep, request: Request
) -> ItemOut:
    if patch.frozen is not None:
        raise ConfigError("frozen", "freezing is an action: POST /api/items/{id}/freeze or /unfreeze")
    item = store.edit_item(item_id, patch, actor)
    orch.notify()  # priority or dependencies may have changed what can start
    return get_board(request, store).out(item)


@router.delete("/{item_id}", response_model=ItemOut, summary="Delete an item (refused while it runs or is needed)")
async def delete_item(item_id: ItemIdPath, store: StoreDep, orch: OrchestratorDep, actor: ActorDep) -> ItemOut:
    item = store.delete_item(item_id, actor)
    orch.notify()
    return ItemOut.of(item)


@router.post("/{item_id}/{action}", response_model=ItemOut, summary="Act on an item")
async def act(
    item_id: ItemIdPath,
    action: Action,
    orch: OrchestratorDep,
    actor: ActorDep,
    request: Request,
    body: Annotated[ActionBody | None, Body()] = None,
) -> ItemOut:
    """A person's order, carried out by the orchestrator.

    start (backlog → coding now, whatever it waits for), stop (block it and stop its run),
    block / unblock, hold / release (review hold), approve / reject (human QA;
    a rejection's reason is the coder's next prompt), demote (back to the backlog), freeze /
    unfreeze, archive (done → archived), retry-merge (clear a merge failure).
    """
    reason = (body.reason.strip() or None) if body and body.reason else None
    if action is Action.STOP:
        reason = f"stopped by {actor}" + (f": {reason}" if reason else "")
    elif reason is None and action in _DEFAULT_REASON:
        reason = _DEFAULT_REASON[action].format(actor=actor)
    trigger = _TRIGGER[action]
    _check_legal(orch.store.get_item(item_id), trigger, reason)
    item = await orch.act(item_id, trigger, actor, reason)
    return get_board(request, orch.store).out(item)


def _check_legal(item: Item, trigger: Trigger, reason: str | None) -> None:
    """Refuse by the table before anything is asked of git: approving a backlog item is a 409, not a git error.

    The guards' facts are assumed met here; the orchestrator checks them against the repository.
    """
    try:
        apply(item.state, trigger, Facts(reason=reason, commits_ahead=1, files_changed=1))
    except IllegalTransition as err:
        raise IllegalTransition(item.state, trigger, err.why, item.id) from None
