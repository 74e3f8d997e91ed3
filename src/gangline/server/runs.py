"""REST for agent runs (list, detail, paged log, stop), the pipeline's status and the cost ledger."""

from __future__ import annotations

from typing import Annotated

import msgspec
from fastapi import APIRouter, Body, Depends, Path, Query, Response

from gangline.core.records import LedgerKey
from gangline.core.top import TopOut, TopQuery
from gangline.core.wire import ActionBody, CostsOut, LogPage, RunOut, StatusOut
from gangline.pipeline.views import ProfileOut, profiles_out
from gangline.server.errors import ERRORS
from gangline.server.state import ActorDep, OrdersDep, StateDep, ViewsDep

router = APIRouter(prefix="/api", responses=ERRORS)

RunIdPath = Annotated[str, Path(min_length=1, max_length=128, description="The run's id, like 3-coder-1.")]
_encoder = msgspec.json.Encoder()


@router.get("/runs", response_model=list[RunOut], tags=["runs"], summary="List agent runs")
async def list_runs(
    views: ViewsDep,
    item: Annotated[int | None, Query(ge=1, le=2**53, description="Only this item's runs.")] = None,
    live: Annotated[bool | None, Query(description="true: only live runs; false: only finished ones.")] = None,
) -> list[RunOut]:
    return views.runs(item, live)


@router.get("/top", response_model=TopOut, tags=["runs"], summary="Each live run's processes, CPU and memory")
async def top(query: Annotated[TopQuery, Depends()], views: ViewsDep) -> TopOut:
    """Every live run with its process tree (here; a build node's run is listed without one), each process's CPU
    as a share of one core since the last reading, and its resident memory."""
    return await views.top.sample(query.over_s)


@router.get("/runs/{run_id}", response_model=RunOut, tags=["runs"], summary="Show one run")
async def show_run(run_id: RunIdPath, views: ViewsDep) -> RunOut:
    return views.run(run_id)


@router.get("/runs/{run_id}/log", response_model=LogPage, tags=["runs"], summary="Page through a run's events")
async def run_log(
    run_id: RunIdPath,
    views: ViewsDep,
    after: Annotated[int, Query(ge=0, le=2**53, description="Only records with a greater id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> Response:
    page = views.log_page(run_id, after, limit)
    head = _encoder.encode(
        {"run_id": page.run.id, "live": page.run.live, "more": page.more, "next_after": page.next_after}
    )
    # The records go out as stored (msgspec), not re-validated one field at a time.
    body = head[:-1] + b',"records":[' + b",".join(_encoder.encode(r) for r in page.records) + b"]}"
    return Response(body, media_type="application/json")


@router.post("/runs/{run_id}/stop", response_model=RunOut, status_code=202, tags=["runs"], summary="Stop a run")
async def stop_run(
    run_id: RunIdPath, orders: OrdersDep, actor: ActorDep, body: Annotated[ActionBody | None, Body()] = None
) -> RunOut:
    """Stop a live run: its item is blocked (so the pipeline does not start it again at once) and the
    agent's process group is stopped. Unblock the item to let the pipeline take it up again."""
    return await orders.stop_run(run_id, body.reason if body else None, actor)


@router.get("/status", response_model=StatusOut, tags=["pipeline"], summary="The pipeline at a glance")
async def status(views: ViewsDep) -> StatusOut:
    return views.status()


@router.get("/profiles", response_model=list[ProfileOut], tags=["pipeline"], summary="The agent profiles in force")
async def profiles(state: StateDep) -> list[ProfileOut]:
    return profiles_out(state.config)


@router.get("/costs", response_model=CostsOut, tags=["pipeline"], summary="Tokens and cost, summed")
async def costs(
    views: ViewsDep,
    by: Annotated[LedgerKey, Query(description="Sum per run, item, profile or UTC day.")] = "item",
    item: Annotated[int | None, Query(ge=1, le=2**53, description="Only this item's runs.")] = None,
) -> CostsOut:
    return views.costs(by, item)
