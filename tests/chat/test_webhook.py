"""The webhook transport: every notice POSTed, signed, to a real receiver, through a receiver that is down or refuses.

Every test serves a real project (real git, real SQLite, the orchestrator) on a real uvicorn with
the chat door that project.toml's ``[[chat]]`` tables build (``chat_door``), and a real HTTP
receiver on loopback (``kits.webhook_receiver``). Items are blocked over REST as a person would;
the receiver checks signatures the way any receiver would, with its own copy of the secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from sqlalchemy import select

from gangline.chat.serving import chat_door, check_accounts
from gangline.core.items import Item
from gangline.core.records import OutboxRow
from gangline.server.app import create_app
from gangline.server.serving import serving
from gangline.store import schema
from kits.mcp_kit import Served
from kits.pipeline_kit import FAST, Project, commit_file
from kits.webhook_receiver import Received, receiving

LATER = 32503680000.0  # the year 3000: an item scheduled then never starts by itself
SECRET_ENV = "GANGLINE_TEST_WEBHOOK_SECRET"
SECRET = "0f6c5e2b-the-secret-both-ends-hold"
ENV = {SECRET_ENV: SECRET}
TOLERANCE_S = 300  # a receiver refuses a request stamped longer ago than this: a replay


def refusal(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> str | None:
    """Why a receiver holding ``secret`` refuses this request at ``now``; None when it is genuine and fresh.

    Written here as a receiver would write it, from the documented scheme: HMAC-SHA256 over
    ``"<timestamp>.<raw body>"``, compared in constant time, and no old timestamps.
    """
    stamp, given = headers.get("X-Gangline-Timestamp"), headers.get("X-Gangline-Signature-256")
    if stamp is None or given is None:
        return "unsigned"
    if not stamp.isdigit() or abs(now - int(stamp)) > TOLERANCE_S:
        return "stale"
    expected = "sha256=" + hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return "forged"
    return None


def webhook_table(url: str, name: str = "", secret: bool = True, notify: tuple[str, ...] = ()) -> str:
    lines = ["[[chat]]", 'transport = "webhook"', f"url = {json.dumps(url)}", "window_s = 0"]
    lines += [f"name = {json.dumps(name)}"] if name else []
    lines += [f"secret_env = {json.dumps(SECRET_ENV)}"] if secret else []
    lines += [f"notify = {json.dumps(list(notify))}"] if notify else []
    return "\n".join(lines) + "\n"


def project_with(root: Path, *tables: str) -> Project:
    project = Project(root)
    project.agent("coder", [commit_file("a.txt", "1\n")])
    project.configure(tables="\n".join(tables))
    return project


def waiting(project: Project, title: str) -> Item:
    """A backlog item the pipeline leaves alone (it is scheduled for the year 3000)."""
    item = project.add(title)
    return project.store.schedule_start(item.id, LATER, "setup")


@asynccontextmanager
async def served_with_chat(project: Project, env: Mapping[str, str] = ENV) -> AsyncIterator[Served]:
    """The project's app on a real uvicorn with the chat door its ``[[chat]]`` tables build."""
    assert project.config is not None
    door = chat_door(project.config, project.paths, env)
    assert door is not None
    app = create_app(project.paths, project.config, project.store, dict(os.environ), settings=FAST, doors=[door])
    async with serving(app) as url:
        yield Served(app, url)


async def block(rest: httpx.AsyncClient, item: Item, reason: str) -> None:
    (await rest.post(f"/api/items/{item.id}/block", json={"reason": reason})).raise_for_status()


def outbox(project: Project, transport: str) -> list[OutboxRow]:
    box = schema.chat_outbox.c
    query = select(schema.chat_outbox).where(box.transport == transport).order_by(box.id)
    with project.store.engine.connect() as conn:
        return [OutboxRow(**row._mapping) for row in conn.execute(query)]


def keys(received: list[Received]) -> list[str]:
    return [r.headers["Idempotency-Key"] for r in received]


async def test_each_notice_is_one_post_signed_so_the_receiver_can_tell_it_is_genuine_and_fresh(tmp_path: Path) -> None:
    def verified(request: Received, _before: int) -> int:
        return 200 if refusal(SECRET, request.headers, request.body, time.time()) is None else 401

    async with receiving(verified) as receiver:
        project = project_with(tmp_path, webhook_table(receiver.url))
        item = waiting(project, "Add a login page")
        async with served_with_chat(project) as served, httpx.AsyncClient(base_url=served.url) as rest:
            before = time.time()
            await block(rest, item, "waits for the key")
            [came] = await receiver.wait_accepted(1)
            after = time.time()
        assert receiver.received == [came]  # one POST, taken at the first try
    body, headers = came.json, came.headers
    assert set(body) == {"transport", "room", "text", "key", "request_id", "sent_at"}
    assert (body["transport"], body["room"], body["text"]) == ("webhook", "webhook", "#1 is blocked: waits for the key")
    assert body["request_id"] is None and before <= body["sent_at"] <= after
    assert body["key"] and headers["Idempotency-Key"] == body["key"]
    assert headers["Content-Type"] == "application/json"
    stamp = headers["X-Gangline-Timestamp"]
    assert int(before) <= int(stamp) <= after
    [row] = outbox(project, "webhook")
    assert (row.text, row.message_id, row.failure) == (body["text"], body["key"], None) and row.sent_at is not None
    # The same check refuses what is not genuine or not fresh: the check can fail.
    assert refusal("another secret", headers, came.body, time.time()) == "forged"
    assert refusal(SECRET, headers, came.body.replace(b"waits for the key", b"is done"), time.time()) == "forged"
    restamped = headers.copy()
    restamped["X-Gangline-Timestamp"] = str(int(time.time()) + 1)  # a replay with a new stamp, old signature
    assert refusal(SECRET, restamped, came.body, time.time()) == "forged"
    assert refusal(SECRET, headers, came.body, int(stamp) + TOLERANCE_S + 1) == "stale"  # the same, replayed later


async def test_a_receiver_that_is_down_gets_every_notice_once_in_order_when_it_is_back(tmp_path: Path) -> None:
    async with receiving(lambda _request, before: 503 if before < 2 else 200) as receiver:
        project = project_with(tmp_path, webhook_table(receiver.url))
        items = [waiting(project, title) for title in ("One", "Two", "Three", "Four")]
        async with served_with_chat(project) as served, httpx.AsyncClient(base_url=served.url) as rest:
            for item in items[:3]:
                await block(rest, item, "waits for the API")
            await receiver.wait_accepted(3)
            await block(rest, items[3], "waits for the API")  # anything repeated would come before this
            accepted = await receiver.wait_accepted(4)
    down = receiver.received[:2]
    assert [r.status for r in down] == [503, 503]
    assert keys(down) == keys(accepted[:1]) * 2  # the first notice, tried again under the same key
    assert [r.text for r in accepted] == [f"#{n} is blocked: waits for the API" for n in (1, 2, 3, 4)]
    assert len(set(keys(accepted))) == 4 and len(receiver.received) == 6
    rows = outbox(project, "webhook")  # oldest first: the order of the events
    assert keys(accepted) == [row.message_id for row in rows] and [row.failure for row in rows] == [None] * 4


async def test_a_notice_the_receiver_refuses_for_good_is_set_aside_and_later_ones_still_arrive(tmp_path: Path) -> None:
    def refusing_two(request: Received, _before: int) -> int | tuple[int, str]:
        return (400, "unknown channel") if request.text.startswith("#2 ") else 200

    async with receiving(refusing_two) as receiver:
        project = project_with(tmp_path, webhook_table(receiver.url))
        items = [waiting(project, title) for title in ("One", "Two", "Three")]
        async with served_with_chat(project) as served, httpx.AsyncClient(base_url=served.url) as rest:
            for item in items:
                await block(rest, item, "waits")
            await receiver.wait_accepted(2)
    assert [(r.text, r.status) for r in receiver.received] == [
        ("#1 is blocked: waits", 200),
        ("#2 is blocked: waits", 400),  # tried once: a refusal for good is not tried again
        ("#3 is blocked: waits", 200),
    ]
    first, refused, third = outbox(project, "webhook")
    assert refused.text == "#2 is blocked: waits" and refused.sent_at is not None and refused.message_id is None
    assert refused.failure is not None and "answered 400: unknown channel" in refused.failure
    assert (first.failure, third.failure) == (None, None)


async def test_each_webhook_gets_only_the_kinds_of_notice_it_asks_for(tmp_path: Path) -> None:
    async with receiving() as asks, receiving() as blocks:
        project = project_with(
            tmp_path,
            webhook_table(asks.url, name="asks", notify=("permission",)),
            webhook_table(blocks.url, name="blocks", notify=("blocked",)),
        )
        first, second, third = waiting(project, "One"), waiting(project, "Two"), waiting(project, "Three")
        async with (
            served_with_chat(project) as served,
            httpx.AsyncClient(base_url=served.url) as rest,
            asyncio.TaskGroup() as tg,
        ):
            await block(rest, first, "waits for the key")  # not for "asks"
            asking = tg.create_task(
                served.permissions.ask("2-coder-1", second.id, None, "Bash", {"command": "make deploy"}, None)
            )  # not for "blocks"
            [request] = await served.permissions.wait_requested(10)
            answered = await rest.post(f"/api/permissions/{request.id}", json={"decision": "deny", "message": "no"})
            answered.raise_for_status()
            await block(rest, third, "waits for the key")
            # Each receiver's last notice comes after the one it did not ask for, and notices go in order.
            await asks.wait_accepted(1)
            await blocks.wait_accepted(2)
    assert [(r.json["room"], r.text, r.json["request_id"]) for r in asks.received] == [
        ("asks", "#2's agent asks to use Bash: answer allow, deny or always allow", request.id)
    ]
    assert [(r.json["room"], r.text) for r in blocks.received] == [
        ("blocks", "#1 is blocked: waits for the key"),
        ("blocks", "#3 is blocked: waits for the key"),
    ]
    assert asking.result().behavior == "deny"


async def test_without_a_secret_a_notice_is_posted_unsigned(tmp_path: Path) -> None:
    async with receiving() as receiver:
        project = project_with(tmp_path, webhook_table(receiver.url, name="plain", secret=False))
        item = waiting(project, "Add a login page")
        async with served_with_chat(project, env={}) as served, httpx.AsyncClient(base_url=served.url) as rest:
            await block(rest, item, "waits for the key")
            [came] = await receiver.wait_accepted(1)
    body = came.json
    assert (body["transport"], body["room"], body["text"]) == ("plain", "plain", "#1 is blocked: waits for the key")
    assert came.headers["Idempotency-Key"] == body["key"]
    assert not [name for name in came.headers if name.lower().startswith("x-gangline-")]
    assert refusal(SECRET, came.headers, came.body, time.time()) == "unsigned"


async def test_doctor_finds_what_listens_at_the_url_without_sending_anything(tmp_path: Path) -> None:
    async with receiving() as receiver:
        project = project_with(tmp_path, webhook_table(receiver.url), webhook_table("http://127.0.0.1:9/x", "nowhere"))
        assert project.config is not None
        found = {c.name: c for c in await check_accounts(project.config, project.paths, ENV)}
        unset = {c.name: c for c in await check_accounts(project.config, project.paths, {})}
    listening = found["chat webhook (webhook)"]
    assert listening.ok and listening.detail.startswith("127.0.0.1:") and "notices go signed" in listening.detail
    assert (
        not found["chat nowhere (webhook)"].ok
        and "nothing answers at 127.0.0.1:9" in found["chat nowhere (webhook)"].detail
    )
    assert receiver.received == []
    assert unset["chat webhook (webhook)"].detail.startswith(
        f"chat[1].secret_env: expected the environment variable {SECRET_ENV}"
    )
