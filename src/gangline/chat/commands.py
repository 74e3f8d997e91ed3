"""A parsed chat command carried out through the orders and views every door calls, answered as chat text.

Nothing here decides what an order may do: ``pipeline.orders`` refuses what it refuses, the same
way it does for REST, MCP and the CLI, and the refusal is said in the room in its own words.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from pydantic import ValidationError

from gangline.chat import replies
from gangline.chat.transport import Said
from gangline.core.chat import Command, help_text
from gangline.core.errors import ConfigError, NotFoundError
from gangline.core.items import ItemPatch
from gangline.core.messages import MessageIn
from gangline.core.orders import ACTIONS, ItemAction
from gangline.core.rules import Decision
from gangline.core.text import plain
from gangline.core.types import Clock
from gangline.core.validation import invalid
from gangline.core.wire import ItemOut, PermissionAnswer, PermissionRequestOut
from gangline.pipeline.orders import Orders
from gangline.store import Store

_ANSWER = {"allow": Decision.ALLOW, "deny": Decision.DENY, "always": Decision.ALWAYS_ALLOW}


@dataclass(frozen=True)
class Asked:
    """Who gave a command, where: the actor recorded with what it changes, the message it answers."""

    transport: str  # the [[chat]] account's key
    said: Said

    @property
    def actor(self) -> str:
        return f"{self.transport}:{self.said.user}"[:64]


Extra = Callable[[Command, Asked], Awaitable[str]]  # the commands that need more than orders: git, logs, htop, reset


class Commands:
    """Carries out one command for a person; ``extra`` handles those that are not orders or views."""

    def __init__(self, orders: Callable[[], Orders], extra: dict[str, Extra], clock: Clock = time.time) -> None:
        self.orders = orders
        self.extra = extra
        self.clock = clock

    async def run(self, command: Command, asked: Asked) -> str:
        if command.name in self.extra:
            return await self.extra[command.name](command, asked)
        handler = getattr(self, f"_{command.name}")
        reply: str = await handler(command, asked)
        return reply

    @property
    def _zone(self) -> tzinfo:
        return self.orders().config.zone()

    @property
    def _store(self) -> Store:
        return self.orders().orchestrator.store

    async def _help(self, command: Command, asked: Asked) -> str:
        return help_text()

    async def _status(self, command: Command, asked: Asked) -> str:
        return replies.status(self.orders().views.status(), self._zone)

    async def _ls(self, command: Command, asked: Asked) -> str:
        return replies.items(self.orders().views.items(), self._zone)

    async def _show(self, command: Command, asked: Asked) -> str:
        return replies.detail(self.orders().views.detail(_id(command)), self._zone)

    async def _act(self, command: Command, asked: Asked) -> str:
        action = ItemAction(command.name)
        item = await self.orders().act(_id(command), action, command.rest, asked.actor)
        return f"{ACTIONS[action].done} {_named(item)}: now {replies.item_line(item, self._zone)}"

    _start = _stop = _block = _unblock = _approve = _reject = _act

    async def _assign(self, command: Command, asked: Asked) -> str:
        try:
            patch = ItemPatch(pinned_agent=command.word)
        except ValidationError as err:
            raise invalid(err) from None
        item = self.orders().edit_item(_id(command), patch, asked.actor)
        return f"{_named(item)} is pinned to the agent profile {item.pinned_agent}"

    async def _cost(self, command: Command, asked: Asked) -> str:
        zone, now = self._zone, self.clock()
        midnight = datetime.fromtimestamp(now, zone).replace(hour=0, minute=0, second=0, microsecond=0)
        since = midnight - timedelta(days=6) if command.word == "week" else midnight
        return replies.costs(self.orders().views.costs("item", since=since.timestamp()), since.timestamp(), zone)

    async def _timer(self, command: Command, asked: Asked) -> str:
        orders, item_id = self.orders(), _id(command)
        if command.word == "cancel":
            item = orders.set_timer(item_id, None, asked.actor)
            return f"{_named(item)}: timer cancelled; it starts when the pipeline takes it up"
        assert command.at is not None
        item = orders.set_timer(item_id, "{:02d}:{:02d}".format(*command.at), asked.actor)
        assert item.start_after is not None
        return f"{_named(item)} starts at {replies.when(item.start_after, self._zone)}"

    async def _say(self, command: Command, asked: Asked) -> str:
        item_id = _id(command)
        try:
            message = MessageIn(text=command.rest or "")
        except ValidationError as err:
            raise invalid(err) from None
        await self.orders().say(item_id, message, asked.actor)
        return f"Told #{item_id}'s coder; its next run takes it."

    async def _ambient(self, command: Command, asked: Asked) -> str:
        on = command.word == "on"
        self._store.set_ambient(asked.transport, asked.said.room, on)
        return "I answer every message in this room now." if on else "I answer here only when named now."

    async def _allow(self, command: Command, asked: Asked) -> str:
        orders = self.orders()
        request = self._request(orders, command, asked)
        answer = PermissionAnswer(decision=_ANSWER[command.name], message=command.rest)
        done = orders.answer_permission(request.id, answer, asked.actor)
        rule = f"; saved the rule {done.rule}" if done.rule else ""
        return f"{done.decision.value.replace('_', ' ')}: #{request.item_id}'s {_tool(request)}{rule}"

    _deny = _always = _allow

    def _request(self, orders: Orders, command: Command, asked: Asked) -> PermissionRequestOut:
        """The waiting request an answer is for: named, the one its message replies to, or the only one."""
        pending = orders.pending_permissions()
        if command.request_id is not None:
            found = [r for r in pending if r.id == command.request_id]
        elif command.item_id is not None:
            found = [r for r in pending if r.item_id == command.item_id][:1]
        elif (sent := self._replied_to(asked)) is not None:
            found = [r for r in pending if r.id == sent]
        else:
            found = pending if len(pending) == 1 else []
            if len(pending) > 1:
                listed = "; ".join(f"{r.about} {_tool(r)} ({r.id})" for r in pending)
                raise ConfigError("chat", f"{command.name}: {len(pending)} requests wait: say which ({listed})")
        if not found:
            raise NotFoundError("pending permission request", command.request_id or _which(command))
        return found[0]

    def _replied_to(self, asked: Asked) -> str | None:
        """The permission request of the notice a message replies to, if it replies to one."""
        if asked.said.reply_to is None:
            return None
        sent = self._store.sent_message(asked.transport, asked.said.reply_to)
        return sent.request_id if sent is not None else None


def _id(command: Command) -> int:
    assert command.item_id is not None  # the parser's table gives these commands an id
    return command.item_id


def _named(item: ItemOut) -> str:
    return f"#{item.id} {plain(item.title, limit=60)}"


def _tool(request: PermissionRequestOut) -> str:
    return plain(request.tool_name, limit=60)


def _which(command: Command) -> str:
    return f"for #{command.item_id}" if command.item_id is not None else "(none waits)"
