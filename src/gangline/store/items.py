"""The items table: what a person wrote (draft, criteria, dependencies), read and written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import Connection, delete, exists, insert, or_, select, update

from gangline.core.errors import ConfigError, StateConflict
from gangline.core.items import Item, ItemDraft, ItemPatch, slugify
from gangline.core.profiles import QaMode
from gangline.core.scheduler import FINISHED, Candidate
from gangline.core.stages import ItemState, Stage
from gangline.store import schema as t
from gangline.store.base import StoreBase
from gangline.store.rows import draft_values, insert_event, row_state, state_values


class Items(StoreBase):
    # --- items -----------------------------------------------------------------------------

    def create_item(self, draft: ItemDraft, actor: str) -> Item:
        now = self.clock()
        state = ItemState(Stage.BACKLOG, frozen=draft.frozen)
        with self._tx() as conn:
            self._check_dependencies(conn, None, draft.depends_on)
            values = draft_values(draft) | state_values(state)
            values |= {"slug": slugify(draft.title), "retries": 0, "merge_attempts": 0}
            item_id = conn.execute(
                insert(t.items).values(**values, created_at=now, updated_at=now)
            ).inserted_primary_key
            assert item_id is not None
            new_id = int(item_id[0])
            self._write_children(conn, new_id, draft)
            insert_event(conn, now, "created", actor, item_id=new_id, to=state, reason=draft.title)
            return self._item(conn, new_id)

    def edit_item(self, item_id: int, patch: ItemPatch, actor: str) -> Item:
        """Change what a person wrote. The stage is never touched here: see ``transition``."""
        now = self.clock()
        with self._tx() as conn:
            item = self._item(conn, item_id)
            if item.stage is Stage.ARCHIVED:
                raise StateConflict(item_id, "in a stage before archived", "archived")
            draft = patch.apply_to(item.draft())
            self._check_dependencies(conn, item_id, draft.depends_on)
            values = draft_values(draft)
            values.pop("frozen")  # freezing is a transition, with its own event
            conn.execute(update(t.items).where(t.items.c.id == item_id).values(**values, updated_at=now))
            conn.execute(delete(t.criteria).where(t.criteria.c.item_id == item_id))
            conn.execute(delete(t.dependencies).where(t.dependencies.c.item_id == item_id))
            conn.execute(delete(t.messages).where(t.messages.c.item_id == item_id))
            self._write_children(conn, item_id, draft)
            changed = sorted(k for k, v in patch.model_dump(exclude_none=True).items() if v not in ((), None))
            insert_event(conn, now, "edited", actor, item_id=item_id, data={"fields": changed})
            return self._item(conn, item_id)

    def check_criteria(self, item_id: int, marks: Mapping[int, bool], actor: str) -> Item:
        """Set the check state of criteria by 1-based position."""
        now = self.clock()
        with self._tx() as conn:
            item = self._item(conn, item_id)
            for position, checked in marks.items():
                if not 1 <= position <= len(item.criteria):
                    raise ConfigError(f"item {item_id} criterion", f"expected 1..{len(item.criteria)}, got {position}")
                conn.execute(
                    update(t.criteria)
                    .where(t.criteria.c.item_id == item_id, t.criteria.c.position == position)
                    .values(checked=checked)
                )
            data = {"marks": {str(k): v for k, v in sorted(marks.items())}}
            insert_event(conn, now, "criteria_checked", actor, item_id=item_id, data=data)
            return self._item(conn, item_id)

    def delete_item(self, item_id: int, actor: str) -> Item:
        now = self.clock()
        with self._tx() as conn:
            item = self._item(conn, item_id)
            live = self._live_run(conn, item_id)
            if live is not None:
                raise StateConflict(item_id, "idle", f"running {live}; stop it first")
            dependents = conn.execute(
                select(t.dependencies.c.item_id).where(t.dependencies.c.depends_on == item_id)
            ).scalars()
            needed_by = sorted(dependents)
            if needed_by:
                raise StateConflict(item_id, "not needed", f"needed by item(s) {', '.join(map(str, needed_by))}")
            conn.execute(delete(t.criteria).where(t.criteria.c.item_id == item_id))
            conn.execute(delete(t.dependencies).where(t.dependencies.c.item_id == item_id))
            conn.execute(delete(t.items).where(t.items.c.id == item_id))
            insert_event(conn, now, "deleted", actor, item_id=item_id, reason=item.title, frm=item.state)
            return item

    def list_items(self, stages: Iterable[Stage] | None = None) -> list[Item]:
        where = () if stages is None else (t.items.c.stage.in_([s.value for s in stages]),)
        with self.engine.connect() as conn:
            rows = list(conn.execute(select(t.items).where(*where).order_by(t.items.c.id)))
            return self._items(conn, rows, where)

    def candidates(self, stages: Iterable[Stage]) -> list[Candidate]:
        """What the scheduler needs of the items in ``stages`` it might move: no text columns.

        Held and frozen items, and backlog items still waiting on a dependency, can move only
        when something else changes first; leaving them out here keeps a tick as cheap with
        thousands of them waiting as with none.
        """
        c, d = t.items.c, t.dependencies.c
        dep = t.items.alias("dep")
        unfinished = [s.value for s in Stage if s not in FINISHED]
        waiting = exists().where(d.item_id == c.id, d.depends_on == dep.c.id, dep.c.stage.in_(unfinished))
        query = (
            select(
                c.id,
                c.stage,
                c.hold,
                c.hold_reason,
                c.frozen,
                c.priority,
                c.qa_mode,
                c.start_after,
                c.parked_until,
                c.archive_at,
            )
            .where(
                c.stage.in_([s.value for s in stages]),
                c.hold.is_(None),
                c.frozen.is_(False),
                or_(c.stage != Stage.BACKLOG.value, ~waiting),
            )
            .order_by(c.id)
        )  # oldest first, on every database (none promises an order without it)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
        return [
            Candidate(
                r.id,
                row_state(r),
                r.priority,
                (),
                QaMode(r.qa_mode) if r.qa_mode else None,
                r.start_after,
                r.parked_until,
                r.archive_at,
            )
            for r in rows
        ]

    def _check_dependencies(self, conn: Connection, item_id: int | None, wanted: Sequence[int]) -> None:
        if item_id is not None and item_id in wanted:
            raise ConfigError("depends_on", f"item {item_id} cannot depend on itself")
        existing = set(conn.execute(select(t.items.c.id).where(t.items.c.id.in_(wanted))).scalars())
        for dep in wanted:
            if dep not in existing:
                raise ConfigError("depends_on", f"item {dep} does not exist")
        if item_id is None:
            return  # a new item: nothing can depend on it yet, so no cycle
        edges: dict[int, list[int]] = {}
        for src, dst in conn.execute(select(t.dependencies.c.item_id, t.dependencies.c.depends_on)):
            edges.setdefault(src, []).append(dst)
        edges[item_id] = list(wanted)
        seen: set[int] = set()
        stack = list(wanted)
        while stack:
            node = stack.pop()
            if node == item_id:
                raise ConfigError("depends_on", f"item {item_id} would depend on itself through its dependencies")
            if node not in seen:
                seen.add(node)
                stack.extend(edges.get(node, ()))

    def _write_children(self, conn: Connection, item_id: int, draft: ItemDraft) -> None:
        if draft.criteria:
            conn.execute(
                insert(t.criteria),
                [
                    {"item_id": item_id, "position": i, "text": c.text, "checked": c.checked}
                    for i, c in enumerate(draft.criteria, 1)
                ],
            )
        if draft.depends_on:
            conn.execute(insert(t.dependencies), [{"item_id": item_id, "depends_on": d} for d in draft.depends_on])
