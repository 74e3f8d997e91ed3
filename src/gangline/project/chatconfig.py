"""The ``[[chat]]`` tables of project.toml: one per chat account gangline speaks through, secrets by name only.

A table names its ``transport`` and holds that platform's settings; what every transport shares
is who may speak (``allow``: an empty list lets nobody), the rooms it sends notices to and
listens in (each with its own filter and ambient setting), and how notices are coalesced.
Secrets never appear here: a ``*_env`` key names the environment variable that holds one.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, model_validator

from gangline.core.notices import NoticeKind
from gangline.core.profiles import StrictModel

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class RoomSettings(StrictModel):
    """A room (a Matrix room id, a channel): where notices go, which kinds, and whether every message there is
    for the bot."""

    id: str = Field(min_length=1, max_length=255)
    notify: tuple[NoticeKind, ...] = ()  # empty: every kind
    ambient: bool | None = None  # None: the table's ``ambient``


def _room(value: object) -> object:
    return {"id": value} if isinstance(value, str) else value


Room = Annotated[RoomSettings, BeforeValidator(_room)]


class ChatSettings(StrictModel):
    """What every transport's table holds."""

    transport: str
    name: str = Field(default="", pattern=rf"{_NAME}|^$")  # default: the transport's name
    allow: tuple[str, ...] = ()  # the people who may speak to gangline here (platform user ids); empty: nobody
    rooms: tuple[Room, ...] = ()
    ambient: bool = False  # every message in a room is for the bot, not only those naming it
    window_s: float = Field(default=2.0, ge=0, le=300)  # notices within this are coalesced into one message
    per_minute: int = Field(default=20, ge=1, le=600)  # one person's messages a minute; more are refused

    @property
    def key(self) -> str:
        """The name this account is known by in the store and the logs."""
        return self.name or self.transport

    def room(self, room_id: str) -> RoomSettings:
        return next((r for r in self.rooms if r.id == room_id), RoomSettings(id=room_id))

    def ambient_in(self, room_id: str) -> bool:
        found = self.room(room_id).ambient
        return self.ambient if found is None else found


class MatrixSettings(ChatSettings):
    """A Matrix account: the bot logs in once (token or password from the environment) and keeps its device."""

    transport: Literal["matrix"]
    homeserver: str = Field(pattern=r"^https?://[^\s/]+(/.*)?$")
    user: str = Field(pattern=r"^@[^:\s]+:[^\s]+$")  # @gangline:example.org
    token_env: str | None = Field(default=None, pattern=_ENV_NAME)
    password_env: str | None = Field(default=None, pattern=_ENV_NAME)
    device_name: str = Field(default="gangline", max_length=100)

    @model_validator(mode="after")
    def _one_secret(self) -> MatrixSettings:
        if (self.token_env is None) == (self.password_env is None):
            raise ValueError("expected token_env or password_env (the environment variable holding the bot's secret)")
        return self


class WebhookSettings(ChatSettings):
    """An outgoing webhook: every notice POSTed as JSON, signed with HMAC-SHA256 when a secret is named."""

    transport: Literal["webhook"]
    url: str = Field(pattern=r"^https?://\S+$")
    secret_env: str | None = Field(default=None, pattern=_ENV_NAME)
    notify: tuple[NoticeKind, ...] = ()  # empty: every kind


def _transport_of(value: object) -> str | None:
    found = value.get("transport") if isinstance(value, dict) else getattr(value, "transport", None)
    return found if isinstance(found, str) else None


TRANSPORTS = ("matrix", "webhook")
AnyChat = Annotated[
    Annotated[MatrixSettings, Tag("matrix")] | Annotated[WebhookSettings, Tag("webhook")],
    Discriminator(
        _transport_of,
        custom_error_type="transport",
        custom_error_message=f"expected one of {', '.join(map(repr, TRANSPORTS))}",
    ),
]
