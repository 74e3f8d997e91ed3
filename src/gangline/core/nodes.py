"""Build nodes: machines that lease agent runs from the server (SPEC.md "Build nodes"). The pure rules.

A run the server does not start itself becomes an *offer*. A node that can take it (not
draining, has the CLI and the labels, a free slot for the role, and is the node an offer for a
resumed session names) *leases* it. Each lease has an **epoch**, a number larger than every
epoch before it, that the node's renewals, event uploads, push and finish carry: once a lease
has lapsed or ended, everything carrying its epoch is refused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gangline.core.errors import ConfigError, GanglineError
from gangline.core.profiles import Role

LEASE_S = 90.0  # a lease not renewed for this long has lapsed: its node is frozen, cut off or dead
RENEW_S = 15.0  # how often a node renews each of its leases (and says it is alive)
TOKEN_TTL_S = 3600.0  # a join token not used within this is refused
NODE_ROLES = (Role.CODER, Role.QA, Role.MERGEMASTER)  # the pipeline's agents (the chat agent stays on the server)
MAX_SLOTS = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class LeaseLost(GanglineError):
    """A node's lease is over (lapsed, ended, or given to another): what it carries is refused."""

    exit_code = 5
    code = "conflict"

    def __init__(self, run_id: str, epoch: int, why: str) -> None:
        self.run_id, self.epoch, self.why = run_id, epoch, why
        super().__init__(f"the lease of run {run_id} (epoch {epoch}) is over: {why}")


class NodeRefused(GanglineError):
    """A node credential or join token that is unknown, used, or expired."""

    exit_code = 11
    code = "unauthorized"


@dataclass(frozen=True)
class NodeRow:
    """A joined node: what it said it has, and when it last spoke."""

    id: int
    name: str
    labels: tuple[str, ...]
    slots: Mapping[str, int]  # role -> how many runs of it at once
    clis: Mapping[str, str]  # cli kind -> its version on the node
    joined_at: float
    seen_at: float
    draining: bool

    def live(self, now: float, lease_s: float = LEASE_S) -> bool:
        """It spoke within a lease's length: its leases may still be held."""
        return now - self.seen_at <= lease_s


@dataclass(frozen=True)
class Offer:
    """A run waiting for a node. ``payload`` is everything the node needs to start it (``wire.NodeRun``)."""

    run_id: str
    item_id: int | None
    role: Role
    cli: str
    labels: tuple[str, ...]  # the profile's node_labels: a node must have them all
    node_id: int | None  # a resumed session lives on this node: only it may lease the run
    payload: Mapping[str, Any] = field(repr=False)
    created_at: float = 0.0


@dataclass(frozen=True)
class Lease:
    epoch: int
    run_id: str
    node_id: int
    granted_at: float
    expires_at: float
    ended_at: float | None
    end_reason: str | None


def can_take(node: NodeRow, offer: Offer, busy: Mapping[str, int]) -> bool:
    """Whether ``node``, running ``busy`` runs per role, may lease ``offer``."""
    if node.draining or offer.cli not in node.clis or not set(offer.labels) <= set(node.labels):
        return False
    if offer.node_id is not None and offer.node_id != node.id:
        return False
    return busy.get(offer.role.value, 0) < node.slots.get(offer.role.value, 0)


def on_node(role: Role, labels: Sequence[str], local_busy: int, local_limit: int, node_room: int) -> bool:
    """Whether a run goes to a build node rather than the server's own runner.

    To a node when its profile needs a node's labels, or the server runs no agents (``local_limit``
    0: it waits for a node), or the server's slots are full and the live nodes have some
    (``node_room``). A run asked for beyond every limit (a test, a direct call) runs on the server.
    A mergemaster never waits for a node: the merge it serves is the server's, under way, so
    without a node's mergemaster slot it runs on the server.
    """
    if role not in NODE_ROLES:
        return False
    if labels:
        return True
    if role is Role.MERGEMASTER:
        return node_room > 0 and local_busy >= local_limit
    return local_limit == 0 or (local_busy >= local_limit and node_room > 0)


def capacity(nodes: Iterable[NodeRow], now: float, lease_s: float = LEASE_S) -> dict[Role, int]:
    """The runs per role the live nodes that are not draining can take at once."""
    total = dict.fromkeys(NODE_ROLES, 0)
    for node in nodes:
        if node.live(now, lease_s) and not node.draining:
            for role in NODE_ROLES:
                total[role] += node.slots.get(role.value, 0)
    return total


def digest(secret: str) -> str:
    """What the store keeps of a token or credential: its SHA-256, never the secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(name: str, what: str = "name") -> str:
    if not _NAME.fullmatch(name):
        raise ConfigError(what, "expected letters, digits, '.', '_' or '-' (at most 64), first a letter or digit")
    return name


def check_slots(slots: Mapping[str, int]) -> dict[str, int]:
    """A node's slots: only the roles nodes run, each 0..MAX_SLOTS."""
    roles = [role.value for role in NODE_ROLES]
    for role, count in slots.items():
        if role not in roles:
            raise ConfigError(f"slots.{role}", f"expected one of {', '.join(roles)}")
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_SLOTS:
            raise ConfigError(f"slots.{role}", f"expected an integer from 0 to {MAX_SLOTS}")
    return dict(slots)
