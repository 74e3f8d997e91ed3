"""A chat transport in memory, for the door's tests: people say things into it, and what gangline sends is kept.

It meets ``chat.transport.Transport`` like Matrix does, with nothing behind it; the tests that
need a real platform use Synapse (``kits.synapse``). ``down`` makes sends fail as an unreachable
platform's would.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from gangline.chat.serving import door_of
from gangline.chat.transport import Hear, Outgoing, Said, TransportDown
from gangline.project.chatconfig import ChatSettings
from gangline.server.app import create_app
from gangline.server.serving import serving
from kits.loopback import Changes
from kits.mcp_kit import Served
from kits.pipeline_kit import FAST, Project

ROOM = "!room:example.org"
PERSON = "@person:example.org"


@dataclass(frozen=True)
class Sent:
    id: str
    message: Outgoing
    edits: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.edits[-1] if self.edits else self.message.text


class MemoryTransport:
    listens = True
    edits = True

    def __init__(self, settings: ChatSettings, names: tuple[str, ...] = ("gangline", "@gangline:example.org")) -> None:
        self.settings = settings
        self.names = names
        self.sent: list[Sent] = []
        self.down = False
        self.surprise: Exception | None = None  # raised once by the next send, as a platform's bug would be
        self.attempts = 0  # sends tried, failed ones included
        self._inbox: asyncio.Queue[Said] = asyncio.Queue()
        self._changes = Changes()
        self._ids = itertools.count(1)

    # --- the transport -----------------------------------------------------------------------

    async def listen(self, hear: Hear) -> None:
        while True:
            await hear(await self._inbox.get())

    async def send(self, message: Outgoing) -> str:
        self.attempts += 1
        if self.surprise is not None:
            surprise, self.surprise = self.surprise, None
            raise surprise
        if self.down:
            await self._changes.tell()
            raise TransportDown("the platform is down (kits.chat_kit)")
        sent = Sent(f"$m{next(self._ids)}", message)
        self.sent.append(sent)
        await self._changes.tell()
        return sent.id

    async def edit(self, room: str, message_id: str, text: str) -> None:
        next(s for s in self.sent if s.id == message_id).edits.append(text)
        await self._changes.tell()

    async def close(self) -> None:
        pass

    # --- the person ----------------------------------------------------------------------------

    def say(self, text: str, user: str = PERSON, room: str = ROOM, reply_to: str | None = None,
            direct: bool = False) -> str:  # fmt: skip
        message_id = f"$said{next(self._ids)}"
        self.deliver(Said(room, user, text, message_id, reply_to, direct))
        return message_id

    def deliver(self, said: Said) -> None:
        """Hand a message to gangline as the platform would."""
        self._inbox.put_nowait(said)

    async def wait_sent(self, matches: Callable[[Sent], bool], timeout_s: float = 20.0) -> Sent:
        """The first message gangline sent (or edited) that ``matches``, waiting for it (bounded)."""
        await self._changes.wait_for(lambda: any(matches(s) for s in self.sent), timeout_s)
        return next(s for s in self.sent if matches(s))

    async def wait_attempts(self, count: int, timeout_s: float = 20.0) -> None:
        """Until gangline has tried to send ``count`` times (failed tries included)."""
        await self._changes.wait_for(lambda: self.attempts >= count, timeout_s)

    async def answer_to(self, message_id: str, timeout_s: float = 20.0) -> str:
        return (await self.wait_sent(lambda s: s.message.reply_to == message_id, timeout_s)).text

    async def ask(self, text: str, **kwargs: object) -> str:
        """Say ``text`` naming the bot, and wait for its answer."""
        return await self.answer_to(self.say(f"gangline {text}", **kwargs))  # type: ignore[arg-type]


def memory_settings(**fields: object) -> ChatSettings:
    values: dict[str, object] = {"transport": "memory", "allow": (PERSON,), "rooms": (ROOM,), "window_s": 0.2}
    return ChatSettings.model_validate(values | fields)


@asynccontextmanager
async def chatting(project: Project, transport: MemoryTransport) -> AsyncIterator[Served]:
    """The project's app on a real uvicorn with ``transport`` as its chat door."""
    assert project.config is not None
    app = create_app(project.paths, project.config, project.store, dict(os.environ), settings=FAST,
                     doors=[door_of([transport])])  # fmt: skip
    async with serving(app) as url:
        yield Served(app, url)
