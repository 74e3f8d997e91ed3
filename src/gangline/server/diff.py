"""REST for what an item changed: its feature branch against the base branch, or its merged commit; and a merged
item's overview."""

from __future__ import annotations

from fastapi import APIRouter

from gangline.core.changes import DiffOut
from gangline.core.overview import Overview
from gangline.pipeline.overview import overview
from gangline.repo.diff import item_diff
from gangline.server.errors import ERRORS
from gangline.server.items import ItemIdPath
from gangline.server.state import StateDep

router = APIRouter(prefix="/api/items", tags=["items"], responses=ERRORS)


@router.get("/{item_id}/overview", response_model=Overview, summary="What a merged item changed, and how")
async def show_overview(item_id: ItemIdPath, state: StateDep) -> Overview:
    """Its squash commit and files, how long it took, its runs, retries and rejections, who passed it, what it
    cost, and the gates it merged with; 409 for an item that was not merged."""
    return await overview(state.views, state.paths.root, state.config.base_branch, item_id)


@router.get("/{item_id}/diff", response_model=DiffOut, summary="Show what an item changed")
async def show_diff(item_id: ItemIdPath, state: StateDep) -> DiffOut:
    """Before the merge: the feature branch against its merge base with the base branch (empty while
    the branch does not exist). After it: the merged commit against its parent."""
    return await item_diff(state.paths.root, state.config.base_branch, state.store.get_item(item_id))
