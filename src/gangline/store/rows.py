"""Rows as records and records as rows: the conversions every table of the store shares."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, insert

from gangline.core.events import RunOutcome
from gangline.core.items import Criterion, Item, ItemDraft, Kind
from gangline.core.profiles import QaMode, Role
from gangline.core.records import EventRow, RunRow
from gangline.core.stages import Hold, ItemState, Stage
from gangline.store import schema as t

ZERO_USAGE = {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.0}


def same_state(a: ItemState, b: ItemState) -> bool:
    return (a.stage, a.hold, a.frozen) == (b.stage, b.hold, b.frozen)


def day_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def draft_values(draft: ItemDraft) -> dict[str, object]:
    return {
        "kind": draft.kind.value,
        "title": draft.title,
        "body": draft.body,
        "priority": draft.priority,
        "pinned_agent": draft.pinned_agent,
        "qa_mode": draft.qa_mode.value if draft.qa_mode else None,
        "frozen": draft.frozen,
    }


def state_values(state: ItemState) -> dict[str, object]:
    return {
        "stage": state.stage.value,
        "hold": state.hold.value if state.hold else None,
        "hold_reason": state.hold_reason,
        "frozen": state.frozen,
    }


def row_state(row: Any) -> ItemState:
    return ItemState(Stage(row.stage), Hold(row.hold) if row.hold else None, row.hold_reason, bool(row.frozen))


def item_from(row: Row[Any], criteria: list[Criterion], deps: list[int]) -> Item:
    return Item(
        id=row.id,
        slug=row.slug,
        kind=Kind(row.kind),
        title=row.title,
        body=row.body,
        criteria=tuple(criteria),
        depends_on=tuple(deps),
        priority=row.priority,
        pinned_agent=row.pinned_agent,
        qa_mode=QaMode(row.qa_mode) if row.qa_mode else None,
        state=row_state(row),
        retries=row.retries,
        merge_attempts=row.merge_attempts,
        session_id=row.session_id,
        parked_until=row.parked_until,
        start_after=row.start_after,
        archive_at=row.archive_at,
        merged_commit=row.merged_commit,
        merged_tip=row.merged_tip,
        created_at=row.created_at,
        updated_at=row.updated_at,
        feedback=row.feedback,
        report=row.report,
    )


def run_row(row: Row[Any]) -> RunRow:
    m = dict(row._mapping)
    m.pop("day")
    m["role"] = Role(m["role"])
    m["outcome"] = RunOutcome(m["outcome"]) if m["outcome"] else None
    return RunRow(**m)


def event_row(row: Row[Any]) -> EventRow:
    m = dict(row._mapping)
    m["data"] = m["data"] or {}
    return EventRow(**m)


def insert_event(
    conn: Connection,
    now: float,
    kind: str,
    actor: str,
    *,
    item_id: int | None = None,
    run_id: str | None = None,
    trigger: str | None = None,
    frm: ItemState | None = None,
    to: ItemState | None = None,
    reason: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> int:
    values = {
        "at": now,
        "item_id": item_id,
        "run_id": run_id,
        "kind": kind,
        "actor": actor,
        "trigger": trigger,
        "from_stage": frm.stage.value if frm else None,
        "from_hold": frm.hold.value if frm and frm.hold else None,
        "to_stage": to.stage.value if to else None,
        "to_hold": to.hold.value if to and to.hold else None,
        "reason": reason,
        "data": dict(data) if data else None,
    }
    key = conn.execute(insert(t.events).values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])
