"""REST for the server's recent log (``server.logring``): ``GET /api/server-log``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from gangline.core.logs import LogEntry, LogQuery
from gangline.server.errors import ERRORS
from gangline.server.state import StateDep

router = APIRouter(prefix="/api", tags=["server"], responses=ERRORS)


@router.get("/server-log", response_model=list[LogEntry], summary="The server's recent log")
async def server_log(query: Annotated[LogQuery, Depends()], state: StateDep) -> list[LogEntry]:
    """The server's last lines (a ring of 2,000), at ``level`` or above, after entry ``after``."""
    return state.log_ring.entries(query)
