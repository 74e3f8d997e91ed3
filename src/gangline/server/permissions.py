"""REST for agents' permission requests: list the pending ones, answer one (allow, deny, always allow)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from gangline.core.wire import PermissionAnswer, PermissionAnswered, PermissionRequestOut
from gangline.server.errors import ERRORS
from gangline.server.state import ActorDep, OrdersDep

router = APIRouter(prefix="/api/permissions", tags=["permissions"], responses=ERRORS)

RequestIdPath = Annotated[str, Path(min_length=1, max_length=64, description="The request's id.")]


@router.get("", response_model=list[PermissionRequestOut], summary="List pending permission requests")
async def list_permissions(orders: OrdersDep) -> list[PermissionRequestOut]:
    return orders.pending_permissions()


@router.post("/{request_id}", response_model=PermissionAnswered, summary="Answer a pending permission request")
async def answer_permission(
    request_id: RequestIdPath, answer: PermissionAnswer, orders: OrdersDep, actor: ActorDep
) -> PermissionAnswered:
    """The waiting tool call goes on with the answer. 404 when the request is unknown, already
    answered, timed out, or its run ended."""
    return orders.answer_permission(request_id, answer, actor)
