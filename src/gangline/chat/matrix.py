"""Matrix, on matrix-nio: the bot's own device with end-to-end encryption, its history kept across restarts.

The device, its keys and the sync token live in ``.gangline/chat/<name>/`` (hidden from agents
like the rest of ``.gangline/``), so a restarted gangline is the same device, decrypts what it
was sent while down, and resumes its sync where it stopped: what arrived while it was down is
answered, what it answered before is not (the door's ``take_up``). A first start answers
nothing older than itself. Sends carry the outbox row's id as Matrix's transaction id, so a
send repeated after a crash shows once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from nio import (
    AsyncClient,
    AsyncClientConfig,
    EncryptionError,
    ErrorResponse,
    ForwardedRoomKeyEvent,
    InviteMemberEvent,
    JoinedRoomsResponse,
    LocalProtocolError,
    LoginResponse,
    MatrixRoom,
    MegolmEvent,
    RoomKeyEvent,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
    WhoamiResponse,
)

from gangline.chat.transport import Hear, MessageRefused, Outgoing, Said, TransportDown, secret_from
from gangline.project.chatconfig import MatrixSettings
from gangline.project.paths import ProjectPaths

log = logging.getLogger(__name__)

SYNC_MS = 30_000  # a long poll: the homeserver answers at once when something happens
READY_S = 30.0
CHECK_S = 10.0  # a send waits this long for the first sync before it counts the transport as down
_REFUSED = frozenset({"M_FORBIDDEN", "M_NOT_FOUND", "M_UNKNOWN_TOKEN", "M_BAD_JSON", "M_TOO_LARGE"})


def secret_of(settings: MatrixSettings, where: str, env: Mapping[str, str]) -> tuple[str, str]:
    """("token" or "password", its value) from the environment variable the table names."""
    name, kind = (settings.token_env, "token") if settings.token_env else (settings.password_env, "password")
    assert name is not None  # the table requires one of the two
    return kind, secret_from(env, name, f"{where}.{kind}_env", f"the bot's {kind}")


class MatrixTransport:
    """One Matrix account: listens in its rooms (and direct messages) and sends gangline's messages."""

    listens = True
    edits = True

    def __init__(self, settings: MatrixSettings, where: str, paths: ProjectPaths, env: Mapping[str, str]) -> None:
        self.settings = settings
        self._secret = secret_of(settings, where, env)
        self.store_dir = paths.state_dir / "chat" / settings.key
        self._client: AsyncClient | None = None
        self._connecting = asyncio.Lock()
        self._ready = asyncio.Event()  # set once the first sync is in: rooms are known, sends can go
        self._hear: Hear | None = None
        self._undecrypted: list[tuple[MatrixRoom, MegolmEvent]] = []
        self._display = settings.user.split(":", 1)[0].removeprefix("@")

    @property
    def names(self) -> tuple[str, ...]:
        return (self.settings.user, self._display)

    # --- connecting ------------------------------------------------------------------------

    async def _connected(self) -> AsyncClient:
        async with self._connecting:
            if self._client is None:
                self._client = await self._login()
            return self._client

    async def _login(self) -> AsyncClient:
        self.store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        kind, secret = self._secret
        saved = _read_device(self.store_dir)
        client = _client(self.settings, self.store_dir, saved.get("device_id") if saved else None)
        try:
            if kind == "token":
                client.access_token = secret
                who = await client.whoami() if saved is None else None
                device = saved["device_id"] if saved else _device_of(who)
                client.restore_login(self.settings.user, device, secret)
                _save_device(self.store_dir, device, None)
            elif saved is not None and saved.get("access_token"):
                client.restore_login(self.settings.user, saved["device_id"], saved["access_token"])
            else:
                login = await client.login(secret, device_name=self.settings.device_name)
                if not isinstance(login, LoginResponse):
                    raise TransportDown(f"the homeserver refused the bot's login: {login}")
                _save_device(self.store_dir, login.device_id, login.access_token)
            if client.should_upload_keys:
                _checked(await client.keys_upload(), "upload the device's keys")
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            await client.close()
            raise TransportDown(f"cannot reach {self.settings.homeserver}: {err!r}") from err
        except BaseException:
            await client.close()
            raise
        return client

    # --- listening -------------------------------------------------------------------------

    async def listen(self, hear: Hear) -> None:
        client = await self._connected()
        self._hear = hear
        try:
            if client.loaded_sync_token is None and client.next_batch is None:
                # A first start: everything in the rooms so far is history, not orders.
                _checked(await client.sync(timeout=0, full_state=True), "sync")
            self._watch(client)
            await self._join_rooms(client)
            self._ready.set()
            while True:
                _checked(await client.sync(timeout=SYNC_MS), "sync")
                await self._keys(client)
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            raise TransportDown(f"lost {self.settings.homeserver}: {err}") from err

    def _watch(self, client: AsyncClient) -> None:
        if getattr(client, "_gangline_watched", False):
            return
        client.add_event_callback(self._on_message, RoomMessageText)
        client.add_event_callback(self._on_undecrypted, MegolmEvent)
        client.add_event_callback(self._on_invite, InviteMemberEvent)
        client.add_to_device_callback(self._on_room_key, (RoomKeyEvent, ForwardedRoomKeyEvent))
        client.add_response_callback(self._on_sync, SyncResponse)
        client._gangline_watched = True

    async def _join_rooms(self, client: AsyncClient) -> None:
        for room in self.settings.rooms:
            if room.id not in client.rooms:
                joined = await client.join(room.id)
                if isinstance(joined, ErrorResponse):
                    log.error("cannot join a configured Matrix room", extra={"action": "chat_join",
                              "transport": self.settings.key, "room": room.id, "error": str(joined)})  # fmt: skip

    async def _keys(self, client: AsyncClient) -> None:
        """What sync_forever would do between syncs: send to-device messages, publish and fetch keys."""
        await client.send_to_device_messages()
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())

    async def _on_sync(self, _response: SyncResponse) -> None:
        self._ready.set()

    async def _on_message(self, room: MatrixRoom, event: RoomMessageText) -> None:
        if event.sender == self.settings.user or self._hear is None:
            return
        content: dict[str, Any] = event.source.get("content", {})
        relation = content.get("m.relates_to") or {}
        if relation.get("rel_type") == "m.replace":
            return  # an edit of an earlier message is not a new order
        reply_to = (relation.get("m.in_reply_to") or {}).get("event_id")
        said = Said(room.room_id, event.sender, _without_quote(event.body), event.event_id, reply_to,
                    direct=room.member_count == 2)  # fmt: skip
        try:
            await self._hear(said)
        except Exception:  # one message's failure must not stop the sync that brings the next
            log.exception(
                "chat message failed",
                extra={
                    "action": "chat_failed",
                    "transport": self.settings.key,
                    "room": room.room_id,
                    "message_id": event.event_id,
                },
            )

    async def _on_undecrypted(self, room: MatrixRoom, event: MegolmEvent) -> None:
        self._undecrypted.append((room, event))  # its room key may come a moment later

    async def _on_room_key(self, _event: RoomKeyEvent | ForwardedRoomKeyEvent) -> None:
        client, still = self._client, []
        for room, event in self._undecrypted:
            try:
                decrypted = client.decrypt_event(event) if client else None
            except EncryptionError:
                still.append((room, event))
                continue
            if isinstance(decrypted, RoomMessageText):
                await self._on_message(room, decrypted)
        self._undecrypted = still

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        # Only people who may give orders bring the bot into a room.
        if (
            event.state_key == self.settings.user
            and event.membership == "invite"
            and event.sender in self.settings.allow
        ):
            client = await self._connected()
            await client.join(room.room_id)

    # --- sending ---------------------------------------------------------------------------

    async def send(self, message: Outgoing) -> str:
        # Notices, answers included, so that other bots do not answer them (the spec's m.notice).
        content: dict[str, Any] = {"msgtype": "m.notice", "body": message.text}
        if message.reply_to:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": message.reply_to}}
        txn = f"gangline-{self.settings.key}-{message.key}" if message.key else None
        return await self._send(message.room, content, txn)

    async def edit(self, room: str, message_id: str, text: str) -> None:
        content = {"msgtype": "m.notice", "body": f"* {text}", "m.new_content": {"msgtype": "m.notice", "body": text},
                   "m.relates_to": {"rel_type": "m.replace", "event_id": message_id}}  # fmt: skip
        await self._send(room, content, None)

    async def _send(self, room: str, content: dict[str, Any], txn: str | None) -> str:
        client = await self._connected()
        try:
            async with asyncio.timeout(READY_S):
                await self._ready.wait()
            if room not in client.rooms:
                await self._check_joined(client, room)
            if client.rooms[room].encrypted:
                await self._share_keys(client, room)
            sent = await client.room_send(room, "m.room.message", content, tx_id=txn, ignore_unverified_devices=True)
        except (aiohttp.ClientError, OSError, TimeoutError, LocalProtocolError) as err:
            raise TransportDown(f"cannot send to {room}: {err}") from err
        if isinstance(sent, RoomSendResponse):
            return str(sent.event_id)
        if isinstance(sent, ErrorResponse) and sent.status_code in _REFUSED:
            raise MessageRefused(f"{room}: {sent.status_code} {sent.message}")
        raise TransportDown(f"{room}: {sent}")

    async def _check_joined(self, client: AsyncClient, room: str) -> None:
        """A room the bot has joined but not yet synced waits (TransportDown); one it is not in never will."""
        joined = await client.joined_rooms()
        if isinstance(joined, JoinedRoomsResponse) and room not in joined.rooms:
            raise MessageRefused(f"the bot is not in the room {room}")
        raise TransportDown(f"the bot's view of {room} is not in yet")

    async def _share_keys(self, client: AsyncClient, room: str) -> None:
        """Know every member's devices before encrypting, and re-key when one has not got the session."""
        await client.joined_members(room)
        if client.should_query_keys:
            await client.keys_query()
        olm = client.olm
        session = olm.outbound_group_sessions.get(room) if olm else None
        if olm is None or session is None:
            return
        covered = session.users_shared_with | session.users_ignored
        for user in client.rooms[room].users:
            for device in olm.device_store.active_user_devices(user):
                if device.id != client.device_id and (user, device.id) not in covered:
                    client.invalidate_outbound_session(room)
                    return

    async def check(self) -> str:
        # Plain HTTP, not nio: a running server holds the device's key store, and a password login
        # would make a new device each time doctor runs.
        base = self.settings.homeserver.rstrip("/")
        kind, secret = self._secret
        saved = _read_device(self.store_dir)
        token = secret if kind == "token" else (saved or {}).get("access_token")
        async with httpx.AsyncClient(timeout=CHECK_S) as http:
            try:
                versions = await http.get(f"{base}/_matrix/client/versions")
                if versions.status_code != 200:
                    raise TransportDown(f"{base} does not answer as a Matrix homeserver ({versions.status_code})")
                if token is None:
                    return f"{base} answers; the bot logs in with its password at the first start"
                who = await http.get(f"{base}/_matrix/client/v3/account/whoami",
                                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            except httpx.HTTPError as err:
                raise TransportDown(f"cannot reach {base}: {err!r}") from err
        if who.status_code != 200:
            raise MessageRefused(f"{base} does not accept the bot's {kind}: {who.text[:200]}")
        user = who.json().get("user_id")
        if user != self.settings.user:
            raise MessageRefused(f"the {kind} is {user}'s, not {self.settings.user}'s")
        return f"signed in as {user} on {base}"

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


def _client(settings: MatrixSettings, store: Path, device_id: str | None) -> AsyncClient:
    config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
    return AsyncClient(settings.homeserver, settings.user, device_id=device_id, store_path=str(store), config=config)


def _device_of(who: WhoamiResponse | ErrorResponse | None) -> str:
    if not isinstance(who, WhoamiResponse) or not who.device_id:
        # Down, not refused: what waits in the outbox stays there until the token is put right.
        raise TransportDown(f"the homeserver did not accept the bot's token: {who}")
    return str(who.device_id)


def _checked(response: object, doing: str) -> None:
    if isinstance(response, ErrorResponse):
        raise TransportDown(f"could not {doing}: {response}")


def _without_quote(body: str) -> str:
    """A reply's body starts with the quoted message ("> <@x> ..." lines): the person's words follow it."""
    lines = body.split("\n")
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).strip()


_DEVICE_FILE = "device.json"


def _read_device(store: Path) -> dict[str, str] | None:
    try:
        found = json.loads((store / _DEVICE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and isinstance(found.get("device_id"), str) else None


def _save_device(store: Path, device_id: str, access_token: str | None) -> None:
    path = store / _DEVICE_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the token is a secret
    with os.fdopen(fd, "w") as out:
        json.dump({"device_id": device_id, "access_token": access_token}, out)
