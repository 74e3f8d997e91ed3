"""Build nodes as people see and steer them, defined once: the list, a join token, draining.

REST (``/api/nodes``), the CLI (``gangline nodes``, ``gangline node token``) and the board call
these, through a server or on the store, and get the same records and the same refusals.
"""

from __future__ import annotations

import secrets

from gangline.core.nodes import LEASE_S, TOKEN_TTL_S, NodeRow, check_name, digest
from gangline.core.nodewire import NodeOut, TokenOut
from gangline.store import Store


class Fleet:
    """The project's build nodes, in its store."""

    def __init__(self, store: Store, lease_s: float = LEASE_S) -> None:
        self.store = store
        self.lease_s = lease_s  # a node that has not spoken for this long is not live

    def nodes(self) -> list[NodeOut]:
        """Every node that joined, with whether it is live and the runs it holds, by name."""
        return [self.out(node) for node in self.store.nodes()]

    def new_token(self, actor: str) -> TokenOut:
        """A one-time join token for ``gangline node --token``; the store keeps only its digest."""
        token = secrets.token_urlsafe(24)
        expires = self.store.add_node_token(digest(token), TOKEN_TTL_S)
        self.store.record_event("node_token", actor, data={"expires_at": expires})
        return TokenOut(token=token, expires_at=expires)

    def drain(self, name: str, draining: bool, actor: str) -> NodeOut:
        """Give the node no more runs (or again, ``draining`` False); its runs go on to their end."""
        return self.out(self.store.drain_node(check_name(name, "node"), draining, actor))

    def out(self, node: NodeRow) -> NodeOut:
        """One node as people see it: live or not, and the runs it holds."""
        return NodeOut(
            name=node.name,
            labels=list(node.labels),
            slots=dict(node.slots),
            clis=dict(node.clis),
            joined_at=node.joined_at,
            seen_at=node.seen_at,
            live=node.live(self.store.clock(), self.lease_s),
            draining=node.draining,
            runs=sorted(self.store.node_runs(node.id)),
        )
