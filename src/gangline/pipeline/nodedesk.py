"""What build nodes ask of the server, checked once: joining, who they are, leases, uploads, ends, pushes.

The server's ``/node`` routes only translate HTTP to these calls. Every call after joining
names the node by its credential (kept here as a digest only); every call about a run carries
its lease's epoch and is refused (``LeaseLost``) once that lease is over. See SPEC.md "Build nodes".
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from typing import Any

from gangline.core.errors import ConfigError
from gangline.core.nodes import LeaseLost, NodeRow, check_name, check_slots, digest
from gangline.core.nodewire import FinishIn, JoinIn, JoinOut, LeaseIn, LeaseOut, NodeHello, RenewOut, UploadOut
from gangline.core.profiles import CliKind
from gangline.pipeline.orchestrator import Orchestrator
from gangline.pipeline.remote import RemoteRuns
from gangline.project.paths import ProjectPaths
from gangline.repo import nodepush
from gangline.store import Store


class NodeDesk:
    """The server's side of every node's call."""

    def __init__(self, paths: ProjectPaths, orchestrator: Orchestrator) -> None:
        self.paths = paths
        self.store: Store = orchestrator.store
        self.remote: RemoteRuns = orchestrator.remote_runs
        self.nudge = orchestrator.nudge  # a node came (or said what it has): the pipeline may start more now
        orchestrator.open_to_nodes()
        nodepush.install(paths.node_hooks_dir)

    def join(self, given: JoinIn) -> JoinOut:
        """Spend a join token on a node credential (a node joining again under its name gets a new one)."""
        credential = secrets.token_urlsafe(32)
        node = self.store.join_node(digest(given.token), digest(credential), check_name(given.name), _about(given))
        self.nudge()
        return JoinOut(node=node.name, credential=credential)

    def node(self, credential: str) -> NodeRow:
        """The node this credential is (NodeRefused otherwise); hearing from it is its heartbeat."""
        return self.store.node_by_credential(digest(credential))

    def hello(self, node: NodeRow, given: NodeHello) -> NodeRow:
        """What a node has now, as it says when it starts."""
        updated = self.store.update_node(node.id, _about(given))
        self.nudge()
        return updated

    async def lease(self, node: NodeRow, given: LeaseIn, closing: asyncio.Event | None = None) -> LeaseOut | None:
        """A run for ``node``, waiting up to ``given.wait_s`` for one (not past ``closing``, the server's shutdown)."""
        return await self.remote.lease(node, check_slots(given.busy), given.wait_s, closing)

    def renew(self, node: NodeRow, run_id: str, epoch: int) -> RenewOut:
        return self.remote.renew(node, run_id, epoch)

    def ingest(self, node: NodeRow, run_id: str, epoch: int, lines: bytes) -> UploadOut:
        return self.remote.ingest(node, run_id, epoch, lines)

    async def finish(self, node: NodeRow, run_id: str, end: FinishIn) -> None:
        await self.remote.finish(node, run_id, end)

    def push_env(self, node: NodeRow, run_id: str, epoch: int) -> dict[str, str]:
        """The environment a node's push of run ``run_id`` runs in; LeaseLost unless it holds the lease."""
        self.store.check_lease(node.id, run_id, epoch)
        offer = self.store.offer_of(run_id)
        branch = offer.payload.get("branch") if offer is not None else None
        if offer is None or not offer.payload.get("push") or not isinstance(branch, str):
            raise LeaseLost(run_id, epoch, "this run has no branch to push")
        return nodepush.push_env(self.paths.node_hooks_dir, branch, offer.payload.get("base"))


def _about(given: NodeHello) -> dict[str, Any]:
    """A node's labels, slots and CLIs, checked: the same names as everywhere, slots per role."""
    labels = sorted({check_name(label, "labels") for label in given.labels})
    clis: Mapping[str, str] = given.clis
    kinds = [kind.value for kind in CliKind]
    for kind in clis:
        if kind not in kinds:
            raise ConfigError(f"clis.{kind}", f"expected one of {', '.join(kinds)}")
    return {"labels": labels, "slots": check_slots(given.slots), "clis": dict(clis)}
