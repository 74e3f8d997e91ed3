"""Where a command's reads and orders go: the running server over HTTP, or this project's store directly.

Both sides answer with the same wire records and fail with the same errors: ``Remote`` asks the
server, which calls ``pipeline.views`` and ``pipeline.orders``; ``Local`` calls them itself, in
this process (no agent runs here then, so none needs stopping). A command says which, once,
dimmed on stderr.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from rich.console import Console

from gangline.cli.client import Client, body_of, find_server
from gangline.core.errors import Unavailable
from gangline.core.items import ItemPatch
from gangline.core.logs import LogEntry, LogQuery
from gangline.core.messages import MessageIn, MessageOut
from gangline.core.nodewire import NodeOut, TokenOut
from gangline.core.orders import ItemAction
from gangline.core.overview import Overview
from gangline.core.records import LedgerKey
from gangline.core.top import TopOut
from gangline.core.wire import (
    CostsOut,
    ItemDetail,
    ItemOut,
    ItemQuery,
    NewItem,
    PermissionAnswer,
    PermissionAnswered,
    PermissionRequestOut,
    StatusOut,
)
from gangline.pipeline.views import Views
from gangline.project.database import database_url
from gangline.project.paths import ProjectPaths
from gangline.store import Store, open_store, shown_url

NO_LOG = "no server running: a server's log lives only in its memory; start gangline serve (or run)"

if TYPE_CHECKING:
    from gangline.pipeline.fleet import Fleet
    from gangline.pipeline.orders import Orders


class Door(Protocol):
    def items(self, query: ItemQuery) -> list[ItemOut]: ...
    def item(self, item_id: int) -> ItemOut: ...
    def detail(self, item_id: int) -> ItemDetail: ...
    def add_item(self, new: NewItem) -> ItemOut: ...
    def edit_item(self, item_id: int, patch: ItemPatch) -> ItemOut: ...
    def delete_item(self, item_id: int) -> ItemOut: ...
    def act(self, item_id: int, action: ItemAction, reason: str | None, by: int | None = None) -> ItemOut: ...
    def status(self) -> StatusOut: ...
    def costs(self, by: LedgerKey, item_id: int | None) -> CostsOut: ...
    def pending_permissions(self) -> list[PermissionRequestOut]: ...
    def answer_permission(self, request_id: str, answer: PermissionAnswer) -> PermissionAnswered: ...
    def set_timer(self, item_id: int, when: str | None) -> ItemOut: ...
    def say(self, item_id: int, message: MessageIn) -> MessageOut: ...
    def server_log(self, query: LogQuery) -> list[LogEntry]: ...
    def messages(self, item_id: int) -> list[MessageOut]: ...
    def nodes(self) -> list[NodeOut]: ...
    def node_token(self) -> TokenOut: ...
    def drain_node(self, name: str, draining: bool) -> NodeOut: ...
    def top(self, over_s: float) -> TopOut: ...
    def overview(self, item_id: int) -> Overview: ...


class Remote:
    """The running server: each call one REST request."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def items(self, query: ItemQuery) -> list[ItemOut]:
        params: dict[str, object] = {"stage": [s.value for s in query.stages], "all": query.include_archived}
        given = {"hold": query.hold, "kind": query.kind, "q": query.q}
        params |= {name: value for name, value in given.items() if value is not None}
        return self.client.fetch(list[ItemOut], "GET", "/api/items", params=params)

    def item(self, item_id: int) -> ItemOut:
        return self.client.fetch(ItemOut, "GET", f"/api/items/{item_id}")

    def detail(self, item_id: int) -> ItemDetail:
        return self.client.fetch(ItemDetail, "GET", f"/api/items/{item_id}")

    def add_item(self, new: NewItem) -> ItemOut:
        return self.client.fetch(ItemOut, "POST", "/api/items", body=body_of(new))

    def edit_item(self, item_id: int, patch: ItemPatch) -> ItemOut:
        return self.client.fetch(ItemOut, "PATCH", f"/api/items/{item_id}", body=body_of(patch))

    def delete_item(self, item_id: int) -> ItemOut:
        return self.client.fetch(ItemOut, "DELETE", f"/api/items/{item_id}")

    def act(self, item_id: int, action: ItemAction, reason: str | None, by: int | None = None) -> ItemOut:
        body = {k: v for k, v in (("reason", reason), ("by", by)) if v} or None
        return self.client.fetch(ItemOut, "POST", f"/api/items/{item_id}/{action.value}", body=body)

    def status(self) -> StatusOut:
        return self.client.fetch(StatusOut, "GET", "/api/status")

    def costs(self, by: LedgerKey, item_id: int | None) -> CostsOut:
        params = {"by": by} | ({"item": item_id} if item_id else {})
        return self.client.fetch(CostsOut, "GET", "/api/costs", params=params)

    def pending_permissions(self) -> list[PermissionRequestOut]:
        return self.client.fetch(list[PermissionRequestOut], "GET", "/api/permissions")

    def answer_permission(self, request_id: str, answer: PermissionAnswer) -> PermissionAnswered:
        return self.client.fetch(PermissionAnswered, "POST", f"/api/permissions/{request_id}", body=body_of(answer))

    def set_timer(self, item_id: int, when: str | None) -> ItemOut:
        if when is None:
            return self.client.fetch(ItemOut, "DELETE", f"/api/items/{item_id}/timer")
        return self.client.fetch(ItemOut, "PUT", f"/api/items/{item_id}/timer", body={"when": when})

    def say(self, item_id: int, message: MessageIn) -> MessageOut:
        return self.client.fetch(MessageOut, "POST", f"/api/items/{item_id}/messages", body=body_of(message))

    def server_log(self, query: LogQuery) -> list[LogEntry]:
        return self.client.fetch(list[LogEntry], "GET", "/api/server-log", params=query.model_dump(mode="json"))

    def messages(self, item_id: int) -> list[MessageOut]:
        return self.client.fetch(list[MessageOut], "GET", f"/api/items/{item_id}/messages")

    def nodes(self) -> list[NodeOut]:
        return self.client.fetch(list[NodeOut], "GET", "/api/nodes")

    def node_token(self) -> TokenOut:
        return self.client.fetch(TokenOut, "POST", "/api/nodes/token")

    def drain_node(self, name: str, draining: bool) -> NodeOut:
        return self.client.fetch(NodeOut, "POST", f"/api/nodes/{name}/drain", body={"draining": draining})

    def top(self, over_s: float) -> TopOut:
        return self.client.fetch(TopOut, "GET", "/api/top", params={"over_s": over_s})

    def overview(self, item_id: int) -> Overview:
        return self.client.fetch(Overview, "GET", f"/api/items/{item_id}/overview")


class Local:
    """The store, read and written in this process by the same views and orders a server calls."""

    def __init__(self, paths: ProjectPaths, store: Store, actor: str) -> None:
        self.paths = paths
        self.store = store
        self.actor = actor
        self.views = Views(store)
        self._orders: Orders | None = None

    @property
    def orders(self) -> Orders:
        """The orders, with an orchestrator that does not serve: only built when a command gives one."""
        if self._orders is None:
            from gangline.pipeline.orchestrator import Orchestrator
            from gangline.pipeline.orders import Orders
            from gangline.project.config import load_project

            env = dict(os.environ)
            orchestrator = Orchestrator(self.paths, load_project(self.paths, env), self.store, env)
            self._orders = Orders(orchestrator, self.views)
        return self._orders

    def items(self, query: ItemQuery) -> list[ItemOut]:
        return self.views.items(query)

    def item(self, item_id: int) -> ItemOut:
        return self.views.item(item_id)

    def detail(self, item_id: int) -> ItemDetail:
        return self.views.detail(item_id)

    def add_item(self, new: NewItem) -> ItemOut:
        return self.orders.add_item(new, self.actor)

    def edit_item(self, item_id: int, patch: ItemPatch) -> ItemOut:
        return self.orders.edit_item(item_id, patch, self.actor)

    def delete_item(self, item_id: int) -> ItemOut:
        return self.orders.delete_item(item_id, self.actor)

    def act(self, item_id: int, action: ItemAction, reason: str | None, by: int | None = None) -> ItemOut:
        return asyncio.run(self.orders.act(item_id, action, reason, self.actor, by))

    def status(self) -> StatusOut:
        return self.views.status()

    def costs(self, by: LedgerKey, item_id: int | None) -> CostsOut:
        return self.views.costs(by, item_id)

    def pending_permissions(self) -> list[PermissionRequestOut]:
        return self.orders.pending_permissions()

    def answer_permission(self, request_id: str, answer: PermissionAnswer) -> PermissionAnswered:
        return self.orders.answer_permission(request_id, answer, self.actor)

    def set_timer(self, item_id: int, when: str | None) -> ItemOut:
        return self.orders.set_timer(item_id, when, self.actor)

    def say(self, item_id: int, message: MessageIn) -> MessageOut:
        return asyncio.run(self.orders.say(item_id, message, self.actor))

    def server_log(self, query: LogQuery) -> list[LogEntry]:
        raise Unavailable(NO_LOG)

    def messages(self, item_id: int) -> list[MessageOut]:
        return self.views.messages(item_id)

    @property
    def fleet(self) -> Fleet:
        from gangline.pipeline.fleet import Fleet
        from gangline.project.config import load_project

        return Fleet(self.store, load_project(self.paths, dict(os.environ)).nodes.lease_s)

    def nodes(self) -> list[NodeOut]:
        return self.fleet.nodes()

    def node_token(self) -> TokenOut:
        return self.fleet.new_token(self.actor)

    def drain_node(self, name: str, draining: bool) -> NodeOut:
        return self.fleet.drain(name, draining, self.actor)

    def top(self, over_s: float) -> TopOut:
        """Read here: the runs a ``gangline run`` of this machine has live are its processes."""
        return asyncio.run(self.views.top.sample(over_s))

    def overview(self, item_id: int) -> Overview:
        from gangline.pipeline.overview import overview
        from gangline.project.config import load_project

        base = load_project(self.paths, dict(os.environ)).base_branch
        return asyncio.run(overview(self.views, self.paths.root, base, item_id))


@contextmanager
def door(paths: ProjectPaths, actor: str, say: Console, *, server_only: str | None = None) -> Iterator[Door]:
    """The running server's door, else the store's; says which on ``say``, once, dimmed.

    ``server_only``: what the command wants lives only in a server's memory (permission requests, its log): the
    refusal to give when no server runs.
    """
    client = find_server(paths, os.environ, actor)
    if client is not None:
        say.print(f"via server {client.url}", style="dim", markup=False)
        try:
            yield Remote(client)
        finally:
            client.close()
        return
    if server_only is not None:
        raise Unavailable(server_only)
    url = database_url(paths, os.environ)
    where = paths.db_file.relative_to(paths.root) if paths.db_file.is_relative_to(paths.root) else paths.db_file
    shown = where if url == f"sqlite:///{paths.db_file}" else shown_url(url)
    say.print(f"no server running: using {shown} directly", style="dim", markup=False)
    store = open_store(url)
    try:
        yield Local(paths, store, actor)
    finally:
        store.close()
