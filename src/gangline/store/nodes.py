"""Build nodes' rows: joining, offers, and leases with their epochs (SPEC.md "Build nodes").

A claim locks the offers it reads: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two nodes
claiming at once each get a different run and neither waits; on SQLite every write
transaction is ``BEGIN IMMEDIATE``, one at a time. Every check of an epoch reads the lease and
its run in the transaction that acts on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from gangline.core.errors import NotFoundError
from gangline.core.nodes import LEASE_S, Lease, LeaseLost, NodeRefused, NodeRow, Offer, can_take
from gangline.core.profiles import Role
from gangline.store import schema as t
from gangline.store.base import StoreBase
from gangline.store.rows import insert_event


class Nodes(StoreBase):
    # --- joining ---------------------------------------------------------------------------

    def add_node_token(self, token_digest: str, ttl_s: float) -> float:
        """Keep a join token (its digest) until it is used or ``ttl_s`` passes; return when it expires."""
        now = self.clock()
        with self._tx() as conn:
            conn.execute(insert(t.node_tokens).values(digest=token_digest, created_at=now, expires_at=now + ttl_s))
        return now + ttl_s

    def join_node(self, token_digest: str, credential_digest: str, name: str, about: Mapping[str, Any]) -> NodeRow:
        """Spend a join token on a node called ``name``: a new node, or one of that name joining again.

        ``about`` holds its labels, slots and CLIs. NodeRefused for a token unknown, used or expired.
        """
        now = self.clock()
        with self._tx() as conn:
            token = conn.execute(select(t.node_tokens).where(t.node_tokens.c.digest == token_digest)).first()
            if token is None or token.used_by is not None or token.expires_at < now:
                why = "unknown" if token is None else "already used" if token.used_by is not None else "expired"
                raise NodeRefused(f"the join token is {why}: make a new one with `gangline node token`")
            values = {**about, "credential": credential_digest, "seen_at": now, "draining": False}
            node_id = conn.execute(select(t.nodes.c.id).where(t.nodes.c.name == name)).scalar()
            if node_id is None:
                added = insert(t.nodes).values(name=name, joined_at=now, **values).returning(t.nodes.c.id)
                node_id = conn.execute(added).scalar_one()
            else:
                conn.execute(update(t.nodes).where(t.nodes.c.id == node_id).values(**values))
            conn.execute(update(t.node_tokens).where(t.node_tokens.c.digest == token_digest).values(used_by=node_id))
            insert_event(conn, now, "node_joined", f"node:{name}", data={"node": name, **about})
            return _node(conn.execute(select(t.nodes).where(t.nodes.c.id == node_id)).one())

    def node_by_credential(self, credential_digest: str) -> NodeRow:
        """The node this credential is; NodeRefused when none is. Seeing it is its heartbeat."""
        now = self.clock()
        with self._tx() as conn:
            row = conn.execute(select(t.nodes).where(t.nodes.c.credential == credential_digest)).first()
            if row is None:
                raise NodeRefused("this node's credential is not known here: join again with a new token")
            conn.execute(update(t.nodes).where(t.nodes.c.id == row.id).values(seen_at=now))
            return _node(row)

    def update_node(self, node_id: int, about: Mapping[str, Any]) -> NodeRow:
        """What a node has now (labels, slots, CLIs), as it says at each start."""
        with self._tx() as conn:
            conn.execute(update(t.nodes).where(t.nodes.c.id == node_id).values(**about, seen_at=self.clock()))
            return _node(conn.execute(select(t.nodes).where(t.nodes.c.id == node_id)).one())

    def nodes(self) -> list[NodeRow]:
        with self.engine.connect() as conn:
            return [_node(row) for row in conn.execute(select(t.nodes).order_by(t.nodes.c.name))]

    def drain_node(self, name: str, draining: bool, actor: str) -> NodeRow:
        """Stop (or resume) giving runs to a node; the runs it has go on to their end."""
        with self._tx() as conn:
            row = conn.execute(select(t.nodes).where(t.nodes.c.name == name)).first()
            if row is None:
                raise NotFoundError("node", name)
            conn.execute(update(t.nodes).where(t.nodes.c.id == row.id).values(draining=draining))
            kind = "node_draining" if draining else "node_undrained"
            insert_event(conn, self.clock(), kind, actor, data={"node": name})
            return _node(conn.execute(select(t.nodes).where(t.nodes.c.id == row.id)).one())

    # --- offers and leases -----------------------------------------------------------------

    def offer_run(self, offer: Offer) -> None:
        """Put a recorded run up for a node to lease."""
        values = {**offer.__dict__, "role": offer.role.value, "labels": list(offer.labels), "payload": offer.payload}
        with self._tx() as conn:
            conn.execute(insert(t.offers).values(values))

    def withdraw_offer(self, run_id: str) -> bool:
        """Take back an offer no node has leased; False when one has (stop it through its lease instead)."""
        with self._tx() as conn:
            gone = conn.execute(delete(t.offers).where(t.offers.c.run_id == run_id, t.offers.c.epoch.is_(None)))
            return gone.rowcount == 1

    def claim(self, node: NodeRow, busy: Mapping[str, int], lease_s: float = LEASE_S) -> tuple[Offer, Lease] | None:
        """Lease the oldest offer ``node`` can take, with a new epoch; None when there is none."""
        now = self.clock()
        with self._tx() as conn:
            live = select(t.runs.c.id).where(t.runs.c.ended_at.is_(None))  # a restart closed the others' runs
            query = (
                select(t.offers)
                .where(t.offers.c.epoch.is_(None), t.offers.c.run_id.in_(live))
                .order_by(t.offers.c.created_at)
            )
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            chosen = next((o for o in map(_offer, conn.execute(query)) if can_take(node, o, busy)), None)
            if chosen is None:
                return None
            values = {"run_id": chosen.run_id, "node_id": node.id, "granted_at": now, "expires_at": now + lease_s}
            epoch = conn.execute(insert(t.leases).values(values).returning(t.leases.c.epoch)).scalar_one()
            conn.execute(update(t.offers).where(t.offers.c.run_id == chosen.run_id).values(epoch=epoch))
            conn.execute(update(t.runs).where(t.runs.c.id == chosen.run_id).values(node_id=node.id))
            data = {"node": node.name, "epoch": epoch}
            insert_event(conn, now, "run_leased", f"node:{node.name}", item_id=chosen.item_id, run_id=chosen.run_id,
                         data=data)  # fmt: skip
            return chosen, _lease(conn.execute(select(t.leases).where(t.leases.c.epoch == epoch)).one())

    def renew_lease(self, node_id: int, run_id: str, epoch: int, lease_s: float = LEASE_S) -> Lease:
        """Extend a held lease by ``lease_s`` from now; LeaseLost when it is no longer held."""
        now = self.clock()
        with self._tx() as conn:
            self._held(conn, node_id, run_id, epoch, now)
            conn.execute(update(t.leases).where(t.leases.c.epoch == epoch).values(expires_at=now + lease_s))
            return _lease(conn.execute(select(t.leases).where(t.leases.c.epoch == epoch)).one())

    def check_lease(self, node_id: int, run_id: str, epoch: int) -> None:
        """LeaseLost unless ``node_id`` holds run ``run_id``'s lease ``epoch`` now."""
        with self.engine.connect() as conn:
            self._held(conn, node_id, run_id, epoch, self.clock())

    def end_lease(self, run_id: str, reason: str) -> Lease | None:
        """End the run's lease (its run ended, or it lapsed) and drop its offer; the ended lease, if there was one."""
        now = self.clock()
        with self._tx() as conn:
            conn.execute(delete(t.offers).where(t.offers.c.run_id == run_id))
            live = select(t.leases).where(t.leases.c.run_id == run_id, t.leases.c.ended_at.is_(None))
            row = conn.execute(live).first()
            if row is None:
                return None
            ended = {"ended_at": now, "end_reason": reason}
            conn.execute(update(t.leases).where(t.leases.c.epoch == row.epoch).values(ended))
            return _lease(conn.execute(select(t.leases).where(t.leases.c.epoch == row.epoch)).one())

    def lease_of(self, run_id: str) -> Lease | None:
        """The run's latest lease (held or not); None if no node ever leased it."""
        query = select(t.leases).where(t.leases.c.run_id == run_id).order_by(t.leases.c.epoch.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
            return _lease(row) if row is not None else None

    def node_runs(self, node_id: int) -> dict[str, int]:
        """The node's held leases: run id -> epoch."""
        query = select(t.leases.c.run_id, t.leases.c.epoch).where(
            t.leases.c.node_id == node_id, t.leases.c.ended_at.is_(None)
        )
        with self.engine.connect() as conn:
            return {row.run_id: row.epoch for row in conn.execute(query)}

    def offer_of(self, run_id: str) -> Offer | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.offers).where(t.offers.c.run_id == run_id)).first()
            return _offer(row) if row is not None else None

    def _held(self, conn: Connection, node_id: int, run_id: str, epoch: int, now: float) -> None:
        row = conn.execute(
            select(t.leases, t.runs.c.ended_at.label("run_ended"))
            .join(t.runs, t.runs.c.id == t.leases.c.run_id)
            .where(t.leases.c.epoch == epoch)
        ).first()
        if row is None or row.run_id != run_id or row.node_id != node_id:
            raise LeaseLost(run_id, epoch, "no such lease for this node")
        if row.ended_at is not None:
            raise LeaseLost(run_id, epoch, row.end_reason or "it ended")
        if row.run_ended is not None:
            raise LeaseLost(run_id, epoch, "its run has ended")
        if row.expires_at < now:
            raise LeaseLost(run_id, epoch, f"it lapsed {now - row.expires_at:.0f} s ago (not renewed)")


def _node(row: Any) -> NodeRow:
    return NodeRow(row.id, row.name, tuple(row.labels), dict(row.slots), dict(row.clis), row.joined_at, row.seen_at,
                   row.draining)  # fmt: skip


def _offer(row: Any) -> Offer:
    return Offer(row.run_id, row.item_id, Role(row.role), row.cli, tuple(row.labels), row.node_id, row.payload,
                 row.created_at)  # fmt: skip


def _lease(row: Any) -> Lease:
    return Lease(row.epoch, row.run_id, row.node_id, row.granted_at, row.expires_at, row.ended_at, row.end_reason)
