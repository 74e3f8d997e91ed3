"""WhatsApp, through Meta's Cloud API or Twilio: the webhook, the 24-hour window, and what waits outside it.

WhatsApp lets a business send free text only within 24 hours of the person's last message. The
transport keeps when each room's person last wrote, and which rooms it held messages for, in
``.gangline/chat/<name>/window.json``, so a restart keeps both. Outside the window a message goes
as the configured template (its one parameter the text, saying it went so), or is held
(``MessageHeld``): the courier keeps the room's messages until the person writes, which opens
the window and, through the door's answer, wakes the courier; the first of them then says it
was held. The providers (``whatsapp_meta``, ``whatsapp_twilio``) do the platform's part: the
webhook's signature and payload, and the sending.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Protocol

from starlette.routing import BaseRoute

from gangline.chat.inbound import Inbound
from gangline.chat.transport import Hear, MessageHeld, MessageRefused, Outgoing, Said, TransportDown, Undelivered
from gangline.chat.whatsapp_meta import MetaProvider
from gangline.chat.whatsapp_twilio import TwilioProvider
from gangline.core.text import plain
from gangline.core.types import Clock
from gangline.project.chatconfig import WhatsAppSettings
from gangline.project.paths import ProjectPaths

log = logging.getLogger(__name__)

PATH = "/whatsapp"  # the webhook is <public_url>/whatsapp
WINDOW_S = 24 * 3600.0
MARGIN_S = 300.0  # a message sent just inside the window may reach WhatsApp just outside it
SEND_S = 30.0  # one send, all of it
TEMPLATE_CHARS = 1000  # a template's parameter: one line, at most 1024 characters
HELD_NOTE = "(held while the 24-hour window was closed)"
TEMPLATE_NOTE = "(sent as a template: the 24-hour window was closed; write to me to reopen it)"

Heard = Callable[[Said, float | None], Awaitable[None]]  # a message, and when the platform says it was written
# The platform says a room's window has closed, and which message of gangline's did not go because of it.
Lapsed = Callable[[str, str | None], Awaitable[None]]


class Provider(Protocol):
    """Meta's or Twilio's side: the webhook's routes, and sending free text or the template."""

    def routes(self, path: str, heard: Heard, lapsed: Lapsed) -> list[BaseRoute]: ...

    async def send(self, room: str, text: str, reply_to: str | None, request_id: str | None) -> str:
        """Free text (inside the window); MessageHeld when the platform says the window is closed."""
        ...

    async def send_template(self, room: str, text: str) -> str: ...

    async def check(self) -> str: ...

    async def close(self) -> None: ...


class Window:
    """When each room's person last wrote, and the rooms whose messages wait for them to write; kept in a file."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self._heard: dict[str, float] = {}
        self._held: set[str] = set()
        self._read()

    def is_open(self, room: str) -> bool:
        last = self._heard.get(room)
        return last is not None and self.clock() - last < WINDOW_S - MARGIN_S

    def heard(self, room: str, at: float) -> None:
        if at > self._heard.get(room, float("-inf")):
            self._heard[room] = at
            self._save()

    def lapsed(self, room: str) -> None:
        if self._heard.pop(room, None) is not None:
            self._save()

    def holds(self, room: str) -> bool:
        return room in self._held

    def hold(self, room: str) -> None:
        if room not in self._held:
            self._held.add(room)
            self._save()

    def release(self, room: str) -> None:
        if room in self._held:
            self._held.discard(room)
            self._save()

    def _read(self) -> None:
        try:
            found = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return  # nobody has written yet (or the file is damaged: then every window starts closed)
        if not isinstance(found, dict):
            return
        heard, held = found.get("heard"), found.get("held")
        if isinstance(heard, dict):
            self._heard = {k: float(v) for k, v in heard.items() if isinstance(k, str) and isinstance(v, int | float)}
        if isinstance(held, list):
            self._held = {room for room in held if isinstance(room, str)}

    def _save(self) -> None:
        # Phone numbers are personal: the directory is the owner's only, like the rest of .gangline/chat.
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = self.clock()
        heard = {room: at for room, at in self._heard.items() if now - at < WINDOW_S}  # a closed window is no news
        scratch = self.path.with_suffix(".tmp")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"heard": heard, "held": sorted(self._held)}, out)
        os.replace(scratch, self.path)


class WhatsAppTransport:
    """One WhatsApp number: its webhook on ``listen``, gangline's messages inside the window, the rest held."""

    listens = True
    edits = False  # WhatsApp cannot change a message it sent
    names: tuple[str, ...] = ("gangline",)

    def __init__(self, settings: WhatsAppSettings, where: str, paths: ProjectPaths, env: Mapping[str, str],
                 clock: Clock = time.time) -> None:  # fmt: skip
        self.settings = settings
        self.clock = clock
        self.window = Window(paths.state_dir / "chat" / settings.key / "window.json", clock)
        provider = MetaProvider if settings.provider == "meta" else TwilioProvider
        self._provider: Provider = provider(settings, where, env)
        self._hear: Hear | None = None
        self._hearing = asyncio.Lock()
        # The webhook's server; ``inbound.listening`` says when the platform can reach it.
        self.inbound = Inbound(settings.listen, self._provider.routes(PATH, self._heard, self._lapsed))

    async def listen(self, hear: Hear) -> None:
        self._hear = hear
        try:
            await self.inbound.run()
        except OSError as err:  # the address is taken: try again later, like a platform that is down
            raise TransportDown(str(err)) from err

    async def _heard(self, said: Said, written_at: float | None) -> None:
        # The window opens before the door answers, so the answer (and what was held) goes inside it. A message
        # the platform delivers again days later opens it only from when it was written.
        now = self.clock()
        self.window.heard(said.room, now if written_at is None else min(written_at, now))
        assert self._hear is not None  # routes exist only once listen has its door
        async with self._hearing:  # one at a time, in the order they came, as every transport hands them over
            await self._hear(said)

    async def _lapsed(self, room: str, undelivered: str | None) -> None:
        self.window.lapsed(room)
        if undelivered is not None:
            assert self._hear is not None  # routes exist only once listen has its door
            async with self._hearing:
                await self._hear(Undelivered(undelivered))  # back to the outbox: held, or sent as the template

    async def send(self, message: Outgoing) -> str:
        room = message.room
        if self.window.is_open(room):
            try:
                return await self._free(message)
            except MessageHeld:  # the platform knows better (a clock, a redelivered message): it is closed
                log.info("WhatsApp says the window is closed", extra={"action": "chat_window_closed",
                         "transport": self.settings.key, "room": room})  # fmt: skip
                self.window.lapsed(room)
        if message.key is None:  # a live view (htop) is not worth keeping until the person writes
            raise TransportDown(f"{room}: the 24-hour window is closed")
        if self.settings.template is not None:
            lines = (line for line in message.text.splitlines() if line.strip())  # a template's parameter is one line
            text = plain(" · ".join(lines), limit=TEMPLATE_CHARS - len(TEMPLATE_NOTE) - 1)
            sent = await _bounded(self._provider.send_template(room, f"{TEMPLATE_NOTE} {text}"))
            self.window.release(room)  # anything held before the template was set has gone as one now
            return sent
        self.window.hold(room)
        raise MessageHeld(f"{room}: nothing from them in 24 hours and no template is set: held until they write")

    async def _free(self, message: Outgoing) -> str:
        room = message.room
        text = f"{HELD_NOTE}\n{message.text}" if self.window.holds(room) else message.text
        sent = await _bounded(self._provider.send(room, text, message.reply_to, message.request_id))
        self.window.release(room)
        return sent

    async def edit(self, room: str, message_id: str, text: str) -> None:
        # WhatsApp cannot change a message once sent, and each update sent anew would flood the chat: a live
        # view (htop) shows its first state and ends there.
        raise MessageRefused("WhatsApp cannot edit a message")

    async def check(self) -> str:
        answers = await self._provider.check()
        hook = self.settings.public_url.rstrip("/") + PATH
        return f"{answers}; its webhook is {hook}, served on {self.settings.listen}"

    async def close(self) -> None:
        await self._provider.close()


async def _bounded(sending: Awaitable[str]) -> str:
    try:
        async with asyncio.timeout(SEND_S):
            return await sending
    except TimeoutError as err:
        raise TransportDown(f"no answer from WhatsApp in {SEND_S:g} s") from err
