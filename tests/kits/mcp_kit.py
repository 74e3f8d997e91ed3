"""The real app on a real uvicorn with gangline's MCP endpoint, and the MCP SDK's own client to talk to it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from fastapi import FastAPI
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from gangline.agents.bus import Subscription
from gangline.core.events import SessionStarted
from gangline.core.items import Item
from gangline.core.profiles import Role
from gangline.pipeline.grants import agent_mcp_url
from gangline.pipeline.orchestrator import Orchestrator
from gangline.pipeline.permissions import Permissions
from gangline.server.app import create_app
from gangline.server.serving import serving
from gangline.server.state import state_of
from kits.pipeline_kit import FAST, Project

TOKEN = "s3cret-server-token-0123456789"


def make_app(project: Project, token: str | None = None) -> FastAPI:
    assert project.config is not None
    return create_app(project.paths, project.config, project.store, dict(os.environ), token=token, settings=FAST)


@dataclass
class Served:
    app: FastAPI
    url: str  # the server's base URL

    @property
    def orch(self) -> Orchestrator:
        orch: Orchestrator = state_of(self.app).running()
        return orch

    @property
    def permissions(self) -> Permissions:
        permissions: Permissions = state_of(self.app).permissions
        return permissions

    @property
    def mcp_url(self) -> str:
        return agent_mcp_url(self.url)

    def grant(self, item: Item, worktree: Path, role: Role = Role.CODER, run_id: str | None = None) -> str:
        """A run's token as AgentRuns.run would issue it, without an agent behind it."""
        return self.orch.grants.issue(run_id or f"{item.id}-{role.value}-9", item.id, role, worktree)


class Sessions:
    """The agent sessions this app's orchestrator starts, in order, as their runs announce them."""

    def __init__(self, app: FastAPI) -> None:
        orch = state_of(app).running()
        self._runs: asyncio.Queue[tuple[str, Subscription]] = asyncio.Queue()
        # Called when the process is recorded, before its first byte is read: nothing is missed.
        orch.on_run_started(lambda run_id: self._runs.put_nowait((run_id, orch.bus(run_id).subscribe())))

    async def next(self, timeout_s: float = 30) -> tuple[str, str]:
        """(run id, session id) of the next run, once its agent has started its session."""
        async with asyncio.timeout(timeout_s):
            run_id, records = await self._runs.get()
            async for record in records:
                if isinstance(record.event, SessionStarted):
                    return run_id, record.event.session_id
        raise AssertionError(f"run {run_id} ended without starting a session")


@asynccontextmanager
async def served(project: Project, token: str | None = None) -> AsyncIterator[Served]:
    """The app (orchestrator, REST, MCP) of ``project`` on a real uvicorn (gangline.serve.serving)."""
    app = make_app(project, token)
    async with serving(app) as url:
        yield Served(app, url)


@asynccontextmanager
async def mcp_client(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    """The MCP SDK's own client over streamable HTTP, initialised, with ``token`` as its bearer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def text_of(result: Any) -> str:
    """The first text content of a tool result."""
    return str(result.content[0].text)
