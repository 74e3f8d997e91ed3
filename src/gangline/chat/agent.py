"""The chat agent: what people say in a room that is no command, answered by a Claude Code session of the room's own.

One session per room, its id kept in the room's row (``chat_rooms.agent_session``), so the
conversation outlives a restart; one message at a time per room (the next waits its turn, and
the database refuses a second live run in a room anyway). Each message is a recorded run
(``Orchestrator.converse``) with its cost in the ledger, held to the chat profile's
``max_turns`` and ``max_budget_usd``; it reaches the people's MCP tools with a token of its own,
never the person's, and its tool calls are decided by the permission rules or asked in chat like
any agent's. The answer goes to the outbox as a reply to the message. ``reset`` stops what the
room's agent is doing and forgets its session.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gangline.chat.commands import Asked
from gangline.core import conversation
from gangline.core.chat import Command
from gangline.core.errors import GanglineError
from gangline.core.problems import detail_of
from gangline.core.profiles import AgentProfile
from gangline.pipeline.orders import Orders

log = logging.getLogger(__name__)

RESET_WAIT_S = 30.0  # reset waits this long for the stopped answer to end (its agent's kill grace and drain)
QUEUED = "I am still answering the last message here; I take this one next."
FAILED = "I could not answer: something went wrong inside gangline (its log says what). Ask again, or say reset."


class ChatAgent:
    """One ``[[chat]]`` account's chat agent: a session per room, a message at a time per room."""

    def __init__(
        self, key: str, orders: Callable[[], Orders], profile: AgentProfile, home: Path, wake: Callable[[], None]
    ) -> None:
        self.key = key
        self.orders = orders
        self.profile = conversation.launched(profile)
        self.home = home  # each room's agent works in a directory of its own under here
        self.wake = wake  # the courier: an answer waits in the outbox
        self._turns: dict[str, asyncio.Lock] = {}
        self._resets: dict[str, int] = {}  # per room, how often it was reset: an answer from before is dropped
        self._tasks: set[asyncio.Task[None]] = set()
        self._answering: dict[str, asyncio.Task[Any]] = {}  # per room, the answer under way

    async def hear(self, text: str, asked: Asked) -> str | None:
        """Take one message up; the answer comes later, through the outbox. What to say at once, if anything."""
        room = asked.said.room
        turn = self._turns.setdefault(room, asyncio.Lock())
        busy = turn.locked()
        task = asyncio.create_task(self._answer(text, asked, turn), name=f"chat agent {self.key} {room}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return QUEUED if busy else None

    async def run(self) -> None:
        """Until cancelled (the account stops): then the answers under way stop with it."""
        try:
            await asyncio.Event().wait()
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks))

    async def reset(self, command: Command, asked: Asked) -> str:
        """Forget the room's session, and stop the answer under way there, if any."""
        room = asked.said.room
        self._resets[room] = self._resets.get(room, 0) + 1
        orch = self.orders().orchestrator
        stopped = [r.id for r in orch.store.runs(live_only=True) if (r.chat_transport, r.chat_room) == (self.key, room)]
        for run_id in stopped:
            orch.stop_run(run_id, f"reset by {asked.actor}")
        under_way = self._answering.get(room)
        if under_way is not None:  # what is said next is no longer queued behind the dropped answer
            await asyncio.wait({under_way}, timeout=RESET_WAIT_S)
        orch.store.set_agent_session(self.key, room, None)
        orch.store.record_event("chat_reset", asked.actor, data={"transport": self.key, "room": room})
        dropped = " I dropped the answer I was working on." if stopped else ""
        return f"Started over: the next thing said here begins a new conversation.{dropped}"

    async def _answer(self, text: str, asked: Asked, turn: asyncio.Lock) -> None:
        room = asked.said.room
        async with turn:
            task = asyncio.current_task()
            assert task is not None  # a coroutine run by a task (hear made it one)
            self._answering[room] = task
            try:
                reply = await self._converse(room, conversation.prompt(asked.said.user, text))
            except Exception as err:  # a bug must not leave the person waiting in silence
                log.exception("chat agent failed", exc_info=err, extra={"action": "chat_agent_failed",
                              "transport": self.key, "room": room})  # fmt: skip
                reply = FAILED
            finally:
                del self._answering[room]
        if reply is not None:
            self.orders().orchestrator.store.queue_reply(self.key, room, reply, reply_to=asked.said.message_id)
            self.wake()

    async def _converse(self, room: str, prompt: str) -> str | None:
        """The answer to one message; None when the room was reset meanwhile (the reset said so)."""
        orders = self.orders()
        store = orders.orchestrator.store
        generation = self._resets.get(room, 0)
        session = store.chat_room(self.key, room).agent_session
        while True:
            try:
                result = await orders.orchestrator.converse(
                    self.key, room, self.profile, prompt, self._directory(room), session
                )
            except GanglineError as err:
                return conversation.not_started(detail_of(err).message)
            if self._resets.get(room, 0) != generation:
                return None
            if session is None or not conversation.session_gone(result.ending):
                break
            log.warning("chat agent session gone; starting a new one", extra={"action": "chat_session_gone",
                        "transport": self.key, "room": room, "session_id": session})  # fmt: skip
            session = None  # the CLI lost it (its state was removed): the message goes to a new session
        if result.summary.session_id is not None:
            store.set_agent_session(self.key, room, result.summary.session_id)
        return conversation.answer(result.ending, result.summary.result_text, self.profile, orders.config.zone())

    def _directory(self, room: str) -> Path:
        """The room's own working directory: the same for every message, so the CLI finds its session again."""
        path = self.home / hashlib.sha256(room.encode()).hexdigest()[:16]
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path
