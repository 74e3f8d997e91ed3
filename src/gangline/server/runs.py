"""REST for agent runs (list, detail, paged log, stop), the pipeline's status and the cost ledger."""

from __future__ import annotations

from collections import Counter
from itertools import islice
from pathlib import Path as FilePath
from typing import Annotated, Literal, cast

import msgspec
from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import BaseModel, Field, JsonValue

from gangline.agents.runlog import replay
from gangline.core.errors import RunnerError
from gangline.core.events import RunOutcome
from gangline.core.profiles import Role
from gangline.core.records import LedgerKey, RunRow
from gangline.core.stages import Hold, Stage, Trigger
from gangline.server.app import ERRORS, ActorDep, OrchestratorDep, Serving, StoreDep

router = APIRouter(prefix="/api", responses=ERRORS)

RunIdPath = Annotated[str, Path(min_length=1, max_length=128, description="The run's id, like 3-coder-1.")]
_encoder = msgspec.json.Encoder()


class RunOut(BaseModel):
    """One agent attempt on one item, and what it used."""

    id: str
    item_id: int
    role: Role
    profile: str
    attempt: int
    workspace: str
    live: bool
    started_at: float
    ended_at: float | None
    outcome: RunOutcome | None
    reason: str | None
    session_id: str | None
    resumed_session: str | None
    pid: int | None
    pgid: int | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float

    @classmethod
    def of(cls, run: RunRow) -> RunOut:
        return cls.model_validate(run, from_attributes=True)


class LogPage(BaseModel):
    """A page of a run's event log; ask again with ``after=next_after`` while ``more`` (or while it is live)."""

    run_id: str
    live: bool
    more: bool
    next_after: int
    records: list[dict[str, JsonValue]] = Field(description="Records as the run log stores them: id, ts, event, raw.")


class ActionBody(BaseModel):
    reason: str | None = Field(default=None, max_length=20_000, description="Why; a rejection's is the coder's prompt.")


@router.get("/runs", response_model=list[RunOut], tags=["runs"], summary="List agent runs")
async def list_runs(
    store: StoreDep,
    item: Annotated[int | None, Query(ge=1, le=2**53, description="Only this item's runs.")] = None,
    live: Annotated[bool | None, Query(description="true: only live runs; false: only finished ones.")] = None,
) -> list[RunOut]:
    runs = store.runs(item, live_only=live is True)
    if live is False:
        runs = [r for r in runs if not r.live]
    return [RunOut.of(r) for r in runs]


@router.get("/runs/{run_id}", response_model=RunOut, tags=["runs"], summary="Show one run")
async def show_run(run_id: RunIdPath, store: StoreDep) -> RunOut:
    return RunOut.of(store.get_run(run_id))


@router.get("/runs/{run_id}/log", response_model=LogPage, tags=["runs"], summary="Page through a run's events")
async def run_log(
    run_id: RunIdPath,
    store: StoreDep,
    after: Annotated[int, Query(ge=0, le=2**53, description="Only records with a greater id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> Response:
    run = store.get_run(run_id)
    path = FilePath(run.log_path)
    # The run is in the database a moment before its log exists.
    records = list(islice(replay(path, after), limit + 1)) if path.exists() else []
    page = records[:limit]
    head = _encoder.encode(
        {"run_id": run.id, "live": run.live, "more": len(records) > limit, "next_after": page[-1].id if page else after}
    )
    # The records go out as stored (msgspec), not re-validated one field at a time.
    body = head[:-1] + b',"records":[' + b",".join(_encoder.encode(r) for r in page) + b"]}"
    return Response(body, media_type="application/json")


@router.post("/runs/{run_id}/stop", response_model=RunOut, status_code=202, tags=["runs"], summary="Stop a run")
async def stop_run(
    run_id: RunIdPath,
    orch: OrchestratorDep,
    actor: ActorDep,
    body: Annotated[ActionBody | None, Body()] = None,
) -> RunOut:
    """Stop a live run: its item is blocked (so the pipeline does not start it again at once) and the
    agent's process group is stopped. Unblock the item to let the pipeline take it up again."""
    run = orch.store.get_run(run_id)
    if not run.live:
        raise RunnerError(run_id, f"is not live: it ended {run.outcome.value if run.outcome else ''}".strip())
    reason = f"run {run_id} stopped by {actor}" + (f": {body.reason}" if body and body.reason else "")
    item = orch.store.get_item(run.item_id)
    if item.state.hold is None and not item.state.frozen:
        await orch.act(run.item_id, Trigger.BLOCK, actor, reason)  # stops the item's runs too
    elif run_id in orch.runner.running():
        orch.runner.stop_nowait(run_id, reason)
    return RunOut.of(orch.store.get_run(run_id))


# --- status and costs --------------------------------------------------------------------------


TimerKind = Literal["start_after", "parked_until", "archive_at"]
# Each timer counts only in the stage where the scheduler reads it.
_TIMERS: tuple[tuple[TimerKind, Stage], ...] = (
    ("start_after", Stage.BACKLOG),
    ("parked_until", Stage.CODING),
    ("archive_at", Stage.DONE),
)


class Timer(BaseModel):
    """Something the orchestrator will do by itself at ``at`` (seconds since the epoch)."""

    item_id: int
    kind: TimerKind
    at: float


class OrchestratorOut(BaseModel):
    running: bool
    jobs: int  # items the orchestrator is working on
    runs: int  # agent processes it supervises


class StatusOut(BaseModel):
    """The pipeline at a glance."""

    stages: dict[Stage, int]
    holds: dict[Hold, int]
    frozen: int
    live_runs: list[RunOut]
    timers: list[Timer] = Field(description="The next 20, soonest first.")
    orchestrator: OrchestratorOut
    last_event_id: int


@router.get("/status", response_model=StatusOut, tags=["pipeline"], summary="The pipeline at a glance")
async def status(request: Request, store: StoreDep, orch: OrchestratorDep) -> StatusOut:
    serving = cast(Serving, request.app.state.serving)
    items = store.list_items()
    stages = Counter(i.stage for i in items)
    holds = Counter(i.state.hold for i in items if i.state.hold)
    timers = [
        Timer(item_id=i.id, kind=kind, at=getattr(i, kind))
        for i in items
        for kind, stage in _TIMERS
        if i.stage is stage and getattr(i, kind) is not None
    ]
    stats = orch.statistics()
    return StatusOut(
        stages={s: stages.get(s, 0) for s in Stage},
        holds={h: holds.get(h, 0) for h in Hold},
        frozen=sum(i.state.frozen for i in items),
        live_runs=[RunOut.of(r) for r in store.runs(live_only=True)],
        timers=sorted(timers, key=lambda t: t.at)[:20],
        orchestrator=OrchestratorOut(running=serving.running, jobs=stats["jobs"], runs=stats["runs"]),
        last_event_id=store.last_event_id(),
    )


class CostRow(BaseModel):
    key: str  # the run id, item id, profile name or UTC day (YYYY-MM-DD)
    runs: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


class CostsOut(BaseModel):
    by: LedgerKey
    rows: list[CostRow]
    total_usd: float


@router.get("/costs", response_model=CostsOut, tags=["pipeline"], summary="Tokens and cost, summed")
async def costs(
    store: StoreDep,
    by: Annotated[LedgerKey, Query(description="Sum per run, item, profile or UTC day.")] = "item",
    item: Annotated[int | None, Query(ge=1, le=2**53, description="Only this item's runs.")] = None,
) -> CostsOut:
    rows = [CostRow.model_validate(r, from_attributes=True) for r in store.ledger(by, item)]
    return CostsOut(by=by, rows=rows, total_usd=sum(r.cost_usd for r in rows))
