"""Proves the Matrix kit against a real Synapse: people talk in plain and encrypted rooms, and edits arrive as edits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

import kits.synapse
from kits.matrix_person import Person
from kits.synapse import Synapse, fresh


@pytest.fixture
async def pair(synapse: Synapse, tmp_path: Path) -> AsyncIterator[tuple[Person, Person]]:
    """Alice and Bob, freshly registered and logged in, each on a device with its own E2EE store."""
    async with AsyncExitStack() as stack:
        alice = await stack.enter_async_context(Person.login(synapse, synapse.register(fresh("alice")), tmp_path / "a"))
        bob = await stack.enter_async_context(Person.login(synapse, synapse.register(fresh("bob")), tmp_path / "b"))
        yield alice, bob


async def open_room(alice: Person, bob: Person, *, encrypted: bool) -> str:
    """Alice makes a room and invites Bob, Bob accepts, and Alice sees him in it."""
    room_id = await alice.create_room("kit test", encrypted=encrypted, invite=[bob.user_id])
    await bob.join(room_id)
    await alice.wait_joined(room_id, bob.user_id)
    return room_id


async def test_a_message_in_a_plain_room_reaches_the_other_person(pair: tuple[Person, Person]) -> None:
    alice, bob = pair
    room_id = await open_room(alice, bob, encrypted=False)

    event_id = await alice.say(room_id, "hello in the clear")

    heard = await bob.wait_for(room_id, lambda m: m.event_id == event_id)
    assert (heard.sender, heard.body, heard.encrypted, heard.replaces) == (
        alice.user_id,
        "hello in the clear",
        False,
        None,
    )
    assert alice.messages(room_id) == []  # nobody else spoke, and one's own messages are not "heard"


async def test_a_message_in_an_encrypted_room_arrives_decrypted_and_the_server_only_stores_ciphertext(
    synapse: Synapse, pair: tuple[Person, Person]
) -> None:
    alice, bob = pair
    room_id = await open_room(alice, bob, encrypted=True)

    event_id = await alice.say(room_id, "a secret for bob")

    heard = await bob.wait_for(room_id, lambda m: m.event_id == event_id)
    assert (heard.sender, heard.body, heard.encrypted) == (alice.user_id, "a secret for bob", True)
    stored = next(e for e in synapse.room_events(alice.account, room_id) if e["event_id"] == event_id)
    assert stored["type"] == "m.room.encrypted"
    assert "a secret for bob" not in str(stored)


async def test_both_people_can_talk_in_an_encrypted_room_and_each_hears_each_message_once(
    pair: tuple[Person, Person],
) -> None:
    alice, bob = pair
    room_id = await open_room(alice, bob, encrypted=True)

    first = await alice.say(room_id, "ping")
    await bob.wait_for(room_id, lambda m: m.event_id == first)
    reply = await bob.say(room_id, "pong")
    heard = await alice.wait_for(room_id, lambda m: m.event_id == reply)

    assert (heard.body, heard.encrypted) == ("pong", True)
    assert [m.body for m in bob.messages(room_id)] == ["ping"]
    assert [m.body for m in alice.messages(room_id)] == ["pong"]


async def test_someone_who_joins_an_encrypted_room_late_can_read_what_is_said_the_moment_they_are_in(
    pair: tuple[Person, Person],
) -> None:
    alice, bob = pair
    room_id = await alice.create_room("late joiner", encrypted=True)
    await alice.say(room_id, "before bob")  # a room key now exists, shared with nobody
    await alice.invite(room_id, bob.user_id)
    await bob.client.join(room_id)  # the server has Bob in the room; neither client's sync need show it yet

    event_id = await alice.say(room_id, "welcome bob")  # Alice's own sync may not have Bob's join yet

    heard = await bob.wait_for(room_id, lambda m: m.event_id == event_id)
    assert (heard.body, heard.encrypted) == ("welcome bob", True)


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
async def test_an_edit_arrives_as_an_edit_of_the_original_with_the_new_text(
    pair: tuple[Person, Person], encrypted: bool
) -> None:
    alice, bob = pair
    room_id = await open_room(alice, bob, encrypted=encrypted)
    original = await alice.say(room_id, "helo")
    await bob.wait_for(room_id, lambda m: m.event_id == original)

    edit_id = await alice.edit(room_id, original, "hello")

    edit = await bob.wait_for(room_id, lambda m: m.event_id == edit_id)
    assert (edit.replaces, edit.body, edit.encrypted) == (original, "hello", encrypted)
    assert [(m.body, m.replaces) for m in bob.messages(room_id)] == [("helo", None), ("hello", original)]


async def test_waiting_for_a_message_nobody_sends_fails_in_bounded_time(pair: tuple[Person, Person]) -> None:
    alice, bob = pair
    room_id = await open_room(alice, bob, encrypted=False)

    with pytest.raises(AssertionError, match=r"did not happen within 0\.5 s"):
        await bob.wait_for(room_id, lambda m: m.body == "never said", timeout_s=0.5)


def test_a_missing_synapse_install_fails_the_run_and_says_how_to_fix_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(kits.synapse, "SYNAPSE_PYTHON", tmp_path / "no-venv" / "bin" / "python")

    with pytest.raises(pytest.fail.Exception, match=r"run \./scripts/test"), kits.synapse.start_synapse(tmp_path):
        pass
