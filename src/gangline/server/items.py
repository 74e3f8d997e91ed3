"""REST for work items: list, add, show, edit and delete them, and a person's actions on them.

Each route translates HTTP to one call of ``pipeline.views`` or ``pipeline.orders`` and back.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query

from gangline.core.items import ItemPatch, Kind
from gangline.core.messages import MessageIn, MessageOut
from gangline.core.orders import ItemAction
from gangline.core.stages import Hold, Stage
from gangline.core.wire import ActionBody, ItemDetail, ItemOut, ItemQuery, NewItem, TimerIn
from gangline.server.errors import ERRORS
from gangline.server.state import ActorDep, OrdersDep, ViewsDep

router = APIRouter(prefix="/api/items", tags=["items"], responses=ERRORS)

ItemIdPath = Annotated[int, Path(ge=1, le=2**53, description="The item's id.")]


@router.get("", response_model=list[ItemOut], summary="List work items")
async def list_items(
    views: ViewsDep,
    stage: Annotated[list[Stage] | None, Query(description="Only these stages (repeatable).")] = None,
    hold: Annotated[Hold | None, Query(description="Only items held this way.")] = None,
    kind: Annotated[Kind | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text the title contains (any case).")] = None,
    include_archived: Annotated[bool, Query(alias="all", description="Also archived items (when no stage).")] = False,
) -> list[ItemOut]:
    query = ItemQuery(stages=stage or [], hold=hold, kind=kind, q=q, include_archived=include_archived)
    return views.items(query)


@router.post("", response_model=ItemOut, status_code=201, summary="Add a work item to the backlog")
async def add_item(new: NewItem, orders: OrdersDep, actor: ActorDep) -> ItemOut:
    return orders.add_item(new, actor)


@router.get("/{item_id}", response_model=ItemDetail, summary="Show one item with its history")
async def show_item(item_id: ItemIdPath, views: ViewsDep) -> ItemDetail:
    return views.detail(item_id)


@router.patch("/{item_id}", response_model=ItemOut, summary="Edit what a person wrote")
async def edit_item(item_id: ItemIdPath, patch: ItemPatch, orders: OrdersDep, actor: ActorDep) -> ItemOut:
    return orders.edit_item(item_id, patch, actor)


@router.delete("/{item_id}", response_model=ItemOut, summary="Delete an item (refused while it runs or is needed)")
async def delete_item(item_id: ItemIdPath, orders: OrdersDep, actor: ActorDep) -> ItemOut:
    return orders.delete_item(item_id, actor)


@router.put("/{item_id}/timer", response_model=ItemOut, summary="Start a backlog item at a time")
async def set_timer(item_id: ItemIdPath, timer: TimerIn, orders: OrdersDep, actor: ActorDep) -> ItemOut:
    """``when``: ``HH:MM`` (the next such time), ``+30m``, ``+2h``, ``+1d``, or a date-time; in the project's
    time zone unless it has an offset. Refused outside the backlog."""
    return orders.set_timer(item_id, timer.when, actor)


@router.delete("/{item_id}/timer", response_model=ItemOut, summary="Cancel a backlog item's timer")
async def cancel_timer(item_id: ItemIdPath, orders: OrdersDep, actor: ActorDep) -> ItemOut:
    return orders.set_timer(item_id, None, actor)


@router.post("/{item_id}/messages", response_model=MessageOut, status_code=201, summary="Say something to the coder")
async def say(item_id: ItemIdPath, message: MessageIn, orders: OrdersDep, actor: ActorDep) -> MessageOut:
    """``text`` and/or ``comments`` on lines of the diff (``[{path, line, text}]``), for the item's coder: a live
    run is stopped and its session resumed with the message; an item in QA goes back to coding for it, a blocked
    one is unblocked, one in the backlog has it with its first prompt. Refused (409) once the item is merged or
    being merged."""
    return await orders.say(item_id, message, actor)


@router.get("/{item_id}/messages", response_model=list[MessageOut], summary="List what people said to the coder")
async def list_messages(item_id: ItemIdPath, views: ViewsDep) -> list[MessageOut]:
    return views.messages(item_id)


@router.post("/{item_id}/{action}", response_model=ItemOut, summary="Act on an item")
async def act(
    item_id: ItemIdPath,
    action: ItemAction,
    orders: OrdersDep,
    actor: ActorDep,
    body: Annotated[ActionBody | None, Body()] = None,
) -> ItemOut:
    """A person's order, carried out by the orchestrator.

    start (backlog → coding now, whatever it waits for), stop (block it and stop its run),
    block / unblock, hold / release (review hold), approve / reject (human QA;
    a rejection's reason is the coder's next prompt), demote (back to the backlog), freeze /
    unfreeze, archive (done → archived), retry-merge (clear a merge failure), close (a spike whose report was
    read: qa → done, nothing merged), abandon (archived unfinished), supersede (archived; ``by``: the item
    that does it instead).
    """
    return await orders.act(item_id, action, body.reason if body else None, actor, body.by if body else None)
