"""The one source of truth: items, their transitions, runs, gate results and the ledger, in SQL.

Every change of an item's state is compare-and-set against the state the caller expects and
appends an event row in the same transaction. The queries are portable SQLAlchemy Core; only
``open_sqlite`` knows it is talking to SQLite.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import IntegrityError

from gangline.core.errors import ConfigError, DatabaseBusyError, NotFoundError, StateConflict
from gangline.core.events import RunOutcome, Usage
from gangline.core.items import Criterion, Item, ItemDraft, ItemPatch, Kind, slugify
from gangline.core.profiles import QaMode, Role
from gangline.core.scheduler import FINISHED, Candidate
from gangline.core.stages import Facts, Hold, IllegalTransition, ItemState, Stage, Trigger, apply
from gangline.store import schema as t

log = logging.getLogger(__name__)

Clock = Callable[[], float]
REASON_CHARS = 2000  # a hold's reason is shown on cards and in prompts: the head is what matters
LedgerKey = Literal["run", "item", "profile", "day"]
# How long a write waits for another process's write lock (a `gangline add` beside the server)
# before it gives up with a clear error. Read when a database is opened.
BUSY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class NewRun:
    id: str
    item_id: int
    role: Role
    profile: str
    attempt: int
    workspace: str
    log_path: str
    resumed_session: str | None = None


@dataclass(frozen=True)
class RunEnd:
    outcome: RunOutcome
    reason: str
    session_id: str | None = None
    usage: Usage | None = None
    cost_usd: float | None = None


@dataclass(frozen=True)
class RunRow:
    id: str
    item_id: int
    role: Role
    profile: str
    attempt: int
    workspace: str
    log_path: str
    resumed_session: str | None
    session_id: str | None
    pid: int | None
    pgid: int | None
    start_ticks: int | None
    started_at: float
    ended_at: float | None
    outcome: RunOutcome | None
    reason: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float

    @property
    def live(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True)
class EventRow:
    id: int
    at: float
    item_id: int | None
    run_id: str | None
    kind: str
    actor: str
    trigger: str | None
    from_stage: str | None
    from_hold: str | None
    to_stage: str | None
    to_hold: str | None
    reason: str | None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateRow:
    id: int
    item_id: int
    run_id: str | None
    context: str
    at: float
    name: str
    command: str
    exit_code: int | None
    timed_out: bool
    duration_s: float
    output: str
    truncated: bool


@dataclass(frozen=True)
class LedgerRow:
    key: str
    runs: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


@dataclass(frozen=True)
class PermissionRuleRow:
    id: int
    tool: str
    pattern: str | None
    decision: str  # allow | deny
    created_at: float
    actor: str


class Store:
    """Reads and compare-and-set writes of gangline's state, each in one short transaction."""

    def __init__(self, engine: Engine, clock: Clock = time.time) -> None:
        self.engine = engine
        self.clock = clock
        # Called after a transaction that appended to ``events`` commits (the orchestrator wakes
        # its viewers with it). Writes by other processes are not seen: viewers also re-read.
        self.on_event: Callable[[], None] = lambda: None

    def close(self) -> None:
        self.engine.dispose()

    # --- items -----------------------------------------------------------------------------

    def create_item(self, draft: ItemDraft, actor: str) -> Item:
        now = self.clock()
        state = ItemState(Stage.BACKLOG, frozen=draft.frozen)
        with self._tx() as conn:
            self._check_dependencies(conn, None, draft.depends_on)
            values = _draft_values(draft) | _state_values(state)
            values |= {"slug": slugify(draft.title), "retries": 0, "merge_attempts": 0}
            item_id = conn.execute(
                insert(t.items).values(**values, created_at=now, updated_at=now)
            ).inserted_primary_key
            assert item_id is not None
            new_id = int(item_id[0])
            self._write_children(conn, new_id, draft)
            _event(conn, now, "created", actor, item_id=new_id, to=state, reason=draft.title)
            return self._item(conn, new_id)

    def edit_item(self, item_id: int, patch: ItemPatch, actor: str) -> Item:
        """Change what a person wrote. The stage is never touched here: see ``transition``."""
        now = self.clock()
        with self._tx() as conn:
            item = self._item(conn, item_id)
            if item.stage is Stage.ARCHIVED:
                raise StateConflict(item_id, "not archived", "archived")
            draft = patch.apply_to(item.draft())
            self._check_dependencies(conn, item_id, draft.depends_on)
            values = _draft_values(draft)
            values.pop("frozen")  # freezing is a transition, with its own event
            conn.execute(update(t.items).where(t.items.c.id == item_id).values(**values, updated_at=now))
            conn.execute(delete(t.criteria).where(t.criteria.c.item_id == item_id))
            conn.execute(delete(t.dependencies).where(t.dependencies.c.item_id == item_id))
            self._write_children(conn, item_id, draft)
            changed = sorted(k for k, v in patch.model_dump(exclude_none=True).items() if v not in ((), None))
            _event(conn, now, "edited", actor, item_id=item_id, data={"fields": changed})
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
            _event(conn, now, "criteria_checked", actor, item_id=item_id, data=data)
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
            _event(conn, now, "deleted", actor, item_id=item_id, reason=item.title, frm=item.state)
            return item

    def get_item(self, item_id: int) -> Item:
        with self.engine.connect() as conn:
            return self._item(conn, item_id)

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
        query = select(
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
        ).where(
            c.stage.in_([s.value for s in stages]),
            c.hold.is_(None),
            c.frozen.is_(False),
            or_(c.stage != Stage.BACKLOG.value, ~waiting),
        )
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
        return [
            Candidate(
                r.id,
                _row_state(r),
                r.priority,
                (),
                QaMode(r.qa_mode) if r.qa_mode else None,
                r.start_after,
                r.parked_until,
                r.archive_at,
            )
            for r in rows
        ]

    # --- pipeline state: only the orchestrator calls these ----------------------------------

    def transition(
        self,
        item_id: int,
        trigger: Trigger,
        actor: str,
        *,
        expected: ItemState | None = None,
        facts: Facts = Facts(),  # noqa: B008 (frozen dataclass)
        updates: Mapping[str, object] | None = None,
        run_id: str | None = None,
    ) -> Item:
        """Apply ``trigger`` compare-and-set, with its event row, in one transaction.

        ``expected`` None means "whatever the item is now" (a person acting on what they see).
        Raises IllegalTransition (naming the current state) or StateConflict.
        """
        now = self.clock()
        with self._tx() as conn:
            current = self._state(conn, item_id)
            if expected is not None and not _same_state(current, expected):
                raise StateConflict(item_id, expected.describe(), current.describe())
            try:
                new = apply(current, trigger, facts)
            except IllegalTransition as err:
                raise IllegalTransition(current, trigger, err.why, item_id) from None
            self._cas(conn, item_id, current, _state_values(new) | dict(updates or {}), now)
            reason = facts.reason
            _event(
                conn,
                now,
                "transition",
                actor,
                item_id=item_id,
                run_id=run_id,
                trigger=trigger.value,
                frm=current,
                to=new,
                reason=reason,
            )
            return self._item(conn, item_id)

    def hold(
        self,
        item_id: int,
        trigger: Trigger,
        actor: str,
        reason: str,
        *,
        expected: ItemState | None = None,
        updates: Mapping[str, object] | None = None,
        run_id: str | None = None,
    ) -> Item:
        """Set a hold (``block``, ``hold_for_review``, ``merge_failed``) with its reason, capped at 2,000 characters."""
        facts = Facts(reason=reason[:REASON_CHARS])
        return self.transition(item_id, trigger, actor, expected=expected, facts=facts, updates=updates, run_id=run_id)

    def bookkeep(
        self,
        item_id: int,
        kind: str,
        actor: str,
        *,
        expected: ItemState,
        updates: Mapping[str, object],
        reason: str | None = None,
        data: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> Item:
        """Change pipeline bookkeeping (retries, parking, session) without moving the stage."""
        now = self.clock()
        with self._tx() as conn:
            self._cas(conn, item_id, expected, dict(updates), now)
            _event(conn, now, kind, actor, item_id=item_id, run_id=run_id, reason=reason, data=data)
            return self._item(conn, item_id)

    def schedule_start(self, item_id: int, at: float | None, actor: str) -> Item:
        """Start a backlog item no earlier than ``at`` (epoch seconds; None: as soon as it can)."""
        item = self.get_item(item_id)
        if item.stage is not Stage.BACKLOG:
            raise StateConflict(item_id, "backlog", item.state.describe())
        return self.bookkeep(
            item_id, "scheduled", actor, expected=item.state, updates={"start_after": at}, data={"start_after": at}
        )

    def record_event(
        self,
        kind: str,
        actor: str,
        *,
        item_id: int | None = None,
        run_id: str | None = None,
        reason: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        with self._tx() as conn:
            return _event(conn, self.clock(), kind, actor, item_id=item_id, run_id=run_id, reason=reason, data=data)

    def last_event_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(t.events.c.id))).scalar() or 0)

    def events_after(self, after_id: int = 0, limit: int = 1000, item_id: int | None = None) -> list[EventRow]:
        query = select(t.events).where(t.events.c.id > after_id).order_by(t.events.c.id).limit(limit)
        if item_id is not None:
            query = query.where(t.events.c.item_id == item_id)
        with self.engine.connect() as conn:
            return [_event_row(row) for row in conn.execute(query)]

    # --- runs ------------------------------------------------------------------------------

    def start_run(self, new: NewRun, expected: ItemState, actor: str) -> RunRow:
        """Record a run as live before its process exists, compare-and-set on the item's state.

        The database's partial unique index refuses a second live run of the same item.
        """
        now = self.clock()
        with self._tx() as conn:
            self._cas(conn, new.item_id, expected, {}, now)
            values = {**new.__dict__, "role": new.role.value}
            try:
                conn.execute(insert(t.runs).values(**values, started_at=now, day=_day(now), **_ZERO_USAGE))
            except IntegrityError:
                running = f"running {self._live_run(conn, new.item_id)}"
                raise StateConflict(new.item_id, "without a live run", running) from None
            _event(
                conn,
                now,
                "run_started",
                actor,
                item_id=new.item_id,
                run_id=new.id,
                data={"role": new.role.value, "profile": new.profile, "attempt": new.attempt},
            )
            return self._run(conn, new.id)

    def record_process(self, run_id: str, pid: int, pgid: int, start_ticks: int) -> None:
        with self._tx() as conn:
            conn.execute(
                update(t.runs).where(t.runs.c.id == run_id).values(pid=pid, pgid=pgid, start_ticks=start_ticks)
            )

    def finish_run(self, run_id: str, end: RunEnd, actor: str) -> RunRow:
        """Close a live run with its outcome and cost; closing it twice keeps the first ending."""
        now = self.clock()
        usage = end.usage or Usage()
        values = {
            "ended_at": now,
            "outcome": end.outcome.value,
            "reason": end.reason,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_input_tokens,
            "cache_write_tokens": usage.cache_creation_input_tokens,
            "cost_usd": end.cost_usd or 0.0,
        }
        if end.session_id:
            values["session_id"] = end.session_id
        with self._tx() as conn:
            done = conn.execute(
                update(t.runs).where(t.runs.c.id == run_id, t.runs.c.ended_at.is_(None)).values(**values)
            )
            run = self._run(conn, run_id)
            if done.rowcount == 1:
                _event(
                    conn,
                    now,
                    "run_finished",
                    actor,
                    item_id=run.item_id,
                    run_id=run_id,
                    reason=end.reason,
                    data={"outcome": end.outcome.value, "cost_usd": run.cost_usd},
                )
            return run

    def set_run_session(self, run_id: str, session_id: str) -> None:
        with self._tx() as conn:
            conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(session_id=session_id))

    def get_run(self, run_id: str) -> RunRow:
        with self.engine.connect() as conn:
            return self._run(conn, run_id)

    def runs(self, item_id: int | None = None, live_only: bool = False) -> list[RunRow]:
        query = select(t.runs).order_by(t.runs.c.started_at, t.runs.c.id)
        if item_id is not None:
            query = query.where(t.runs.c.item_id == item_id)
        if live_only:
            query = query.where(t.runs.c.ended_at.is_(None))
        with self.engine.connect() as conn:
            return [_run_row(row) for row in conn.execute(query)]

    def session_profile(self, item_id: int, session_id: str | None) -> str | None:
        """The profile of the item's latest run in that session (None: no run of the item had it)."""
        if session_id is None:
            return None
        runs = t.runs.c
        query = (
            select(runs.profile)
            .where(runs.item_id == item_id, runs.session_id == session_id)
            .order_by(runs.started_at.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    def session_usage(self, item_id: int, session_id: str) -> Usage:
        """The tokens the item's finished runs in that session were counted for."""
        runs = t.runs.c
        columns = (runs.input_tokens, runs.output_tokens, runs.cache_write_tokens, runs.cache_read_tokens)
        query = select(*(func.coalesce(func.sum(c), 0) for c in columns)).where(
            runs.item_id == item_id, runs.session_id == session_id, runs.ended_at.is_not(None)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).one()
        return Usage(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    def count_runs(self, item_id: int) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(t.runs).where(t.runs.c.item_id == item_id)).scalar_one()
            )

    # --- gates and the ledger --------------------------------------------------------------

    def record_gate(self, item_id: int, run_id: str | None, context: str, result: Mapping[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(
                insert(t.gate_results).values(
                    item_id=item_id, run_id=run_id, context=context, at=self.clock(), **result
                )
            )

    def gate_results(self, item_id: int) -> list[GateRow]:
        query = select(t.gate_results).where(t.gate_results.c.item_id == item_id).order_by(t.gate_results.c.id)
        with self.engine.connect() as conn:
            return [GateRow(**row._mapping) for row in conn.execute(query)]

    def ledger(self, by: LedgerKey, item_id: int | None = None) -> list[LedgerRow]:
        """Tokens and cost summed per run, item, profile or UTC day."""
        column = {"run": t.runs.c.id, "item": t.runs.c.item_id, "profile": t.runs.c.profile, "day": t.runs.c.day}[by]
        query = (
            select(
                column,
                func.count(),
                func.sum(t.runs.c.input_tokens),
                func.sum(t.runs.c.output_tokens),
                func.sum(t.runs.c.cache_read_tokens),
                func.sum(t.runs.c.cache_write_tokens),
                func.sum(t.runs.c.cost_usd),
            )
            .group_by(column)
            .order_by(column)
        )
        if item_id is not None:
            query = query.where(t.runs.c.item_id == item_id)
        with self.engine.connect() as conn:
            return [
                LedgerRow(str(k), int(n), int(i), int(o), int(cr), int(cw), float(c))
                for k, n, i, o, cr, cw, c in conn.execute(query)
            ]

    # --- permission rules saved by "always allow" ------------------------------------------

    def add_permission_rule(self, tool: str, pattern: str | None, decision: str, actor: str) -> PermissionRuleRow:
        """Save a rule (with its event); an identical rule already saved is returned instead."""
        now = self.clock()
        c = t.permission_rules.c
        same = select(t.permission_rules).where(c.tool == tool, c.decision == decision)
        same = same.where(c.pattern.is_(None) if pattern is None else c.pattern == pattern)
        with self._tx() as conn:
            found = conn.execute(same).first()
            if found is not None:
                return PermissionRuleRow(**found._mapping)
            values = {"tool": tool, "pattern": pattern, "decision": decision, "created_at": now, "actor": actor}
            key = conn.execute(insert(t.permission_rules).values(**values)).inserted_primary_key
            assert key is not None
            rule = tool if pattern is None else f"{tool}({pattern})"
            _event(conn, now, "permission_rule_added", actor, reason=rule, data={"decision": decision})
            return PermissionRuleRow(int(key[0]), tool, pattern, decision, now, actor)

    def permission_rules(self) -> list[PermissionRuleRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.permission_rules).order_by(t.permission_rules.c.id))
            return [PermissionRuleRow(**row._mapping) for row in rows]

    # --- internals -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One write transaction; listeners hear of it once it has committed."""
        with self.engine.begin() as conn:
            yield conn
        self.on_event()

    def _cas(self, conn: Connection, item_id: int, expected: ItemState, values: dict[str, object], now: float) -> None:
        hold = t.items.c.hold
        stmt = (
            update(t.items)
            .where(
                t.items.c.id == item_id,
                t.items.c.stage == expected.stage.value,
                hold.is_(None) if expected.hold is None else hold == expected.hold.value,
                t.items.c.frozen == expected.frozen,
            )
            .values(**values, updated_at=now)
        )
        if conn.execute(stmt).rowcount != 1:
            current = self._state(conn, item_id)
            raise StateConflict(item_id, expected.describe(), current.describe())

    def _state(self, conn: Connection, item_id: int) -> ItemState:
        row = conn.execute(
            select(t.items.c.stage, t.items.c.hold, t.items.c.hold_reason, t.items.c.frozen).where(
                t.items.c.id == item_id
            )
        ).first()
        if row is None:
            raise NotFoundError("item", item_id)
        return _row_state(row)

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

    def _item(self, conn: Connection, item_id: int) -> Item:
        where = (t.items.c.id == item_id,)
        row = conn.execute(select(t.items).where(*where)).first()
        if row is None:
            raise NotFoundError("item", item_id)
        return self._items(conn, [row], where)[0]

    def _items(self, conn: Connection, rows: list[Row[Any]], where: Sequence[ColumnElement[bool]]) -> list[Item]:
        """The items of ``rows`` with their criteria and dependencies, read by ``where`` (the filter that chose them).

        The children are selected by the same filter as a subquery, never by a list of the ids:
        a list makes a new statement for every number of items (each one prepared and cached by
        the driver, hundreds of kilobytes at a thousand items) and past SQLite's bound on
        variables it would fail outright.
        """
        crit: dict[int, list[Criterion]] = {}
        deps: dict[int, list[int]] = {}
        if rows:
            chosen = select(t.items.c.id).where(*where) if where else None
            criteria = select(t.criteria).order_by(t.criteria.c.item_id, t.criteria.c.position)
            dependencies = select(t.dependencies).order_by(t.dependencies.c.item_id, t.dependencies.c.depends_on)
            if chosen is not None:
                criteria = criteria.where(t.criteria.c.item_id.in_(chosen))
                dependencies = dependencies.where(t.dependencies.c.item_id.in_(chosen))
            for c in conn.execute(criteria):
                crit.setdefault(c.item_id, []).append(Criterion(text=c.text, checked=c.checked))
            for d in conn.execute(dependencies):
                deps.setdefault(d.item_id, []).append(d.depends_on)
        return [_item_from(row, crit.get(row.id, []), deps.get(row.id, [])) for row in rows]

    def _run(self, conn: Connection, run_id: str) -> RunRow:
        row = conn.execute(select(t.runs).where(t.runs.c.id == run_id)).first()
        if row is None:
            raise NotFoundError("run", run_id)
        return _run_row(row)

    def _live_run(self, conn: Connection, item_id: int) -> str | None:
        query = select(t.runs.c.id).where(t.runs.c.item_id == item_id, t.runs.c.ended_at.is_(None))
        return conn.execute(query).scalar()


_ZERO_USAGE = {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.0}


def _same_state(a: ItemState, b: ItemState) -> bool:
    return (a.stage, a.hold, a.frozen) == (b.stage, b.hold, b.frozen)


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _draft_values(draft: ItemDraft) -> dict[str, object]:
    return {
        "kind": draft.kind.value,
        "title": draft.title,
        "body": draft.body,
        "priority": draft.priority,
        "pinned_agent": draft.pinned_agent,
        "qa_mode": draft.qa_mode.value if draft.qa_mode else None,
        "frozen": draft.frozen,
    }


def _state_values(state: ItemState) -> dict[str, object]:
    return {
        "stage": state.stage.value,
        "hold": state.hold.value if state.hold else None,
        "hold_reason": state.hold_reason,
        "frozen": state.frozen,
    }


def _row_state(row: Any) -> ItemState:
    return ItemState(Stage(row.stage), Hold(row.hold) if row.hold else None, row.hold_reason, bool(row.frozen))


def _item_from(row: Row[Any], criteria: list[Criterion], deps: list[int]) -> Item:
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
        state=_row_state(row),
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
    )


def _run_row(row: Row[Any]) -> RunRow:
    m = dict(row._mapping)
    m.pop("day")
    m["role"] = Role(m["role"])
    m["outcome"] = RunOutcome(m["outcome"]) if m["outcome"] else None
    return RunRow(**m)


def _event_row(row: Row[Any]) -> EventRow:
    m = dict(row._mapping)
    m["data"] = json.loads(m["data"]) if m["data"] else {}
    return EventRow(**m)


def _event(
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
        "data": json.dumps(data, sort_keys=True) if data else None,
    }
    key = conn.execute(insert(t.events).values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])


# --- the SQLite edge ---------------------------------------------------------------------------


def open_sqlite(
    path: Path, clock: Clock = time.time, busy_timeout_s: float | None = None, *, patient: bool = False
) -> Store:
    """Open (creating and migrating) the embedded database at ``path``.

    A write waits up to ``busy_timeout_s`` (default ``BUSY_TIMEOUT_S``) for another process's
    lock; past that it raises DatabaseBusyError, having written nothing. A ``patient`` store (a
    long-lived orchestrator's: its work must not fail because someone held the lock a while)
    waits as long as the lock is held instead, logging a warning after each wait.
    """
    wait_s = BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
    if patient and wait_s <= 0:
        raise ValueError("a patient store needs a busy timeout above 0 s, or it would spin while waiting")
    path.parent.mkdir(parents=True, exist_ok=True)
    # The driver's own timeout covers the connect-time pragmas too (journal_mode reads the file).
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": wait_s})

    @event.listens_for(engine, "handle_error")
    def _locked(context: ExceptionContext) -> None:
        # SQLITE_BUSY after the busy timeout: say what happened instead of a driver traceback.
        # The transaction is rolled back by the caller's ``begin()``, so nothing is half written.
        if _is_busy(context.original_exception):
            raise DatabaseBusyError(path, wait_s) from context.original_exception

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # Our own BEGIN (below) instead of the driver's implicit one, so DDL is transactional.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={round(wait_s * 1000)}")
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed transition survives power loss, not just a killed process.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front: a read-then-write transaction can then never
        # fail half way with SQLITE_BUSY because another process (say `gangline add`) wrote.
        # Waiting happens here, before the transaction's body has run, so retrying is safe.
        raw = conn.connection.driver_connection
        assert raw is not None
        waited = 0.0
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as err:
                if not _is_busy(err):
                    raise
                waited += wait_s
                if not patient:
                    raise DatabaseBusyError(path, waited) from err
                log.warning(
                    "database locked by another process; still waiting",
                    extra={"action": "database_busy", "path": str(path), "waited_s": round(waited, 1)},
                )

    migrate(engine)
    return Store(engine, clock)


def _is_busy(err: BaseException) -> bool:
    return isinstance(err, sqlite3.OperationalError) and "database is locked" in str(err)


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest revision (Alembic), in one transaction."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "gangline.store:migrations")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
