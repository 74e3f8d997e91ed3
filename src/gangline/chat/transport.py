"""The seam every chat platform meets: what a person said, and how gangline says something back.

A transport connects one ``[[chat]]`` account; it hands each message it receives to the door
(``Hear``) and sends what the outbox holds. Errors say whether trying again can help:
``TransportDown`` (the platform is unreachable or busy: the courier retries with backoff) or
``MessageRefused`` (this message will never go: it is set aside and logged).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gangline.core.errors import ConfigError
from gangline.core.records import OutboxRow
from gangline.project.chatconfig import ChatSettings


@dataclass(frozen=True)
class Said:
    """One message a person sent, as the platform delivered it."""

    room: str
    user: str  # the platform's id for who spoke: what ``allow`` lists
    text: str
    message_id: str  # unique on the transport: a message is taken up once
    reply_to: str | None = None  # the message this one answers (a notice it replies to)
    direct: bool = False  # a direct message to the bot: always for it


@dataclass(frozen=True)
class Undelivered:
    """The platform says, after the fact, that a message gangline sent did not reach its room (WhatsApp's
    closed window, reported in a status webhook): it is taken back into the outbox and sent again."""

    message_id: str


Hear = Callable[[Said | Undelivered], Awaitable[None]]


@dataclass(frozen=True)
class Outgoing:
    """One message gangline says: an answer (``reply_to`` set), a notice, or a live view (no ``key``)."""

    room: str
    text: str
    key: str | None = None  # the same key sent twice shows once, where the platform allows it
    reply_to: str | None = None
    request_id: str | None = None  # a permission request it asks about: a transport may add buttons

    @classmethod
    def of(cls, row: OutboxRow) -> Outgoing:
        # The row's id repeats in another project's database (or this one's, started afresh): its creation
        # time in milliseconds makes the key its own, and a resend of the same row carries the same key.
        return cls(row.room, row.text, f"out-{row.id}-{round(row.created_at * 1000)}", row.reply_to, row.request_id)


def secret_from(env: Mapping[str, str], name: str, key: str, what: str) -> str:
    """The secret in the environment variable ``name`` (the ``[[chat]]`` key ``key`` names it); ConfigError if unset."""
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(key, f"expected the environment variable {name} to hold {what}, but it is not set")
    return value


class TransportDown(Exception):
    """The platform cannot be reached now; the same call may work later."""


class MessageHeld(Exception):
    """The platform may not take this message now (WhatsApp outside 24 hours of the person's last message):
    it and what follows it in its room wait until the courier is woken (the person writes)."""


class MessageRefused(Exception):
    """The platform refused this message for good (no such room, not allowed there)."""


class Transport(Protocol):
    """One chat account: listens for messages and sends gangline's."""

    settings: ChatSettings

    @property
    def names(self) -> tuple[str, ...]:
        """How people name the bot in a message (its user name, its id as the client renders a mention)."""
        ...

    @property
    def listens(self) -> bool:
        """False for a transport that only sends (a webhook)."""
        ...

    @property
    def edits(self) -> bool:
        """False where a message, once sent, cannot be changed (WhatsApp, a webhook)."""
        ...

    async def listen(self, hear: Hear) -> None:
        """Connect and hand every new message to ``hear`` until cancelled; TransportDown when the connection fails."""
        ...

    async def send(self, message: Outgoing) -> str:
        """Send one message; its platform message id."""
        ...

    async def edit(self, room: str, message_id: str, text: str) -> None:
        """Replace the text of a message gangline sent (htop's live view)."""
        ...

    async def check(self) -> str:
        """For ``gangline doctor``, without changing anything: who the account is and that the platform answers.
        TransportDown or MessageRefused say what is wrong."""
        ...

    async def close(self) -> None: ...
