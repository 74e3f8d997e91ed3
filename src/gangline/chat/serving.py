"""Chat beside a serving pipeline: every ``[[chat]]`` account's transport, door, notifier and courier, as tasks.

``chat_door`` is built before the server starts (a missing secret is a configuration error then,
naming its key); the server enters it once the orchestrator runs and leaves it at shutdown, which
cancels every task and closes every transport within a bound.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from gangline.chat import EXTRAS, TRANSPORTS
from gangline.chat.agent import ChatAgent
from gangline.chat.commands import Commands
from gangline.chat.door import ChatDoor
from gangline.chat.extras import extras
from gangline.chat.htop import Htop
from gangline.chat.notifier import BACKOFF_S, Courier, Notifier
from gangline.chat.summary import DailySummary
from gangline.chat.transport import MessageRefused, Transport, TransportDown
from gangline.core.errors import ConfigError
from gangline.core.records import Check
from gangline.pipeline.orders import Door, Orders
from gangline.project.chatconfig import ChatSettings
from gangline.project.config import ProjectConfig
from gangline.project.paths import ProjectPaths

log = logging.getLogger(__name__)

CLOSE_S = 5.0  # each transport gets this long to close at shutdown
CHECK_S = 15.0  # doctor waits this long for a platform
RESTART_QUIET_S = 600.0  # an account that ran this long before failing starts again at the first pause


def make_transport(settings: ChatSettings, index: int, paths: ProjectPaths, env: Mapping[str, str]) -> Transport:
    """The transport a ``[[chat]]`` table names; ConfigError (naming ``chat[index]``'s key) for a missing secret."""
    module, name = TRANSPORTS[settings.transport].split(":")
    try:
        factory = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as err:
        extra = EXTRAS.get(settings.transport, "chat")
        raise ConfigError(f"chat[{index}].transport", f"{settings.transport} needs {err.name}, which is not installed: "
                                                      f"pip install 'gangline[{extra}]'") from None  # fmt: skip
    transport: Transport = factory(settings, f"chat[{index}]", paths, env)
    return transport


def chat_door(config: ProjectConfig, paths: ProjectPaths, env: Mapping[str, str]) -> Door | None:
    """The chat doors of the project, ready to enter beside the pipeline; None when project.toml has no [[chat]]."""
    if not config.chats:
        return None
    return door_of([make_transport(s, i, paths, env) for i, s in enumerate(config.chats, 1)])


def door_of(transports: list[Transport]) -> Door:
    """The accounts of ``transports`` as one door beside the pipeline."""

    @asynccontextmanager
    async def serve(orders: Callable[[], Orders]) -> AsyncIterator[None]:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(_account(t, orders), name=f"chat {t.settings.key}") for t in transports]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
        await _close(transports)

    return serve


async def _account(transport: Transport, orders: Callable[[], Orders], clock: Callable[[], float] = time.time) -> None:
    """One account, until cancelled; a failure of its own is logged and it starts again after a pause.

    Chat must never take the pipeline down with it: whatever goes wrong in one account (a platform's
    surprise, a bug) stays in that account. What it had to say waits in the outbox meanwhile.
    """
    failures = 0
    while True:
        started = clock()
        try:
            await _run_account(transport, orders, clock)
            return  # its tasks never end by themselves; should they, the account is over
        except Exception as err:  # logged with its traceback; the account starts again
            failures = 1 if clock() - started > RESTART_QUIET_S else failures + 1
            pause = BACKOFF_S[min(failures, len(BACKOFF_S)) - 1]
            log.exception("chat account failed; starting it again", exc_info=err, extra={"action": "chat_restart",
                          "transport": transport.settings.key, "retry_in_s": pause})  # fmt: skip
            await asyncio.sleep(pause)


async def _run_account(transport: Transport, orders: Callable[[], Orders], clock: Callable[[], float]) -> None:
    """One account's courier, notifier, htop, daily summary and, when it listens, its door."""
    orch = orders().orchestrator
    courier = Courier(transport, orch)
    notifier = Notifier(transport, orch, courier.wake)
    htop = Htop(transport, orders)
    agent = chat_agent(transport.settings.key, orders, courier.wake)
    commands = Commands(orders, extras(orders, htop, agent.reset if agent else None))
    door = ChatDoor(
        transport, orders, commands, free_text=agent.hear if agent else None, wake=courier.wake, clock=clock
    )
    async with asyncio.TaskGroup() as tg:
        if agent is not None:
            tg.create_task(agent.run())
        tg.create_task(courier.run())
        tg.create_task(htop.run())
        tg.create_task(DailySummary(transport, orders, courier.wake, clock).run())
        tg.create_task(notifier.run())
        if transport.listens:
            tg.create_task(_listen(transport, door))


def chat_agent(key: str, orders: Callable[[], Orders], wake: Callable[[], None]) -> ChatAgent | None:
    """The account's chat agent, when project.toml has a ``role = "chat"`` profile."""
    found = orders()
    profile = found.config.chat_agent()
    if profile is None:
        return None
    return ChatAgent(key, orders, profile, found.orchestrator.paths.state_dir / "chat" / key / "agent", wake)


async def _listen(transport: Transport, door: ChatDoor) -> None:
    """Listen, and listen again with backoff whenever the connection fails."""
    failures = 0
    while True:
        try:
            await transport.listen(door.hear)
            failures = 0
        except TransportDown as err:
            failures += 1
            pause = BACKOFF_S[min(failures, len(BACKOFF_S)) - 1]
            log.warning("chat connection lost; reconnecting", extra={"action": "chat_reconnect",
                        "transport": transport.settings.key, "error": str(err), "retry_in_s": pause})  # fmt: skip
            await asyncio.sleep(pause)


async def _close(transports: list[Transport]) -> None:
    for transport in transports:
        try:
            async with asyncio.timeout(CLOSE_S):
                await transport.close()
        except (TimeoutError, OSError) as err:
            about = {"action": "chat_close", "transport": transport.settings.key, "error": str(err)}
            log.warning("chat transport did not close cleanly", extra=about)


async def check_accounts(config: ProjectConfig, paths: ProjectPaths, env: Mapping[str, str]) -> list[Check]:
    """Each account's credentials and whether its platform answers, changing nothing."""
    return [await _check(settings, index, paths, env) for index, settings in enumerate(config.chats, 1)]


async def _check(settings: ChatSettings, index: int, paths: ProjectPaths, env: Mapping[str, str]) -> Check:
    name = f"chat {settings.key} ({settings.transport})"
    try:
        transport = make_transport(settings, index, paths, env)
    except ConfigError as err:
        return Check(name, False, str(err), "set the variable in the server's environment, or install what it names")
    try:
        async with asyncio.timeout(CHECK_S):
            detail = await transport.check()
    except (TransportDown, TimeoutError) as err:
        return Check(name, False, str(err) or "no answer", "check the address and that this machine reaches it")
    except MessageRefused as err:
        return Check(name, False, str(err), f"put the secret right in the environment (chat[{index}])")
    finally:
        await transport.close()
    return Check(name, True, detail + ("" if settings.allow else "; allow is empty: nobody may give orders"))
