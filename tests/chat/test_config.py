"""The [[chat]] tables of project.toml: read into typed settings, and bad ones refused naming the key."""

from __future__ import annotations

import os

import pytest

from gangline.chat.serving import chat_door
from gangline.core.errors import ConfigError
from gangline.core.notices import NoticeKind
from gangline.project.chatconfig import MatrixSettings, WebhookSettings
from gangline.project.config import load_project_text
from gangline.project.paths import ProjectPaths

AGENT = '[[agent]]\nname = "coder"\ncli = "fake"\n'
MATRIX = '[[chat]]\ntransport = "matrix"\nhomeserver = "http://127.0.0.1:8008"\nuser = "@g:localhost"\n'


def load(text: str):  # type: ignore[no-untyped-def]
    return load_project_text(AGENT + text, ".gangline/project.toml", {})


def test_a_matrix_and_a_webhook_table_are_read_with_rooms_as_ids_or_tables() -> None:
    rooms = 'rooms = ["!a:localhost", { id = "!b:localhost", notify = ["blocked"], ambient = true }]\n'
    hook = '[[chat]]\ntransport = "webhook"\nurl = "https://hooks.example.org/x"\nnotify = ["merged"]\n'
    config = load(MATRIX + 'token_env = "MX"\nallow = ["@ann:localhost"]\n' + rooms + hook)
    matrix, hook = config.chats
    assert isinstance(matrix, MatrixSettings) and isinstance(hook, WebhookSettings)
    assert (matrix.key, hook.key) == ("matrix", "webhook")
    assert not matrix.ambient_in("!a:localhost") and matrix.ambient_in("!b:localhost")
    assert matrix.room("!b:localhost").notify == (NoticeKind.BLOCKED,) and hook.notify == (NoticeKind.MERGED,)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('[[chat]]\ntransport = "irc"\n',
         "chat[1].transport: expected one of 'matrix', 'slack', 'discord', 'whatsapp', 'webhook', got \"irc\""),
        ('[[chat]]\nurl = "x"\n', "chat[1].transport: is required but missing"),
        (MATRIX, "chat[1]: expected token_env or password_env (the environment variable holding the bot's secret)"),
        (MATRIX.replace("http://127.0.0.1:8008", "ftp:/x") + 'token_env = "MX"\n', "chat[1].homeserver: expected text"),
        ('[[chat]]\ntransport = "webhook"\nurl = "http://x/y"\nnotify = ["lunch"]\n', "chat[1].notify[1]: expected"),
        ('[[chat]]\ntransport = "webhook"\nurl = "http://x/y"\nhomeserver = "x"\n', "chat[1].homeserver: unknown key"),
        ('[[chat]]\ntransport = "webhook"\nurl = "http://x/y"\nrooms = [{ id = "x", colour = 1 }]\n',
         "chat[1].rooms[1].colour: unknown key; expected one of: id, notify, ambient"),
        ('[[chat]]\ntransport = "webhook"\nurl = "http://x/y"\n[[chat]]\ntransport = "webhook"\nurl = "http://x/z"\n',
         'chat[2].name: expected a name no other [[chat]] uses, got "webhook" (chat[1] has it)'),
    ],
)  # fmt: skip
def test_a_bad_chat_table_is_refused_naming_its_key(text: str, said: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load(text)
    assert str(refused.value).startswith(f".gangline/project.toml: {said}")


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(
        ConfigError, match='time_zone: expected an IANA time zone such as Europe/Berlin or UTC, got "Mars'
    ):
        load_project_text('time_zone = "Mars/Olympus"\n' + AGENT, ".gangline/project.toml", {})


def test_a_secret_that_is_not_set_stops_serving_before_it_starts_naming_the_key(tmp_path: os.PathLike[str]) -> None:
    config = load(MATRIX + 'token_env = "GANGLINE_TEST_UNSET_TOKEN"\n')
    with pytest.raises(ConfigError) as refused:
        chat_door(config, ProjectPaths(tmp_path), {})  # type: ignore[arg-type]
    assert str(refused.value) == (
        "chat[1].token_env: expected the environment variable GANGLINE_TEST_UNSET_TOKEN to hold the bot's token, "
        "but it is not set"
    )
