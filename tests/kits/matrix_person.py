"""A person on Matrix for the tests: a real matrix-nio client that talks, edits and listens, encrypted or not."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    EncryptionError,
    ForwardedRoomKeyEvent,
    InviteMemberEvent,
    JoinError,
    KeysUploadError,
    MatrixRoom,
    MegolmEvent,
    RoomCreateError,
    RoomInviteError,
    RoomKeyEvent,
    RoomMessageFormatted,
    RoomSendResponse,
    SyncError,
    SyncResponse,
)

from kits.synapse import Account, Synapse

SYNC_LONG_POLL_MS = 10_000
STOP_WITHIN_S = 10.0
MEGOLM = "m.megolm.v1.aes-sha2"


@dataclass(frozen=True)
class Message:
    """A text, notice or emote someone else posted, as this person's client understood it."""

    room_id: str
    sender: str
    body: str  # for an edit: the new text (m.new_content), not the "* ..." fallback
    event_id: str
    msgtype: str
    encrypted: bool  # arrived as m.room.encrypted and was decrypted here
    replaces: str | None = None  # for an m.replace edit: the edited event's id
    formatted_body: str | None = None
    content: dict[str, Any] = field(default_factory=dict)


def _message(room_id: str, event: RoomMessageFormatted) -> Message:
    content: dict[str, Any] = event.source.get("content", {})
    relation = content.get("m.relates_to") or {}
    replaces = relation.get("event_id") if relation.get("rel_type") == "m.replace" else None
    shown = content.get("m.new_content", content) if replaces else content
    return Message(
        room_id=room_id,
        sender=event.sender,
        body=str(shown.get("body", "")),
        event_id=event.event_id,
        msgtype=str(shown.get("msgtype", "")),
        encrypted=bool(getattr(event, "decrypted", False)),
        replaces=replaces,
        formatted_body=shown.get("formatted_body"),
        content=content,
    )


class Person:
    """One Matrix user on one device, syncing in the background; everything it waits for is bounded."""

    def __init__(self, client: AsyncClient, account: Account, accept_invites: bool) -> None:
        self.client = client
        self.account = account
        self._accept_invites = accept_invites
        self._seen: dict[str, list[Message]] = {}
        self._undecrypted: list[tuple[MatrixRoom, MegolmEvent]] = []
        self._changed = asyncio.Event()
        self._sync_task: asyncio.Task[None] | None = None
        client.add_event_callback(self._on_message, RoomMessageFormatted)
        client.add_event_callback(self._on_undecrypted, MegolmEvent)
        client.add_event_callback(self._on_invite, InviteMemberEvent)
        client.add_to_device_callback(self._on_room_key, (RoomKeyEvent, ForwardedRoomKeyEvent))
        client.add_response_callback(self._on_sync, SyncResponse)

    @classmethod
    @contextlib.asynccontextmanager
    async def login(
        cls, synapse: Synapse, account: Account, store_dir: Path, *, accept_invites: bool = True
    ) -> AsyncIterator[Person]:
        """Restore the account's device with an E2EE store in `store_dir`, sync once, then keep syncing."""
        store_dir.mkdir(parents=True, exist_ok=True)
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True, max_timeouts=3)
        client = AsyncClient(
            synapse.url, account.user_id, device_id=account.device_id, store_path=str(store_dir), config=config
        )
        person = cls(client, account, accept_invites)
        try:
            client.restore_login(account.user_id, account.device_id, account.access_token)  # loads the olm store
            await person._start()
            yield person
        finally:
            await person._stop()
            await client.close()

    async def _start(self) -> None:
        """Publish this device's keys before anyone needs them, catch up once, then sync in the background."""
        if self.client.should_upload_keys:
            uploaded = await self.client.keys_upload()
            if isinstance(uploaded, KeysUploadError):
                raise AssertionError(f"{self.user_id} could not upload its device keys: {uploaded.message}")
        first = await self.client.sync(timeout=0, full_state=True)
        if isinstance(first, SyncError):
            raise AssertionError(f"{self.user_id} could not sync: {first.message}")
        self._sync_task = asyncio.create_task(self._sync_loop(), name=f"sync {self.user_id}")
        self._sync_task.add_done_callback(lambda _task: self._bump())  # waiters learn at once that syncing died

    async def _sync_loop(self) -> None:
        # sync_forever also sends to-device messages and uploads, queries and claims keys between syncs
        await self.client.sync_forever(timeout=SYNC_LONG_POLL_MS)

    async def _stop(self) -> None:
        task = self._sync_task
        if task is None:
            return
        task.cancel()
        async with asyncio.timeout(STOP_WITHIN_S):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def user_id(self) -> str:
        return self.account.user_id

    # --- what the client hears -------------------------------------------------------------

    def _bump(self) -> None:
        """Wake every waiter; they re-check their condition."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _on_sync(self, _response: SyncResponse) -> None:
        self._bump()

    async def _on_message(self, room: MatrixRoom, event: RoomMessageFormatted) -> None:
        if event.sender == self.user_id:
            return
        self._seen.setdefault(room.room_id, []).append(_message(room.room_id, event))
        self._bump()

    async def _on_undecrypted(self, room: MatrixRoom, event: MegolmEvent) -> None:
        # the room key can arrive after the message; keep it and retry when a key comes
        self._undecrypted.append((room, event))

    async def _on_room_key(self, _event: RoomKeyEvent | ForwardedRoomKeyEvent) -> None:
        still: list[tuple[MatrixRoom, MegolmEvent]] = []
        for room, event in self._undecrypted:
            try:
                decrypted = self.client.decrypt_event(event)
            except EncryptionError:
                still.append((room, event))
                continue
            if isinstance(decrypted, RoomMessageFormatted):
                await self._on_message(room, decrypted)
        self._undecrypted = still

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        if self._accept_invites and event.state_key == self.user_id and event.membership == "invite":
            joined = await self.client.join(room.room_id)
            if isinstance(joined, JoinError):
                raise AssertionError(f"{self.user_id} could not accept the invite to {room.room_id}: {joined.message}")

    async def _until(self, what: str, ready: Callable[[], bool], timeout_s: float) -> None:
        """Wait, woken by syncs and messages, until `ready()` holds; fail with `what` after timeout_s."""
        try:
            async with asyncio.timeout(timeout_s):
                while not ready():
                    if self._sync_task is not None and self._sync_task.done():
                        raise AssertionError(f"{self.user_id} stopped syncing: {self._sync_task.exception()!r}")
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{self.user_id}: {what} did not happen within {timeout_s} s") from None

    # --- what the person does --------------------------------------------------------------

    async def create_room(self, name: str, *, encrypted: bool, invite: list[str] | None = None) -> str:
        """A private room with `invite`d people; encrypted with Megolm from its first event if asked."""
        initial_state = [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}]
        created = await self.client.room_create(
            name=name, invite=invite or [], initial_state=initial_state if encrypted else []
        )
        if isinstance(created, RoomCreateError):
            raise AssertionError(f"{self.user_id} could not create room {name!r}: {created.message}")
        await self._until(f"room {name!r} showing up in sync", lambda: created.room_id in self.client.rooms, 10.0)
        return str(created.room_id)

    async def join(self, room_id: str, timeout_s: float = 10.0) -> None:
        """Join (or wait for an auto-accepted invite to land) until the room is in this client's sync."""
        if room_id not in self.client.rooms:
            joined = await self.client.join(room_id)
            if isinstance(joined, JoinError):
                raise AssertionError(f"{self.user_id} could not join {room_id}: {joined.message}")
        await self._until(f"joining {room_id}", lambda: room_id in self.client.rooms, timeout_s)

    async def invite(self, room_id: str, user_id: str) -> None:
        """Invite someone into a room this person is in."""
        invited = await self.client.room_invite(room_id, user_id)
        if isinstance(invited, RoomInviteError):
            raise AssertionError(f"{self.user_id} could not invite {user_id} to {room_id}: {invited.message}")

    async def wait_joined(self, room_id: str, user_id: str, timeout_s: float = 10.0) -> None:
        """Until this client's view of the room has `user_id` as a joined member."""

        def joined() -> bool:
            room = self.client.rooms.get(room_id)
            return room is not None and user_id in room.users and user_id not in room.invited_users

        await self._until(f"{user_id} joining {room_id}", joined, timeout_s)

    async def say(self, room_id: str, text: str, *, msgtype: str = "m.text") -> str:
        """Post plain text; returns the event id."""
        return await self.send(room_id, {"msgtype": msgtype, "body": text})

    async def edit(self, room_id: str, event_id: str, text: str) -> str:
        """Replace an earlier message of this person's (m.replace); returns the edit's event id."""
        content = {
            "msgtype": "m.text",
            "body": f"* {text}",
            "m.new_content": {"msgtype": "m.text", "body": text},
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
        }
        return await self.send(room_id, content)

    async def send(self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message") -> str:
        """Send any room event; in an encrypted room every joined device gets the room key first."""
        if room_id not in self.client.rooms:
            raise AssertionError(f"{self.user_id} is not in {room_id} (join it first)")
        if self.client.rooms[room_id].encrypted:
            await self._prepare_encrypted_send(room_id)
        sent = await self.client.room_send(room_id, event_type, content, ignore_unverified_devices=True)
        if not isinstance(sent, RoomSendResponse):
            raise AssertionError(f"{self.user_id} could not send to {room_id}: {sent}")
        return str(sent.event_id)

    async def _prepare_encrypted_send(self, room_id: str) -> None:
        """Refresh members and their devices from the server; re-key if a device has not got the session.

        nio shares a room key once and only re-keys on membership changes it has synced; a member who
        joined a moment ago may not be in this client's sync yet, and would get an undecryptable message.
        """
        await self.client.joined_members(room_id)
        if self.client.should_query_keys:
            await self.client.keys_query()
        olm = self.client.olm
        session = olm.outbound_group_sessions.get(room_id) if olm else None
        if olm is None or session is None:
            return
        covered = session.users_shared_with | session.users_ignored
        for user_id in self.client.rooms[room_id].users:
            for device in olm.device_store.active_user_devices(user_id):
                if device.id != self.client.device_id and (user_id, device.id) not in covered:
                    self.client.invalidate_outbound_session(room_id)
                    return

    async def wait_for(
        self, room_id: str, predicate: Callable[[Message], bool] = lambda _m: True, timeout_s: float = 15.0
    ) -> Message:
        """The first message from someone else in the room (already seen or yet to come) that matches."""
        found: list[Message] = []

        def matched() -> bool:
            found[:] = [m for m in self._seen.get(room_id, []) if predicate(m)][:1]
            return bool(found)

        try:
            await self._until(f"a matching message in {room_id}", matched, timeout_s)
        except AssertionError as error:
            seen = [(m.sender, m.body) for m in self._seen.get(room_id, [])]
            raise AssertionError(f"{error}; seen there: {seen}; undecrypted: {len(self._undecrypted)}") from None
        return found[0]

    def messages(self, room_id: str) -> list[Message]:
        """Every message from someone else this person has seen in the room, in order."""
        return list(self._seen.get(room_id, []))
