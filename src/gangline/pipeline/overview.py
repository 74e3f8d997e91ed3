"""``Views``' one read that needs git: what a merged item changed (``core.overview``), from the store and its
squash commit."""

from __future__ import annotations

from pathlib import Path

from gangline.core.errors import NotMerged
from gangline.core.overview import Overview, build
from gangline.core.stages import Stage
from gangline.pipeline.views import Views
from gangline.repo.diff import item_diff


async def overview(views: Views, repo: Path, base: str, item_id: int) -> Overview:
    """The overview of item ``item_id``; NotMerged (409) when it has no squash commit."""
    detail = views.detail(item_id)
    if detail.stage not in (Stage.DONE, Stage.ARCHIVED):
        raise NotMerged(item_id, f"it is in {detail.stage.value}")
    if detail.merged_commit is None:
        raise NotMerged(item_id, "it ended without a merge")
    item = views.store.get_item(item_id)
    return build(detail, await item_diff(repo, base, item), len(views.store.messages(item_id)))
