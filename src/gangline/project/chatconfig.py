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
    daily_summary: str | None = Field(default=None, pattern=r"^([01]?\d|2[0-3]):[0-5]\d$")  # HH:MM, time_zone's

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


_LISTEN = r"^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$"  # host:port, [v6]:port


class SlackSettings(ChatSettings):
    """A Slack app: Socket Mode by default (no public URL), or the Events API on a URL Slack can reach.

    ``allow`` holds Slack user ids (U024BE7LH); ``rooms`` channel ids (C0123).
    """

    transport: Literal["slack"]
    bot_token_env: str = Field(pattern=_ENV_NAME)  # xoxb-...
    mode: Literal["socket", "events"] = "socket"
    app_token_env: str | None = Field(default=None, pattern=_ENV_NAME)  # xapp-..., for Socket Mode
    signing_secret_env: str | None = Field(default=None, pattern=_ENV_NAME)  # for the Events API
    listen: str = Field(default="127.0.0.1:8790", pattern=_LISTEN)  # the Events API's endpoint (events mode)
    api_url: str = Field(default="https://slack.com/api/", pattern=r"^https?://\S+/$")

    @model_validator(mode="after")
    def _secrets_for_the_mode(self) -> SlackSettings:
        if self.mode == "socket" and self.app_token_env is None:
            raise ValueError('expected app_token_env (an xapp- token) for mode = "socket"')
        if self.mode == "events" and self.signing_secret_env is None:
            raise ValueError('expected signing_secret_env (the app\'s signing secret) for mode = "events"')
        return self


class DiscordSettings(ChatSettings):
    """A Discord bot: messages that mention it or arrive in its ``rooms`` (channel ids), slash commands, buttons.

    ``allow`` holds Discord user ids (snowflakes). Interactions come over the gateway; with
    ``public_key`` set, an HTTP interactions endpoint on ``listen`` takes them too, Ed25519-verified.
    """

    transport: Literal["discord"]
    token_env: str = Field(pattern=_ENV_NAME)
    application_id: str | None = Field(default=None, pattern=r"^\d{5,25}$")  # for slash commands
    guild_id: str | None = Field(default=None, pattern=r"^\d{5,25}$")  # the slash command in this server only
    # The privileged intent (enable it in the developer portal first): the text of every message, not only of
    # mentions, replies to the bot and DMs; an ambient room needs it.
    message_content: bool = False
    public_key: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")  # not a secret: Discord shows it
    listen: str = Field(default="127.0.0.1:8791", pattern=_LISTEN)
    api_url: str = Field(default="https://discord.com/api/v10", pattern=r"^https?://\S+$")


class WhatsAppSettings(ChatSettings):
    """WhatsApp through Meta's Cloud API or Twilio; its webhook listens on ``listen`` behind ``public_url``.

    ``allow`` and ``rooms`` hold phone numbers in E.164 (+4915112345678). Outside 24 hours of a
    person's last message WhatsApp takes only approved templates: with ``template`` set a notice
    goes as that template (its one parameter the text), otherwise it is held until they write.
    """

    transport: Literal["whatsapp"]
    provider: Literal["meta", "twilio"]
    public_url: str = Field(pattern=r"^https?://\S+$")  # where the platform reaches ``listen`` (signatures use it)
    listen: str = Field(default="127.0.0.1:8792", pattern=_LISTEN)
    # Meta Cloud API
    phone_number_id: str | None = Field(default=None, pattern=r"^\d{5,25}$")
    token_env: str | None = Field(default=None, pattern=_ENV_NAME)
    app_secret_env: str | None = Field(default=None, pattern=_ENV_NAME)  # X-Hub-Signature-256
    verify_token_env: str | None = Field(default=None, pattern=_ENV_NAME)  # the subscription handshake
    # Twilio
    account_sid: str | None = Field(default=None, pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token_env: str | None = Field(default=None, pattern=_ENV_NAME)
    from_number: str | None = Field(default=None, pattern=r"^\+\d{6,15}$")
    # The provider's API; default: Meta's Graph API or Twilio's REST API (tests point it at a fake).
    api_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    # outside the 24-hour window: Meta's template name, or Twilio's Content SID (HX...) of an approved template
    template: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,512}$|^HX[0-9a-fA-F]{32}$")
    template_language: str = Field(default="en", pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")  # Meta's

    @property
    def api_base(self) -> str:
        default = "https://graph.facebook.com" if self.provider == "meta" else "https://api.twilio.com"
        return (self.api_url or default).rstrip("/")

    @model_validator(mode="after")
    def _provider_keys(self) -> WhatsAppSettings:
        needed = {"meta": ("phone_number_id", "token_env", "app_secret_env", "verify_token_env"),
                  "twilio": ("account_sid", "auth_token_env", "from_number")}[self.provider]  # fmt: skip
        missing = [key for key in needed if getattr(self, key) is None]
        if missing:
            raise ValueError(f'expected {", ".join(missing)} for provider = "{self.provider}"')
        if self.template is not None and self.template.startswith("HX") != (self.provider == "twilio"):
            kind = "a Content SID (HX...)" if self.provider == "twilio" else "a template name (lower case, digits, _)"
            raise ValueError(f'expected template to be {kind} for provider = "{self.provider}"')
        return self


def _transport_of(value: object) -> str | None:
    found = value.get("transport") if isinstance(value, dict) else getattr(value, "transport", None)
    return found if isinstance(found, str) else None


TRANSPORTS = ("matrix", "slack", "discord", "whatsapp", "webhook")
AnyChat = Annotated[
    Annotated[MatrixSettings, Tag("matrix")]
    | Annotated[SlackSettings, Tag("slack")]
    | Annotated[DiscordSettings, Tag("discord")]
    | Annotated[WhatsAppSettings, Tag("whatsapp")]
    | Annotated[WebhookSettings, Tag("webhook")],
    Discriminator(
        _transport_of,
        custom_error_type="transport",
        custom_error_message=f"expected one of {', '.join(map(repr, TRANSPORTS))}",
    ),
]
