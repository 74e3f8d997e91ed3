"""Gate results, the cost ledger, and the permission rules saved by "always allow"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, insert, select, update

from gangline.core.records import CHAT_LEDGER_KEY, GateRow, LedgerKey, LedgerRow, PermissionRuleRow
from gangline.core.types import SERVER
from gangline.store import schema as t
from gangline.store.base import StoreBase
from gangline.store.rows import insert_event


class Ledger(StoreBase):
    # --- gates and the ledger --------------------------------------------------------------

    def record_gates(
        self, item_id: int, run_id: str | None, context: str, results: Sequence[Mapping[str, Any]], passed: bool,
        where: str | None = None, noun: str = "gate",
    ) -> None:  # fmt: skip
        """A batch of gate (or hook: ``noun``, then ``context`` is its point) results and, in the same transaction,
        whether they passed (``where``: a node ran them)."""
        now = self.clock()
        data = {"context": context} | ({"where": where} if where else {})
        with self._tx() as conn:
            for result in results:
                values = {"item_id": item_id, "run_id": run_id, "context": context, "at": now, **result}
                conn.execute(insert(t.gate_results).values(values))
            kind = f"{noun}s_{'passed' if passed else 'failed'}"
            insert_event(conn, now, kind, SERVER, item_id=item_id, run_id=run_id, data=data)

    def gate_output_bytes(self) -> int:
        """What the gates' and hooks' kept output takes (characters; bytes for ASCII)."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(func.coalesce(func.sum(func.length(t.gate_results.c.output)), 0))).scalar_one()
            )

    def clear_gate_output(self, before: float) -> int:
        """Drop the output of gate and hook results recorded before ``before`` (their outcome stays); how many."""
        done = "[output removed by the [retention] settings]"
        query = (
            update(t.gate_results)
            .where(t.gate_results.c.at < before, t.gate_results.c.output != "", t.gate_results.c.output != done)
            .values(output=done, truncated=True)
        )
        with self._tx() as conn:
            return conn.execute(query).rowcount

    def gate_results(self, item_id: int) -> list[GateRow]:
        query = select(t.gate_results).where(t.gate_results.c.item_id == item_id).order_by(t.gate_results.c.id)
        with self.engine.connect() as conn:
            return [GateRow(**row._mapping) for row in conn.execute(query)]

    def ledger(self, by: LedgerKey, item_id: int | None = None, since: float | None = None) -> list[LedgerRow]:
        """Tokens and cost summed per run, item, profile or UTC day (of runs started at ``since`` or later).

        Per item, the chat agent's runs (which have none) are summed under ``CHAT_LEDGER_KEY``.
        """
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
        if since is not None:
            query = query.where(t.runs.c.started_at >= since)
        with self.engine.connect() as conn:
            return [
                LedgerRow(CHAT_LEDGER_KEY if k is None else str(k), int(n), int(i), int(o), int(cr), int(cw), float(c))
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
            insert_event(conn, now, "permission_rule_added", actor, reason=rule, data={"decision": decision})
            return PermissionRuleRow(int(key[0]), tool, pattern, decision, now, actor)

    def permission_rules(self) -> list[PermissionRuleRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.permission_rules).order_by(t.permission_rules.c.id))
            return [PermissionRuleRow(**row._mapping) for row in rows]
