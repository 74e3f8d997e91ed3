"""Chat as a door: a message is taken up once, checked for who spoke and how often, parsed, carried out, answered.

``ChatDoor.hear`` is what a transport calls for every message it receives. The answer is put in
the outbox (``store.chat``) and the courier sends it; a message the store has taken up before
(the platform delivered it again, or gangline restarted mid-answer) is never answered twice.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gangline.chat.commands import Asked, Commands
from gangline.chat.transport import Said, Transport, Undelivered
from gangline.core.chat import FreeText, addressed, parse
from gangline.core.errors import ConfigError, GanglineError
from gangline.core.problems import detail_of
from gangline.core.types import Clock
from gangline.pipeline.orders import Orders

log = logging.getLogger(__name__)

FreeTextHandler = Callable[[str, Asked], Awaitable[str | None]]  # None: the answer comes later, by itself
FLOOD_WINDOW_S = 60.0


@dataclass
class FloodGate:
    """At most ``per_minute`` messages a minute from one person; the first one over is answered, the rest not."""

    per_minute: int
    _seen: dict[str, deque[float]] = field(default_factory=dict)
    _told: set[str] = field(default_factory=set)

    def admit(self, user: str, now: float) -> bool | None:
        """True: go on; False: refuse, and say so; None: refuse silently (already told this minute)."""
        times = self._seen.setdefault(user, deque())
        while times and times[0] <= now - FLOOD_WINDOW_S:
            times.popleft()
        if len(times) < self.per_minute:
            times.append(now)
            self._told.discard(user)
            return True
        if user in self._told:
            return None
        self._told.add(user)
        return False


class ChatDoor:
    """One ``[[chat]]`` account's door: what its transport hears becomes orders, views and answers."""

    def __init__(
        self,
        transport: Transport,
        orders: Callable[[], Orders],
        commands: Commands,
        *,
        free_text: FreeTextHandler | None = None,
        wake: Callable[[], None] = lambda: None,
        clock: Clock = time.time,
    ) -> None:
        self.transport = transport
        self.settings = transport.settings
        self.key = transport.settings.key
        self.orders = orders
        self.commands = commands
        self.free_text = free_text
        self.wake = wake  # the courier: an answer waits in the outbox
        self.clock = clock
        self.flood = FloodGate(transport.settings.per_minute)

    async def hear(self, said: Said | Undelivered) -> None:
        store = self.orders().orchestrator.store
        if isinstance(said, Undelivered):
            if store.take_back(self.key, said.message_id):
                log.info("chat message taken back to send again", extra={"action": "chat_taken_back",
                         "transport": self.key, "message_id": said.message_id})  # fmt: skip
                self.wake()
            return
        text = self._for_us(said)
        if text is None or not store.take_up(self.key, said.message_id):
            return
        # The flood gate first: someone who may not give orders must not make the bot spam refusals.
        admitted = self.flood.admit(said.user, self.clock())
        if not admitted:
            if admitted is False:
                self._answer(said, f"{said.user}: too many messages (at most {self.settings.per_minute} a minute); "
                                   "I ignore the rest of this minute's")  # fmt: skip
            return
        if said.user not in self.settings.allow:
            log.warning("chat message from a person not allowed", extra=_fields(self.key, said, "chat_refused"))
            self._answer(said, f"{said.user} may not give gangline orders here: a person who may adds them to "
                               f"allow in the [[chat]] table {self.key!r} of .gangline/project.toml")  # fmt: skip
            return
        reply = await self._reply(text, Asked(self.key, said))
        if reply is not None:
            self._answer(said, reply)

    async def _reply(self, text: str, asked: Asked) -> str | None:
        try:
            parsed = parse(text)
            if isinstance(parsed, FreeText):
                return await self._free(parsed.text, asked)
            log.info("chat command", extra=_fields(self.key, asked.said, "chat_command") | {"command": parsed.name})
            return await self.commands.run(parsed, asked)
        except GanglineError as err:
            said = detail_of(err).message
            # The parser's own refusals name the command already: "chat: " would only repeat where it came from.
            return f"refused: {said.removeprefix('chat: ') if isinstance(err, ConfigError) else said}"

    async def _free(self, text: str, asked: Asked) -> str | None:
        if not text:
            return "Yes? Say help for what I can do."
        if self.free_text is None:
            return "That is no command I know (say help); and no chat agent is set up to talk it over."
        return await self.free_text(text, asked)

    def _for_us(self, said: Said) -> str | None:
        """The message's words when it is for the bot: a direct message, a reply to gangline, naming it, or ambient."""
        store = self.orders().orchestrator.store
        always = said.direct or (said.reply_to is not None and store.sent_message(self.key, said.reply_to) is not None)
        # A mention is stripped whenever there is one, even where none is needed.
        return addressed(said.text, self.transport.names, always or self._ambient(said))

    def _ambient(self, said: Said) -> bool:
        row = self.orders().orchestrator.store.chat_room(self.key, said.room)
        return self.settings.ambient_in(said.room) if row.ambient is None else row.ambient

    def _answer(self, said: Said, text: str) -> None:
        self.orders().orchestrator.store.queue_reply(self.key, said.room, text, reply_to=said.message_id)
        self.wake()


def _fields(key: str, said: Said, action: str) -> dict[str, object]:
    return {"action": action, "transport": key, "room": said.room, "user": said.user, "message_id": said.message_id}
